"""``rerender``: re-shoot a video along a new camera path with ReCamMaster on Wan2.1
(docs/method.md#recammaster). One call of :func:`rerender`:

1. read and check everything first: the source video (at least ``frames`` frames; resized to
   cover and centre-cropped to the size), the target path (RealEstate10K text, trajectory JSON, one
   of our presets or one of ReCamMaster's ten, in metres, relative to its first frame);
2. the preview of the source's first frame along the target path (the ``preview`` stage, metric
   depth of that frame), so the user sees where the camera goes; with ``noise_shaping`` its
   latents and masks shape the early steps (:class:`stages.flow_matching.FlowShaping`);
3. the model: ReCamMaster's checkpoint loaded strictly into diffusers' Wan DiT, the base's VAE,
   UMT5 text encoder and tokenizer (:mod:`stages.models.wan`);
4. the source latents (clean), the camera tokens (the target poses at the latent frames,
   relative to its frame 0, 3x4 row-major), Euler flow-matching sampling with text CFG;
5. decode, write the MP4 and a JSON record of every setting, input and model file (sha256);
   :func:`regenerate` reads a record and produces the same video again.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from ..core import checks
from ..core import trajectory as tr
from ..core.artifacts import check_record_files, file_entries, path_spec, sha256_file, write_record
from ..core.artifacts import read_record as _read_record
from ..core.batch import MediaTask, run_media_batch
from ..core.constants import WAN_SPATIAL_STRIDE, WAN_TEMPORAL_STRIDE
from ..core.errors import RealcamError
from ..core.image import fit_image
from ..core.video import read_video, write_image, write_video
from ..settings import RerenderSettings
from . import cameras

RECORD_FORMAT = "realcam-rerender/1"


@dataclass
class RerenderResult:
    frames: np.ndarray  # (T, H, W, 3) uint8
    latents: torch.Tensor
    video: Path
    record: Path
    preview: Path | None
    files: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def read_source(path: str | Path, settings: RerenderSettings) -> np.ndarray:
    """The first ``frames`` frames of the video, resized to cover and centre-cropped to the size."""
    path = Path(path)
    if not path.exists():
        raise RealcamError("no such video", path)
    try:
        frames = read_video(path)
    except RealcamError:
        raise
    except Exception as exc:
        raise RealcamError(f"cannot read the video ({type(exc).__name__})", path) from None
    if frames.ndim != 4 or len(frames) < settings.frames:
        raise RealcamError(f"has {len(frames)} frames; re-rendering needs {settings.frames} (--frames)", path)
    return np.stack([fit_image(f, None, settings.size)[0] for f in frames[: settings.frames]])


def target_path(trajectory: str | Path | None, settings: RerenderSettings) -> tr.Trajectory:
    """The dense target path of ``settings.frames`` poses: a file, or a preset name (ours, or
    ReCamMaster's ``recam-*``)."""
    if trajectory is None:
        raise RealcamError("give a trajectory file or a preset name", "trajectory")
    spec = str(trajectory)
    if spec.lower().startswith("recam-"):
        return cameras.recam_preset(spec, settings.frames)
    if Path(spec).exists() or Path(spec).suffix.lower() in (".json", ".txt"):
        traj = tr.load_trajectory(spec)
        if len(traj) < 2 and settings.frames > 1:
            raise RealcamError(f"holds {len(traj)} pose; a camera path needs at least 2", spec)
        return tr.dense_trajectory(traj, settings.frames)
    return tr.preset_trajectory(spec, settings.magnitude, settings.frames)


def latent_masks(masks: np.ndarray) -> np.ndarray:
    """Per-frame latent masks ``(T, h, w)`` -> the Wan latent frames ``(f, h, w)``: latent frame 0
    is frame 0, latent frame ``j`` covers frames ``4j-3..4j`` and is kept where all of them are."""
    first = masks[:1]
    rest = masks[1:].reshape(-1, WAN_TEMPORAL_STRIDE, *masks.shape[1:]).all(axis=1)
    return np.concatenate([first, rest])


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------
def make_preview(
    first_frame: np.ndarray,
    traj: tr.Trajectory,
    folder: Path,
    settings: RerenderSettings,
    depth: str | Path | None,
    depth_model: str | None,
    device: str,
    fov: float | None = None,
):
    """The preview stage on the source's first frame along the target path, into ``folder``
    (``settings``: ``frames``, ``size``, ``kernel``, ``fps``; ``fov``: the field of view when the
    path carries no intrinsics). Shared by ``rerender`` and ``generate --model wan-camera``."""
    from ..preview import run_preview
    from ..settings import PreviewSettings

    folder.mkdir(parents=True, exist_ok=True)
    image = write_image(folder / "source_frame0.png", first_frame)
    path = tr.write_trajectory_json(folder / "target.json", traj)
    preview = PreviewSettings(
        frames=settings.frames,
        size=tuple(settings.size),
        kernel=settings.kernel,
        latent_stride=WAN_SPATIAL_STRIDE,
        depth_file=None if depth is None else str(depth),
        model=depth_model,
        device=device,
        fov=fov,
        fps=settings.fps,
        overwrite=True,
    )
    return run_preview(image, folder, path, preview)


def rerender(
    video: str | Path,
    trajectory: str | Path | None,
    out: str | Path,
    *,
    settings: RerenderSettings | None = None,
    parts=None,
    weights: str | Path | None = None,
    base: str | Path | None = None,
    depth: str | Path | None = None,
    depth_model: str | None = None,
    preview: bool = True,
    device: str = "auto",
    on_step: Callable[[int, int], None] | None = None,
    **overrides,
) -> RerenderResult:
    """Re-render ``video`` along ``trajectory`` (file or preset name) into ``out`` (MP4); also
    writes the record ``<out stem>.json`` and the preview folder ``<out stem>_preview/``.
    ``overrides`` are :class:`~stages.settings.RerenderSettings` fields."""
    from .. import flow_matching as fm
    from ..core.device import resolve_device
    from ..models import wan
    from ..models.recammaster import BASE

    s = replace(settings or RerenderSettings(), **overrides).check()
    out = checks.output_file(out, "--out", (".mp4",))
    source = read_source(video, s)
    traj = target_path(trajectory, s)
    camera = cameras.camera_tokens(traj.c2w, s.frames)
    if depth is not None:
        checks.input_file(depth, "depth file")
    device = resolve_device(device)
    preview_dir = out.with_name(out.stem + "_preview")
    shown = make_preview(source[0], traj, preview_dir, s, depth, depth_model, device) if preview else None
    if s.noise_shaping is not None and shown is None:
        raise RealcamError("noise shaping needs the preview (drop --no-preview)", "--noise-shaping")
    if parts is None:
        parts = wan.load_parts(weights, base or BASE, device, s.dtype)
    wan.set_tiling(parts.vae, s.tiling)
    offload = s.offload and parts.device.type == "cuda"

    positive = wan.encode_prompt(parts, [s.prompt])
    negative = wan.encode_prompt(parts, [s.negative_prompt]) if s.cfg != 1.0 else None
    if offload:
        parts.text_encoder.to("cpu")
    z_source = wan.encode_video(parts, source)
    shaping = None
    if s.noise_shaping is not None:
        z_preview = wan.encode_video(parts, shown.frames)
        mask = torch.as_tensor(latent_masks(shown.latent_masks)).to(parts.device, parts.dtype)
        shaping = fm.FlowShaping(z_preview, mask[None, None], s.noise_shaping)
    if offload:
        parts.vae.to("cpu")
        torch.cuda.empty_cache()
    cam = torch.as_tensor(camera, dtype=parts.dtype, device=parts.device)[None]
    model = parts.model

    def branch(text):
        return lambda x, t: model(x, z_source, t, text, cam)

    generator = torch.Generator("cpu").manual_seed(s.seed)
    noise = fm.randn(z_source.shape, generator, parts.device, torch.float32).to(parts.dtype)
    velocity = fm.guided(branch(positive), None if negative is None else branch(negative), s.cfg)
    z = fm.sample(velocity, noise, s.steps, s.shift, shaping, generator, on_step)
    if offload:
        parts.vae.to(parts.device)
    frames = wan.decode_video(parts, z)
    files = [Path(p) for p in parts.files]
    model = {"base": str(Path(parts.base).resolve()) if parts.base else None}
    model["weights"] = str(Path(parts.weights).resolve()) if parts.weights else None
    record = write_outputs(out, frames, video, trajectory, traj, shown is not None, depth, files, model, str(device), s)
    return RerenderResult(frames, z, out, record, preview_dir if shown is not None else None, files)


def write_outputs(
    out: Path,
    frames: np.ndarray,
    video,
    trajectory,
    traj: tr.Trajectory,
    preview: bool,
    depth,
    files: list[Path],
    model: dict,
    device: str,
    settings: RerenderSettings,
) -> Path:
    """The video, then the record of every setting, input and model file (with sha256)."""
    write_video(out, frames, fps=settings.fps)
    record = {
        "format": RECORD_FORMAT,
        "video_in": str(Path(video).resolve()),
        "video_in_sha256": sha256_file(video),
        "trajectory": path_spec(trajectory),
        "trajectory_sha256": sha256_file(trajectory) if Path(str(trajectory)).is_file() else None,
        "target_c2w": np.asarray(traj.c2w).round(9).tolist(),
        "preview": preview,
        "depth": path_spec(depth),
        "model": {**model, "files": file_entries(files)},
        "device": device,
        "settings": asdict(settings),
        "video": str(out.resolve()),
        "video_frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
    }
    return write_record(out, record)


def read_record(path: str | Path) -> dict:
    return _read_record(path, RECORD_FORMAT, "rerender")


def regenerate(record_path: str | Path, out: str | Path, *, device: str | None = None, on_step=None) -> RerenderResult:
    """Run again from a record: the same video, path, model files (hash-checked) and settings."""
    record = read_record(record_path)
    keys = (("video_in", "video_in_sha256"), ("trajectory", "trajectory_sha256"))
    inputs = {record.get(key): record.get(sha) for key, sha in keys}
    check_record_files(record_path, inputs, record["model"]["files"])
    raw = dict(record["settings"])
    raw["size"] = tuple(raw["size"])
    settings = RerenderSettings(**raw)
    return rerender(
        record["video_in"],
        record["trajectory"],
        out,
        settings=settings,
        weights=record["model"]["weights"],
        base=record["model"]["base"],
        depth=record.get("depth"),
        preview=record.get("preview", True),
        device=device or record["device"],
        on_step=on_step,
    )


# ----------------------------------------------------------------------------------------------
# The batch form
# ----------------------------------------------------------------------------------------------
BATCH_TABLE = "rerender.parquet"


@dataclass
class WanTask(MediaTask):
    """A batch of videos from one set of Wan2.1 parts of :attr:`kind` (``stages.models.wan.KINDS``),
    loaded once per worker: ``rerender --batch`` and ``generate --model wan-camera --batch``."""

    weights: str | Path | None = None
    base: str | Path | None = None
    depth: str | Path | None = None
    kind: ClassVar[str] = "recammaster"

    def setup(self) -> None:
        from ..core.device import resolve_device
        from ..models import wan
        from ..models.recammaster import BASE

        self.device = resolve_device(self.device)
        self._parts = wan.load_parts(self.weights, self.base or BASE, self.device, self.settings.dtype, kind=self.kind)


@dataclass
class RerenderTask(WanTask):
    """``rerender --batch`` in the batch engine (rows: video, trajectory[, prompt, seed, id, depth])."""

    depth_model: str | None = None
    preview: bool = True

    def make(self, row: dict, settings: RerenderSettings, video: Path) -> None:
        rerender(
            row["source"],
            row["trajectory"],
            video,
            settings=settings,
            parts=self._parts,
            depth=row["depth"] or self.depth,
            depth_model=self.depth_model,
            preview=self.preview,
            device=self.device,
        )


def rerender_batch(
    table: str | Path,
    out_dir: str | Path,
    *,
    settings: RerenderSettings | None = None,
    weights=None,
    base=None,
    depth=None,
    depth_model=None,
    preview: bool = True,
    device: str = "auto",
    batch=None,
    progress: Callable[[str], None] | None = None,
    **overrides,
):
    """One re-rendered video per row into ``out_dir/<id>.mp4`` (+ record and preview); per-row
    failures go to ``out_dir/rerender.parquet`` (item, status, reason, video, seed) and the batch
    goes on; rows done earlier are skipped unless ``overwrite``. ``batch``: where the rows run
    (:class:`~stages.settings.BatchSettings`; ``overrides`` are its fields)."""
    from ..settings import BatchSettings

    settings = (settings or RerenderSettings()).check()
    batch = replace(batch or BatchSettings(), **overrides).check()
    task = RerenderTask(Path(out_dir), settings, device, weights, base, depth, depth_model, preview)
    return run_media_batch(task, table, "video", BATCH_TABLE, batch, progress)
