"""``align-scale``: the metric factor of each clip from SfM points and metric depth
(docs/method.md#metric-factor).

For each observation of point ``j`` in frame ``i``: ``z_ij = (w2c_i @ X_j).z`` and
``r_ij = D_i(u_ij, v_ij) / z_ij``, the depth sampled bilinearly at the keypoint (scaled from the
image's size to the depth map's). Excluded: ``z <= 0``; depth that is not finite, ``<= 0`` or
``>= max_depth`` at any of the four samples; points seen in fewer than ``min_track`` frames.
Frame factor ``s_i = median_j r_ij`` (frames with at least ``min_points`` valid ratios); clip
factor = median of its frame factors, with max, min and spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .core import cameras as cam
from .core import checks
from .core.artifacts import FAILED, OK, merge_rows, read_table
from .core.batch import BatchTask, run_batch
from .core.constants import ALIGN_MIN_POINTS, ALIGN_MIN_TRACK
from .core.dataset import shard, shard_table, shard_tables
from .core.errors import RealcamError
from .depth import (
    SAMPLES_SUFFIX,
    DepthSamples,
    SampledFrame,
    bilinear_combine,
    bilinear_taps,
    read_depth_file,
    read_depth_samples,
    sample_bilinear,
)
from .settings import BatchSettings
from .triangulate import read_clip_json, read_status_tables

FRAMES_TABLE = "frames.parquet"
CLIPS_TABLE = "clips.parquet"
FRAME_COLUMNS = ["clip_id", "frame", "timestamp", "scale", "n_points"]
CLIP_COLUMNS = [
    "clip_id",
    "scale",
    "scale_max",
    "scale_min",
    "scale_spread",
    "n_frames",
    "n_points",
    "status",
    "reason",
]


def frame_scale(
    depth: np.ndarray, image_size: tuple[int, int], uv: np.ndarray, z: np.ndarray, max_depth: float, min_points: int
) -> tuple[float, int]:
    """(median of the valid ratios ``D(u, v) / z``, number of valid ratios); NaN below ``min_points``.

    ``uv`` are keypoints in an image of size ``image_size = (W, H)``, pixel centres at +0.5; they are
    scaled to the depth map's size before sampling.
    """
    if not isinstance(depth, SampledFrame):
        depth = np.asarray(depth)
        if depth.ndim != 2:
            raise ValueError(f"depth must be (h, w), got {depth.shape}")
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(z, dtype=np.float64).ravel()
    h, w = depth.shape
    width, height = image_size
    ok = np.isfinite(z) & (z > 0) & np.isfinite(uv).all(1)
    if not ok.any():
        return math.nan, 0
    x, y = uv[ok, 0] * (w / width), uv[ok, 1] * (h / height)
    if isinstance(depth, SampledFrame):  # --sample-depth: the 2x2 neighbourhoods were stored
        *_, fx, fy = bilinear_taps(h, w, x, y)
        d = bilinear_combine(np.asarray(depth.q, np.float64)[ok].T, fx, fy, max_depth)
    else:
        d = sample_bilinear(depth, x, y, max_depth)
    r = d / z[ok]
    r = r[np.isfinite(r)]
    n = int(r.size)
    if n < max(min_points, 1):
        return math.nan, n
    return float(np.median(r)), n


def observation_depths(xyz: np.ndarray, w2c: np.ndarray) -> np.ndarray:
    """``z = (w2c @ X).z`` of world points ``(N, 3)`` in one camera."""
    return np.asarray(xyz, dtype=np.float64) @ w2c[2, :3] + w2c[2, 3]


def clip_scales(
    points: pd.DataFrame,
    observations: pd.DataFrame,
    w2c: np.ndarray,
    timestamps: np.ndarray,
    image_size: tuple[int, int],
    depth: list[np.ndarray],
    depth_timestamps: np.ndarray | None,
    max_depth: float,
    min_points: int = ALIGN_MIN_POINTS,
    min_track: int = ALIGN_MIN_TRACK,
) -> pd.DataFrame:
    """Per-frame factors of one clip: ``frame``, ``timestamp``, ``scale`` (NaN if too few), ``n_points``."""
    keep = points.loc[points["track_length"] >= min_track]
    xyz = keep.set_index("point")[["x", "y", "z"]]
    obs = observations.loc[observations["point"].isin(xyz.index)]
    if isinstance(depth, DepthSamples):
        frame_depth = depth.frame
    else:
        frame_depth = lambda k, o: depth[k]
    where = None
    if depth_timestamps is not None and (np.asarray(depth_timestamps) >= 0).all():
        where = {int(t): k for k, t in enumerate(depth_timestamps)}
    rows = []
    for i, ts in enumerate(timestamps):
        k = where.get(int(ts)) if where is not None else (i if i < len(depth) else None)
        if k is None:
            rows.append((i, int(ts), math.nan, 0))
            continue
        o = obs.loc[obs["frame"] == i]
        z = observation_depths(xyz.loc[o["point"]].to_numpy(), w2c[i])
        s, n = frame_scale(frame_depth(k, o), image_size, o[["u", "v"]].to_numpy(), z, max_depth, min_points)
        rows.append((i, int(ts), s, n))
    return pd.DataFrame(rows, columns=["frame", "timestamp", "scale", "n_points"])


def summarize(frames: pd.DataFrame) -> dict:
    """Clip statistics of its frame factors."""
    s = frames["scale"].to_numpy(dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return {
            "scale": math.nan,
            "scale_max": math.nan,
            "scale_min": math.nan,
            "scale_spread": math.nan,
            "n_frames": 0,
            "n_points": int(frames["n_points"].sum()),
        }
    med = float(np.median(s))
    return {
        "scale": med,
        "scale_max": float(s.max()),
        "scale_min": float(s.min()),
        "scale_spread": float((s.max() - s.min()) / med),
        "n_frames": int(s.size),
        "n_points": int(frames["n_points"].sum()),
    }


def align_clip(
    clip_id: str,
    depth_dir: Path,
    sfm_dir: Path,
    min_points: int = ALIGN_MIN_POINTS,
    min_track: int = ALIGN_MIN_TRACK,
    max_depth: float | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Frame rows and the clip row of one clip; raises ``RealcamError`` for a missing input."""
    clip_dir = sfm_dir / clip_id
    meta = read_clip_json(clip_dir / "clip.json")
    npz = depth_dir / f"{clip_id}.npz"
    if npz.exists():
        depth, data = read_depth_file(npz)
    elif (depth_dir / f"{clip_id}{SAMPLES_SUFFIX}").exists():  # depth --sample-depth: at the observations only
        npz = depth_dir / f"{clip_id}{SAMPLES_SUFFIX}"
        depth, data = read_depth_samples(npz)
    else:
        raise RealcamError("depth missing", npz)
    try:
        sat = float(max_depth) if max_depth is not None else float(data.get("max_depth", np.inf))
    except (TypeError, ValueError):
        raise RealcamError("'max_depth' is not one number", npz) from None
    cams = cam.read_re10k(clip_dir / "cameras.txt")
    points = read_table(clip_dir / "points.parquet", ["point", "x", "y", "z", "track_length"])
    obs = read_table(clip_dir / "observations.parquet", ["point", "frame", "u", "v"])
    frames = clip_scales(
        points,
        obs,
        cams.w2c,
        cams.timestamps,
        (meta["width"], meta["height"]),
        depth,
        data.get("timestamps"),
        sat,
        min_points,
        min_track,
    )
    frames.insert(0, "clip_id", clip_id)
    row = {"clip_id": clip_id, **summarize(frames), "status": OK, "reason": ""}
    if row["n_frames"] == 0:
        row.update(status=FAILED, reason=f"no frame has {min_points} valid depth ratios")
    return frames, row


