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
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .core import cameras as cam
from .core import checks
from .core.artifacts import FAILED, OK, merge_rows, read_table, write_table
from .core.constants import ALIGN_MIN_POINTS, ALIGN_MIN_TRACK
from .core.errors import RealcamError
from .depth import read_depth_file
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


def sample_bilinear(depth: np.ndarray, x: np.ndarray, y: np.ndarray, max_depth: float) -> np.ndarray:
    """Bilinear depth at continuous pixel coordinates (centres at +0.5); NaN where any of the four
    samples is invalid (not finite, ``<= 0`` or ``>= max_depth``). Coordinates are clamped to the
    outermost pixel centres."""
    h, w = depth.shape
    d = np.asarray(depth, dtype=np.float64)
    xs = np.clip(np.asarray(x, dtype=np.float64) - 0.5, 0.0, w - 1.0)
    ys = np.clip(np.asarray(y, dtype=np.float64) - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(xs).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(ys).astype(np.int64), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = xs - x0, ys - y0
    q = np.stack([d[y0, x0], d[y0, x1], d[y1, x0], d[y1, x1]])
    bad = ~np.isfinite(q).all(0) | (q <= 0).any(0) | (q >= max_depth).any(0)
    val = q[0] * (1 - fx) * (1 - fy) + q[1] * fx * (1 - fy) + q[2] * (1 - fx) * fy + q[3] * fx * fy
    return np.where(bad, np.nan, val)


def frame_scale(
    depth: np.ndarray, image_size: tuple[int, int], uv: np.ndarray, z: np.ndarray, max_depth: float, min_points: int
) -> tuple[float, int]:
    """(median of the valid ratios ``D(u, v) / z``, number of valid ratios); NaN below ``min_points``.

    ``uv`` are keypoints in an image of size ``image_size = (W, H)``, pixel centres at +0.5; they are
    scaled to the depth map's size before sampling.
    """
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
    d = sample_bilinear(depth, uv[ok, 0] * (w / width), uv[ok, 1] * (h / height), max_depth)
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
        s, n = frame_scale(depth[k], image_size, o[["u", "v"]].to_numpy(), z, max_depth, min_points)
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
    if not npz.exists():
        raise RealcamError("depth missing", npz)
    depth, data = read_depth_file(npz)
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


def run_align_scale(
    depth_dir: str | Path,
    sfm_dir: str | Path,
    out: str | Path,
    *,
    min_points: int = ALIGN_MIN_POINTS,
    min_track: int = ALIGN_MIN_TRACK,
    max_depth: float | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Every clip triangulated (or failed) under ``sfm_dir``: writes ``frames.parquet`` and
    ``clips.parquet``; returns the clip table and the number of clips skipped as done."""
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
    failed_sfm = set(status.loc[status["status"] != OK, "item"].astype(str))
    clips_path, frames_path = out / CLIPS_TABLE, out / FRAMES_TABLE
    old_clips = read_table(clips_path, ["clip_id", "status"]) if clips_path.exists() else None
    old_frames = read_table(frames_path, ["clip_id", "frame"]) if frames_path.exists() else None
    done = set() if old_clips is None else set(old_clips.loc[old_clips["status"] == OK, "clip_id"].astype(str))
    with checks.writing(out):  # an output that cannot be created fails now, before any work
        out.mkdir(parents=True, exist_ok=True)
    new_clips, new_frames, skipped = [], [], 0
    for clip_id in sorted(ids):
        if clip_id in done and not overwrite:
            skipped += 1
            if progress:
                progress(f"{clip_id} (done)")
            continue
        if clip_id in failed_sfm or not (sfm_dir / clip_id / "clip.json").exists():
            new_clips.append(_failed(clip_id, f"triangulation failed: {reasons.get(clip_id) or 'no output'}"))
        else:
            try:
                frames, row = align_clip(clip_id, depth_dir, sfm_dir, min_points, min_track, max_depth)
                new_frames.append(frames)
                new_clips.append(row)
            except RealcamError as err:
                new_clips.append(_failed(clip_id, str(err)))
            except OSError as err:
                where = f"{err.filename}: " if err.filename else ""
                new_clips.append(_failed(clip_id, f"{where}cannot read: {err.strerror or err}"))
            except (ValueError, KeyError, IndexError, TypeError) as err:  # inputs that disagree
                new_clips.append(
                    _failed(
                        clip_id,
                        f"{sfm_dir / clip_id} and {depth_dir / f'{clip_id}.npz'} do not "
                        f"fit together ({err.__class__.__name__}: {err})",
                    )
                )
        if progress:
            progress(clip_id)
    clips = pd.DataFrame(new_clips, columns=CLIP_COLUMNS)
    frames = (pd.concat(new_frames, ignore_index=True) if new_frames else pd.DataFrame(columns=FRAME_COLUMNS)).astype(
        {"frame": np.int64, "timestamp": np.int64, "n_points": np.int64, "scale": np.float64}
    )
    redone = set(clips["clip_id"])
    if old_frames is not None:
        old_frames = old_frames[~old_frames["clip_id"].isin(redone)]
        frames = pd.concat([old_frames, frames], ignore_index=True) if not frames.empty else old_frames
    clips = merge_rows(old_clips, clips, key="clip_id").sort_values("clip_id", ignore_index=True)
    frames = frames.sort_values(["clip_id", "frame"], ignore_index=True)
    with checks.writing(frames_path):
        write_table(frames_path, frames)
    with checks.writing(clips_path):
        write_table(clips_path, clips)
    return clips, skipped
