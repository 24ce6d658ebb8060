"""``generate``: camera-controlled image-to-video sampling with scene-constrained noise shaping.

Formulas: docs/method.md#conditioning, docs/method.md#guidance,
docs/method.md#scene-constrained-noise-shaping. One call of :func:`generate`:

1. the model: our saved folder (``--ckpt`` with ``config.json``), an official DynamiCrafter
   ``model.ckpt`` plus a RealCam-I2V camera file, or the released weights resolved through
   ``huggingface_hub`` (base ``Doubiiu/DynamiCrafter_512`` etc., camera ``MuteApo/CamI2V``);
2. the preview (the ``preview`` stage run internally, or an earlier ``--preview DIR``) at the model's
   size and frame count: frames, latent masks, pixel intrinsics and relative c2w;
3. conditioning as in training (``stages/train/loop.py``): context = text tokens then image tokens,
   concat = the condition image's latent (a posterior sample, as the official code encodes)
   repeated over frames, ``fs`` from the frame stride; the unconditional pass has the negative
   prompt (the official demo's by default; ``""`` gives the empty prompt of the official configs)
   and a zero image but keeps the concat latent (as DynamiCrafter); the camera-free pass (camera
   CFG) drops only the camera;
4. ``z_preview`` = VAE latents (posterior samples) of the preview video with latent frame 0
   replaced by the condition image's latent; DDIM through :func:`stages.diffusion.sample` with
   :class:`~stages.diffusion.NoiseShaping`;
5. decode, write the MP4 and a JSON record of every setting, each model file's sha256 and the seed;
   :func:`regenerate` reads such a record and produces the same video again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import diffusion as dm
from .core import cameras as cam
from .core.artifacts import atomic_write_text, path_spec, read_arrays, sha256_file
from .core.artifacts import read_record as _read_record
from .core.batch import MediaTask, run_media_batch
from .core.constants import OFFICIAL_NEGATIVE_PROMPT, TOKENIZER
from .core.device import resolve_device, torch_dtype
from .core.errors import RealcamError
from .core.image import fit_image
from .core.video import read_image, read_video, write_image, write_video
from .models.encoders import load_tokenizer
from .settings import BatchSettings, GenerateSettings

__all__ = ["GenerateSettings", "OFFICIAL_NEGATIVE_PROMPT", "generate", "generate_batch", "load_model", "regenerate"]

RECORD_FORMAT = "realcam-generate/1"
#: Released weights per resolution: DynamiCrafter base repository and RealCam-I2V camera file.
BASE_REPOS = {"256": "Doubiiu/DynamiCrafter", "512": "Doubiiu/DynamiCrafter_512", "1024": "Doubiiu/DynamiCrafter_1024"}
CAMERA_REPO = "MuteApo/CamI2V"
RELEASED_CAMERA = ("256", "512")  # the RealCam-I2V camera checkpoints are released for these


# ----------------------------------------------------------------------------------------------
# Model resolution
# ----------------------------------------------------------------------------------------------
def released_files(res: str) -> list[tuple[str, str]]:
    """(Hugging Face repository, file name) of the released weights of a resolution."""
    if res not in RELEASED_CAMERA:
        raise RealcamError(
            f"no released RealCam-I2V weights for resolution {res!r} (released: "
            f"{', '.join(RELEASED_CAMERA)}); give --ckpt (and --camera-ckpt)",
            "--res",
        )
    return [(BASE_REPOS[res], "model.ckpt"), (CAMERA_REPO, f"{res}_realcam-i2v_50k.safetensors")]


def resolve_released(res: str) -> list[Path]:
    """Local paths of the released weights through the Hugging Face cache (downloading them when
    the Hub answers); otherwise, at once, one line naming every unavailable file, the cache
    folder and the commands that fetch them."""
    from .core.hub import cache_dir, download_command, hub_file

    paths, missing = [], []
    for repo, name in released_files(res):
        path, reason = hub_file(repo, name)
        if path is None:
            missing.append((f"{repo}/{name} ({reason})", download_command(repo, name)))
        else:
            paths.append(path)
    if missing:
        raise RealcamError(
            f"released weights unavailable: {'; '.join(m for m, _ in missing)}; put them in the Hugging Face "
            f"cache {cache_dir()} (when online: {' && '.join(c for _, c in missing)}) or give "
            f"--ckpt model.ckpt --camera-ckpt FILE",
            "--ckpt",
        )
    return paths


def load_model(
    res: str = "512",
    ckpt: str | Path | None = None,
    camera_ckpt: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
):
    """The model and the files it came from: our saved folder, official files, or the release."""
    from .models.checkpoint import camera_form, load_checkpoint, load_saved, read_state_dict, resolve_checkpoint
    from .models.model import build_model

    if ckpt is not None and Path(ckpt).is_dir() and (Path(ckpt) / "config.json").is_file():
        folder = Path(ckpt)
        if json.loads((folder / "config.json").read_text()).get("only_trainable"):
            raise RealcamError(
                "holds only trained weights (camera modules), not a whole model: give the "
                "base with --ckpt (model.ckpt or a full saved model) and this folder's "
                "model.safetensors with --camera-ckpt",
                folder,
            )
        model = load_saved(folder)
        files = [folder / "config.json", folder / "model.safetensors"]
        if camera_ckpt is not None:
            files.append(resolve_checkpoint(camera_ckpt, f"{model.config.name}_realcam-i2v_50k.safetensors"))
            load_checkpoint(model, files[-1])
    else:
        if ckpt is not None:
            files = [resolve_checkpoint(ckpt, "model.ckpt")]
            if camera_ckpt is not None:
                files.append(resolve_checkpoint(camera_ckpt, f"{res}_realcam-i2v_50k.safetensors"))
        else:
            files = resolve_released(str(res))
        states = {f: read_state_dict(f) for f in files}  # a corrupt file fails before the model is built
        model = build_model(str(res), camera="realcam")
        load_checkpoint(model, *files, preloaded=states)
        del states
    if camera_ckpt is not None:  # weights trained here carry their epipolar form
        model.config.camera.epipolar_form = camera_form(files[-1], model.config.camera.epipolar_form)
    model = model.to(device=device, dtype=torch_dtype(dtype)).eval()
    return model, files


# ----------------------------------------------------------------------------------------------
# Preview and conditioning
# ----------------------------------------------------------------------------------------------
@dataclass
class PreviewInputs:
    frames: np.ndarray  # (T, H, W, 3) uint8
    latent_masks: np.ndarray  # (T, h, w) bool
    k: np.ndarray  # (T, 3, 3) pixels
    c2w: np.ndarray  # (T, 4, 4) relative to the reference camera
    folder: Path


def load_preview(folder: str | Path, width: int, height: int, frames: int) -> PreviewInputs:
    """``preview.npz`` of a preview folder, checked against the model's size and frame count."""
    folder = Path(folder)
    path = folder / "preview.npz"
    if not path.is_file():
        raise RealcamError("no preview.npz in the preview folder (run `realcam preview` first)", folder)
    data = read_arrays(path)
    for key in ("frames", "latent_masks", "K", "c2w"):
        if key not in data:
            raise RealcamError(f"preview.npz lacks {key!r}", path)
    n, h, w = data["frames"].shape[:3]
    if (n, w, h) != (frames, width, height):
        raise RealcamError(
            f"preview has {n} frames of {w}x{h}; the model needs {frames} frames of "
            f"{width}x{height} (re-run preview with --frames {frames} --size "
            f"{width}x{height})",
            path,
        )
    return PreviewInputs(
        data["frames"],
        data["latent_masks"].astype(bool),
        data["K"].astype(np.float64),
        data["c2w"].astype(np.float64),
        folder,
    )


