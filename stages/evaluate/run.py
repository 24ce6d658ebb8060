"""The ``evaluate`` stage: SfM trials per video, camera metrics per trial, per video and overall,
optional FVD, optional trajectory plots (docs/method.md#camera-metrics).

Inputs: SAMPLES, a folder of videos (``<name>.mp4`` or ``<name>/`` frame folders; with
``estimated=True`` ``<name>.txt`` trajectories, the videos beside them for FVD) or a table (Parquet
or CSV) with columns ``video`` and optionally ``trajectory``, ``gt_video``, ``metric_factor`` and
``generated_video`` (with ``estimated``, the video whose trajectory ``video`` holds, for FVD);
REFERENCE, a folder of ground-truth RealEstate10K files ``<name>.txt`` (which also give the intrinsics).
Outputs in OUT: ``per_trial.parquet``, ``per_video.parquet``, ``summary.parquet``, ``plots/``; with the
synchronization metrics (``sync``: a ``source_video`` column, ``--source`` or the ``rerender`` records),
``sync/<name>.parquet`` per frame (docs/method.md#synchronization-metrics).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from stages.core import cameras as cam
from stages.core import checks
from stages.core.artifacts import FAILED, OK, read_arrays, read_table, write_table
from stages.core.batch import BatchTask, run_batch
from stages.core.dataset import find_clips, shard, shard_table, shard_tables
from stages.core.errors import RealcamError
from stages.core.video import VIDEO_SUFFIXES, first_video, read_video
from stages.settings import BatchSettings, EvaluateSettings

from . import sync
from .metrics import METRIC_COLUMNS, camera_metrics
from .sfm import SfmTrial, estimate_poses

PER_TRIAL = "per_trial.parquet"
PER_VIDEO = "per_video.parquet"
SUMMARY = "summary.parquet"
TABLE_SUFFIXES = {".parquet", ".csv"}


@dataclass
class Sample:
    name: str
    video: Path  # a video, a frame folder, or (estimated) a trajectory file
    trajectory: Path  # ground truth
    gt_video: Path | None = None
    metric_factor: float | None = None
    generated: Path | None = None  # the generated video for FVD (``video`` itself unless estimated)
    source: Path | None = None  # the source video of a re-rendered one (synchronization metrics)

    @property
    def fvd_video(self) -> Path | None:
        return self.generated if self.generated is not None else (None if self.video.suffix == ".txt" else self.video)


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def _is_sample(p: Path) -> bool:
    """A video file, or a folder (one without images becomes a failed row, not a silent gap) that
    is not another stage's output: the ``<name>_preview/`` folders that ``generate`` writes beside
    its videos hold ``preview.npz``."""
    if p.is_dir():
        return not (p / "preview.npz").is_file()
    return p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES


def find_samples(
    samples: str | Path,
    reference: str | Path,
    estimated: bool = False,
    gt_videos: str | Path | None = None,
    exclude: str | Path | None = None,
) -> list[Sample]:
    """The samples to score, with their ground truth; input problems are ``RealcamError``.

    ``reference``: a folder of ``<name>.txt`` trajectories, or a dataset root (``cameras/`` with
    ``frames/`` or ``videos/``): then a sample's trajectory is its clip's camera file and, without
    ``gt_videos``, its ground-truth video is the clip's frames (files or clip video).
    ``exclude``: a folder inside SAMPLES that is not a sample (the output folder)."""
    samples, reference = Path(samples), Path(reference)
    checks.input_dir(reference, "folder of reference trajectories (--reference)")
    gt_dir = Path(gt_videos) if gt_videos else None
    if gt_dir is not None:
        checks.input_dir(gt_dir, "folder of ground-truth videos (--gt-videos)")

    # a dataset root (cameras/ with frames/ or videos/): its camera files and, by default, its clips' frames
    clips = {c.clip_id: c for c in find_clips(reference)} if (reference / "cameras").is_dir() else {}

    def trajectory_of(name: str) -> Path:
        return clips[name].camera_path if name in clips else reference / f"{name}.txt"

    def gt_video_of(name: str) -> Path | None:
        if gt_dir is not None:
            return first_video(gt_dir, name)
        if name in clips:
            clip = clips[name]
            return clip.video or (clip.frames_dir if clip.frames_dir.is_dir() else None)
        return None

    if samples.is_file() and samples.suffix.lower() in TABLE_SUFFIXES:
        out = _samples_from_table(samples, trajectory_of, gt_video_of)
    elif samples.is_dir():
        out = _samples_from_folder(samples, trajectory_of, estimated, gt_video_of, exclude)
    else:
        raise RealcamError("samples must be a folder or a .parquet/.csv table", samples)
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RealcamError(f"sample name(s) appear twice: {', '.join(dup)}", samples)
    return out


def _samples_from_table(table: Path, trajectory_of, gt_video_of) -> list[Sample]:
    """Rows of a sample table (Parquet or CSV): ``video`` and optional ``trajectory``,
    ``gt_video``, ``metric_factor``, ``generated_video``, ``source_video``; relative paths from the
    table's folder."""
    if table.suffix.lower() == ".csv":
        try:
            df = pd.read_csv(table)
        except Exception as err:
            raise RealcamError(f"not a readable CSV table ({err.__class__.__name__})", table) from None
    else:
        df = read_table(table)
    if "video" not in df.columns:
        raise RealcamError("sample table lacks column 'video'", table)
    base = table.parent

    def path_of(value) -> Path | None:
        if not (isinstance(value, str) and value):
            return None
        return Path(value) if Path(value).is_absolute() else base / value

    out = []
    for row_no, row in enumerate(df.to_dict("records"), start=2):
        video = path_of(str(row["video"])) or base
        name = video.stem if video.suffix else video.name
        traj = path_of(row.get("trajectory")) or trajectory_of(name)
        gtv = path_of(row.get("gt_video")) or gt_video_of(name)
        factor = row.get("metric_factor")
        if factor is not None and not (isinstance(factor, float) and np.isnan(factor)):
            try:
                factor = float(factor)
            except (TypeError, ValueError):
                raise RealcamError(f"metric_factor {factor!r} is not a number", table, row_no) from None
            if not (np.isfinite(factor) and factor > 0):
                raise RealcamError(f"metric_factor must be positive, got {factor}", table, row_no)
        else:
            factor = None
        gen, src = path_of(row.get("generated_video")), path_of(row.get("source_video"))
        out.append(Sample(name, video, traj, gtv, factor, gen, src))
    return out


