"""Checkpoints: strict loading of the official DynamiCrafter / RealCam-I2V files, our own
safetensors + config JSON.

Loading is strict by name and shape: a key in a file that the model does not have (for instance a
camera weight whose name was changed) stops the load with a message naming the file and the keys,
because a silently ignored camera weight gives a model that quietly ignores the camera. Keys the
model has but the file lacks are reported (a camera checkpoint on top of the base model, or the
base model alone, legitimately leaves some out). Non-network entries of the official Lightning
checkpoints (the diffusion schedule buffers, ``scale_factor``, ``logvar``, the depth predictor used
by the reference demo) are listed as ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.artifacts import atomic_dir, atomic_path
from ..core.errors import RealcamError
from . import autoencoder as ae
from .configs import ModelConfig

FORMAT = "realcam-model/1"
SCHEDULE_BUFFERS = {
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "scale_factor",
    "logvar",
    "scale_arr",
    "depth_predictor_normalizer_mean",
    "depth_predictor_normalizer_std",
}
IGNORED_PREFIXES = ("depth_predictor.", "model_ema.")
FIRST_STAGE = "first_stage_model."


@dataclass
class LoadReport:
    files: list[str] = field(default_factory=list)
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def missing_by_module(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for key in self.missing:
            top = ".".join(key.split(".")[:2]) if key.startswith("model.") else key.split(".")[0]
            out[top] = out.get(top, 0) + 1
        return out

    def summary(self) -> str:
        miss = ", ".join(f"{k}: {v}" for k, v in self.missing_by_module().items()) or "none"
        return (
            f"loaded {self.loaded} tensors from {len(self.files)} file(s); missing {len(self.missing)} "
            f"({miss}); ignored {len(self.ignored)} non-network entries"
        )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors``, ``.ckpt``, ``.pt``/``.pth``/``.bin`` file, with nested
    ``state_dict`` (Lightning) or ``module`` (DeepSpeed) unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise RealcamError("checkpoint file not found", source=path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except RealcamError:
        raise
    except Exception as exc:  # corrupt or foreign file: one line for the user, in our words
        raise RealcamError(f"cannot read checkpoint: {_checkpoint_problem(path, exc)}", source=path) from None
    while isinstance(data, dict):
        if "state_dict" in data and isinstance(data["state_dict"], dict):
            data = data["state_dict"]
        elif "module" in data and isinstance(data["module"], dict):
            data = data["module"]
        else:
            break
    if not isinstance(data, dict):
        raise RealcamError("checkpoint holds no state dict", source=path)
    out = {}
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in ("_forward_module.", "module."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key.replace("framestride_embed", "fps_embedding")] = value
    if not out:
        raise RealcamError("checkpoint holds no tensors", source=path)
    return out


def _checkpoint_problem(path: Path, exc: Exception) -> str:
    """What is wrong with a checkpoint file, without the loader's advice (torch suggests turning its
    weights-only safety off, which would run code from the file: never do that with a file you
    cannot vouch for)."""
    import pickle
    import zipfile

    if path.suffix == ".safetensors":
        return "not a valid safetensors file (corrupt or truncated header)"
    if path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in str(exc):
        return "it holds Python objects other than tensors and plain containers, or is corrupt"
    if zipfile.is_zipfile(path):
        return f"corrupt archive ({type(exc).__name__})"
    return "not a PyTorch checkpoint (corrupt, truncated, or another format)"


def _to_model_names(sd: dict[str, torch.Tensor], model, source) -> tuple[dict, list[str], list[str]]:
    """Map official names onto ours (autoencoder LDM -> diffusers); split off ignored entries.
    Returns (mapped, ignored, unknown_autoencoder_keys)."""
    own = model.state_dict()
    n_levels = len(model.config.autoencoder.ch_mult)
    mapped, ignored, unknown = {}, [], []
    for key, value in sd.items():
        if key in SCHEDULE_BUFFERS or key.startswith(IGNORED_PREFIXES):
            ignored.append(key)
            continue
        if key.startswith(FIRST_STAGE) and key not in own:
            name = ae.ldm_to_diffusers_name(key[len(FIRST_STAGE) :], n_levels)
            if name is None:
                unknown.append(key)
                continue
            mapped[FIRST_STAGE + name] = ae.ldm_tensor_to_diffusers(key, value)
            continue
        mapped[key] = value
    return mapped, ignored, unknown


def load_checkpoint(
    model,
    *paths: str | Path,
    require_all: bool = False,
    report: LoadReport | None = None,
    preloaded: dict | None = None,
) -> LoadReport:
    """Load one or more checkpoints (later files override earlier ones, e.g. the DynamiCrafter
    ``model.ckpt`` then a RealCam-I2V camera file) with strict name and shape checking.

    Raises :class:`RealcamError` naming the file and keys for unexpected keys or shape mismatches,
    and (with ``require_all``) for missing keys. Nothing is changed in the model when a file fails.
    """
    report = report or LoadReport()
    own = model.state_dict()
    merged: dict[str, torch.Tensor] = {}
    for path in paths:
        sd = preloaded[path] if preloaded and path in preloaded else read_state_dict(path)
        mapped, ignored, unknown = _to_model_names(sd, model, path)
        unexpected = sorted(unknown + [k for k in mapped if k not in own])
        if unexpected:
            shown = ", ".join(unexpected[:8]) + (f" and {len(unexpected) - 8} more" if len(unexpected) > 8 else "")
            raise RealcamError(
                f"{len(unexpected)} unexpected key(s) not in the {model.camera_mode!r} "
                f"{model.config.name} model: {shown}",
                source=path,
            )
        bad = [
            f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            for k, v in mapped.items()
            if tuple(v.shape) != tuple(own[k].shape)
        ]
        if bad:
            raise RealcamError(f"shape mismatch: {'; '.join(bad[:5])}", source=path)
        merged.update(mapped)
        report.files.append(str(path))
        report.ignored.extend(ignored)
    missing = sorted(k for k in own if k not in merged)
    if require_all and missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise RealcamError(
            f"{len(missing)} model key(s) missing from the checkpoint: {shown}", source=paths[-1] if paths else None
        )
    model.load_state_dict(merged, strict=False, assign=any(p.is_meta for p in model.parameters()))
    report.loaded = len(merged)
    report.missing = missing
    return report


def official_state_dict(model) -> dict[str, torch.Tensor]:
    """Our state dict in the official key layout (autoencoder back to LDM names)."""
    n_levels = len(model.config.autoencoder.ch_mult)
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith(FIRST_STAGE):
            name = key[len(FIRST_STAGE) :]
            out[FIRST_STAGE + ae.diffusers_to_ldm_name(name, n_levels)] = ae.diffusers_tensor_to_ldm(name, value)
        else:
            out[key] = value
    return out


def save_checkpoint(model, out_dir: str | Path, only_trainable: bool = False, extra: dict | None = None) -> Path:
    """Write ``out_dir/model.safetensors`` + ``out_dir/config.json`` atomically.

    ``only_trainable`` keeps just the parameters with ``requires_grad`` (the camera modules after
    :func:`set_trainable`), to be loaded on top of the base weights.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    sd = model.state_dict()
    if only_trainable:
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        sd = {k: v for k, v in sd.items() if k in names}
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    meta = {
        "format": FORMAT,
        "camera": model.camera_mode,
        "only_trainable": only_trainable,
        "config": model.config.to_dict(),
        **(extra or {}),
    }
    with atomic_dir(out_dir) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def save_state_file(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> Path:
    """``state`` (copied to the CPU, contiguous) as one safetensors file, written atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def resolve_checkpoint(spec: str | Path, filename: str = "model.ckpt") -> Path:
    """A checkpoint file from a local file, a local folder (``folder/filename``) or a Hugging Face
    repository id (``Doubiiu/DynamiCrafter_512`` -> its ``filename``, through the local cache)."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / filename).is_file():
            return path / filename
        raise RealcamError(f"no {filename} in the folder", source=path)
    text = str(spec)
    if text.count("/") == 1 and not text.startswith((".", "/")):
        from ..core.hub import download_command, hub_file

        found, reason = hub_file(text, filename)
        if found is None:
            raise RealcamError(
                f"cannot fetch {filename} from the Hugging Face Hub ({reason}; when online: "
                f"{download_command(text, filename)})",
                source=text,
            )
        return found
    raise RealcamError("checkpoint not found (a file, a folder or a Hugging Face id)", source=text)


def load_pretrained(
    config: str = "512",
    base: str | Path = "Doubiiu/DynamiCrafter_512",
    camera_weights: str | Path | None = None,
    camera: str = "realcam",
    camera_filename: str | None = None,
    device=None,
):
    """The official weights: DynamiCrafter ``model.ckpt`` (``Doubiiu/DynamiCrafter`` for 256,
    ``_512``, ``_1024``) plus, for a camera model, a RealCam-I2V camera checkpoint
    (e.g. ``512_realcam-i2v_50k.safetensors``: a path, or a Hub id with ``camera_filename``)."""
    from .model import build_model

    model = build_model(config, camera=camera, device=device)
    files = [resolve_checkpoint(base, "model.ckpt")]
    if camera_weights is not None:
        files.append(resolve_checkpoint(camera_weights, camera_filename or f"{config}_realcam-i2v_50k.safetensors"))
    elif camera != "none":
        raise RealcamError("a camera model needs camera_weights (the RealCam-I2V checkpoint)", source="camera_weights")
    report = load_checkpoint(model, *files)
    from .trainable import is_camera_parameter

    lost = [k for k in report.missing if is_camera_parameter(k)]
    if camera != "none" and lost:
        raise RealcamError(
            f"{len(lost)} camera weight(s) missing, e.g. {lost[0]}: the model would ignore the camera", source=files[-1]
        )
    return model, report


def camera_form(weights: str | Path, default: str = "official") -> str:
    """The epipolar form camera weights were trained with: from the ``config.json`` that
    :func:`save_checkpoint` writes beside them (weights trained here), else ``default`` (the
    released files carry none: they were trained with the official form)."""
    cfg_path = Path(weights).parent / "config.json"
    try:
        meta = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError):
        return default
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return default
    return str(meta.get("config", {}).get("camera", {}).get("epipolar_form", default))


def load_saved(folder: str | Path, device: str | torch.device | None = None):
    """Rebuild a model saved by :func:`save_checkpoint` and load its weights strictly."""
    from .model import build_model

    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise RealcamError("no config.json in the model folder", source=folder)
    try:
        meta = json.loads(cfg_path.read_text())
        config = ModelConfig.from_dict(meta["config"])
        camera = meta["camera"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RealcamError(f"not a realcam model config ({exc})", source=cfg_path) from None
    model = build_model(config, camera=camera, device=device)
    load_checkpoint(model, folder / "model.safetensors", require_all=not meta.get("only_trainable", False))
    return model