def make_preview(
    image: Path, trajectory: str, out: Path, config, settings: GenerateSettings, depth: str | Path | None, device: str
) -> PreviewInputs:
    """Run the preview stage into ``out`` at the model's size, frame count and latent grid
    (``config``: the model's); ``trajectory`` is a file, else a preset name."""
    from .preview import run_preview
    from .settings import PreviewSettings

    is_file = Path(trajectory).exists() or Path(trajectory).suffix.lower() in (".json", ".txt")
    preview = PreviewSettings(
        preset=None if is_file else trajectory,
        magnitude=settings.magnitude,
        frames=config.frames,
        size=(config.width, config.height),
        kernel=settings.kernel,
        latent_stride=config.latent_stride,
        depth_file=None if depth is None else str(depth),
        device=device,
        fov=settings.fov,
        fps=settings.fps,
        overwrite=True,
        loop=True if settings.mode == "loop" else None,
    )
    run_preview(image, out, trajectory if is_file else None, preview)
    return load_preview(out, config.width, config.height, config.frames)


def condition_image(image_path, width: int, height: int) -> np.ndarray:
    """An image file (or an ``(H, W, 3)`` uint8 array) resized and centre-cropped to the model size."""
    image = image_path if isinstance(image_path, np.ndarray) else read_image(image_path)
    fitted, _ = fit_image(image, cam.default_intrinsics(image.shape[1], image.shape[0]), (width, height))
    return fitted


