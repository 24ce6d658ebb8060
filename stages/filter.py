"""``filter``: the quantile rule on clip factors and the metric cameras (docs/method.md#quantile-filter).

Over the clips with a factor, with ``lo(x) = quantile(x, q)`` and ``hi(x) = quantile(x, 1 - q)``
(NumPy's linear interpolation): a clip is dropped when its maximum frame factor is ``< lo`` of all
maxima (``max_low``) or ``> hi`` (``max_high``), and likewise for its minimum frame factor
(``min_low``, ``min_high``). Clips without a factor are dropped as ``no_scale``. Kept clips'
cameras are written in metres: translations times the factor of the condition frame (frame 0 by
default; the clip median when that frame has no factor), rotations untouched. A condition frame
beyond every kept clip is an error; a kept clip too short to have it is dropped
(``cond_frame_missing``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .align_scale import CLIPS_TABLE, FRAMES_TABLE, read_scale_tables
from .core import cameras as cam
from .core import checks
from .core.artifacts import OK, read_table, write_table
from .core.constants import FILTER_QUANTILE
from .core.dataset import find_clips, shard_tables
from .core.errors import RealcamError

W2C_COLUMNS = [f"r{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3)] + ["t1", "t2", "t3"]
CAMERA_COLUMNS = ["clip_id", "frame", "timestamp", "fx", "fy", "cx", "cy"] + W2C_COLUMNS + ["scale"]


def quantile_rule(clips: pd.DataFrame, q: float = FILTER_QUANTILE) -> pd.Series:
    """Per clip the rules that drop it (``;``-joined, empty when kept)."""
    q = checks.number(q, "--quantile", minimum=0, below=0.5)
    ok = (clips["status"] == OK) & np.isfinite(clips["scale_max"]) & np.isfinite(clips["scale_min"])
    rules = pd.Series([[] for _ in range(len(clips))], index=clips.index, dtype=object)
    for i in clips.index[~ok]:
        rules[i].append("no_scale")
    if ok.any():
        for col, name in (("scale_max", "max"), ("scale_min", "min")):
            vals = clips.loc[ok, col].to_numpy(dtype=np.float64)
            lo, hi = np.quantile(vals, q), np.quantile(vals, 1 - q)
            for i in clips.index[ok]:
                v = clips.at[i, col]
                if v < lo:
                    rules[i].append(f"{name}_low")
                if v > hi:
                    rules[i].append(f"{name}_high")
    return rules.map(";".join)


def condition_factor(frames: pd.DataFrame, clip_scale: float, cond_frame: int = 0) -> float:
    """The factor of the condition frame; the clip median when that frame has none."""
    hit = frames.loc[frames["frame"] == cond_frame, "scale"]
    if len(hit) and np.isfinite(hit.iloc[0]):
        return float(hit.iloc[0])
    return float(clip_scale)


def metric_camera_file(cams: cam.CameraFile, factor: float) -> cam.CameraFile:
    """Translations of the scene times ``factor``; rotations and intrinsics untouched."""
    # Scaling the c2w translations by ``factor`` (metric poses, docs/method.md#conventions) scales the w2c
    # translations ``t = -R c`` by the same factor; doing it on w2c keeps the file's numbers exact.
    w2c = cams.w2c.copy()
    w2c[:, :3, 3] *= float(factor)
    return cam.CameraFile(cams.timestamps, cams.intrinsics, w2c, cams.url, cams.distortion)


def camera_rows(clip_id: str, cams: cam.CameraFile, factor: float) -> pd.DataFrame:
    w = cams.w2c
    data = {
        "clip_id": clip_id,
        "frame": np.arange(len(cams), dtype=np.int64),
        "timestamp": cams.timestamps,
        "fx": cams.intrinsics[:, 0],
        "fy": cams.intrinsics[:, 1],
        "cx": cams.intrinsics[:, 2],
        "cy": cams.intrinsics[:, 3],
    }
    for i in range(3):
        for j in range(3):
            data[f"r{i + 1}{j + 1}"] = w[:, i, j]
        data[f"t{i + 1}"] = w[:, i, 3]
    data["scale"] = factor
    return pd.DataFrame(data, columns=CAMERA_COLUMNS)


def run_filter(
    scales_dir: str | Path,
    dataset: str | Path,
    out: str | Path,
    *,
    quantile: float = FILTER_QUANTILE,
    cond_frame: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Writes ``keep.parquet``, ``dropped.parquet``, ``cameras/<clip_id>.txt``, ``cameras.parquet``.

    The rule runs over all clips at once, so the whole output is rewritten on every run. Every
    input is read and checked before anything is written. ``cond_frame`` must be a frame of some
    kept clip (else a ``RealcamError`` on ``--cond-frame``); a kept clip too short to have it is
    dropped as ``cond_frame_missing``.
    """
    quantile = checks.number(quantile, "--quantile", minimum=0, below=0.5)
    cond_frame = checks.integer(cond_frame, "--cond-frame", minimum=0)
    scales_dir = checks.input_dir(scales_dir, "folder of align-scale outputs")
    if shard_tables(scales_dir, CLIPS_TABLE):  # align-scale ran in shards: merge them
        clips, frames = read_scale_tables(scales_dir)
    else:
        clips = read_table(scales_dir / CLIPS_TABLE, ["clip_id", "scale", "scale_max", "scale_min", "status"])
        frames = read_table(scales_dir / FRAMES_TABLE, ["clip_id", "frame", "scale"])
    if clips.empty:
        raise RealcamError("no clips in the scale table", scales_dir / CLIPS_TABLE)
    camera_paths = {c.clip_id: c.camera_path for c in find_clips(dataset)}
    out = checks.output_dir(out, "--out")
    clips = clips.reset_index(drop=True)
    clips["clip_id"] = clips["clip_id"].astype(str)
    clips["rule"] = quantile_rule(clips, quantile)
    if "reason" in clips.columns:
        failed = clips["rule"] == "no_scale"
        clips.loc[failed, "rule"] = "no_scale: " + clips.loc[failed, "reason"].astype(str)
    by_clip = {str(k): g for k, g in frames.groupby("clip_id")}

    # Read and check everything first; nothing is written until the plan is complete.
    plan = []  # (index, clip_id, cameras)
    for i in clips.index[clips["rule"] == ""]:
        clip_id = clips.at[i, "clip_id"]
        if clip_id not in camera_paths:
            clips.at[i, "rule"] = "no_camera_file"
            continue
        try:
            cams = cam.read_re10k(camera_paths[clip_id])
        except RealcamError as err:
            clips.at[i, "rule"] = f"bad_camera_file: {err}"
            continue
        plan.append((i, clip_id, cams))
    if plan and cond_frame >= max(len(c) for _, _, c in plan):
        raise RealcamError(
            f"frame {cond_frame} is beyond every clip (the longest kept clip has "
            f"{max(len(c) for _, _, c in plan)} frames, counted from 0)",
            "--cond-frame",
        )
    kept = []
    for i, clip_id, cams in plan:
        if cond_frame >= len(cams):
            clips.at[i, "rule"] = f"cond_frame_missing: the clip has {len(cams)} frames, --cond-frame is {cond_frame}"
            continue
        factor = condition_factor(by_clip.get(clip_id, frames.iloc[:0]), clips.at[i, "scale"], cond_frame)
        if not (np.isfinite(factor) and factor > 0):
            clips.at[i, "rule"] = f"bad_scale: factor {factor}"
            continue
        kept.append((i, clip_id, metric_camera_file(cams, factor), factor))

    kept_rows, cam_frames = [], []
    for i, clip_id, metric, factor in kept:
        target = out / "cameras" / f"{clip_id}.txt"
        with checks.writing(target):
            cam.write_re10k(target, metric)
        cam_frames.append(camera_rows(clip_id, metric, factor))
        kept_rows.append(
            {
                "clip_id": clip_id,
                "scale": factor,
                "clip_scale": float(clips.at[i, "scale"]),
                "scale_max": float(clips.at[i, "scale_max"]),
                "scale_min": float(clips.at[i, "scale_min"]),
                "n_frames": len(metric),
            }
        )
        if progress:
            progress(clip_id)
    keep = pd.DataFrame(kept_rows, columns=["clip_id", "scale", "clip_scale", "scale_max", "scale_min", "n_frames"])
    dropped = clips.loc[clips["rule"] != "", ["clip_id", "scale", "scale_max", "scale_min", "rule"]]
    dropped = dropped.reset_index(drop=True)
    # Metric cameras of clips dropped now but kept by an earlier run must not linger.
    for p in (out / "cameras").glob("*.txt") if (out / "cameras").is_dir() else []:
        if p.stem not in set(keep["clip_id"]):
            with checks.writing(p):
                p.unlink()
    cameras = pd.concat(cam_frames, ignore_index=True) if cam_frames else pd.DataFrame(columns=CAMERA_COLUMNS)
    for name, table in (("cameras.parquet", cameras), ("dropped.parquet", dropped), ("keep.parquet", keep)):
        with checks.writing(out / name):
            write_table(out / name, table)
    return keep, dropped
