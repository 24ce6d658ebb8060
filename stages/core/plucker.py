"""Plücker ray embedding (docs/method.md#plucker-embedding).

For pixel ``(u, v)`` (centre at ``+0.5``), pixel intrinsics ``K`` and ``c2w = [R | o]``:
``d = normalize(R @ inv(K) @ [u + 0.5, v + 0.5, 1])`` and the embedding is ``[o x d, d]``.
"""

from __future__ import annotations

import torch


def plucker_embedding(k: torch.Tensor, c2w: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Batched Plücker embedding.

    Args:
        k: ``(..., 3, 3)`` pixel intrinsics for an image of ``height x width``.
        c2w: ``(..., 4, 4)`` camera-to-world poses (same leading shape as ``k``, e.g. ``(B, F)``).
    Returns:
        ``(..., 6, H, W)`` tensor on the inputs' device in the inputs' dtype; channels are
        the moment ``o x d`` then the unit direction ``d``.
    """
    k = torch.as_tensor(k)
    c2w = torch.as_tensor(c2w, device=k.device)
    out_dtype = torch.promote_types(k.dtype, c2w.dtype)
    if not out_dtype.is_floating_point:
        out_dtype = torch.get_default_dtype()
    # Low-precision inputs are computed in float32 and cast back at the end.
    work = torch.float32 if out_dtype in (torch.float16, torch.bfloat16) else out_dtype
    k = k.to(work)
    c2w = c2w.to(work)
    lead = torch.broadcast_shapes(k.shape[:-2], c2w.shape[:-2])
    k = k.expand(*lead, 3, 3)
    c2w = c2w.expand(*lead, 4, 4)

    v, u = torch.meshgrid(
        torch.arange(height, device=k.device, dtype=work) + 0.5,
        torch.arange(width, device=k.device, dtype=work) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(-1, 3)  # (HW, 3)
    rays_cam = pix @ torch.linalg.inv(k).transpose(-1, -2)  # (..., HW, 3)
    rays = rays_cam @ c2w[..., :3, :3].transpose(-1, -2)
    d = torch.nn.functional.normalize(rays, dim=-1)
    o = c2w[..., None, :3, 3].expand_as(d)
    emb = torch.cat([torch.linalg.cross(o, d, dim=-1), d], dim=-1)  # (..., HW, 6)
    emb = emb.transpose(-1, -2).reshape(*lead, 6, height, width)
    return emb.to(out_dtype)
