"""``generate --model wan-camera``: camera-controlled video on Wan2.1 with the Plücker patchify
layer (:mod:`stages.models.wan_camera`; docs/method.md#wan-camera-sampling), with the metric
preview and scene-constrained noise shaping of the DynamiCrafter path. One call of :func:`generate`:

1. read and check everything first: the image (image-to-video), or nothing but the prompt
   (text-to-video), or the last ``context_frames`` frames of a video (continuation); the camera
   path (trajectory file or preset, in metres, relative to the clip's first frame);
2. the preview of the first frame along the path (the ``preview`` stage with metric depth), so
   the user sees where the camera goes; its pixel intrinsics and poses are the camera input (the
   Plücker embedding of every frame, packed onto the latent grid); text-to-video has no preview
   and takes the path's intrinsics (or ``--fov``);
3. the model: the base's VAE, UMT5 text encoder and tokenizer with our trained DiT
   (``--weights``, loaded strictly);
4. the given latent frames, clean at every step (image-to-video: latent frame 0 = the image's
   latent; continuation: the latents of the given frames, ``(n - 1) / 4 + 1`` of them, which the
   causal VAE makes equal to the first latent frames of the whole clip); noise shaping on the
   Wan latents (the preview's latents and its masks packed over the 4 frames of a latent frame,
   :func:`stages.rerender.pipeline.latent_masks`) at the steps with ``1000 sigma >= t_NS``;
   Euler flow matching with text CFG and camera CFG (:func:`stages.flow_matching.guided`);
5. decode, write the MP4 (continuation: the input video before the given frames, the given frames
   as they were, then the new ones) and a JSON record of every setting, input and model file;
   :func:`regenerate` reads a record and produces the same video again.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from .core import checks
from .core import trajectory as tr
from .core.artifacts import check_record_files, file_entries, path_spec, sha256_file, write_record
from .core.artifacts import read_record as _read_record
from .core.batch import run_media_batch
from .core.constants import WAN_TEMPORAL_STRIDE
from .core.errors import RealcamError
from .core.image import fit_image
from .core.video import read_image, write_video
from .rerender.pipeline import WanTask
from .settings import WanGenerateSettings

RECORD_FORMAT = "realcam-generate-wan/1"


@dataclass
class WanGenerateResult:
    frames: np.ndarray  # (T, H, W, 3) uint8, what was written
    latents: torch.Tensor
    video: Path
    record: Path
    preview: Path | None
    files: list[Path] = field(default_factory=list)


@dataclass
class Given:
    """The frames the clip starts from: none (text-to-video), the image, or a video's last frames."""

    frames: np.ndarray | None  # (n, H, W, 3) uint8 at the generation size, n = 4k + 1
    earlier: np.ndarray | None  # continuation: the input's frames before them (at the size)
    image: Path | None  # the file the first frame came from


def read_given(image, settings: WanGenerateSettings) -> Given:
    """The starting frames of the task, read and fitted to the size (before anything is written)."""
    from .generate import read_continue_video

    size = tuple(settings.size)
    if settings.continue_video is not None:
        n = settings.context_frames
        video = read_continue_video(settings.continue_video, n)
        fitted = np.stack([fit_image(f, None, size)[0] for f in video])
        return Given(fitted[-n:], fitted[:-n], Path(settings.continue_video))
    if settings.task == "t2v":
        if image is not None:
            raise RealcamError("text-to-video takes no image (drop IMAGE or use --task i2v)", image)
        return Given(None, None, None)
    if image is None:
        raise RealcamError("image-to-video needs an image", "IMAGE")
    picture = read_image(image)
    return Given(fit_image(picture, None, size)[0][None], None, Path(image))


def camera_path(trajectory, settings: WanGenerateSettings) -> tr.Trajectory:
    """The dense path of ``frames`` poses (file or preset), relative to its first frame."""
    from .core.cameras import relative_poses
    from .rerender.pipeline import target_path

    traj = target_path(trajectory, settings)
    return replace(traj, c2w=relative_poses(traj.c2w))


def clean_latents(parts, given: Given) -> torch.Tensor | None:
    """The latents of the given frames ``(1, C, c, h, w)`` (posterior mean), or None."""
    from .models import wan

    if given.frames is None:
        return None
    return wan.encode_video(parts, given.frames)


def paste(x: torch.Tensor, known: torch.Tensor | None) -> torch.Tensor:
    """``x`` with its first latent frames replaced by the clean ``known`` ones."""
    if known is None:
        return x
    c = known.shape[2]
    return torch.cat([known.to(x.dtype), x[:, :, c:]], dim=2)