def prompt_tokens(model, prompt: str, tokenizer_name: str = TOKENIZER, option: str = "--prompt") -> torch.Tensor:
    """``(1, L)`` OpenCLIP tokens; the empty prompt needs no tokenizer."""
    from .models.encoders import empty_tokens, tokenize

    length = model.config.text.context_length
    out = empty_tokens(1, length)
    if prompt:
        out = tokenize([prompt], load_tokenizer(tokenizer_name, option), length)
    return out


@dataclass
class Conditioning:
    """Everything the sampler needs besides the noise: the predictor, shapes and shaping."""

    predict: dm.Predictor
    schedule: dm.Schedule  # the model's (parameterisation, zero SNR, dynamic rescale)
    shape: tuple[int, ...]
    z_preview: torch.Tensor  # (1, 4, T, h, w)
    mask: torch.Tensor  # (1, 1, T, h, w) float
    device: str
    dtype: torch.dtype
    known: torch.Tensor | None = None  # (1, 4, T, h, w) clean latents of the given frames
    known_mask: torch.Tensor | None = None  # (1, 1, T, 1, 1) 1 at the given frames
    #: The network inputs the predictor closes over: ``context`` / ``context_uncond`` (text then
    #: image tokens), ``concat``, ``fs``, ``camera`` (pose features and epipolar masks).
    inputs: dict = field(default_factory=dict)


def to_tensor_video(frames: np.ndarray, device, dtype) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, 3, T, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.array(frames, copy=True)).to(device=device, dtype=torch.float32)
    return (x / 127.5 - 1.0).permute(3, 0, 1, 2)[None].to(dtype)


