"""Wan2.1 parts through diffusers and transformers (docs/method.md#recammaster): the DiT config,
the VAE (``AutoencoderKLWan``), the UMT5 text encoder and its tokenizer, from a base in either
layout: Diffusers (``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``: ``transformer/``, ``vae/``,
``text_encoder/``, ``tokenizer/``) or Wan's original files (``Wan-AI/Wan2.1-T2V-1.3B``, mapped by
:mod:`.wan_original`), by Hub id or local folder; and the ReCamMaster DiT weights on top.

Latents are the normalised ones of Wan's own code (and DiffSynth/ReCamMaster):
``(z - latents_mean) / latents_std`` with the 16 values of the VAE config; diffusers' VAE returns
raw latents and its pipelines normalise them the same way. Video encoding takes the posterior
mean (the official pipeline's ``encode`` returns ``mu``).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core.constants import WAN_TEXT_TOKENS, WAN_VAE_TILE, WAN_VAE_TILE_STRIDE
from ..core.errors import RealcamError
from . import wan_original
from .recammaster import BASE, RELEASED, ReCamMaster, load_transformer_weights

if TYPE_CHECKING:
    from .wan_camera import WanCamera

#: The base folders ReCamMaster needs (the DiT's weights come from its own checkpoint).
BASE_PARTS = ("transformer/config.json", "vae", "text_encoder", "tokenizer")


#: The DiTs this module builds: ReCamMaster (camera tokens in every block, a source video) and
#: the Plücker patchify model of :mod:`.wan_camera` (CameraCtrl II's design).
KINDS = ("recammaster", "wan-camera")


@dataclass
class WanParts:
    model: "ReCamMaster | WanCamera"
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    files: list[Path] = field(default_factory=list)
    base: Path | None = None  # the base folder (either layout)
    weights: Path | None = None  # the DiT checkpoint (None: the base's own DiT)
    kind: str = "recammaster"


def resolve_base(base: str | Path, transformer_weights: bool = False) -> Path:
    """A Diffusers-layout base: a local folder as it is, else a Hub id through the local cache
    (downloading only the parts needed when the Hub answers); unavailable: one line naming what
    is missing and the command that fetches it."""
    folder = Path(base)
    if folder.is_dir():
        return _check_base(folder, transformer_weights)
    if str(base).count("/") != 1:
        raise RealcamError("no such folder, and not a Hugging Face id (owner/name)", "--base")
    from huggingface_hub import snapshot_download

    from ..core.hub import cache_dir, hub_online

    patterns = [
        "transformer/*" if transformer_weights else "transformer/config.json",
        "vae/*",
        "text_encoder/*",
        "tokenizer/*",
    ]
    # either layout: a repository holds the files of one of them only
    patterns += wan_original.hub_patterns(transformer_weights)
    try:
        folder = Path(snapshot_download(str(base), allow_patterns=patterns, local_files_only=not hub_online()))
    except Exception as exc:  # offline, unknown repository, gated: one line
        include = " ".join(f"--include '{p}'" for p in patterns)
        raise RealcamError(
            f"the base {base} is unavailable ({type(exc).__name__}); put it in the Hugging Face cache "
            f"{cache_dir()} (when online: hf download {base} {include}) or give --base FOLDER",
            "--base",
        ) from None
    return _check_base(folder, transformer_weights)


def _check_base(folder: Path, transformer_weights: bool) -> Path:
    """A complete base of either layout, else one line naming what it lacks."""
    if wan_original.is_original_layout(folder):
        missing = wan_original.missing_parts(folder, transformer_weights)
        if missing:
            raise RealcamError(f"not a complete original-layout Wan2.1 base: no {', '.join(missing)}", folder)
        return folder
    missing = [p for p in BASE_PARTS if not (folder / p).exists()]
    if missing:
        raise RealcamError(f"not a Diffusers-layout Wan2.1 base: no {', '.join(missing)}", folder)
    return folder


def resolve_weights(weights: str | Path | None, kind: str = "recammaster") -> Path:
    """The DiT checkpoint: a file, else (ReCamMaster) the release through the Hugging Face cache;
    the camera-patchify model has no released weights (train them: ``realcam train --model
    wan-camera``)."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise RealcamError("no such checkpoint file", path)
        return path
    if kind == "wan-camera":
        raise RealcamError(
            "the wan-camera model has no released weights: give --weights (the weights/wan_camera.safetensors "
            "of `realcam train --model wan-camera`)",
            "--weights",
        )
    from ..core.hub import cache_dir, download_command, hub_file

    repo, name = RELEASED
    path, reason = hub_file(repo, name)
    if path is None:
        raise RealcamError(
            f"released weights unavailable: {repo}/{name} ({reason}); put them in the Hugging Face cache "
            f"{cache_dir()} (when online: {download_command(repo, name)}) or give --weights FILE",
            "--weights",
        )
    return path


