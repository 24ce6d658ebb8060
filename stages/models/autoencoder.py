"""The KL-f8 autoencoder as a ``diffusers`` ``AutoencoderKL``, with an exact, checked map from the
official LDM parameter names (``first_stage_model.encoder.down.0.block.0.norm1.weight`` ...).

The map is one-to-one: every LDM name maps to exactly one diffusers name (and back), so a strict
load can name any key that does not belong to the autoencoder.
"""

from __future__ import annotations

import re

import torch
from diffusers import AutoencoderKL
from einops import rearrange

from .configs import AutoencoderConfig


def build_autoencoder(cfg: AutoencoderConfig) -> AutoencoderKL:
    n = len(cfg.ch_mult)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult),
        layers_per_block=cfg.num_res_blocks,
        latent_channels=cfg.z_channels,
        norm_num_groups=cfg.norm_groups,
        sample_size=256,
        scaling_factor=cfg.scale_factor,
    )


_RES = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def ldm_to_diffusers_name(name: str, n_levels: int) -> str | None:
    """Diffusers name of an LDM autoencoder parameter name (without prefix); None if unknown."""
    if name.split(".")[0] in ("quant_conv", "post_quant_conv"):
        return name
    m = re.fullmatch(r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\.(weight|bias)", name)
    if m:
        part, layer, kind = m.groups()
        return f"{part}.{'conv_norm_out' if layer == 'norm_out' else layer}.{kind}"
    m = re.fullmatch(r"(encoder|decoder)\.mid\.block_([12])\.(\w+)\.(weight|bias)", name)
    if m and m.group(3) in _RES:
        part, idx, layer, kind = m.groups()
        return f"{part}.mid_block.resnets.{int(idx) - 1}.{_RES[layer]}.{kind}"
    m = re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(\w+)\.(weight|bias)", name)
    if m and m.group(2) in _ATTN:
        part, layer, kind = m.groups()
        return f"{part}.mid_block.attentions.0.{_ATTN[layer]}.{kind}"
    m = re.fullmatch(r"encoder\.down\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)", name)
    if m and m.group(3) in _RES:
        i, j, layer, kind = m.groups()
        return f"encoder.down_blocks.{i}.resnets.{j}.{_RES[layer]}.{kind}"
    m = re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)", name)
    if m:
        return f"encoder.down_blocks.{m.group(1)}.downsamplers.0.conv.{m.group(2)}"
    m = re.fullmatch(r"decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)", name)
    if m and m.group(3) in _RES:
        i, j, layer, kind = m.groups()
        return f"decoder.up_blocks.{n_levels - 1 - int(i)}.resnets.{j}.{_RES[layer]}.{kind}"
    m = re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)", name)
    if m:
        return f"decoder.up_blocks.{n_levels - 1 - int(m.group(1))}.upsamplers.0.conv.{m.group(2)}"
    return None


def diffusers_to_ldm_name(name: str, n_levels: int) -> str:
    """Inverse of :func:`ldm_to_diffusers_name` (used to write official-layout checkpoints)."""
    if name.split(".")[0] in ("quant_conv", "post_quant_conv"):
        return name
    inv_res = {v: k for k, v in _RES.items()}
    inv_attn = {v: k for k, v in _ATTN.items()}
    m = re.fullmatch(r"(encoder|decoder)\.(conv_in|conv_out|conv_norm_out)\.(weight|bias)", name)
    if m:
        part, layer, kind = m.groups()
        return f"{part}.{'norm_out' if layer == 'conv_norm_out' else layer}.{kind}"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(\w+)\.(weight|bias)", name)
    if m:
        part, idx, layer, kind = m.groups()
        return f"{part}.mid.block_{int(idx) + 1}.{inv_res[layer]}.{kind}"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", name)
    if m:
        part, layer, kind = m.groups()
        return f"{part}.mid.attn_1.{inv_attn[layer]}.{kind}"
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(weight|bias)", name)
    if m:
        i, j, layer, kind = m.groups()
        return f"encoder.down.{i}.block.{j}.{inv_res[layer]}.{kind}"
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)", name)
    if m:
        return f"encoder.down.{m.group(1)}.downsample.conv.{m.group(2)}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(weight|bias)", name)
    if m:
        i, j, layer, kind = m.groups()
        return f"decoder.up.{n_levels - 1 - int(i)}.block.{j}.{inv_res[layer]}.{kind}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)", name)
    if m:
        return f"decoder.up.{n_levels - 1 - int(m.group(1))}.upsample.conv.{m.group(2)}"
    raise KeyError(name)