@torch.no_grad()
def build_conditioning(
    model,
    image: np.ndarray,
    preview: PreviewInputs,
    settings: GenerateSettings,
    device: str,
    dtype: torch.dtype,
    given: dict[int, np.ndarray] | None = None,
) -> Conditioning:
    """``given``: frame index -> ``(H, W, 3)`` uint8 frames that are known (interpolation, loop,
    continuation; RealCam-I2V Fig. 8): their clean latents go into the concat condition, the
    preview latent and the mask, replace the noisy latents at every model call, and are the
    output at those frames."""
    # Conditioning randomness (posterior samples, the epipolar jitter): its own stream of the seed.
    gen = torch.Generator(device="cpu").manual_seed(
        int(np.random.SeedSequence([settings.seed, 1]).generate_state(1)[0])
    )
    img = to_tensor_video(image[None], device, dtype)  # (1, 3, 1, H, W)
    cond_latent = model.encode_video(img, sample=True, generator=gen)  # (1, 4, 1, h, w)
    z_preview = model.encode_video(to_tensor_video(preview.frames, device, dtype), sample=True, generator=gen).clone()
    z_preview[:, :, 0] = cond_latent[:, :, 0]
    t_frames = z_preview.shape[2]
    mask = torch.from_numpy(preview.latent_masks).to(device, dtype)[None, None]
    if mask.shape[-2:] != z_preview.shape[-2:]:
        raise RealcamError(
            f"preview latent mask {tuple(mask.shape[-2:])} does not match the latent "
            f"size {tuple(z_preview.shape[-2:])}",
            preview.folder / "preview.npz",
        )
    # The contract shared with training (CameraI2V.condition); the unconditional pass has the
    # negative prompt and a zero image, and keeps the concat latent.
    stride = torch.tensor([settings.frame_stride])
    tokens = prompt_tokens(model, settings.prompt, settings.tokenizer).to(device)
    # the unconditional branch runs only with text-image CFG
    negative = prompt_tokens(
        model, settings.negative_prompt if settings.cfg != 1.0 else "", settings.tokenizer, "--negative-prompt"
    ).to(device)
    ctx_cond, concat, fs = model.condition(tokens, img[:, :, 0], cond_latent[:, :, 0], t_frames, stride)
    ctx_uncond, _, _ = model.condition(
        negative,
        img[:, :, 0],
        cond_latent[:, :, 0],
        t_frames,
        stride,
        keep_image=torch.zeros(1, dtype=torch.bool, device=device),
    )
    known, known_mask = encode_known_frames(model, given, image, cond_latent, z_preview.shape, gen)
    if known is not None:
        concat = known_mask * known + (1 - known_mask) * concat
        z_preview = known_mask * known + (1 - known_mask) * z_preview
        mask = torch.maximum(mask, known_mask.expand_as(mask))
    k = torch.from_numpy(preview.k).to(device, torch.float32)[None]
    c2w = torch.from_numpy(preview.c2w).to(device, torch.float32)[None]
    camera = model.camera_inputs(k, c2w, generator=gen)

    def predict(z_t: torch.Tensor, t: int, variant: str) -> torch.Tensor:
        tt = torch.full((z_t.shape[0],), t, device=device, dtype=torch.long)
        with torch.no_grad():
            if variant == "cond":
                return model(z_t, tt, ctx_cond, concat, fs=fs, camera=camera)
            if variant == "uncond":
                return model(z_t, tt, ctx_uncond, concat, fs=fs, camera=camera)
            if variant == "no_camera":
                return model(z_t, tt, ctx_cond, concat, fs=fs)
        raise ValueError(variant)

    inputs = {"context": ctx_cond, "context_uncond": ctx_uncond, "concat": concat, "fs": fs, "camera": camera}
    return Conditioning(
        predict,
        dm.Schedule.for_config(model.config),
        tuple(z_preview.shape),
        z_preview,
        mask,
        device,
        dtype,
        known,
        known_mask,
        inputs,
    )


@torch.no_grad()
def encode_known_frames(
    model,
    given: dict[int, np.ndarray] | None,
    image: np.ndarray,
    cond_latent: torch.Tensor,
    shape: tuple[int, ...],
    generator: torch.Generator,
):
    """The clean latents of the given frames and their mask ``(1, 1, T, 1, 1)`` (None, None
    without). The condition image keeps its one latent sample wherever it is given again (a loop
    ends on exactly its first frame); other given frames are sampled from their own posteriors."""
    if not given:
        return None, None
    device, dtype = cond_latent.device, cond_latent.dtype
    t_frames = shape[2]
    idx = sorted(given)
    if idx[0] < 0 or idx[-1] >= t_frames:
        raise RealcamError(f"given frames {idx} outside 0..{t_frames - 1}", "generate")
    others = [i for i in idx if not np.array_equal(given[i], image)]
    lat = None
    if others:
        frames = to_tensor_video(np.stack([given[i] for i in others]), device, dtype)
        lat = model.encode_video(frames, sample=True, generator=generator)
    known = torch.zeros(shape, device=device, dtype=dtype)
    known_mask = torch.zeros(1, 1, t_frames, 1, 1, device=device, dtype=dtype)
    for i in idx:
        known[:, :, i] = lat[:, :, others.index(i)] if i in others else cond_latent[:, :, 0]
        known_mask[:, :, i] = 1
    return known, known_mask