def wan_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA (as the official scripts), fp32 on the CPU."""
    from ..core.device import resolve_dtype

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return resolve_dtype(dtype, str(device))


def build_transformer(config: dict, device: torch.device | str = "cpu"):
    """A ``WanTransformer3DModel`` of ``config``, parameters not yet allocated (``meta``) unless
    ``device`` is given a real one for random initialisation."""
    from diffusers import WanTransformer3DModel

    with torch.device(device):
        transformer = WanTransformer3DModel.from_config(config)
    if str(device) == "meta":  # RoPE tables are computed, not loaded: build them for real
        rope = transformer.rope
        transformer.rope = type(rope)(rope.attention_head_dim, rope.patch_size, rope.max_seq_len)
    return transformer


def build_recammaster(config: dict, device: torch.device | str = "cpu") -> ReCamMaster:
    """The ReCamMaster DiT of a ``WanTransformer3DModel`` config (see :func:`build_transformer`)."""
    return ReCamMaster(build_transformer(config, device))


def build_dit(kind: str, transformer):
    """The camera model of ``kind`` around a base ``transformer`` (new camera layers at their
    initial values)."""
    if kind == "recammaster":
        return ReCamMaster(transformer)
    from .wan_camera import WanCamera

    return WanCamera(transformer)


def load_parts(
    weights: str | Path | None = None,
    base: str | Path = BASE,
    device: str = "auto",
    dtype: str = "auto",
    from_base: bool = False,
    kind: str = "recammaster",
) -> WanParts:
    """The camera DiT of ``kind`` (its checkpoint loaded strictly) with the base's VAE, text
    encoder and tokenizer; ``from_base``: the base's own DiT weights with freshly attached camera
    layers (the start of training). ``kind``: ``recammaster`` (a ReCamMaster checkpoint in Wan's
    original names) or ``wan-camera`` (:mod:`.wan_camera`; weights saved by our trainer, in
    diffusers' names)."""
    from diffusers import WanTransformer3DModel

    from ..core.device import resolve_device
    from ..core.hub import quiet_loading
    from .checkpoint import read_state_dict

    if kind not in KINDS:
        raise RealcamError(f"unknown Wan model {kind!r} ({' or '.join(KINDS)})", "--model")
    dev = torch.device(resolve_device(device))
    dt = wan_dtype(dtype, dev)
    folder = resolve_base(base, transformer_weights=from_base)
    ckpt = None if from_base else resolve_weights(weights, kind)
    state = None if from_base else read_state_dict(ckpt)  # a corrupt file fails before anything is built
    vae_dtype = torch.float32 if dev.type == "cpu" else dt
    original = wan_original.is_original_layout(folder)
    try:
        with quiet_loading():
            if from_base and original:
                model = build_dit(kind, wan_original.load_transformer(folder, dt))
            elif from_base:
                model = build_dit(kind, WanTransformer3DModel.from_pretrained(folder / "transformer", torch_dtype=dt))
            else:
                if original:
                    config = wan_original.transformer_config(folder)
                else:
                    config = WanTransformer3DModel.load_config(folder / "transformer")
                model = build_dit(kind, build_transformer(config, "meta"))
                if kind == "recammaster":
                    load_transformer_weights(model, ckpt, state)
                else:
                    load_camera_weights(model, ckpt, state)
            del state
            vae, text_encoder, tokenizer = load_encoders(folder, original, dt, vae_dtype)
    except RealcamError:
        raise
    except (OSError, ValueError) as exc:  # a broken base folder: one line
        raise RealcamError(f"cannot load the Wan2.1 base ({str(exc).splitlines()[0][:200]})", folder) from None
    model = model.to(dev, dt).eval()
    vae = vae.to(dev).eval()
    text_encoder = text_encoder.to(dev).eval()
    if original:
        files = ([ckpt] if ckpt else []) + wan_original.base_files(folder, from_base)
    else:
        files = [ckpt, folder / "transformer" / "config.json"] if ckpt else [folder / "transformer" / "config.json"]
        parts = ("transformer", "vae", "text_encoder") if from_base else ("vae", "text_encoder")
        files += sorted(p for part in parts for p in (folder / part).glob("*.safetensors"))
    return WanParts(model, vae, text_encoder, tokenizer, dev, dt, files, folder, ckpt, kind)


def load_encoders(folder: Path, original: bool, dtype: torch.dtype, vae_dtype: torch.dtype):
    """The base's VAE, UMT5 text encoder and tokenizer (either layout)."""
    from diffusers import AutoencoderKLWan
    from transformers import AutoTokenizer, UMT5EncoderModel

    if original:
        vae = wan_original.load_vae(folder / wan_original.VAE, vae_dtype)
        text_encoder = wan_original.load_text_encoder(folder / wan_original.T5, dtype)
        return vae, text_encoder, wan_original.load_tokenizer(folder)
    vae = AutoencoderKLWan.from_pretrained(folder / "vae", torch_dtype=vae_dtype)
    # eager attention: bit-identical to Wan's own T5 (sdpa differs by 2e-6 in fp32)
    text_encoder = UMT5EncoderModel.from_pretrained(
        folder / "text_encoder", torch_dtype=dtype, attn_implementation="eager"
    )
    return vae, text_encoder, AutoTokenizer.from_pretrained(folder / "tokenizer")


def load_camera_weights(model, path: str | Path, state: dict | None = None) -> int:
    """Load wan-camera weights (the whole transformer, diffusers' names, with
    ``camera_patchify.*``) strictly; a missing, unexpected or misshapen key stops the load naming it."""
    from .checkpoint import read_state_dict
    from .recammaster import check_state_keys

    state = state if state is not None else read_state_dict(path)
    own = model.transformer.state_dict()
    check_state_keys(state, own, path, str)
    model.transformer.load_state_dict(state, strict=True, assign=own[next(iter(own))].is_meta)
    return len(state)


# ----------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------
def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning (``basic_clean`` then ``whitespace_clean``) without ftfy's mojibake
    repair: HTML entities unescaped (twice, as Wan), runs of whitespace collapsed."""
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


@torch.no_grad()
def encode_prompt(parts: WanParts, prompts: list[str], tokens: int = WAN_TEXT_TOKENS) -> torch.Tensor:
    """UMT5 embeddings ``(B, tokens, dim)``: each prompt's real length, zeros after it."""
    tok = parts.tokenizer(
        [clean_prompt(p) for p in prompts],
        padding="max_length",
        max_length=tokens,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    ids, mask = tok.input_ids.to(parts.device), tok.attention_mask.to(parts.device)
    out = parts.text_encoder(ids, mask).last_hidden_state
    keep = (torch.arange(tokens, device=parts.device)[None] < mask.sum(1, keepdim=True)).unsqueeze(-1)
    return torch.where(keep, out, torch.zeros((), device=out.device, dtype=out.dtype)).to(parts.dtype)


# ----------------------------------------------------------------------------------------------
# Video <-> latents
# ----------------------------------------------------------------------------------------------
def _latent_stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, device=like.device, dtype=like.dtype).view(shape)
    std = torch.tensor(vae.config.latents_std, device=like.device, dtype=like.dtype).view(shape)
    return mean, std


def set_tiling(vae, tiling: bool) -> None:
    """The official tiling (tiles of 30x52 latents, stride 15x26), or none."""
    if tiling:
        vae.enable_tiling(*WAN_VAE_TILE, *WAN_VAE_TILE_STRIDE)
    else:
        vae.disable_tiling()


@torch.no_grad()
def encode_video(parts: WanParts, frames: np.ndarray) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 (or a batch ``(B, T, H, W, 3)``) -> normalised latents
    ``(B, C, 1 + (T-1)/4, H/8, W/8)`` (posterior mean)."""
    vae = parts.vae
    x = torch.as_tensor(np.require(frames, requirements=["C", "W"])).to(parts.device)
    x = x.unsqueeze(0) if x.dim() == 4 else x
    x = x.permute(0, 4, 1, 2, 3).to(next(vae.parameters()).dtype) / 127.5 - 1.0
    z = vae.encode(x).latent_dist.mode()
    mean, std = _latent_stats(vae, z)
    return ((z - mean) / std).to(parts.dtype)


@torch.no_grad()
def decode_video(parts: WanParts, latents: torch.Tensor) -> np.ndarray:
    """Normalised latents -> ``(T, H, W, 3)`` uint8."""
    vae = parts.vae
    z = latents.to(next(vae.parameters()).dtype)
    mean, std = _latent_stats(vae, z)
    video = vae.decode(z * std + mean).sample.float().clamp(-1, 1)[0]  # (3, T, H, W)
    return ((video + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()
