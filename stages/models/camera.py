"""RealCam-I2V camera modules: the CameraCtrl-style pose encoder and CamI2V epipolar attention.

Facts (public CamI2V code; docs/method.md#camera-encoder): Plücker embedding (6 channels) is pixel-unshuffled
by 8 (``cin = 384``), passed through ``encoder_conv_in`` and per level ``nums_rb`` residual blocks
(kernel ``ksize``, skip by identity when ``sk``), each followed by a temporal self-attention block
(sinusoidal position encoding up to 16 frames, 8 heads, GEGLU feed-forward); level ``i`` feeds the
UNet's temporal transformers at downsample ``2**i`` (the middle block takes the last level).
Epipolar attention attends from every token of every frame to the tokens of all frames that lie
within ``d * sqrt(2) / 2`` pixels of its epipolar line (``d`` the level's downsample factor in
pixels), plus learnable register tokens that are always attendable; its output projection starts
at zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..core.plucker import plucker_embedding
from .configs import CameraConfig
from .layers import FeedForward


# ----------------------------------------------------------------------------------------------
# Epipolar geometry (pure functions)
# ----------------------------------------------------------------------------------------------
def skew(t: torch.Tensor) -> torch.Tensor:
    """``[t]x`` for ``t (..., 3)``."""
    z = torch.zeros_like(t[..., 0])
    return torch.stack(
        [
            torch.stack([z, -t[..., 2], t[..., 1]], -1),
            torch.stack([t[..., 2], z, -t[..., 0]], -1),
            torch.stack([-t[..., 1], t[..., 0], z], -1),
        ],
        -2,
    )


EPIPOLAR_FORMS = ("official", "exact")


def pairwise_fundamental(
    k: torch.Tensor,
    c2w: torch.Tensor,
    perturb: float = 1e-6,
    generator: torch.Generator | None = None,
    form: str = "official",
) -> torch.Tensor:
    """Fundamental matrices between all frame pairs.

    ``k (B, T, 3, 3)`` pixel intrinsics, ``c2w (B, T, 4, 4)``. Returns ``F (B, T, T, 3, 3)``: a pixel
    ``x`` of frame ``i`` has epipolar line ``F[b, i, j] @ x`` in frame ``j``, with
    ``E = [t]x R`` and ``[R | t] = inv(c2w_j) @ c2w_i`` (camera ``i`` to camera ``j``).
    ``form="exact"``: ``F = K_j^-T E K_i^-1``; ``form="official"`` (CamI2V's
    ``get_fundamental_matrix``, what the released weights were trained with): ``K_j`` on both sides,
    the same whenever the intrinsics are constant over the clip. A translation whose components are
    all below ``perturb`` (always the case for ``i == j``) is replaced by ``perturb``-sized random
    noise (official ``add_small_perturbation``), so that the line passes through the pixel itself.
    """
    if form not in EPIPOLAR_FORMS:
        raise ValueError(f"unknown epipolar form {form!r} ({', '.join(EPIPOLAR_FORMS)})")
    k = k.double()
    c2w = c2w.double()
    rel = torch.linalg.inv(c2w)[:, None] @ c2w[:, :, None]  # rel[b, i, j] = inv(c2w_j) @ c2w_i
    r = rel[..., :3, :3]
    t = rel[..., :3, 3]
    if perturb > 0:
        small = (t.abs() < perturb).all(dim=-1, keepdim=True)
        noise = torch.randn(t.shape, generator=generator, dtype=t.dtype, device="cpu").to(t.device)
        t = torch.where(small, perturb * noise, t)
    e = skew(t) @ r
    k_inv = torch.linalg.inv(k)
    k_inv_j = k_inv[:, None, :, :, :]  # indexed by the target frame j
    k_inv_i = k_inv[:, :, None] if form == "exact" else k_inv_j
    return k_inv_j.transpose(-1, -2) @ e @ k_inv_i


def cell_centres(n: int, downsample: int, form: str = "official", device=None) -> torch.Tensor:
    """Pixel coordinates of the centres of ``n`` feature cells of ``downsample`` pixels:
    ``i*d + d/2 - 0.5`` (official ``pix2coord``) or ``(i + 0.5) * d`` (exact: pixel ``x`` spans
    ``[x, x + 1)``, as the Plücker rays of ``stages/core/plucker.py``)."""
    i = torch.arange(n, dtype=torch.float64, device=device)
    if form == "official":
        return i * downsample + downsample / 2.0 - 0.5
    return (i + 0.5) * downsample


def epipolar_mask(
    fundamental: torch.Tensor, height: int, width: int, downsample: int, form: str = "official"
) -> torch.Tensor:
    """Hard epipolar mask at a feature map of ``height x width`` cells of ``downsample`` pixels.

    ``fundamental (B, T, T, 3, 3)`` in image pixels; cell centres by :func:`cell_centres`.
    Returns ``(B, T*h*w, T*h*w)`` bool: query (frame i, cell p) may attend key (frame j, cell q)
    iff the distance of q's centre to the epipolar line of p in frame j is below ``d * sqrt(2) / 2``.
    Computed one query frame at a time, so memory stays at one ``(B, T, hw, hw)`` block.
    """
    device = fundamental.device
    b, t = fundamental.shape[:2]
    ys = cell_centres(height, downsample, form, device)
    xs = cell_centres(width, downsample, form, device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(-1, 3)  # (HW, 3)
    n = grid.shape[0]
    out = torch.empty(b, t * n, t * n, dtype=torch.bool, device=device)
    threshold = downsample * math.sqrt(2) / 2
    for i in range(t):
        lines = fundamental[:, i].double() @ grid.T  # (B, T, 3, HW): lines in every frame j
        lines = lines / lines[..., :2, :].norm(dim=-2, keepdim=True).clamp_min(1e-30)
        dist = (lines.transpose(-1, -2).float() @ grid.T.float()).abs()  # (B, T, HW_q, HW_k)
        out[:, i * n : (i + 1) * n] = rearrange(dist < threshold, "b t p q -> b p (t q)")
    return out


# ----------------------------------------------------------------------------------------------
# Epipolar attention module
# ----------------------------------------------------------------------------------------------
class EpipolarCrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, num_register_tokens: int = 4):
        super().__init__()
        self.heads = heads
        dim_head = dim // heads
        inner = dim_head * heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))
        self.num_register_tokens = num_register_tokens
        if num_register_tokens > 0:
            self.register_tokens = nn.Parameter(torch.randn(1, num_register_tokens, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        context = x
        if self.num_register_tokens > 0:
            context = torch.cat([self.register_tokens.to(x.dtype).expand(b, -1, -1), x], dim=1)
            if mask is not None:
                mask = F.pad(mask, (self.num_register_tokens, 0), value=True)
        q, k, v = (
            rearrange(t, "b l (h d) -> b h l d", h=self.heads)
            for t in (self.to_q(x), self.to_k(context), self.to_v(context))
        )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask[:, None])
        return self.to_out(rearrange(out, "b h l d -> b l (h d)"))


class Epipolar(nn.Module):
    """Wraps :class:`EpipolarCrossAttention` (named ``epipolar.epipolar_attn`` as in CamI2V)."""

    def __init__(self, dim: int, heads: int, num_register_tokens: int = 4):
        super().__init__()
        self.epipolar_attn = EpipolarCrossAttention(dim, heads, num_register_tokens)
        nn.init.zeros_(self.epipolar_attn.to_out[0].weight)
        nn.init.zeros_(self.epipolar_attn.to_out[0].bias)

    def forward(self, x: torch.Tensor, camera: dict) -> torch.Tensor:
        """``x ((B h w), T, C)``; ``camera`` holds ``batch``, ``h``, ``w``, ``ds`` and ``masks``
        (latent downsample ``ds`` -> mask; a level without a mask attends to all tokens)."""
        b, h, w = camera["batch"], camera["h"], camera["w"]
        t = x.shape[1]
        masks = camera.get("masks") or {}
        mask = masks.get(camera["ds"])
        tokens = rearrange(x, "(b h w) t c -> b (t h w) c", b=b, h=h, w=w)
        out = self.epipolar_attn(tokens, mask)
        return rearrange(out, "b (t h w) c -> (b h w) t c", t=t, h=h, w=w)


# ----------------------------------------------------------------------------------------------
# Pose encoder
# ----------------------------------------------------------------------------------------------
class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int = 16):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div)
        pe[0, :, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe)  # persistent: it is in the released checkpoints

    def forward(self, x):
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = PositionalEncoding(dim, max_len)

    def forward(self, x):
        x = self.pos_encoder(x)
        q, k, v = (
            rearrange(t, "b l (h d) -> b h l d", h=self.heads) for t in (self.to_q(x), self.to_k(x), self.to_v(x))
        )
        out = rearrange(F.scaled_dot_product_attention(q, k, v), "b h l d -> b l (h d)")
        return self.to_out[1](self.to_out[0](out))


class PoseTemporalBlock(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalSelfAttention(dim, heads, max_len)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x):
        for attn, norm in zip(self.attention_blocks, self.norms):
            x = attn(norm(x)) + x
        return self.ff(self.ff_norm(x)) + x


class PoseResBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, down: bool, ksize: int = 1, sk: bool = True):
        super().__init__()
        ps = ksize // 2
        self.in_conv = nn.Conv2d(in_c, out_c, ksize, 1, ps) if (in_c != out_c or not sk) else None
        self.block1 = nn.Conv2d(out_c, out_c, 3, 1, 1)
        self.act = nn.ReLU()
        self.block2 = nn.Conv2d(out_c, out_c, ksize, 1, ps)
        self.skep = None if sk else nn.Conv2d(in_c, out_c, ksize, 1, ps)
        self.down = down

    def forward(self, x):
        if self.down:
            x = F.avg_pool2d(x, 2, 2)
        if self.in_conv is not None:
            x = self.in_conv(x)
        h = self.block2(self.act(self.block1(x)))
        return h + (self.skep(x) if self.skep is not None else x)


class CameraPoseEncoder(nn.Module):
    def __init__(self, cfg: CameraConfig):
        super().__init__()
        ch = list(cfg.channels)
        self.unshuffle = nn.PixelUnshuffle(cfg.downscale_factor)
        self.encoder_conv_in = nn.Conv2d(cfg.cin, ch[0], 3, 1, 1)
        self.encoder_down_conv_blocks = nn.ModuleList()
        self.encoder_down_attention_blocks = nn.ModuleList()
        for i, c in enumerate(ch):
            convs, attns = nn.ModuleList(), nn.ModuleList()
            for j in range(cfg.nums_rb):
                in_c = (ch[i - 1] if i else ch[0]) if j == 0 else c
                convs.append(PoseResBlock(in_c, c, down=(j == 0 and i != 0), ksize=cfg.ksize, sk=cfg.sk))
                attns.append(PoseTemporalBlock(c, cfg.temporal_attention_nhead, cfg.temporal_position_encoding_max_len))
            self.encoder_down_conv_blocks.append(convs)
            self.encoder_down_attention_blocks.append(attns)

    def forward(self, plucker: torch.Tensor) -> list[torch.Tensor]:
        """``plucker (B, 6, T, H, W)`` -> per level ``(B, C_l, T, H/8/2^l, W/8/2^l)``."""
        b = plucker.shape[0]
        x = self.unshuffle(rearrange(plucker, "b c f h w -> (b f) c h w"))
        x = self.encoder_conv_in(x)
        features = []
        for convs, attns in zip(self.encoder_down_conv_blocks, self.encoder_down_attention_blocks):
            for conv, attn in zip(convs, attns):
                x = conv(x)
                h, w = x.shape[-2:]
                x = rearrange(x, "(b f) c h w -> (b h w) f c", b=b)
                x = attn(x)
                x = rearrange(x, "(b h w) f c -> (b f) c h w", b=b, h=h, w=w)
            features.append(rearrange(x, "(b f) c h w -> b c f h w", b=b))
        return features


def camera_condition(
    pose_encoder: CameraPoseEncoder | None,
    cfg: CameraConfig,
    k: torch.Tensor,
    c2w: torch.Tensor,
    height: int,
    width: int,
    epipolar: bool,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> dict:
    """Everything the UNet's camera hooks need, from pixel intrinsics ``k (B, T, 3, 3)`` and
    relative ``c2w (B, T, 4, 4)`` (frame of the condition image = identity) at ``height x width``.

    Returns ``{"features": [...] or None, "masks": {latent ds: (B, N, N) bool} or None}``.
    """
    features = None
    if pose_encoder is not None:
        with torch.autocast(device_type=k.device.type, enabled=False):  # geometry in float32
            emb = plucker_embedding(k.float(), c2w.float(), height, width)  # (B, T, 6, H, W)
        emb = rearrange(emb, "b t c h w -> b c t h w")
        if dtype is not None:
            emb = emb.to(dtype)
        features = pose_encoder(emb)
    masks = None
    if epipolar:
        with torch.autocast(device_type=k.device.type, enabled=False):
            fmat = pairwise_fundamental(k, c2w, cfg.perturb_zero_translation, generator, cfg.epipolar_form)
            masks = {}
            for ds in cfg.epipolar_resolutions:
                d = cfg.downscale_factor * ds
                masks[ds] = epipolar_mask(fmat, height // d, width // d, d, cfg.epipolar_form)
    return {"features": features, "masks": masks}
