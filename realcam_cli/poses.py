"""``realcam poses``: metric cameras for unposed, dynamic videos (CameraCtrl II's data pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import typer

from stages.settings import PosesSettings

from . import options
from .ui import progress_bar, report


def poses(
    videos: Path = typer.Argument(..., help="Folder of videos (mp4, mov, ...) or of frame folders, one per clip."),
    out: Path = typer.Option(
        ..., "--out", help="Dataset to write: cameras/, frames/ (or videos/), masks/, poses.parquet, keep.parquet."
    ),
    fps: float = typer.Option(PosesSettings.fps, "--fps", help="Frames sampled per second."),
    input_fps: float = typer.Option(
        PosesSettings.input_fps, "--input-fps", help="Rate of numbered frame folders (timestamped names need none)."
    ),
    mask_method: str = typer.Option(
        PosesSettings.mask_method,
        "--mask-method",
        help="Motion masks: geometric (built in, no weights), files (--masks DIR), model (--mask-model) or none.",
    ),
    masks: Optional[Path] = typer.Option(
        None, "--masks", help="DIR/<clip>/<timestamp>.png (nonzero = moving); implies --mask-method files."
    ),
    mask_model: Optional[str] = typer.Option(
        None,
        "--mask-model",
        help="Semantic segmentation model (transformers, Hub id or folder): people, vehicles and animals are "
        "masked; implies --mask-method model.",
    ),
    dilate: int = typer.Option(PosesSettings.dilate, "--dilate", help="Pixels added around every mask."),
    fov: Optional[float] = typer.Option(
        None, "--fov", help="Starting field of view (degrees, long side) of the focal length estimate."
    ),
    intrinsics: Optional[Tuple[float, float, float, float]] = typer.Option(
        None, "--intrinsics", help="Fixed intrinsics fx/W fy/H cx/W cy/H (no focal estimate)."
    ),
    min_registered: float = typer.Option(
        PosesSettings.min_registered, "--min-registered", help="Share of frames SfM must register."
    ),
    shake_k: Optional[float] = typer.Option(
        None, "--shake-k", help="A change of step this many times the typical step is a jump (shaky; default 5)."
    ),
    depth_fps: float = typer.Option(
        PosesSettings.depth_fps, "--depth-fps", help="Frames per second given metric depth for the factor."
    ),
    depth: Optional[Path] = typer.Option(
        None, "--depth", help="DIR/<clip>.npz (depth, timestamps) of metric depth instead of predicting it."
    ),
    depth_model: str = typer.Option(PosesSettings.depth_model, "--depth-model", help="Metric depth model."),
    max_depth: float = typer.Option(PosesSettings.max_depth, "--max-depth", help="Depth at or above is saturated."),
    balance: Optional[float] = typer.Option(
        None, "--balance", help="Cap on each trajectory type's share of the kept clips (e.g. 0.3)."
    ),
    store: str = typer.Option("frames", "--store", help="frames (PNG files) or video (lossless clip videos)."),
    seed: int = typer.Option(PosesSettings.seed, "--seed", help="SfM seed and balance draw."),
    device: str = typer.Option("auto", "--device", help="Device of the depth model: auto, cpu, cuda."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo clips already done."),
    workers: int = options.WORKERS,
    ray: Optional[str] = options.RAY,
    gpus_per_worker: Optional[float] = options.GPUS_PER_WORKER,
    cpus_per_task: float = options.CPUS_PER_TASK,
    timeout: Optional[float] = options.TIMEOUT,
    retries: int = options.RETRIES,
    shard_spec: Optional[str] = options.SHARD,
) -> None:
    """Estimate metric cameras for unposed (dynamic) videos: a dataset that `train` takes."""
    from stages.core.artifacts import OK
    from stages.poses import pipeline

    settings = PosesSettings(
        fps=fps,
        input_fps=input_fps,
        mask_method="files" if masks is not None else ("model" if mask_model else mask_method),
        masks=str(masks) if masks else None,
        mask_model=mask_model,
        dilate=dilate,
        fov=fov,
        intrinsics=intrinsics,
        min_registered=min_registered,
        shake_k=shake_k,
        depth_fps=depth_fps,
        depth_dir=str(depth) if depth else None,
        depth_model=depth_model,
        max_depth=max_depth,
        device=device,
        balance=balance,
        store=store,
        seed=seed,
    ).check()
    engine = options.batch_settings(
        workers, ray, gpus_per_worker, cpus_per_task, timeout, retries, shard_spec, overwrite
    )
    n = len(pipeline.find_sources(videos))
    with progress_bar("poses", n) as advance:
        table = pipeline.run_poses(videos, out, settings, batch=engine, progress=advance)
    ok = int((table["status"] == OK).sum())
    rejected = int((table["status"] == pipeline.REJECTED).sum())
    failed = len(table) - ok - rejected
    report(
        f"poses: {ok} clips posed ({int(table['kept'].sum())} kept), {rejected} rejected, {failed} failed "
        f"({table.attrs.get('skipped', 0)} skipped as done earlier); dataset in {out} "
        "(cameras/, frames/ or videos/, masks/, poses.parquet, keep.parquet)"
    )
    if len(table) and ok == 0:
        raise typer.Exit(1)
