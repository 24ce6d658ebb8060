"""``poses``: unposed (dynamic) videos -> a metric RealEstate10K-layout dataset, CameraCtrl II's data
pipeline (docs/method.md#poses-of-dynamic-videos). Per clip:

1. frames sampled at ``fps`` (PyAV, one decoding pass; the timestamps kept);
2. motion masks: none, given files, or the built-in geometric method (:func:`.sfm.motion_masks`),
   dilated by ``dilate`` pixels;
3. SfM with the masks (:func:`.sfm.fit_poses`: features off the masks, one shared camera, its focal
   length estimated unless given);
4. trajectory checks (:mod:`.checks`): fragmented (registered share, several models) or shaky clips
   are rejected with the reason;
5. metric calibration: metric depth (given maps, or the ``depth`` stage's predictor) at
   ``depth_fps`` frames, aligned with the SfM depths by the ``align-scale`` rule (per-frame median
   of ``D / z``, clip factor = median), translations multiplied by the factor;
6. the trajectory type, and ``balance`` caps over-represented types.

Outputs in ``DATASET``: ``cameras/<clip>.txt`` (RealEstate10K text, metres, the sampled frames'
timestamps, registered frames only), ``frames/<clip>/<timestamp>.png`` or ``videos/<clip>.mp4``,
``masks/<clip>/<timestamp>.png`` (255: moving), ``poses.parquet`` (one row per clip) and
``keep.parquet`` (the kept clips: ``realcam train --data DATASET --frames DATASET`` takes it).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..core import cameras as cam
from ..core import checks
from ..core.artifacts import FAILED, OK, atomic_dir, read_table, write_table
from ..core.batch import BatchTask, run_batch
from ..core.constants import ALIGN_MIN_POINTS
from ..core.dataset import clip_layout, shard, shard_table
from ..core.errors import RealcamError
from ..core.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, decode_at, list_images, read_image, write_image
from ..settings import BatchSettings, PosesSettings

POSES_TABLE = "poses.parquet"
KEEP_TABLE = "keep.parquet"
REJECTED = "rejected"
COLUMNS = [
    "clip_id",
    "status",
    "reason",
    "frames",
    "registered",
    "unregistered",
    "focal_px",
    "fx",
    "fy",
    "factor",
    "factor_frames",
    "type",
    "moving_share",
    "seconds",
]


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def find_sources(folder: str | Path) -> dict[str, Path]:
    """Clip id -> source: every video file and every folder of images in ``folder``."""
    folder = checks.input_dir(folder, "folder of videos")
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            out[p.stem] = p
        elif p.is_dir() and list_images(p):
            out[p.name] = p
    if not out:
        raise RealcamError("holds no video (mp4, mov, mkv, ...) and no folder of images", folder)
    return out


def sample_frames(source: Path, fps: float, input_fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames at ``fps`` and their timestamps (microseconds): from a video in one decoding pass
    (the frame nearest each ``k / fps``), or from a folder of images named by timestamps (else
    numbered, at ``input_fps``)."""
    if source.is_dir():
        files = [p for p in list_images(source) if p.suffix.lower() in IMAGE_SUFFIXES]
        try:
            ts = np.array([int(p.stem) for p in files], dtype=np.int64)
        except ValueError:
            ts = np.round(np.arange(len(files)) * 1e6 / input_fps).astype(np.int64)
        order = np.argsort(ts, kind="stable")
        files, ts = [files[i] for i in order], ts[order]
        step = 1e6 / fps
        picks, last = [], None
        for target in np.arange(ts[0], ts[-1] + 1, step):
            i = int(np.argmin(np.abs(ts - target)))
            if i != last:
                picks.append(i)
                last = i
        return np.stack([read_image(files[i]) for i in picks]), ts[picks]
    from ..core.video import VideoInfo

    info = VideoInfo()
    frames, stamps = [], []
    # first pass: the duration is unknown, so ask for a generous grid and keep what exists
    grid = np.arange(0, 3600 * 1e6, 1e6 / fps)
    for k, frame in decode_at(source, grid, info=info):
        if frame is None:
            if k > 0 and stamps:
                break
            continue
        frames.append(frame)
        stamps.append(int(round(grid[k])))
    if len(frames) < 2:
        raise RealcamError(f"has {len(frames)} frame(s) at {fps:g} fps; poses need at least 2", source)
    return np.stack(frames), np.asarray(stamps, dtype=np.int64)


