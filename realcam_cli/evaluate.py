"""``realcam evaluate``: camera-control metrics (RotErr, TransErr, CamMC, ATE) and FVD of videos, and the
synchronization of re-rendered videos with their sources (CLIP-V, Mat. Pix., FVD-V)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stages.core.dataset import shard_table
from stages.settings import EvaluateSettings

from . import options
from .ui import console, progress_bar, report


def evaluate(
    samples: Path = typer.Argument(
        ...,
        help=(
            "Folder of videos (<name>.mp4 or <name>/ frames), of <name>.txt trajectories with --estimated, "
            "or a table (video, trajectory, gt_video, metric_factor)."
        ),
    ),
    reference: Path = typer.Option(
        ...,
        "--reference",
        help="Folder of ground-truth RealEstate10K trajectories <name>.txt (they also give the intrinsics), "
        "or a dataset root (cameras/ + frames/ or videos/: its clips are also the ground-truth videos).",
    ),
    out: Path = typer.Option(..., "--out", help="Folder for per_trial/per_video/summary.parquet and plots."),
    trials: int = typer.Option(EvaluateSettings.trials, "--trials", help="SfM trials per video (different seeds)."),
    sfm: str = typer.Option(EvaluateSettings.mapper, "--sfm", help="SfM mapper: global (GLOMAP) or incremental."),
    estimated: bool = typer.Option(False, "--estimated", help="SAMPLES holds estimated trajectories; skip SfM."),
    depth: Optional[Path] = typer.Option(
        None, "--depth", help="Folder of <name>.npz metric depth (key 'depth', frame 0 used) for the metric factor."
    ),
    max_depth: float = typer.Option(
        EvaluateSettings.max_depth, "--max-depth", help="Depth at or above this is saturated (metric factor)."
    ),
    fvd: bool = typer.Option(False, "--fvd", help="Also compute FVD (VideoGPT and StyleGAN-V variants)."),
    i3d: Optional[Path] = typer.Option(
        None, "--i3d", help="I3D network: TorchScript (i3d_torchscript.pt) or state dict (for --fvd and FVD-V)."
    ),
    fvd_frames: int = typer.Option(
        EvaluateSettings.fvd_frames, "--fvd-frames", help="Frames per video fed to the I3D (the first N)."
    ),
    fid: Optional[Path] = typer.Option(
        None,
        "--fid",
        help="Also compute per-frame FID with this TorchScript feature network (e.g. inception-2015-12-05.pt).",
    ),
    gt_videos: Optional[Path] = typer.Option(
        None, "--gt-videos", help="Folder of ground-truth videos <name>.mp4 or <name>/ (for FVD)."
    ),
    plot: bool = typer.Option(
        False, "--plot", help="Write plots/<name>.png: estimated against ground-truth trajectory."
    ),
    seed: int = typer.Option(
        EvaluateSettings.seed, "--seed", help="Seed of the first SfM trial (trial t uses seed + t)."
    ),
    sync: bool = typer.Option(
        False,
        "--sync",
        help="Synchronization with each sample's source video (Mat. Pix.; CLIP-V with --clip; FVD-V with --i3d). "
        "Sources: a source_video column, --source, or the video_in of the rerender record <name>.json.",
    ),
    source: Optional[Path] = typer.Option(
        None,
        "--source",
        help="Folder of source videos <name>.mp4 or <name>/ (same names as the samples); implies --sync. "
        "A sample not in it falls back to its rerender record <name>.json.",
    ),
    clip: Optional[str] = typer.Option(
        None,
        "--clip",
        help="CLIP model for CLIP-V: Hugging Face id or folder in transformers format "
        "(e.g. openai/clip-vit-base-patch32, laion/CLIP-ViT-H-14-laion2B-s32B-b79K); implies --sync.",
    ),
    match_size: int = typer.Option(
        EvaluateSettings.match_size,
        "--match-size",
        help="Longer side (pixels) of the frames fed to SIFT for Mat. Pix. (0: as they are).",
    ),
    workers: int = options.WORKERS,
    ray: Optional[str] = options.RAY,
    gpus_per_worker: Optional[float] = options.GPUS_PER_WORKER,
    cpus_per_task: float = options.CPUS_PER_TASK,
    timeout: Optional[float] = options.TIMEOUT,
    retries: int = options.RETRIES,
    shard_spec: Optional[str] = options.SHARD,
    overwrite: bool = options.OVERWRITE,
) -> None:
    """Estimate camera poses of videos by SfM and score them against ground truth (docs/method.md#camera-metrics);
    with --sync/--source/--clip, also their synchronization with the source videos
    (docs/method.md#synchronization-metrics)."""
    from rich.table import Table

    from stages.core.dataset import shard
    from stages.evaluate import run as eval_stage

    settings = EvaluateSettings(
        trials=trials,
        mapper=sfm,
        seed=seed,
        estimated=estimated,
        depth_dir=_str(depth),
        max_depth=max_depth,
        plot=plot,
        fvd=fvd,
        i3d=_str(i3d),
        gt_videos=_str(gt_videos),
        fvd_frames=fvd_frames,
        fid=_str(fid),
        sync=sync,
        source=_str(source),
        clip=clip,
        match_size=match_size,
    )
    batch = options.batch_settings(
        workers, ray, gpus_per_worker, cpus_per_task, timeout, retries, shard_spec, overwrite
    )
    items = shard(eval_stage.find_samples(samples, reference, estimated, gt_videos, exclude=out), batch.shard)
    with progress_bar("evaluate", total=len(items)) as advance:
        tables = eval_stage.evaluate(samples, reference, out, settings, batch=batch, progress=advance)
    summary = tables["summary"]
    table = Table(title=f"evaluate: {len(tables['per_video'])} videos")
    for col in ("metric", "mean", "median", "videos"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for row in summary.itertuples():
        fmt = lambda v: "-" if v != v else f"{v:.4f}"
        table.add_row(row.metric, fmt(row.mean), fmt(row.median), str(row.n_videos))
    console.print(table)
    per_video = tables["per_video"]
    failed = per_video[per_video["status"] != "ok"]
    for row in failed.itertuples():
        console.print(f"[yellow]failed:[/] {row.video}: {row.reason}")
    for note in tables.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")
    n_ok = int((per_video["status"] == "ok").sum())
    report(
        f"evaluate: {n_ok} ok ({len(tables['skipped'])} skipped as already done), {len(failed)} failed "
        f"-> {out} ({shard_table(eval_stage.PER_TRIAL, batch.shard)}, "
        f"{shard_table(eval_stage.PER_VIDEO, batch.shard)}, {eval_stage.SUMMARY}"
        f"{', plots/' if plot else ''}{', sync/' if sync or source or clip else ''})"
    )
    if n_ok == 0:  # the batch rule: exit 1 when no video could be scored
        raise typer.Exit(1)


def _str(path: Optional[Path]) -> Optional[str]:
    return None if path is None else str(path)