def _samples_from_folder(folder: Path, trajectory_of, estimated: bool, gt_video_of, exclude) -> list[Sample]:
    """Videos (or, ``estimated``, ``<name>.txt`` trajectories) of a folder, ``exclude`` left out."""
    skip = Path(exclude).resolve() if exclude is not None else None
    out = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or (skip is not None and p.resolve() == skip):
            continue
        if estimated:
            if p.suffix.lower() != ".txt":
                continue
        elif not _is_sample(p):
            continue
        name = p.stem if p.is_file() else p.name
        # with estimated trajectories, the generated video may sit beside each (for FVD)
        gen = first_video(folder, name, readable=True) if estimated else None
        out.append(Sample(name, p, trajectory_of(name), gt_video_of(name), None, gen))
    if not out:
        what = "<name>.txt trajectories" if estimated else "videos (<name>.mp4 or <name>/ frame folders)"
        raise RealcamError(f"folder holds no {what}", folder)
    return out


# ----------------------------------------------------------------------------------------------
# One video
# ----------------------------------------------------------------------------------------------
def metric_factor_from_depth(
    depth0: np.ndarray, size: tuple[int, int], trial: SfmTrial, max_depth: float = 20.0, min_points: int = 10
) -> float | None:
    """The ``align-scale`` factor of frame 0: median of D(u, v) / z over its SfM points."""
    from stages.align_scale import frame_scale  # built by the align-scale stage

    if len(trial.z0) == 0:
        return None
    scale, _ = frame_scale(depth0, size, trial.uv0, trial.z0, max_depth, min_points)
    return float(scale) if scale is not None and np.isfinite(scale) and scale > 0 else None


