"""The preview renderers and the noise-shaping masks (docs/method.md#point-cloud-preview,
docs/method.md#scene-constrained-noise-shaping). Both renderers are plain torch, so the same code
runs on CPU and CUDA; frames are independent, so any batch size gives the same result.

:class:`SurfaceRenderer` (the default of ``preview`` and ``edit``) draws a depth image as a
continuous surface: holes remain only where the image does not see the scene.

:class:`PointRenderer` draws a point cloud: each point lands on the one pixel that contains its
projection (pixel ``i`` covers ``[i, i+1)``); among the points landing on a pixel the nearest wins.
The z-buffer is a single ``scatter_reduce(amin)`` over 64-bit keys whose high half is the depth's
float32 bit pattern (monotone for positive floats) and whose low half is the point index, so depth
test and colour lookup happen in one pass, deterministically.

Masks: the noise-shaping mask keeps a valid pixel only if its whole ``k x k`` neighbourhood is
valid (reflect padding at the image border, as the reference implementation), then resizes it to
the latent grid (bilinear, align corners) and keeps ``>= 0.9``.
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
    zbuf: torch.Tensor | None = None  # (F, H, W) int64 keys (depth bits << 32 | point index): points
    z: torch.Tensor | None = None  # (F, H, W) float32 depth: the surface renderer

    @property
    def depth(self) -> torch.Tensor:
        """``(F, H, W)`` float32 z-depth of what each pixel shows, 0 where nothing."""
        z = self.z if self.z is not None else (self.zbuf >> 32).to(torch.int32).view(torch.float32)
        return torch.where(self.valid, z, torch.zeros((), device=z.device))

    @property
    def point_index(self) -> torch.Tensor:
        """``(F, H, W)`` int64 index of the point shown at each pixel, -1 where none (points only)."""
        if self.zbuf is None:
            raise RealcamError("the surface renderer has no points to index", "render")
        return torch.where(self.valid, self.zbuf & _LOW32, -1)


def view_cameras(k, w2c) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel intrinsics ``(F, 3, 3)`` (one ``(3, 3)`` serves every view) and ``w2c`` ``(F, 4, 4)``
    of ``F`` views, as float64 tensors (NumPy or torch in)."""
    w2c = torch.as_tensor(np.asarray(w2c) if not torch.is_tensor(w2c) else w2c, dtype=torch.float64)
    w2c = w2c.reshape(-1, 4, 4)
    k = torch.as_tensor(np.asarray(k) if not torch.is_tensor(k) else k, dtype=torch.float64)
    return k.reshape(-1, 3, 3).expand(len(w2c), 3, 3), w2c


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
        k, w2c = view_cameras(k, w2c)
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


# ----------------------------------------------------------------------------------------------
# A depth image as a continuous surface
# ----------------------------------------------------------------------------------------------
#: Quads projected longer than this (pixels, along either grid direction) are subdivided; shorter
#: ones leave gaps of at most one pixel between their corners, which the crack fill closes.
SUBDIVIDE_ABOVE = 1.5
#: Subdivision steps per quad side, rounded up to one of these (each tier is one vectorised pass);
#: a quad stretched beyond the last is sampled at the last (a close-up may then keep cracks).
SUBDIVISION_TIERS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
#: Neighbouring depths on one surface differ by at most this fraction (quads and crack fill).
SURFACE_RATIO = 0.05
#: A pixel shows the image where the source depth at its back-projection agrees to this fraction.
VISIBILITY_RATIO = 0.05
#: Frames the surface renderer draws at once unless told (measured fastest on CPU: 4 of 16 frames
#: at 512x320 took 372 ms against 500 ms for all 16 at once).
DEFAULT_BATCH = 4
_INT32_MAX = torch.iinfo(torch.int32).max


