"""Point splatting with a z-buffer and the noise-shaping masks (docs/method.md#point-cloud-preview,
docs/method.md#scene-constrained-noise-shaping).

The renderer is plain torch, so the same code runs on CPU and CUDA. Each point lands on the one
pixel that contains its projection (pixel ``i`` covers ``[i, i+1)``); among the points landing on a
pixel the nearest wins. The z-buffer is a single ``scatter_reduce(amin)`` over 64-bit keys whose
high half is the depth's float32 bit pattern (monotone for positive floats) and whose low half is
the point index, so depth test and colour lookup happen in one pass, deterministically.
Frames are independent: a batch of frames is one scatter, and any batch size gives the same result.

Masks: a pixel is *valid* where a point landed; the noise-shaping mask keeps a valid pixel only if
its whole ``k x k`` neighbourhood is valid (reflect padding at the image border, as the reference
implementation), then resizes it to the latent grid (bilinear, align corners) and keeps ``>= 0.9``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .constants import LATENT_STRIDE, MASK_KERNEL
from .device import resolve_device
from .errors import RealcamError

NEAR = 1e-3  # metres: points closer than this to the camera plane are dropped
_EMPTY = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF


@dataclass
class RenderOutput:
    rgb: torch.Tensor  # (F, H, W, 3) uint8
    valid: torch.Tensor  # (F, H, W) bool
    zbuf: torch.Tensor  # (F, H, W) int64 z-buffer keys (depth bits << 32 | point index)

    @property
    def depth(self) -> torch.Tensor:
        """``(F, H, W)`` float32 z-depth of the winning point, 0 where nothing landed."""
        z = (self.zbuf >> 32).to(torch.int32).view(torch.float32)
        return torch.where(self.valid, z, torch.zeros((), device=z.device))

    @property
    def point_index(self) -> torch.Tensor:
        """``(F, H, W)`` int64 index of the point shown at each pixel, -1 where none."""
        return torch.where(self.valid, self.zbuf & _LOW32, -1)


class PointRenderer:
    """A point cloud kept on one device, rendered to any camera, resolution and batch of frames."""

    def __init__(self, points, colors, device: str | torch.device | None = "auto", compile: bool = False):
        self.device = torch.device(resolve_device(device))
        self.compile = compile
        pts = torch.as_tensor(
            np.asarray(points, dtype=np.float32) if not torch.is_tensor(points) else points, dtype=torch.float32
        )
        col = torch.as_tensor(np.asarray(colors) if not torch.is_tensor(colors) else colors)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise RealcamError(f"points must be (P, 3), got {tuple(pts.shape)}", "point cloud")
        if col.shape != pts.shape:
            raise RealcamError(f"colours must be (P, 3) like the points, got {tuple(col.shape)}", "point cloud")
        if len(pts) >= 2**32 - 1:
            raise RealcamError("too many points (at most 2^32 - 2)", "point cloud")
        if col.dtype != torch.uint8:
            col = (col.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        self.points = pts.to(self.device).contiguous()
        self.points_t = self.points.T.contiguous()  # (3, P)
        # One extra colour row: index P (never a point) is the background.
        # Colours packed as one int32 per point (R, G, B, 0 bytes), so that the colour lookup is
        # a 1-D gather; one extra entry (index P, never a point) is black for empty pixels.
        rgba = torch.cat([col, torch.zeros(len(col), 1, dtype=torch.uint8)], dim=1)
        packed = rgba.contiguous().view(torch.int32).reshape(-1)
        self.colors = col.to(self.device)
        self.packed = torch.cat([packed, torch.zeros(1, dtype=torch.int32)]).to(self.device)
        self.index = torch.arange(len(pts), device=self.device, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.points)

    def render(
        self, k, w2c, height: int, width: int, background=(0, 0, 0), batch_size: int | None = None
    ) -> RenderOutput:
        """Render ``F`` views: pixel ``k`` ``(F, 3, 3)`` (or one ``(3, 3)``) and ``w2c`` ``(F, 4, 4)``.

        ``batch_size`` frames are projected at a time (it bounds the ``(B, P)`` temporaries); all
        frames share one z-buffer, so the result does not depend on it.
        """
        w2c = torch.as_tensor(np.asarray(w2c) if not torch.is_tensor(w2c) else w2c, dtype=torch.float64).reshape(
            -1, 4, 4
        )
        k = torch.as_tensor(np.asarray(k) if not torch.is_tensor(k) else k, dtype=torch.float64)
        k = k.reshape(-1, 3, 3).expand(len(w2c), 3, 3)
        n = len(w2c)
        hw = height * width
        if n * hw + 1 >= 2**62:
            raise RealcamError(f"{n} frames of {width}x{height} are too many", "render")
        batch_size = batch_size or n
        dev = self.device
        proj = (k @ w2c[:, :3, :]).to(device=dev, dtype=torch.float32)  # (F, 3, 4)
        project = _compiled_project_keys() if self.compile else project_keys
        zbuf = torch.full((n * hw + 1,), _EMPTY, dtype=torch.int64, device=dev)
        frame_base = torch.arange(n, device=dev, dtype=torch.int64).unsqueeze(1) * hw
        for i in range(0, n, batch_size):
            flat, key = project(
                proj[i : i + batch_size],
                self.points_t,
                self.index,
                frame_base[i : i + batch_size],
                height,
                width,
                n * hw,
            )
            zbuf.scatter_reduce_(0, flat.view(-1), key.view(-1), reduce="amin", include_self=True)
        zbuf = zbuf[:-1]
        valid = zbuf != _EMPTY
        # Empty pixels hold INT64_MAX, whose low half is 0xFFFFFFFF: clamp it to the black entry.
        idx = (zbuf & _LOW32).clamp_max_(len(self.points))
        rgb = self.packed[idx].view(torch.uint8).view(n, height, width, 4)[..., :3]
        bg = torch.as_tensor(background, dtype=torch.uint8, device=dev)
        if bg.any():
            rgb = torch.where(valid.view(n, height, width, 1), rgb, bg)
        return RenderOutput(rgb, valid.view(n, height, width), zbuf.view(n, height, width))

    def iter_render(
        self, k, w2c, height: int, width: int, background=(0, 0, 0), batch_size: int = 1
    ) -> Iterator[RenderOutput]:
        """Stream batches of frames (for previews longer than memory allows)."""
        w2c = np.asarray(w2c).reshape(-1, 4, 4)
        k = np.array(np.broadcast_to(np.asarray(k).reshape(-1, 3, 3), (len(w2c), 3, 3)))
        for i in range(0, len(w2c), batch_size):
            yield self.render(k[i : i + batch_size], w2c[i : i + batch_size], height, width, background)


def project_keys(
    proj: torch.Tensor,
    points_t: torch.Tensor,
    index: torch.Tensor,
    frame_base: torch.Tensor,
    height: int,
    width: int,
    dump: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffer slot and key of every point in every frame of a batch.

    ``proj`` ``(B, 3, 4)`` is ``K @ w2c[:3]`` (so ``[u z, v z, z] = proj @ [p, 1]``), ``points_t``
    ``(3, P)``, ``frame_base`` ``(B, 1)`` the first slot of each frame. Returns ``flat`` ``(B, P)``
    int64, the slot ``frame_base + v * W + u`` of the pixel containing the projection (``dump``
    for points behind the camera or outside the image), and ``key`` ``(B, P)`` int64: the depth's
    float32 bits in the high half and the point index in the low half, so that the smallest key
    of a pixel is its nearest point.
    """
    b = proj.shape[0]
    cam = torch.baddbmm(proj[:, :, 3:], proj[:, :, :3], points_t.expand(b, -1, -1))
    x, y, z = cam.unbind(1)  # (B, P) each, contiguous
    u = x / z
    v = y / z
    ok = (z > NEAR) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    # Truncation is floor where ok (u, v >= 0); every other point goes to the dump slot.
    pixel = (v.to(torch.int32) * width + u.to(torch.int32)).to(torch.int64)
    flat = torch.where(ok, pixel + frame_base, dump)
    key = (z.view(torch.int32).to(torch.int64) << 32) | index
    return flat, key