def _load_depth0(depth_dir: Path | None, name: str) -> np.ndarray | None:
    """Frame 0's metric depth from ``<depth_dir>/<name>.npz`` (None without one); a damaged file
    is a ``RealcamError`` naming it."""
    if depth_dir is None:
        return None
    path = depth_dir / f"{name}.npz"
    if not path.exists():
        return None
    depth = np.asarray(read_arrays(path, keys=["depth"])["depth"])
    if depth.ndim == 2:
        depth = depth[None]
    if depth.ndim != 3 or not np.issubdtype(depth.dtype, np.number):
        raise RealcamError(f"'depth' must be numbers of shape (F, H, W), got {depth.dtype} {depth.shape}", path)
    return np.asarray(depth[0], np.float64)


def evaluate_video(
    sample: Sample,
    *,
    trials: int = 5,
    mapper: str = "global",
    seed: int = 0,
    estimated: bool = False,
    depth_dir: str | Path | None = None,
    max_depth: float = 20.0,
    num_threads: int = 1,
) -> tuple[list[dict], dict, dict]:
    """Score one sample. Returns (per-trial rows, per-video row, trajectories for the plot).

    Problems with this sample (unreadable video or trajectory) make a failed row, not an error.
    """
    base = {"video": sample.name}

    def failed(reason: str):
        row = {
            **base,
            "status": FAILED,
            "reason": reason,
            "n_success": 0,
            "n_trials": 0,
            "n_frames": 0,
            **dict.fromkeys(METRIC_COLUMNS, np.nan),
        }
        return [], row, {}

    try:
        gt = cam.read_re10k(sample.trajectory)
    except RealcamError as err:
        return failed(f"ground truth: {err}")
    gt_rel = cam.relative_poses(gt.c2w)
    try:
        depth0 = None if estimated else _load_depth0(Path(depth_dir) if depth_dir else None, sample.name)
        if estimated:
            est_cams = cam.read_re10k(sample.video)
            n = min(len(est_cams), len(gt))
            est = cam.relative_poses(est_cams.c2w[:n])
            results = [SfmTrial(seed, True, "", est, np.ones(n, bool))]
            size = None
        else:
            frames = read_video(sample.video)
            n = min(len(frames), len(gt))
            frames = frames[:n]
            height, width = frames.shape[1:3]
            size = (width, height)
            k = cam.denormalize_intrinsics(gt.intrinsics[0], width, height)
            results = estimate_poses(frames, k, trials=trials, mapper=mapper, seed=seed, num_threads=num_threads)
    except RealcamError as err:
        return failed(str(err))
    note = "" if n == len(gt) else f"{len(gt)} ground-truth frames, {n} scored"
    rows, plot = [], {"gt": gt_rel[:n], "est": []}
    for t, tr in enumerate(results):
        row = {
            **base,
            "trial": t,
            "seed": tr.seed,
            "status": OK if tr.ok else FAILED,
            "reason": tr.reason,
            "seconds": tr.seconds,
            "n_points": tr.n_points,
            "n_registered": int(tr.registered.sum()) if tr.registered is not None else 0,
            "unregistered": ",".join(map(str, tr.unregistered)),
            "metric_factor": np.nan,
        }
        metrics = dict.fromkeys(METRIC_COLUMNS, np.nan)
        if tr.ok:
            factor = sample.metric_factor
            if factor is None and depth0 is not None:
                factor = metric_factor_from_depth(depth0, size, tr, max_depth)
            reg = tr.registered
            metrics = camera_metrics(tr.c2w[reg], gt_rel[:n][reg], factor)
            row["metric_factor"] = np.nan if factor is None else factor
            plot["est"].append(np.where(reg[:, None, None], tr.c2w, np.nan))
        rows.append({**row, **{c: metrics[c] for c in METRIC_COLUMNS}})
    good = [r for r in rows if r["status"] == OK]
    video = {**base, "n_success": len(good), "n_trials": len(rows), "n_frames": n}
    if good:
        video.update(
            {
                c: float(np.nanmean([r[c] for r in good])) if not all(np.isnan(r[c]) for r in good) else np.nan
                for c in METRIC_COLUMNS
            }
        )
        video.update(status=OK, reason=note)
    else:
        reasons = sorted({r["reason"] for r in rows})
        video.update(dict.fromkeys(METRIC_COLUMNS, np.nan))
        video.update(status=FAILED, reason="all trials failed: " + "; ".join(reasons))
    return rows, video, plot