class SurfaceRenderer:
    """The image's scene as a surface: the depth map is a grid mesh whose quads join four
    neighbouring kept pixels on one surface (their depths within :data:`SURFACE_RATIO`), cut
    wherever a pixel was dropped (depth edges, outliers). A view is rendered in two passes
    (docs/method.md#point-cloud-preview):

    1. **depth**: every kept pixel and, for quads whose projection is stretched beyond
       :data:`SUBDIVIDE_ABOVE` pixels, a grid of samples across the quad (bilinear in screen
       position, linear in ``1/z``) land in a z-buffer; a pixel between two pixels of one surface
       (left and right, above and below, or diagonally opposite) takes the nearer of them when it
       is empty or farther (crack fill, :func:`fill_cracks`);
    2. **colour**: each pixel's centre at its depth is projected back into the image and the image
       is sampled bilinearly there; the pixel is valid when the image's own depth there agrees
       (:data:`VISIBILITY_RATIO`), i.e. when the image sees that point.

    Holes remain only where the image does not see the scene (disocclusions, outside its frame,
    dropped edge pixels). Plain torch: one code path for CPU and CUDA; frames are independent, so
    any ``batch_size`` gives the same result. The reference view reproduces the image.
    ``compile`` is accepted for the renderers' common signature and ignored: fusing the vertex
    projection with ``torch.compile`` measured no faster (16 frames at 512x320: 227 against 222 ms).
    """

    def __init__(self, image, depth, k, device: str | torch.device | None = "auto", compile: bool = False):
        self.device = torch.device(resolve_device(device))
        self.compile = compile
        image = np.asarray(image)
        d = np.asarray(depth, dtype=np.float32)
        if d.ndim != 2 or image.shape[:2] != d.shape or image.ndim != 3 or image.shape[2] != 3:
            raise RealcamError(f"image {image.shape} and depth {d.shape} must be (H, W, 3) and (H, W)", "scene")
        keep = np.isfinite(d) & (d > 0)
        if not keep.any():
            raise RealcamError("the depth map has no point to render", "scene")
        d = np.where(keep, d, 1.0).astype(np.float32)
        self.h0, self.w0 = d.shape
        # quads: four kept neighbours on one surface; a pixel is drawn only as a corner of one (a
        # flying pixel between two surfaces, or an isolated spike, belongs to none)
        q = np.stack([d[:-1, :-1], d[:-1, 1:], d[1:, :-1], d[1:, 1:]])
        kq = keep[:-1, :-1] & keep[:-1, 1:] & keep[1:, :-1] & keep[1:, 1:]
        quad_ok = kq & (q.max(0) <= (1 + SURFACE_RATIO) * q.min(0))
        corner = np.zeros_like(keep)
        corner[:-1, :-1] |= quad_ok
        corner[:-1, 1:] |= quad_ok
        corner[1:, :-1] |= quad_ok
        corner[1:, 1:] |= quad_ok
        keep &= corner
        self.quad_ok = torch.as_tensor(quad_ok).to(self.device)
        self.k = np.asarray(k, dtype=np.float64)
        kinv = np.linalg.inv(self.k)
        vv, uu = np.meshgrid(np.arange(self.h0) + 0.5, np.arange(self.w0) + 0.5, indexing="ij")
        rays = np.stack([uu, vv, np.ones_like(uu)], 0).reshape(3, -1)
        points = (kinv @ rays) * d.reshape(1, -1)
        dev = self.device
        self.points_t = torch.as_tensor(points, dtype=torch.float32).contiguous().to(dev)  # (3, H0*W0)
        self.keep = torch.as_tensor(keep.reshape(-1)).to(dev)
        # bilinear source for the colour pass: r, g, b, depth on kept pixels, kept weight
        src = np.concatenate(
            [image.astype(np.float32).transpose(2, 0, 1), (d * keep)[None], keep[None].astype(np.float32)]
        )
        self.source = torch.as_tensor(src).unsqueeze(0).to(dev)

    def render(
        self, k, w2c, height: int, width: int, background=(0, 0, 0), batch_size: int | None = None
    ) -> RenderOutput:
        """Render ``F`` views: pixel ``k`` ``(F, 3, 3)`` (or one ``(3, 3)``) and ``w2c`` ``(F, 4, 4)``
        in the image camera's frame; ``batch_size`` frames at a time (default :data:`DEFAULT_BATCH`:
        smaller temporaries stay in the CPU caches; the result does not depend on it)."""
        k, w2c = view_cameras(k, w2c)
        n = len(w2c)
        if n * height * width >= 2**31 - 1:
            raise RealcamError(f"{n} frames of {width}x{height} are too many", "render")
        batch_size = batch_size or DEFAULT_BATCH
        parts = [
            self._render(k[i : i + batch_size], w2c[i : i + batch_size], height, width) for i in range(0, n, batch_size)
        ]
        rgb, valid, z = (torch.cat(p) for p in zip(*parts))
        bg = torch.as_tensor(background, dtype=torch.uint8, device=self.device)
        if bg.any():
            rgb = torch.where(valid.unsqueeze(-1), rgb, bg)
        return RenderOutput(rgb, valid, z=z)

    def _render(self, k: torch.Tensor, w2c: torch.Tensor, height: int, width: int):
        dev = self.device
        n, hw = len(w2c), height * width
        proj = (k @ w2c[:, :3, :]).to(device=dev, dtype=torch.float32)
        zbuf = torch.full((n * hw + 1,), _INT32_MAX, dtype=torch.int32, device=dev)
        u, v, z, front = self._splat_vertices(proj, zbuf, height, width)
        self._splat_quads(u, v, z, front, zbuf, height, width)
        zt = fill_cracks(zbuf[:-1].view(n, height, width))
        rgb, valid = self._colour(zt, *self._back_projection(k, w2c), height, width)
        return rgb, valid, torch.where(valid, zt, torch.zeros((), device=dev))

    def _back_projection(self, k: torch.Tensor, w2c: torch.Tensor):
        """``M, b`` with the image pixel (homogeneous) of this view's pixel ``p`` at depth ``z``
        equal to ``z M p + b``."""
        k0, c2w = torch.as_tensor(self.k), torch.linalg.inv(w2c)
        m = (k0 @ c2w[:, :3, :3] @ torch.linalg.inv(k)).to(self.device, torch.float32)
        return m, (k0 @ c2w[:, :3, 3:]).to(self.device, torch.float32)

    def colour_at_depth(self, k, w2c, depth) -> RenderOutput:
        """Pass 2 alone, for given depth maps ``(F, H, W)`` of the views (``<= 0`` or non-finite:
        none): what the image shows along each pixel's ray at that depth. With the views' true
        depth this is the best any renderer of the image can do (an oracle for evaluation)."""
        z = torch.as_tensor(np.asarray(depth, dtype=np.float32) if not torch.is_tensor(depth) else depth)
        z = z.to(self.device, torch.float32).reshape(-1, *z.shape[-2:])
        z = torch.where(torch.isfinite(z) & (z > 0), z, torch.full((), math.inf, device=self.device))
        k, w2c = view_cameras(k, w2c)
        rgb, valid = self._colour(z, *self._back_projection(k, w2c), *z.shape[-2:])
        return RenderOutput(rgb, valid, z=torch.where(valid, z, torch.zeros((), device=self.device)))

    def _splat_vertices(self, proj, zbuf, height: int, width: int):
        """Pass 1a: every kept pixel into the depth z-buffer (float32 bits, ``amin``)."""
        n, hw = proj.shape[0], height * width
        cam = torch.baddbmm(proj[:, :, 3:], proj[:, :, :3], self.points_t.expand(n, -1, -1))
        x, y, z = cam.unbind(1)
        z = z.contiguous()
        u, v = x / z, y / z
        front = (z > NEAR) & self.keep
        ok = front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        base = torch.arange(n, device=self.device, dtype=torch.int64).unsqueeze(1) * hw
        slot = torch.where(ok, (v.to(torch.int32) * width + u.to(torch.int32)).to(torch.int64) + base, n * hw)
        zbuf.scatter_reduce_(0, slot.view(-1), z.view(torch.int32).view(-1), reduce="amin", include_self=True)
        return u, v, z, front

    def _splat_quads(self, u, v, z, front, zbuf, height: int, width: int) -> None:
        """Pass 1b: quads stretched beyond :data:`SUBDIVIDE_ABOVE` pixels, sampled at most one
        pixel apart along each grid direction. The quads are sorted by subdivision tier once, so
        that each tier is one slice (boolean masks per tier cost more than the sampling on paths
        that close in: 0.5 s of 0.74 s for 16 frames at 512x320)."""
        n, h0, w0, hw = u.shape[0], self.h0, self.w0, height * width
        if h0 < 2 or w0 < 2:
            return
        uu, vv = u.view(n, h0, w0), v.view(n, h0, w0)
        ex = torch.hypot(uu[:, :, 1:] - uu[:, :, :-1], vv[:, :, 1:] - vv[:, :, :-1])  # (n, h0, w0-1)
        ey = torch.hypot(uu[:, 1:, :] - uu[:, :-1, :], vv[:, 1:, :] - vv[:, :-1, :])  # (n, h0-1, w0)
        sx = torch.maximum(ex[:, :-1, :], ex[:, 1:, :])  # (n, h0-1, w0-1), like every quad array
        sy = torch.maximum(ey[:, :, :-1], ey[:, :, 1:])
        # which quads to sample, decided on the whole grid before any gather: stretched (NaN from
        # behind the camera compares False), on one surface, all corners in front of the camera,
        # and the corners' bounding box overlapping the view
        draw = (torch.maximum(sx, sy) > SUBDIVIDE_ABOVE) & self.quad_ok
        f = front.view(n, h0, w0)
        draw &= f[:, :-1, :-1] & f[:, :-1, 1:] & f[:, 1:, :-1] & f[:, 1:, 1:]
        for out in (uu < 0, uu >= width, vv < 0, vv >= height):  # all four corners off one side
            draw &= ~(out[:, :-1, :-1] & out[:, :-1, 1:] & out[:, 1:, :-1] & out[:, 1:, 1:])
        quad = draw.view(-1).nonzero().squeeze(1)  # flat index into (n, h0-1, w0-1)
        if not len(quad):
            return
        tiers = torch.as_tensor(SUBDIVISION_TIERS, device=self.device, dtype=torch.float32)
        n_tiers = len(SUBDIVISION_TIERS)
        tx = torch.bucketize(torch.ceil(sx.reshape(-1)[quad]), tiers).clamp_max(n_tiers - 1)
        ty = torch.bucketize(torch.ceil(sy.reshape(-1)[quad]), tiers).clamp_max(n_tiers - 1)
        group = tx * n_tiers + ty
        order = torch.argsort(group)
        quad = quad[order]
        counts = torch.bincount(group, minlength=n_tiers * n_tiers).tolist()
        fi, rest = quad // ((h0 - 1) * (w0 - 1)), quad % ((h0 - 1) * (w0 - 1))
        top_left = fi * (h0 * w0) + (rest // (w0 - 1)) * w0 + rest % (w0 - 1)
        corners = torch.stack([top_left, top_left + 1, top_left + w0, top_left + w0 + 1], 1)  # (Q, 4)
        uc, vc, iz = u.reshape(-1)[corners], v.reshape(-1)[corners], 1.0 / z.reshape(-1)[corners]
        dump = n * hw
        start = 0
        for g, count in enumerate(counts):
            if not count:
                continue
            part = slice(start, start + count)
            start += count
            nx, ny = SUBDIVISION_TIERS[g // n_tiers], SUBDIVISION_TIERS[g % n_tiers]
            a, c = torch.meshgrid(
                torch.linspace(0, 1, ny + 1, device=self.device),
                torch.linspace(0, 1, nx + 1, device=self.device),
                indexing="ij",
            )
            w = torch.stack([(1 - a) * (1 - c), (1 - a) * c, a * (1 - c), a * c], -1).reshape(-1, 4).T  # (4, S)
            us, vs = uc[part] @ w, vc[part] @ w
            zs = (1.0 / (iz[part] @ w)).contiguous()
            inside = (us >= 0) & (us < width) & (vs >= 0) & (vs < height)
            pixel = (vs.to(torch.int32) * width + us.to(torch.int32)).to(torch.int64)
            slot = torch.where(inside, pixel + (fi[part] * hw).unsqueeze(1), dump)
            zbuf.scatter_reduce_(0, slot.view(-1), zs.view(torch.int32).view(-1), reduce="amin", include_self=True)

    def _pixels(self, height: int, width: int) -> torch.Tensor:
        """``(1, 3, H*W)`` homogeneous pixel centres of a view size (kept between calls)."""
        if getattr(self, "_pixel_grid", (None,))[0] != (height, width):
            ys, xs = torch.meshgrid(
                torch.arange(height, device=self.device, dtype=torch.float32) + 0.5,
                torch.arange(width, device=self.device, dtype=torch.float32) + 0.5,
                indexing="ij",
            )
            self._pixel_grid = ((height, width), torch.stack([xs, ys, torch.ones_like(xs)]).reshape(1, 3, -1))
        return self._pixel_grid[1]

    def _colour(self, zt: torch.Tensor, m: torch.Tensor, b: torch.Tensor, height: int, width: int):
        """Pass 2: back-project each pixel centre at its depth into the image and sample it there
        bilinearly: the colour (one ``grid_sample`` of 3 channels) and the depth of the kept pixels
        with their weight (one of 2: the two are cheaper than one of 5 on CPU)."""
        n, dev = zt.shape[0], self.device
        has = torch.isfinite(zt)
        z = zt.nan_to_num(posinf=1.0).view(n, 1, -1)  # any finite depth where none: invalid below
        q = (m @ self._pixels(height, width)).mul_(z).add_(b)  # (n, 3, HW) image pixels, homogeneous
        qz = q[:, 2:3]
        scale = torch.tensor([2.0 / self.w0, 2.0 / self.h0], device=dev).view(1, 2, 1)
        grid = (q[:, :2] / qz).mul_(scale).sub_(1.0).transpose(1, 2).reshape(n, height, width, 2)
        sample = dict(mode="bilinear", padding_mode="zeros", align_corners=False)
        depth = F.grid_sample(self.source[:, 3:].expand(n, -1, -1, -1), grid, **sample)  # (n, 2, H, W)
        kept = depth[:, 1]
        src_z = depth[:, 0] / kept.clamp_min(1e-6)
        qz = qz.view(n, height, width)
        valid = has & (qz > NEAR) & (kept > 0.5) & ((src_z - qz).abs() <= VISIBILITY_RATIO * qz)
        colour = F.grid_sample(self.source[:, :3].expand(n, -1, -1, -1), grid, **sample)  # (n, 3, H, W)
        rgb = torch.empty(n, height, width, 3, dtype=torch.uint8, device=dev)
        rgb.copy_(colour.add_(0.5).clamp_(0, 255).permute(0, 2, 3, 1))  # rounded, channels last
        return rgb.mul_(valid.unsqueeze(-1)), valid


def fill_cracks(zbits: torch.Tensor) -> torch.Tensor:
    """``(F, H, W)`` depth as float32 bits (``INT32_MAX`` empty) -> float32 depth, ``inf`` where
    empty. A pixel between two pixels of one surface (left and right, above and below, or
    diagonally opposite; depths within :data:`SURFACE_RATIO`) takes the nearer of them when it is
    empty **or farther than that surface** by more than :data:`SURFACE_RATIO`: a one-pixel crack in
    a magnified surface is closed even where a farther surface (which the image may see too) has
    already filled it, so the background does not bleed through the foreground."""
    n, h, w = zbits.shape
    z = torch.where(zbits == _INT32_MAX, torch.full((), math.inf, device=zbits.device), zbits.view(torch.float32))
    # one row of inf around each frame; on the flat buffer every neighbour is then an offset view
    # (contiguous, unlike 2-D slices: 25 % faster), and no offset crosses into another frame
    row = w + 2
    p = F.pad(z, (1, 1, 1, 1), value=math.inf).view(-1)
    m = row + 1
    inner = p.numel() - 2 * m
    best = None
    for s in (1, row, row + 1, row - 1):  # left/right, above/below, the two diagonals
        a, c = p[m - s : m - s + inner], p[m + s : m + s + inner]
        lo, hi = torch.minimum(a, c), torch.maximum(a, c)
        cand = torch.where(hi <= (1 + SURFACE_RATIO) * lo, lo, math.inf)
        best = cand if best is None else torch.minimum(best, cand)
    centre = p[m : m + inner]
    p[m : m + inner] = torch.where(best * (1 + SURFACE_RATIO) < centre, best, centre)
    return p.view(n, h + 2, row)[:, 1:-1, 1:-1].contiguous()


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


def _reflect_pad(t: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """``t`` with ``r`` entries read by reflection added at both ends of ``dim`` (``-1 -> 1``,
    ``n -> n-2``): two flipped slices and one copy (an ``index_select`` of bools was 8x slower)."""
    n = t.shape[dim]
    if n <= r:  # too short to reflect by slicing: clamp at the ends like the general rule
        return t.index_select(dim, _reflect_index(n, r, t.device))
    head = t.narrow(dim, 1, r).flip(dim)
    tail = t.narrow(dim, n - 1 - r, r).flip(dim)
    return torch.cat([head, t, tail], dim)


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
        x = _reflect_pad(t, r, t.ndim - 2)
        acc = x[..., 0:h, :].clone()
        for d in range(1, kernel):
            acc &= x[..., d : d + h, :]
        x = _reflect_pad(acc, r, t.ndim - 1)
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