def _failed(clip_id: str, reason: str) -> dict:
    return {
        "clip_id": clip_id,
        "scale": math.nan,
        "scale_max": math.nan,
        "scale_min": math.nan,
        "scale_spread": math.nan,
        "n_frames": 0,
        "n_points": 0,
        "status": FAILED,
        "reason": reason,
    }


@dataclass
class AlignTask(BatchTask):
    """``align-scale`` in the batch engine: one clip id in, its clip row and frame rows out."""

    depth_dir: Path
    sfm_dir: Path
    min_points: int
    min_track: int
    max_depth: float | None
    failed_sfm: dict  # clip id -> the triangulation's reason, for clips it could not do
    tables = {"clips": CLIP_COLUMNS, "frames": FRAME_COLUMNS}
    dtypes = {"frames": {"frame": "int64", "timestamp": "int64", "n_points": "int64", "scale": "float64"}}
    key = "clip_id"

    def key_of(self, clip_id: str) -> str:
        return clip_id

    def run(self, clip_id: str) -> dict[str, list[dict]]:
        if clip_id in self.failed_sfm or not (self.sfm_dir / clip_id / "clip.json").exists():
            raise RealcamError(f"triangulation failed: {self.failed_sfm.get(clip_id) or 'no output'}")
        try:
            frames, row = align_clip(
                clip_id, self.depth_dir, self.sfm_dir, self.min_points, self.min_track, self.max_depth
            )
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            raise RealcamError(f"{where}cannot read: {err.strerror or err}") from None
        except (ValueError, KeyError, IndexError, TypeError) as err:  # inputs that disagree
            raise RealcamError(
                f"{self.sfm_dir / clip_id} and {self.depth_dir / f'{clip_id}.npz'} do not "
                f"fit together ({err.__class__.__name__}: {err})"
            ) from None
        return {"clips": [row], "frames": frames.to_dict("records")}

    def failed(self, clip_id: str, reason: str) -> dict[str, list[dict]]:
        return {"clips": [_failed(clip_id, reason)]}