# ----------------------------------------------------------------------------------------------
# Summary and plot
# ----------------------------------------------------------------------------------------------
def summarize(per_video: pd.DataFrame, per_trial: pd.DataFrame, extra: dict[str, float] | None = None) -> pd.DataFrame:
    """Mean and median over videos of each metric, failure rates, and extra values (FVD).

    Camera metrics: over the videos scored ``ok``; synchronization metrics (when the table has
    them): over every video that has them (they do not depend on SfM succeeding)."""
    ok = per_video[per_video["status"] == OK]
    rows = []
    sync_cols = [c for c in sync.SYNC_SUMMARY if c in per_video.columns and per_video[c].notna().any()]
    for c in [*METRIC_COLUMNS, *sync_cols]:
        vals = (per_video if c in sync_cols else ok)[c].dropna().to_numpy(float)
        rows.append(
            {
                "metric": c,
                "mean": float(vals.mean()) if len(vals) else np.nan,
                "median": float(np.median(vals)) if len(vals) else np.nan,
                "n_videos": len(vals),
            }
        )
    n_trials = int(per_video["n_trials"].sum())
    n_success = int(per_video["n_success"].sum())
    rate = 1.0 - n_success / n_trials if n_trials else np.nan
    rows.append({"metric": "trial_failure_rate", "mean": rate, "median": np.nan, "n_videos": len(per_video)})
    vrate = float((per_video["status"] != OK).mean()) if len(per_video) else np.nan
    rows.append({"metric": "video_failure_rate", "mean": vrate, "median": np.nan, "n_videos": len(per_video)})
    for key, value in (extra or {}).items():
        rows.append({"metric": key, "mean": float(value), "median": np.nan, "n_videos": len(per_video)})
    return pd.DataFrame(rows, columns=["metric", "mean", "median", "n_videos"])