_COMPILED = {}


def _compiled_project_keys():
    """:func:`project_keys` fused into one loop by ``torch.compile`` (CPU C++ or CUDA Triton).

    The first call per shape compiles (tens of seconds, cached on disk by PyTorch afterwards);
    results are identical to the eager function.
    """
    if "fn" not in _COMPILED:
        _COMPILED["fn"] = torch.compile(project_keys, dynamic=False)
    return _COMPILED["fn"]


def render_points(
    points,
    colors,
    k,
    w2c,
    height: int,
    width: int,
    background=(0, 0, 0),
    device: str | torch.device | None = "auto",
    batch_size: int | None = None,
    compile: bool = False,
):
    """One-call rendering: returns NumPy ``rgb (F, H, W, 3) uint8``, ``valid (F, H, W) bool``,
    ``depth (F, H, W) float32``."""
    out = PointRenderer(points, colors, device, compile).render(k, w2c, height, width, background, batch_size)
    return out.rgb.cpu().numpy(), out.valid.cpu().numpy(), out.depth.cpu().numpy()


# ----------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------
def _as_tensor(mask) -> tuple[torch.Tensor, bool]:
    if torch.is_tensor(mask):
        return mask, False
    return torch.from_numpy(np.asarray(mask)), True


def _reflect_index(n: int, r: int, device) -> torch.Tensor:
    """Indices ``-r .. n-1+r`` read by reflection at the ends (``-1 -> 1``, ``n -> n-2``)."""
    i = torch.arange(-r, n + r, device=device).abs()
    i = torch.where(i >= n, 2 * (n - 1) - i, i)
    return i.clamp_(0, n - 1)  # n == 1: every neighbour is the pixel itself