def run_sampling(
    cond: Conditioning, settings: GenerateSettings, on_step: Callable[[int, int, torch.Tensor], None] | None = None
) -> torch.Tensor:
    """DDIM with guidance and noise shaping; returns the final latents. Seeded by ``settings.seed``."""
    schedule = cond.schedule
    config = settings.sampler
    shaping = None
    if settings.noise_shaping is not None:
        shaping = dm.NoiseShaping(cond.z_preview, cond.mask, settings.noise_shaping, settings.noise_shaping_variant)
    generator = torch.Generator(device=cond.device).manual_seed(settings.seed)
    predict = cond.predict
    if cond.known is not None:
        m, known = cond.known_mask, cond.known

        def predict(z_t, t, variant):  # the given frames enter clean (Fig. 8 of the paper)
            return cond.predict(m * known + (1 - m) * z_t, t, variant)

    with torch.no_grad():
        z = dm.sample(
            predict,
            cond.shape,
            schedule,
            config,
            generator=generator,
            device=cond.device,
            dtype=cond.dtype,
            noise_shaping=shaping,
            on_step=on_step,
        )
    if cond.known is not None:
        z = cond.known_mask * cond.known + (1 - cond.known_mask) * z
    return z


@torch.no_grad()
def decode_frames(model, z: torch.Tensor) -> np.ndarray:
    """Latents -> (T, H, W, 3) uint8."""
    video = model.decode_latents(z).float().clamp(-1, 1)[0]  # (3, T, H, W)
    return ((video + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------
@dataclass
class GenerateResult:
    frames: np.ndarray
    latents: torch.Tensor
    video: Path
    record: Path
    preview: Path
    files: list[Path] = field(default_factory=list)


def generate(
    image: str | Path,
    trajectory: str | Path | None,
    out: str | Path,
    *,
    settings: GenerateSettings | None = None,
    model=None,
    model_files: list[Path] | None = None,
    ckpt: str | Path | None = None,
    camera_ckpt: str | Path | None = None,
    preview_dir: str | Path | None = None,
    depth: str | Path | None = None,
    device: str = "auto",
    on_step=None,
    **overrides,
) -> GenerateResult:
    """Generate ``out`` (MP4) from ``image`` along ``trajectory`` (file or preset name).

    Writes ``out``, the preview folder ``<out stem>_preview/`` (unless ``preview_dir`` is given)
    and the record ``<out stem>.json``. ``overrides`` are :class:`GenerateSettings` fields.
    """
    settings = replace(settings or GenerateSettings(), **overrides)
    settings = replace(settings, res=str(settings.res)).check()
    inputs = read_inputs(image, trajectory, out, settings, preview_dir, depth, released=model is None and ckpt is None)
    device = resolve_device(device)
    if model is None:
        model, model_files = load_model(settings.res, ckpt, camera_ckpt, device, settings.dtype)
    cfg = model.config
    settings = replace(settings, res=cfg.name)  # the schedule follows the model actually loaded
    image, cond_image, given = condition_frames(inputs, settings, cfg)
    if preview_dir is not None:
        preview = load_preview(preview_dir, cfg.width, cfg.height, cfg.frames)
    else:
        preview = make_preview(
            image, str(trajectory), inputs.out.with_name(inputs.out.stem + "_preview"), cfg, settings, depth, device
        )
    dtype = next(model.parameters()).dtype
    cond = build_conditioning(model, cond_image, preview, settings, device, dtype, given)
    z = run_sampling(cond, settings, on_step)
    frames = decode_frames(model, z)
    written = frames
    if settings.mode == "continue":  # the long video: the input, then the new frames
        n = settings.context_frames
        earlier = (
            np.stack([condition_image(f, cfg.width, cfg.height) for f in inputs.video[:-n]])
            if len(inputs.video) > n
            else frames[:0]
        )
        written = np.concatenate([earlier, np.stack([given[i] for i in range(n)]), frames[n:]])
    files = [Path(p) for p in (model_files or [])]
    record = write_outputs(
        inputs.out,
        written,
        image,
        trajectory,
        preview,
        preview_dir is not None,
        depth,
        ckpt,
        camera_ckpt,
        cfg.name,
        files,
        device,
        settings,
    )
    return GenerateResult(written, z, inputs.out, record, preview.folder, files)


@dataclass
class GenerateInputs:
    """The inputs of one generation, read and checked before anything is written."""

    out: Path
    image: Path | None  # the condition image's file (None in continuation mode)
    picture: np.ndarray | None  # the condition image
    end_picture: np.ndarray | None  # interpolation's last frame
    video: np.ndarray | None  # the video to continue


def read_inputs(
    image, trajectory, out, settings: GenerateSettings, preview_dir, depth, released: bool
) -> GenerateInputs:
    """Every input read and checked before anything is written (the preview folder included);
    ``released``: the released weights will be used (a cache look-up names missing ones first)."""
    from .core import checks

    out = checks.output_file(out, "--out", suffixes=(".mp4",))
    checks.output_dir(out.with_name(out.stem + "_preview"), "--out")
    picture = video = None  # the condition image is read once (continuation writes its own)
    if settings.mode == "continue":
        video = read_continue_video(settings.continue_video, settings.context_frames)
    else:
        if image is None:
            raise RealcamError("no image given", "IMAGE")
        picture = read_image(image)
    end_picture = read_image(settings.end_image) if settings.end_image else None
    if trajectory is None and preview_dir is None:
        raise RealcamError("give a trajectory (file or preset name) or --preview DIR", "generate")
    if preview_dir is not None:
        checks.input_dir(preview_dir, "preview folder")
    if depth is not None:
        checks.input_file(depth, "depth file")
    if released:
        resolve_released(settings.res)
    if settings.prompt:
        load_tokenizer(settings.tokenizer, "--prompt")
    if settings.negative_prompt and settings.cfg != 1.0:
        load_tokenizer(settings.tokenizer, "--negative-prompt")
    return GenerateInputs(out, None if image is None else Path(image), picture, end_picture, video)


def condition_frames(
    inputs: GenerateInputs, settings: GenerateSettings, cfg
) -> tuple[Path, np.ndarray, dict[int, np.ndarray] | None]:
    """The condition image's path (the preview's reference), the image at the model size, and the
    frames given by the mode: ``{frame index: (H, W, 3) uint8}`` (RealCam-I2V Fig. 8) or None.

    In continuation mode the new clip starts at the video's last context frames; the first of them
    is the condition image, written beside ``out`` as ``<stem>_condition.png``."""
    out, n = inputs.out, settings.context_frames
    if settings.mode == "continue":
        if n >= cfg.frames:
            raise RealcamError(
                f"context frames must be fewer than the model's {cfg.frames} frames, got {n}", "--context-frames"
            )
        context = np.stack([condition_image(f, cfg.width, cfg.height) for f in inputs.video[-n:]])
        image = out.with_name(out.stem + "_condition.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_image(image, context[0])
        return image, context[0], dict(enumerate(context))
    cond_image = condition_image(inputs.picture, cfg.width, cfg.height)
    given = None
    if settings.mode == "interp":
        given = {0: cond_image, cfg.frames - 1: condition_image(inputs.end_picture, cfg.width, cfg.height)}
    elif settings.mode == "loop":
        given = {0: cond_image, cfg.frames - 1: cond_image}
    return inputs.image, cond_image, given


def write_outputs(
    out: Path,
    frames: np.ndarray,
    image: Path,
    trajectory,
    preview: PreviewInputs,
    preview_given: bool,
    depth,
    ckpt,
    camera_ckpt,
    config_name: str,
    files: list[Path],
    device: str,
    settings: GenerateSettings,
) -> Path:
    """The video, then the record of every setting, input and model file (with sha256)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, frames, fps=settings.fps)
    record = {
        "format": RECORD_FORMAT,
        "image": str(image.resolve()),
        "image_sha256": sha256_file(image),
        "inputs_sha256": {
            str(Path(p).resolve()): sha256_file(p) for p in (settings.end_image, settings.continue_video) if p
        },
        "trajectory": path_spec(trajectory),
        "preview": str(preview.folder.resolve()),
        "preview_given": preview_given,
        "depth": None if depth is None else str(Path(depth).resolve()),
        "ckpt": path_spec(ckpt),
        "camera_ckpt": path_spec(camera_ckpt),
        "model": {
            "config": config_name,
            "files": [{"path": str(p.resolve()), "sha256": sha256_file(p)} for p in files],
        },
        "device": device,
        "settings": asdict(settings),
        "video": str(out.resolve()),
        "video_frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
    }
    record_path = out.with_suffix(".json")
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    return record_path


def read_continue_video(path, context_frames: int) -> np.ndarray:
    """Frames of the video to continue (at least ``context_frames`` of them)."""
    if path is None or not Path(path).exists():
        raise RealcamError("no such video to continue", path or "--continue")
    try:
        frames = np.asarray(read_video(path))
    except RealcamError:
        raise
    except Exception as exc:
        raise RealcamError(f"cannot read the video ({type(exc).__name__})", path) from None
    if frames.ndim != 4 or len(frames) < context_frames:
        raise RealcamError(f"the video needs at least {context_frames} frames, has {len(frames)}", path)
    return frames


def read_record(path: str | Path) -> dict:
    return _read_record(path, RECORD_FORMAT, "generate")


def regenerate(record_path: str | Path, out: str | Path, *, device: str | None = None, on_step=None) -> GenerateResult:
    """Run again from a record: same image, trajectory/preview, model files (hash-checked), settings."""
    record = read_record(record_path)
    try:
        settings = GenerateSettings(**record["settings"])
        image = Path(record["image"])
        files = record["model"]["files"]
    except (KeyError, TypeError) as exc:
        raise RealcamError(f"record is incomplete ({exc})", record_path) from None
    if image.is_file() and sha256_file(image) != record["image_sha256"]:
        raise RealcamError("the image changed since the record was written (sha256 differs)", image)
    for entry in files:
        p = Path(entry["path"])
        if not p.is_file():
            raise RealcamError("model file of the record is missing", p)
        if sha256_file(p) != entry["sha256"]:
            raise RealcamError("model file changed since the record was written (sha256 differs)", p)
    # An internal preview is rebuilt from the trajectory; a given one is reused.
    preview_dir = record["preview"] if record.get("preview_given") else None
    return generate(
        image,
        record.get("trajectory"),
        out,
        settings=settings,
        ckpt=record.get("ckpt"),
        camera_ckpt=record.get("camera_ckpt"),
        preview_dir=preview_dir,
        depth=record.get("depth"),
        device=device or record.get("device", "auto"),
        on_step=on_step,
    )


# ----------------------------------------------------------------------------------------------
# Batch form
# ----------------------------------------------------------------------------------------------
BATCH_TABLE = "generate.parquet"


@dataclass
class GenerateTask(MediaTask):
    """``generate --batch`` in the batch engine (rows: image, trajectory[, prompt, seed, id, depth])."""

    ckpt: str | Path | None = None
    camera_ckpt: str | Path | None = None
    depth: str | Path | None = None

    def setup(self) -> None:
        s = self.settings
        self.device = resolve_device(self.device)
        self._model, self._files = load_model(s.res, self.ckpt, self.camera_ckpt, self.device, s.dtype)

    def make(self, row: dict, settings: GenerateSettings, video: Path) -> None:
        generate(
            row["source"],
            row["trajectory"],
            video,
            settings=settings,
            model=self._model,
            model_files=self._files,
            ckpt=self.ckpt,
            camera_ckpt=self.camera_ckpt,
            depth=row["depth"] or self.depth,
            device=self.device,
        )


def generate_batch(
    table: str | Path,
    out_dir: str | Path,
    *,
    settings: GenerateSettings | None = None,
    ckpt=None,
    camera_ckpt=None,
    depth=None,
    device: str = "auto",
    batch: BatchSettings | None = None,
    progress: Callable[[str], None] | None = None,
    **overrides,
):
    """One video per row into ``out_dir/<id>.mp4`` (+ record and preview); per-row failures go to
    ``out_dir/generate.parquet`` (item, status, reason, video, seed) and the batch goes on; rows
    recorded as done whose outputs exist are skipped unless ``overwrite``. The model loads once per
    worker. ``batch``: where the rows run (``overrides``: its fields: ``workers``, ``ray``,
    ``shard``, ``overwrite``, ...)."""
    settings = (settings or GenerateSettings()).check()
    batch = replace(batch or BatchSettings(), **overrides).check()
    task = GenerateTask(Path(out_dir), settings, device, ckpt, camera_ckpt, depth)
    return run_media_batch(task, table, "image", BATCH_TABLE, batch, progress)