def plot_trajectories(path: Path, gt: np.ndarray, estimates: list[np.ndarray], title: str = "") -> Path:
    """A top-down (x, z) PNG of the ground truth (black) against each trial's estimate (colours).

    Every trajectory is shown in its own relative scale (divided by its scene scale).
    """
    from PIL import Image, ImageDraw

    from stages.core.artifacts import atomic_path

    from .metrics import scene_scale

    size, margin = 400, 30
    curves = [gt[:, :3, 3] / scene_scale(gt)]
    for e in estimates:
        reg = ~np.isnan(e[:, 0, 0])
        pos = e[:, :3, 3].copy()
        pos[reg] = pos[reg] / scene_scale(e[reg])
        curves.append(pos)
    xz = np.concatenate([c[:, [0, 2]] for c in curves])
    xz = xz[np.isfinite(xz).all(1)]
    lo, hi = xz.min(0), xz.max(0)
    span = float(max((hi - lo).max(), 1e-9))
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)

    def to_px(p):
        q = (p - lo) / span * (size - 2 * margin) + margin
        return float(q[0]), float(size - q[1])

    colours = [(0, 0, 0), (214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189)]
    for i, c in enumerate(curves):
        pts = [to_px(p) for p in c[:, [0, 2]] if np.isfinite(p).all()]
        colour = colours[i % len(colours)] if i == 0 else colours[1 + (i - 1) % (len(colours) - 1)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=3 if i == 0 else 2)
        for x, y in pts[:1]:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline=colour)
    draw.text((8, 8), f"{title}  (x-z, top view; black = ground truth)", fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------
TRIAL_COLUMNS = [
    "video",
    "trial",
    "seed",
    "status",
    "reason",
    "seconds",
    "n_points",
    "n_registered",
    "unregistered",
    "metric_factor",
    *METRIC_COLUMNS,
]
VIDEO_COLUMNS = ["video", *METRIC_COLUMNS, "n_success", "n_trials", "n_frames", "status", "reason"]
#: with the synchronization metrics (docs/method.md#synchronization-metrics)
SYNC_VIDEO_COLUMNS = ["video", *METRIC_COLUMNS, *sync.SYNC_COLUMNS, *VIDEO_COLUMNS[1 + len(METRIC_COLUMNS) :]]


@dataclass
class EvaluateTask(BatchTask):
    """``evaluate`` in the batch engine: one sample in, its per-video row and per-trial rows out
    (and its plot; with ``settings.sync``, its synchronization metrics and ``sync/<name>.parquet``)."""

    settings: EvaluateSettings
    out: Path
    num_threads: int
    key = "video"

    @property
    def tables(self) -> dict[str, list[str]]:
        return {"per_video": SYNC_VIDEO_COLUMNS if self.settings.sync else VIDEO_COLUMNS, "per_trial": TRIAL_COLUMNS}

    @property
    def uses_model(self) -> bool:  # the CLIP model loads once per worker
        return self.settings.sync and self.settings.clip is not None

    def key_of(self, sample: Sample) -> str:
        return sample.name

    def outputs(self, sample: Sample) -> list[Path]:
        # a video scored by a run without the synchronization metrics is scored again
        return [sync.frame_table_path(self.out, sample.name)] if self.settings.sync else []

    def setup(self) -> None:
        if self.uses_model:
            sync.load_clip(self.settings.clip)

    def run(self, sample: Sample) -> dict[str, list[dict]]:
        s = self.settings
        sync_row, note = {}, ""
        if s.sync:
            encoder = sync.load_clip(s.clip) if s.clip is not None else None
            try:
                sync_row, frames, note = sync.sync_video(
                    sample.source, sample.fvd_video, encoder, sync.MatchSettings(size=s.match_size)
                )
            except RealcamError as err:
                return self.failed(sample, f"synchronization: {err}")
            path = sync.frame_table_path(self.out, sample.name)
            with checks.writing(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_table(path, frames)
        trials, video, traj = evaluate_video(
            sample,
            trials=s.trials,
            mapper=s.mapper,
            seed=s.seed,
            estimated=s.estimated,
            depth_dir=s.depth_dir,
            max_depth=s.max_depth,
            num_threads=self.num_threads,
        )
        if s.plot and traj and traj.get("est"):
            path = self.out / "plots" / f"{sample.name}.png"
            with checks.writing(path):
                plot_trajectories(path, traj["gt"], traj["est"], sample.name)
        if s.sync:
            video.update(sync_row)
            video["reason"] = "; ".join(r for r in (video.get("reason", ""), note) if r)
        return {"per_video": [video], "per_trial": trials}

    def failed(self, sample: Sample, reason: str) -> dict[str, list[dict]]:
        row = {
            "video": sample.name,
            "status": FAILED,
            "reason": reason,
            "n_success": 0,
            "n_trials": 0,
            "n_frames": 0,
            **dict.fromkeys(METRIC_COLUMNS, np.nan),
        }
        return {"per_video": [row]}


def evaluate(
    samples: str | Path,
    reference: str | Path,
    out: str | Path,
    settings: EvaluateSettings | None = None,
    *,
    batch: BatchSettings | None = None,
    progress: Callable[[str], None] | None = None,
    **overrides,
) -> dict:
    """Run the evaluation protocol; writes the three tables (and plots) into ``out``.

    ``overrides``: fields of :class:`~stages.settings.EvaluateSettings` or of ``batch``, which says where the
    videos run (``--workers``, ``--ray``, ``--shard``: a shard writes its own per-trial and
    per-video tables, and the summary covers every shard's tables in ``out``). Every option and
    input is checked first. Returns the tables and, under ``"skipped"``, the names of the videos
    already scored by an earlier run (kept, not redone)."""
    out = checks.output_dir(out)
    batch_fields = set(BatchSettings.__dataclass_fields__)
    s = replace(settings or EvaluateSettings(), **{k: v for k, v in overrides.items() if k not in batch_fields})
    s = s.check()
    if s.clip is not None:
        sync.check_clip(s.clip)
    batch = replace(batch or BatchSettings(), **{k: v for k, v in overrides.items() if k in batch_fields}).check()
    if batch.shard and (s.fvd or s.fid is not None):
        raise RealcamError("FVD and FID need every sample at once: run them without --shard", "--shard")
    if batch.shard and s.sync and s.i3d is not None:
        raise RealcamError("FVD-V needs every sample at once: run it without --shard (or without --i3d)", "--shard")
    items = shard(find_samples(samples, reference, s.estimated, s.gt_videos, exclude=out), batch.shard)
    if s.sync:  # every sample's source, found now: a missing one is one error before any work
        items = [replace(x, source=sync.source_of(x, s.source)) for x in items]
    if s.fvd or s.fid is not None:
        missing = [x.name for x in items if x.fvd_video is None]
        if missing:
            raise RealcamError(
                f"FVD needs the generated video of every sample; none for {missing[0]} "
                "(put <name>.mp4 beside <name>.txt, or a generated_video column)",
                samples,
            )
    with checks.writing(out):
        out.mkdir(parents=True, exist_ok=True)
    # One SfM thread per video: multi-threaded mapping is not reproducible run to run (the same
    # video scored twice differed by up to 2x in TransErr); parallelism comes from --workers.
    threads = 1
    paths = {
        "per_video": out / shard_table(PER_VIDEO, batch.shard),
        "per_trial": out / shard_table(PER_TRIAL, batch.shard),
    }
    result = run_batch(EvaluateTask(s, out, threads), items, paths, batch, progress)
    names = {x.name for x in items}
    per_video = result.tables["per_video"]
    per_trial = result.tables["per_trial"]
    per_video = per_video[per_video["video"].isin(names)].reset_index(drop=True)
    per_trial = per_trial[per_trial["video"].isin(names)].reset_index(drop=True)
    for name, table in ((paths["per_video"], per_video), (paths["per_trial"], per_trial)):
        with checks.writing(name):
            write_table(name, table)
    extra = {}
    if s.fvd or s.fid is not None:
        from .fvd import fvd_for_samples

        extra = fvd_for_samples(
            [(x.fvd_video, x.gt_video) for x in items], s.i3d if s.fvd else None, frames=s.fvd_frames, fid=s.fid
        )
    notes = []
    if s.sync:
        fvd_v, note = _fvd_v(items, per_video, s)
        extra.update(fvd_v)
        notes += [note] if note else []
        if s.clip is None:
            notes.append("CLIP-V skipped: no CLIP model (--clip)")
    all_video, all_trial = (per_video, per_trial) if not batch.shard else _all_shards(out)
    summary = summarize(all_video, all_trial, extra)
    with checks.writing(out / SUMMARY):
        write_table(out / SUMMARY, summary)
    return {
        "per_trial": per_trial,
        "per_video": per_video,
        "summary": summary,
        "skipped": [x.name for x in items if x.name not in set(result.ran)],
        "notes": notes,
    }


def _fvd_v(items: list[Sample], per_video: pd.DataFrame, s: EvaluateSettings) -> tuple[dict[str, float], str]:
    """FVD-V over the videos whose synchronization metrics were computed, or a note saying why not."""
    if s.i3d is None:
        return {}, "FVD-V skipped: no I3D network (--i3d)"
    scored = (
        set(per_video.loc[per_video["matched_pixels"].notna(), "video"]) if "matched_pixels" in per_video else set()
    )
    pairs = [(x.fvd_video, x.source) for x in items if x.name in scored]
    if len(pairs) < 2:
        return {}, f"FVD-V skipped: it needs at least 2 videos with a source, got {len(pairs)}"
    note = "" if len(pairs) == len(items) else f"FVD-V over the {len(pairs)} of {len(items)} videos that could be read"
    return sync.fvd_v(pairs, s.i3d, frames=s.fvd_frames), note


def _all_shards(out: Path):
    """Every shard's per-video and per-trial tables in ``out``, merged (for the summary)."""
    merged = []
    for table in (PER_VIDEO, PER_TRIAL):
        frames = [read_table(p) for p in shard_tables(out, table)]
        merged.append(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
    return merged[0], merged[1]
