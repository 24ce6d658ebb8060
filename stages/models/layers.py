"""Building blocks shared by the denoiser (``unet``) and the camera modules (``camera``): group
norm in float32, zero initialisation, gradient checkpointing, multi-head attention, the GEGLU
feed-forward. Names and shapes follow the official LVDM code, so checkpoints load as they are."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (as the reference ``normalization``)."""

    def forward(self, x):
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).type(x.dtype)


def normalization(channels: int) -> nn.GroupNorm:
    return GroupNorm32(32, channels)


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def maybe_checkpoint(fn: Callable, enabled: bool, *args):
    if enabled and torch.is_grad_enabled():
        return torch_checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def attention(q, k, v, heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head scaled dot-product attention on ``(B, L, heads*d)`` tensors."""
    q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=heads) for t in (q, k, v))
    if mask is not None and mask.dim() == 3:
        mask = mask[:, None]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return rearrange(out, "b h n d -> b n (h d)")


# ----------------------------------------------------------------------------------------------
# Attention blocks
# ----------------------------------------------------------------------------------------------
class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4, dropout=0.0):
        super().__init__()
        inner = int(dim * mult)
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x):
        return self.net(x)