def read_mask_files(folder: Path, timestamps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Given masks ``<timestamp>.png`` (or numbered ``<k>.png``, one per sampled frame): nonzero =
    moving."""
    w, h = size
    out = np.zeros((len(timestamps), h, w), dtype=bool)
    for k, t in enumerate(timestamps):
        for name in (f"{int(t)}.png", f"{k:05d}.png", f"{k}.png"):
            if (folder / name).is_file():
                m = read_image(folder / name)
                m = m if m.ndim == 2 else m[..., 0]
                if m.shape != (h, w):
                    raise RealcamError(f"mask {name} is {m.shape[1]}x{m.shape[0]}, frames are {w}x{h}", folder)
                out[k] = m > 0
                break
        else:
            raise RealcamError(f"no mask for frame {k} (timestamp {int(t)}.png)", folder)
    return out


def _auto_device() -> str:
    from ..core.device import resolve_device

    return resolve_device("auto")


def dilate_masks(masks: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0 or not masks.any():
        return masks
    from scipy import ndimage

    return np.stack([ndimage.binary_dilation(m, iterations=int(pixels)) for m in masks])


# ----------------------------------------------------------------------------------------------
# Metric calibration
# ----------------------------------------------------------------------------------------------
def depth_frames(timestamps: np.ndarray, registered: np.ndarray, depth_fps: float) -> list[int]:
    """The registered frames nearest to every ``1 / depth_fps`` seconds."""
    idx = np.flatnonzero(registered)
    if not len(idx):
        return []
    picks = []
    for target in np.arange(timestamps[idx[0]], timestamps[idx[-1]] + 1, 1e6 / depth_fps):
        i = int(idx[np.argmin(np.abs(timestamps[idx] - target))])
        if i not in picks:
            picks.append(i)
    return picks


def given_depth(path: Path, timestamps: np.ndarray, rows: list[int]) -> list[np.ndarray]:
    """Metric depth maps of the chosen frames from an NPZ with ``depth`` ``(F, H, W)`` and
    ``timestamps`` (the nearest timestamp within 1 ms)."""
    from ..core.artifacts import read_arrays

    data = read_arrays(path)
    if "depth" not in data or "timestamps" not in data:
        raise RealcamError("needs arrays 'depth' (F, H, W) and 'timestamps'", path)
    ts = np.asarray(data["timestamps"], dtype=np.int64)
    out = []
    for i in rows:
        j = int(np.argmin(np.abs(ts - timestamps[i])))
        if abs(int(ts[j]) - int(timestamps[i])) > 1000:
            raise RealcamError(f"no depth map within 1 ms of {int(timestamps[i])} us", path)
        out.append(np.asarray(data["depth"][j], dtype=np.float32))
    return out


def metric_factor(fit, rows: list[int], depths: list[np.ndarray], size, max_depth: float) -> tuple[float, int]:
    """The clip factor (median of the per-frame medians of ``D / z``) and the frames that gave one."""
    from ..align_scale import frame_scale

    scales = []
    for i, d in zip(rows, depths):
        uv, z = fit.observations[i]
        s, _ = frame_scale(d, size, uv, z, max_depth, ALIGN_MIN_POINTS)
        if math.isfinite(s):
            scales.append(s)
    return (float(np.median(scales)) if scales else math.nan), len(scales)


# ----------------------------------------------------------------------------------------------
# One clip
# ----------------------------------------------------------------------------------------------
@dataclass
class ClipPoses:
    row: dict
    frames: np.ndarray
    timestamps: np.ndarray
    masks: np.ndarray
    c2w: np.ndarray | None  # metric, relative to the first registered frame
    registered: np.ndarray | None
    k: np.ndarray | None


def pose_clip(clip_id: str, source: Path, s: PosesSettings, depth=None, work: Path | None = None) -> ClipPoses:
    """Steps 1-6 for one clip (``depth``: a callable ``frames -> metric maps`` or an NPZ path)."""
    import time

    from . import checks as pc
    from .sfm import fit_poses, motion_masks

    t0 = time.perf_counter()
    frames, ts = sample_frames(source, s.fps, s.input_fps)
    n, h, w = frames.shape[:3]
    k = None if s.intrinsics is None else cam.denormalize_intrinsics(np.asarray(s.intrinsics), w, h)
    row = dict.fromkeys(COLUMNS)
    row.update(clip_id=clip_id, frames=n, registered=0, reason="", unregistered="")
    if s.mask_method == "files":
        masks = read_mask_files(Path(s.masks) / clip_id, ts, (w, h))
    elif s.mask_method == "model":
        from .segment import segment_masks

        masks = segment_masks(frames, s.mask_model, s.device if s.device != "auto" else _auto_device())
    elif s.mask_method == "geometric":
        masks, _ = motion_masks(frames, k=k, fov_deg=s.fov, dilate=0, seed=s.seed, work=work)
    else:
        masks = np.zeros((n, h, w), dtype=bool)
    masks = dilate_masks(masks, s.dilate)
    row["moving_share"] = float(masks.mean())
    fit = fit_poses(frames, masks if masks.any() else None, k=k, fov_deg=s.fov, seed=s.seed, work=work)
    out = ClipPoses(row, frames, ts, masks, None, fit.registered, fit.k)

    def done(status: str, reason: str) -> ClipPoses:
        row.update(status=status, reason=reason, seconds=time.perf_counter() - t0)
        return out

    if not fit.ok:
        return done(FAILED, fit.reason)
    row.update(registered=int(fit.registered.sum()), focal_px=float(fit.k[0, 0]))
    row["unregistered"] = " ".join(str(int(t)) for t in ts[~fit.registered])  # their timestamps
    row.update(fx=float(fit.k[0, 0] / w), fy=float(fit.k[1, 1] / h))
    shake = {} if s.shake_k is None else {"k": s.shake_k}
    problem = pc.fragmentation(fit.registered, fit.n_models, s.min_registered) or pc.shakiness(
        fit.c2w[fit.registered], **shake
    )
    if problem:
        return done(REJECTED, problem)
    rows = depth_frames(ts, fit.registered, s.depth_fps)
    if isinstance(depth, (str, Path)):
        maps = given_depth(Path(depth), ts, rows)
    else:
        maps = depth([frames[i] for i in rows])
    factor, used = metric_factor(fit, rows, maps, (w, h), s.max_depth)
    row.update(factor=factor, factor_frames=used)
    if not math.isfinite(factor) or factor <= 0:
        return done(REJECTED, f"no metric factor (too few SfM points with depth on {len(rows)} depth frames)")
    c2w = fit.c2w.copy()
    c2w[:, :3, 3] *= factor
    out.c2w = c2w
    row["type"] = pc.trajectory_type(c2w[fit.registered])
    return done(OK, "")


def write_clip(result: ClipPoses, out: Path, store: str) -> None:
    """The clip's camera file, frames (or clip video) and masks, each folder atomically."""
    from ..core.video import write_clip_video

    clip_id = result.row["clip_id"]
    where = clip_layout(out, clip_id)
    reg = result.registered
    ts = result.timestamps[reg]
    h, w = result.frames.shape[1:3]
    k = result.k
    norm = np.tile(cam.normalize_intrinsics(k, w, h), (len(ts), 1))
    w2c = cam.invert_pose(result.c2w[reg])
    where.camera_path.parent.mkdir(parents=True, exist_ok=True)
    cam.write_re10k(where.camera_path, cam.CameraFile(ts, norm, w2c, clip_id))
    frames = result.frames[reg]
    if store == "video":
        write_clip_video(where.video_path, frames, ts)
    else:
        with atomic_dir(where.frames_dir) as tmp:
            for t, f in zip(ts, frames):
                write_image(tmp / f"{int(t)}.png", f)
    with atomic_dir(out / "masks" / clip_id) as tmp:
        for t, m in zip(result.timestamps, result.masks):
            write_image(tmp / f"{int(t)}.png", np.where(m, 255, 0).astype(np.uint8))


@dataclass
class PosesTask(BatchTask):
    """``poses`` in the batch engine: one clip in, its row and files out."""

    sources: dict
    out: Path
    settings: PosesSettings
    tables = {"poses": COLUMNS}
    key = "clip_id"
    finished = frozenset({OK, REJECTED})
    dtypes = {"poses": {"frames": "int64", "registered": "int64"}}

    def key_of(self, clip_id: str) -> str:
        return clip_id

    def outputs(self, clip_id: str) -> list[Path]:
        return [self.out / "masks" / clip_id]

    def setup(self) -> None:
        s = self.settings
        self._depth = None
        if s.depth_dir is None:
            from ..depth import predict_depth

            self._depth = lambda images: predict_depth(images, s.depth_model, s.device, max_depth=s.max_depth)

    def run(self, clip_id: str) -> dict[str, list[dict]]:
        s = self.settings
        depth = Path(s.depth_dir) / f"{clip_id}.npz" if s.depth_dir is not None else self._depth
        if isinstance(depth, Path) and not depth.is_file():
            raise RealcamError("no metric depth for this clip", depth)
        work = Path(tempfile.mkdtemp(prefix=f"realcam-poses-{clip_id}-"))
        try:
            result = pose_clip(clip_id, self.sources[clip_id], s, depth, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if result.row["status"] == OK:
            write_clip(result, self.out, s.store)
        else:
            with atomic_dir(self.out / "masks" / clip_id) as tmp:  # the masks say what was tried
                for t, m in zip(result.timestamps, result.masks):
                    write_image(tmp / f"{int(t)}.png", np.where(m, 255, 0).astype(np.uint8))
        return {"poses": [result.row]}

    def failed(self, clip_id: str, reason: str) -> dict[str, list[dict]]:
        row = dict.fromkeys(COLUMNS)
        row.update(clip_id=clip_id, status=FAILED, reason=reason, frames=0, registered=0)
        return {"poses": [row]}


def run_poses(
    videos: str | Path,
    out: str | Path,
    settings: PosesSettings | None = None,
    *,
    batch: BatchSettings | None = None,
    progress: Callable[[str], None] | None = None,
    **overrides,
) -> pd.DataFrame:
    """Every clip of ``videos`` (or one shard): writes the dataset and ``poses.parquet``; then the
    balance over every clip done so far and ``keep.parquet``. Returns the poses table (with ``kept``)."""
    from . import checks as pc

    batch_fields = set(BatchSettings.__dataclass_fields__)
    s = replace(settings or PosesSettings(), **{k: v for k, v in overrides.items() if k not in batch_fields}).check()
    batch = replace(batch or BatchSettings(), **{k: v for k, v in overrides.items() if k in batch_fields}).check()
    sources = find_sources(videos)
    if s.mask_method == "model":  # a bad model is one line now, not a failure per clip
        from .segment import check_segmenter

        check_segmenter(s.mask_model)
    out = checks.output_dir(out)
    with checks.writing(out):
        out.mkdir(parents=True, exist_ok=True)
    items = shard(sorted(sources), batch.shard)
    task = PosesTask(sources, out, s)
    result = run_batch(task, items, {"poses": out / shard_table(POSES_TABLE, batch.shard)}, batch, progress)
    table = result.tables["poses"].copy()
    ok = table["status"] == OK
    kept = np.zeros(len(table), dtype=bool)
    if ok.any():
        kept[ok.to_numpy()] = (
            pc.balance(table.loc[ok, "type"].tolist(), s.balance, s.seed) if s.balance is not None else True
        )
    table["kept"] = kept
    write_table(out / shard_table(POSES_TABLE, batch.shard), table)
    write_table(
        out / shard_table(KEEP_TABLE, batch.shard), table.loc[table["kept"], ["clip_id"]].reset_index(drop=True)
    )
    table.attrs["skipped"] = result.skipped
    return table


def read_poses_table(out: str | Path) -> pd.DataFrame:
    return read_table(Path(out) / POSES_TABLE)