def ldm_tensor_to_diffusers(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """LDM's mid-block attention uses 1x1 convolutions; diffusers uses linear layers."""
    if ".attn_1." in name and name.endswith("weight") and tensor.dim() == 4:
        return tensor[:, :, 0, 0]
    return tensor


def diffusers_tensor_to_ldm(name: str, tensor: torch.Tensor) -> torch.Tensor:
    if ".attentions.0.to_" in name and name.endswith("weight") and tensor.dim() == 2:
        return tensor[:, :, None, None]
    return tensor


def encode(
    vae: AutoencoderKL,
    video: torch.Tensor,
    scale_factor: float,
    perframe: bool = False,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``video (B, 3, T, H, W)`` in ``[-1, 1]`` -> scaled latents ``(B, 4, T, H/8, W/8)``."""
    b = video.shape[0]
    frames = rearrange(video, "b c t h w -> (b t) c h w")
    chunks = frames.split(1) if perframe else [frames]
    out = []
    for chunk in chunks:
        dist = vae.encode(chunk).latent_dist
        out.append(dist.sample(generator) if sample else dist.mode())
    z = torch.cat(out) * scale_factor
    return rearrange(z, "(b t) c h w -> b c t h w", b=b)


def decode(vae: AutoencoderKL, latents: torch.Tensor, scale_factor: float, perframe: bool = False) -> torch.Tensor:
    """Scaled latents ``(B, 4, T, h, w)`` -> video ``(B, 3, T, 8h, 8w)`` in about ``[-1, 1]``."""
    b = latents.shape[0]
    z = rearrange(latents, "b c t h w -> (b t) c h w") / scale_factor
    chunks = z.split(1) if perframe else [z]
    x = torch.cat([vae.decode(c).sample for c in chunks])
    return rearrange(x, "(b t) c h w -> b c t h w", b=b)


def _image_batch(images, device) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, H, W)`` float in [-1, 1] on ``device``."""
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


#: Posterior spread of the stand-in autoencoders, in unit-scale latents (1 % of the signal).
POSTERIOR_STD = 0.01


def fit_autoencoder(
    vae: AutoencoderKL,
    images,
    steps: int,
    *,
    batch: int = 8,
    crop: int = 64,
    lr: float = 1e-3,
    kl_weight: float = 1e-6,
    scale_factor: float = 0.18215,
    posterior_std: float = POSTERIOR_STD,
    seed: int = 0,
    on_step=None,
) -> list[float]:
    """Fit ``vae`` to ``images`` (``(N, H, W, 3)`` uint8) for ``steps`` Adam steps on random
    ``crop x crop`` patches (L1 + MSE reconstruction of the posterior mean and a small KL term),
    then rescale its latent space so that ``scale_factor * z`` has unit standard deviation on the
    images (as the released KL-f8's 0.18215 does): the diffusion model then sees latents of the
    usual scale. The posterior's spread, which this short fit does not learn, is set to
    ``posterior_std`` (in those unit-scale latents): the stages sample the posterior, as the
    official code does, and an unfitted variance head would bury the latent in noise.

    Stands in for a pretrained autoencoder where none can be had (the demo). Returns the losses.
    """
    import numpy as np
    import torch.nn.functional as F

    images = np.asarray(images)
    n, h, w = images.shape[:3]
    crop = min(crop, h, w)
    rng = np.random.default_rng(seed)
    device = next(vae.parameters()).device
    vae.train()
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        idx, ys, xs = (
            rng.integers(0, n, batch),
            rng.integers(0, h - crop + 1, batch),
            rng.integers(0, w - crop + 1, batch),
        )
        patches = np.stack([images[i, y : y + crop, x : x + crop] for i, y, x in zip(idx, ys, xs)])
        x = _image_batch(patches, device)
        dist = vae.encode(x).latent_dist
        rec = vae.decode(dist.mode()).sample  # the stages encode with the mode, not a sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + kl_weight * dist.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
    vae.eval()
    calibrate_latent_scale(vae, images, scale_factor)
    set_posterior_std(vae, posterior_std, scale_factor)
    return losses


@torch.no_grad()
def set_posterior_std(vae: AutoencoderKL, std: float = POSTERIOR_STD, scale_factor: float = 0.18215) -> None:
    """A constant posterior standard deviation ``std`` of ``scale_factor * z`` (the variance head's
    weights zeroed, its bias the log-variance)."""
    import math

    zc = vae.config.latent_channels
    vae.quant_conv.weight[zc:] = 0
    vae.quant_conv.bias[zc:] = 2 * math.log(std / scale_factor)


@torch.no_grad()
def calibrate_latent_scale(vae: AutoencoderKL, images, scale_factor: float = 0.18215, max_images: int = 16) -> float:
    """Rescale the latent space in the weights (``quant_conv`` out, ``post_quant_conv`` in) so that
    ``scale_factor * z`` of ``images`` has unit standard deviation; the decoded images do not change.
    Returns the factor applied."""
    import numpy as np

    images = np.asarray(images)[:max_images]
    device = next(vae.parameters()).device
    z = vae.encode(_image_batch(images, device)).latent_dist.mode()
    c = 1.0 / (scale_factor * float(z.std()))
    zc = vae.config.latent_channels
    vae.quant_conv.weight[:zc] *= c
    vae.quant_conv.bias[:zc] *= c
    vae.quant_conv.bias[zc:] += 2 * float(np.log(c))  # log-variance of the rescaled latent
    vae.post_quant_conv.weight *= 1.0 / c
    return c