def edge_filter(valid, kernel: int = MASK_KERNEL):
    """Keep a valid pixel only if its whole ``kernel x kernel`` neighbourhood is valid.

    ``valid``: ``(..., H, W)`` bool (NumPy or torch; the result has the same type). Out-of-image
    neighbours are read by reflection at the border. A hole grows by ``kernel // 2`` pixels.
    The box is separable: an AND of ``kernel`` shifted rows, then of ``kernel`` shifted columns.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise RealcamError(f"kernel must be a positive odd number, got {kernel}", "--kernel")
    t, was_numpy = _as_tensor(valid)
    t = t.bool()
    if kernel == 1:
        out = t.clone()
    else:
        h, w = t.shape[-2:]
        r = kernel // 2
        x = t.index_select(-2, _reflect_index(h, r, t.device))
        acc = x[..., 0:h, :].clone()
        for d in range(1, kernel):
            acc &= x[..., d : d + h, :]
        x = acc.index_select(-1, _reflect_index(w, r, t.device))
        out = x[..., 0:w].clone()
        for d in range(1, kernel):
            out &= x[..., d : d + w]
    return out.numpy() if was_numpy else out


def latent_size(height: int, width: int, stride: int = LATENT_STRIDE) -> tuple[int, int]:
    return max(1, math.ceil(height / stride)), max(1, math.ceil(width / stride))


def to_latent_mask(mask, stride: int = LATENT_STRIDE, threshold: float = 0.9):
    """A pixel mask ``(..., H, W)`` at latent resolution: bilinear (align corners), ``>= threshold``."""
    if stride < 1:
        raise RealcamError(f"latent stride must be at least 1, got {stride}", "--latent-stride")
    t, was_numpy = _as_tensor(mask)
    shape = t.shape
    h, w = shape[-2:]
    lh, lw = latent_size(h, w, stride)
    x = t.reshape(-1, 1, h, w).float()
    if (lh, lw) != (h, w):
        x = F.interpolate(x, size=(lh, lw), mode="bilinear", align_corners=True)
    out = (x >= threshold).reshape(*shape[:-2], lh, lw)
    return out.numpy() if was_numpy else out


def noise_shaping_masks(valid, kernel: int = MASK_KERNEL, stride: int = LATENT_STRIDE, threshold: float = 0.9):
    """``(pixel_mask, latent_mask)`` for noise shaping from the renderer's validity mask."""
    pixel = edge_filter(valid, kernel)
    return pixel, to_latent_mask(pixel, stride, threshold)