def generate(
    image: str | Path | None,
    trajectory: str | Path | None,
    out: str | Path,
    *,
    settings: WanGenerateSettings | None = None,
    parts=None,
    weights: str | Path | None = None,
    base: str | Path | None = None,
    depth: str | Path | None = None,
    depth_model: str | None = None,
    preview_dir: str | Path | None = None,
    device: str = "auto",
    on_step: Callable[[int, int], None] | None = None,
    **overrides,
) -> WanGenerateResult:
    """Generate ``out`` (MP4) along ``trajectory`` (file or preset name) from ``image`` (I2V),
    the prompt alone (T2V) or the end of ``settings.continue_video``; also writes the record
    ``<out stem>.json`` and, with a first frame, the preview folder ``<out stem>_preview/``
    (``preview_dir``: an earlier preview folder at the size and frame count instead, whose path
    and cameras are used; ``trajectory`` may then be None)."""
    from . import flow_matching as fm
    from .core.device import resolve_device
    from .models import wan
    from .models.recammaster import BASE
    from .rerender.pipeline import latent_masks, make_preview

    s = replace(settings or WanGenerateSettings(), **overrides).check()
    out = checks.output_file(out, "--out", (".mp4",))
    given = read_given(image, s)
    reused = None
    if preview_dir is not None:
        from .generate import load_preview

        if given.frames is None:
            raise RealcamError("a preview belongs to an image: text-to-video takes none", "--preview")
        reused = load_preview(preview_dir, *s.size, s.frames)
        traj = tr.Trajectory(reused.c2w, np.linspace(0, 1, s.frames), frames=s.frames)
    else:
        traj = camera_path(trajectory, s)
    if depth is not None:
        checks.input_file(depth, "depth file")
    if parts is None:  # the model's files are named before anything is written
        wan.resolve_weights(weights, "wan-camera")
        wan.resolve_base(base or BASE)
    device = resolve_device(device)
    width, height = s.size
    preview_dir_out = Path(preview_dir) if reused is not None else out.with_name(out.stem + "_preview")
    shown = reused
    if given.frames is not None and shown is None:
        shown = make_preview(given.frames[0], traj, preview_dir_out, s, depth, depth_model, device, fov=s.fov)
    if shown is not None:  # the cameras the preview shows
        k, c2w = np.broadcast_to(np.asarray(shown.k), (s.frames, 3, 3)), shown.c2w
    else:
        k = np.broadcast_to(traj.pixel_intrinsics(width, height, s.fov), (s.frames, 3, 3))
        c2w = traj.c2w
    if parts is None:
        parts = wan.load_parts(weights, base or BASE, device, s.dtype, kind="wan-camera")
    if parts.kind != "wan-camera":
        raise RealcamError(f"the loaded model is {parts.kind}, not wan-camera", "--model")
    wan.set_tiling(parts.vae, s.tiling)
    offload = s.offload and parts.device.type == "cuda"
    model = parts.model

    positive = wan.encode_prompt(parts, [s.prompt])
    negative = wan.encode_prompt(parts, [s.negative_prompt]) if s.cfg != 1.0 else None
    if offload:
        parts.text_encoder.to("cpu")
    known = clean_latents(parts, given)
    shaping = None
    if s.noise_shaping is not None and shown is not None:
        z_preview = paste(wan.encode_video(parts, shown.frames), known)
        mask = torch.as_tensor(latent_masks(shown.latent_masks)).to(parts.device, parts.dtype)
        shaping = fm.FlowShaping(z_preview, mask[None, None], s.noise_shaping / 1000.0)
    if offload:
        parts.vae.to("cpu")
        torch.cuda.empty_cache()
    # the Plücker embedding on the model's device in float32 (81 frames of 832x480: 0.8 GB)
    k_t = torch.as_tensor(np.array(k, dtype=np.float32), device=parts.device)[None]
    c2w_t = torch.as_tensor(np.array(c2w, dtype=np.float32), device=parts.device)[None]
    plucker = model.camera_input(k_t, c2w_t, height, width)

    def branch(text, camera):
        return lambda x, t: model(paste(x, known), t, text, camera)

    generator = torch.Generator("cpu").manual_seed(s.seed)
    latent = (s.frames - 1) // WAN_TEMPORAL_STRIDE + 1
    shape = (1, model.config.in_channels, latent, height // model.spatial, width // model.spatial)
    noise = fm.randn(shape, generator, parts.device, torch.float32).to(parts.dtype)
    velocity = fm.guided(
        branch(positive, plucker),
        None if negative is None else branch(negative, plucker),
        s.cfg,
        camera_free=branch(positive, None),
        camera_cfg=s.camera_cfg,
        camera_schedule=s.camera_cfg_schedule,
    )
    z = paste(fm.sample(velocity, noise, s.steps, s.shift, shaping, generator, on_step), known)
    if offload:
        parts.vae.to(parts.device)
    frames = wan.decode_video(parts, z)
    written = frames
    if given.earlier is not None:  # the long video: the input, the given frames as they were, the new ones
        n = len(given.frames)
        written = np.concatenate([given.earlier, given.frames, frames[n:]])
    files = [Path(p) for p in parts.files]
    preview = None if shown is None else preview_dir_out
    record = write_outputs(
        out, written, given, trajectory, traj, preview, reused is not None, depth, parts, str(device), s
    )
    return WanGenerateResult(written, z, out, record, preview, files)


def write_outputs(
    out: Path,
    frames: np.ndarray,
    given: Given,
    trajectory,
    traj: tr.Trajectory,
    preview: Path | None,
    preview_given: bool,
    depth,
    parts,
    device: str,
    settings: WanGenerateSettings,
) -> Path:
    """The video, then the record of every setting, input and model file (with sha256)."""
    write_video(out, frames, fps=settings.fps)
    record = {
        "format": RECORD_FORMAT,
        "model": "wan-camera",
        "image": None if given.image is None or settings.continue_video else str(given.image.resolve()),
        "inputs_sha256": {str(given.image.resolve()): sha256_file(given.image)} if given.image else {},
        "trajectory": path_spec(trajectory),
        "trajectory_sha256": sha256_file(trajectory) if Path(str(trajectory)).is_file() else None,
        "c2w": np.asarray(traj.c2w).round(9).tolist(),
        "preview": None if preview is None else str(preview.resolve()),
        "preview_given": preview_given,
        "depth": path_spec(depth),
        "weights": str(Path(parts.weights).resolve()) if parts.weights else None,
        "base": str(Path(parts.base).resolve()) if parts.base else None,
        "files": file_entries(parts.files),
        "device": device,
        "settings": asdict(settings),
        "video": str(out.resolve()),
        "video_frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
    }
    return write_record(out, record)


def read_record(path: str | Path) -> dict:
    return _read_record(path, RECORD_FORMAT, "generate --model wan-camera")


def regenerate(
    record_path: str | Path, out: str | Path, *, device: str | None = None, on_step=None
) -> WanGenerateResult:
    """Run again from a record: the same inputs and model files (hash-checked) and settings."""
    record = read_record(record_path)
    try:
        raw = dict(record["settings"])
        files = record["files"]
        inputs = record["inputs_sha256"]
    except (KeyError, TypeError) as exc:
        raise RealcamError(f"record is incomplete ({exc})", record_path) from None
    check_record_files(record_path, {**inputs, record.get("trajectory"): record.get("trajectory_sha256")}, files)
    raw["size"] = tuple(raw["size"])
    return generate(
        record.get("image"),
        record["trajectory"],
        out,
        settings=WanGenerateSettings(**raw),
        weights=record["weights"],
        base=record["base"],
        depth=record.get("depth"),
        preview_dir=record["preview"] if record.get("preview_given") else None,
        device=device or record["device"],
        on_step=on_step,
    )


# ----------------------------------------------------------------------------------------------
# The batch form
# ----------------------------------------------------------------------------------------------
BATCH_TABLE = "generate.parquet"


@dataclass
class WanGenerateTask(WanTask):
    """``generate --model wan-camera --batch`` in the batch engine (rows: image, trajectory[,
    prompt, seed, id, depth])."""

    kind: ClassVar[str] = "wan-camera"

    def make(self, row: dict, settings: WanGenerateSettings, video: Path) -> None:
        generate(
            row["source"],
            row["trajectory"],
            video,
            settings=settings,
            parts=self._parts,
            depth=row["depth"] or self.depth,
            device=self.device,
        )


def generate_batch(
    table: str | Path,
    out_dir: str | Path,
    *,
    settings: WanGenerateSettings | None = None,
    weights=None,
    base=None,
    depth=None,
    device: str = "auto",
    batch=None,
    progress: Callable[[str], None] | None = None,
    **overrides,
):
    """One image-to-video per row into ``out_dir/<id>.mp4`` (+ record and preview); per-row failures
    go to ``out_dir/generate.parquet`` and the batch goes on; rows done earlier are skipped unless
    ``overwrite``. ``batch``: where the rows run (``overrides``: its fields)."""
    from .settings import BatchSettings

    settings = (settings or WanGenerateSettings()).check()
    if settings.task != "i2v" or settings.continue_video is not None:
        raise RealcamError("the batch form is image-to-video: one image per row", "--batch")
    batch = replace(batch or BatchSettings(), **overrides).check()
    task = WanGenerateTask(Path(out_dir), settings, device, weights, base, depth)
    return run_media_batch(task, table, "image", BATCH_TABLE, batch, progress)