def run_align_scale(
    depth_dir: str | Path,
    sfm_dir: str | Path,
    out: str | Path,
    *,
    min_points: int = ALIGN_MIN_POINTS,
    min_track: int = ALIGN_MIN_TRACK,
    max_depth: float | None = None,
    clip_ids: list[str] | None = None,
    batch: BatchSettings | None = None,
    progress: Callable[[str], None] | None = None,
    **overrides,
) -> tuple[pd.DataFrame, int]:
    """Every clip triangulated (or failed) under ``sfm_dir`` (or one shard of them): writes
    ``frames.parquet`` and ``clips.parquet`` (``*.shard-I-of-N.parquet`` for a shard); returns the
    clip table and the number of clips skipped as done. ``batch``: where and how the clips run
    (``overrides``: its fields). ``clip_ids``: exactly these clips (``annotate`` passes its shard
    of the dataset, which does not change while other shards are still triangulating); the shard
    then only names the tables."""
    batch = replace(batch or BatchSettings(), **overrides).check()
    min_points = checks.integer(min_points, "--min-points", minimum=1)
    min_track = checks.integer(min_track, "--min-track", minimum=1)
    if max_depth is not None:
        max_depth = checks.number(max_depth, "--max-depth", above=0)
    depth_dir = checks.input_dir(depth_dir, "folder (given to --depth)")
    sfm_dir = checks.input_dir(sfm_dir, "folder (given to --sfm)")
    out = checks.output_dir(out, "--out")
    status = read_status_tables(sfm_dir)
    ids = set(status["item"].astype(str)) | {p.parent.name for p in sfm_dir.glob("*/clip.json")}
    if not ids:
        raise RealcamError("no triangulated clips (no status*.parquet, no <clip>/clip.json)", sfm_dir)
    reasons = dict(zip(status["item"].astype(str), status["reason"].astype(str)))
    failed_sfm = {c: reasons.get(c, "") for c in status.loc[status["status"] != OK, "item"].astype(str)}
    with checks.writing(out):  # an output that cannot be created fails now, before any work
        out.mkdir(parents=True, exist_ok=True)
    task = AlignTask(depth_dir, sfm_dir, min_points, min_track, max_depth, failed_sfm)
    paths = {
        "clips": out / shard_table(CLIPS_TABLE, batch.shard),
        "frames": out / shard_table(FRAMES_TABLE, batch.shard),
    }
    items = sorted(set(clip_ids)) if clip_ids is not None else shard(sorted(ids), batch.shard)
    result = run_batch(task, items, paths, batch, progress)
    return result.tables["clips"], result.skipped


def read_scale_tables(scales_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(clips, frames)`` of an align-scale run, its shards' tables merged (a clip in several:
    the whole run's table, then the shards in order, the last one wins)."""
    scales_dir = Path(scales_dir)
    merged = []
    for table in (CLIPS_TABLE, FRAMES_TABLE):
        paths = [scales_dir / table] + shard_tables(scales_dir, table)
        frames = [read_table(p) for p in paths if p.exists()]
        if not frames:
            raise RealcamError(f"no {table} (run realcam align-scale first)", scales_dir)
        out = None
        for f in frames:
            out = f if out is None else merge_rows(out, f, key="clip_id")
        merged.append(out.sort_values("clip_id", kind="stable", ignore_index=True))
    return merged[0], merged[1]
