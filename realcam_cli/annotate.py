"""Metric-scale annotation commands: ``depth``, ``triangulate``, ``align-scale``, ``filter``, and
``annotate`` (the four as one pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from stages.core.constants import ALIGN_MIN_POINTS, ALIGN_MIN_TRACK, DEPTH_MODEL, FILTER_QUANTILE
from stages.core.dataset import shard_table
from stages.settings import TriangulateOptions

from . import options
from .ui import progress_bar, report

# The stages (torch, pandas, pycolmap, ...) are imported inside each command: `--help` stays instant.


def summary(stage: str, table, key: str, skipped: int, where: str) -> None:
    """Print done / skipped / failed and where the outputs went; exit 1 when nothing succeeded."""
    from stages.core.artifacts import OK

    rows = table.drop_duplicates(key)
    failed = int((rows["status"] != OK).sum())
    done = int((rows["status"] == OK).sum())
    report(f"{stage}: {done} ok ({skipped} skipped as already done), {failed} failed -> {where}")
    for _, r in rows.loc[rows["status"] != OK].head(20).iterrows():
        report(f"  failed {r[key]}: {r['reason']}")
    if done == 0 and len(rows):  # an empty shard has nothing to do, and did it
        raise typer.Exit(1)


def depth(
    inputs: List[Path] = typer.Argument(
        ..., help="Image files, folders of images, or dataset roots (every clip's frames)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for <item>.npz and index.parquet."),
    model: str = typer.Option(DEPTH_MODEL, "--model", help="Hugging Face id or local folder of a metric depth model."),
    from_files: Optional[Path] = typer.Option(
        None,
        "--from-files",
        help="Read precomputed depth (<item>.npz, or <item>/<frame>.png 16-bit mm) instead of running a model.",
    ),
    max_depth: Optional[float] = typer.Option(
        None, "--max-depth", help="Maximum (saturation) depth in metres; default the model's (20 indoor, 80 outdoor)."
    ),
    batch_size: int = typer.Option(4, "--batch-size", help="Frames per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16."),
    sample_at: Optional[Path] = typer.Option(
        None,
        "--sample-at",
        help="Output folder of `realcam triangulate`: store each clip's depth only at its SfM observations "
        "(<clip>.samples.npz, what align-scale reads), not whole maps.",
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
    """Metric depth per frame (Depth Anything V2 metric by default), one NPZ per clip."""
    from stages import depth as depth_stage
    from stages.core import checks
    from stages.core.dataset import shard

    checks.output_dir(out, "--out")
    batch = options.batch_settings(
        workers, ray, gpus_per_worker, cpus_per_task, timeout, retries, shard_spec, overwrite
    )
    items = shard(depth_stage.collect_items(inputs), batch.shard)
    with progress_bar("depth", total=len(items)) as advance:
        index, skipped = depth_stage.run_depth(
            inputs,
            out,
            model=model,
            from_files=from_files,
            max_depth=max_depth,
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            sample_at=sample_at,
            batch=batch,
            progress=advance,
        )
    names = {it.item for it in items}
    per_item = (
        index.loc[index["item"].isin(names)]
        .sort_values("status")  # "failed" before "ok"
        .drop_duplicates("item")[["item", "status", "reason"]]
    )
    summary(
        "depth", per_item, "item", skipped, f"{out} (<item>.npz, {shard_table(depth_stage.INDEX_TABLE, batch.shard)})"
    )


def triangulate(
    dataset: Path = typer.Argument(..., help="Dataset root: cameras/<clip_id>.txt and frames/<clip_id>/."),
    out: Path = typer.Option(..., "--out", help="Folder for <clip_id>/ models and status.parquet."),
    overlap: int = typer.Option(
        TriangulateOptions.overlap, "--overlap", help="Sequential matching: neighbours matched per frame."
    ),
    min_points: int = typer.Option(
        TriangulateOptions.min_points, "--min-points", help="Fewest triangulated points for a usable clip."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of pycolmap's random choices (RANSAC, triangulation)."),
    workers: int = options.WORKERS,
    ray: Optional[str] = options.RAY,
    gpus_per_worker: Optional[float] = options.GPUS_PER_WORKER,
    cpus_per_task: float = options.CPUS_PER_TASK,
    timeout: Optional[float] = options.TIMEOUT,
    retries: int = options.RETRIES,
    shard_spec: Optional[str] = options.SHARD,
    overwrite: bool = options.OVERWRITE,
) -> None:
    """SfM points per clip with its poses and intrinsics held fixed (pycolmap); reproducible."""
    from stages import triangulate as tri_stage
    from stages.core.dataset import find_clips, shard

    opts = TriangulateOptions(overlap=overlap, min_points=min_points, seed=seed).check()
    batch = options.batch_settings(
        workers, ray, gpus_per_worker, cpus_per_task, timeout, retries, shard_spec, overwrite
    )
    n = len(shard(find_clips(dataset), batch.shard))
    with progress_bar("triangulate", total=n) as advance:
        table, skipped = tri_stage.run_triangulate(dataset, out, batch=batch, opts=opts, progress=advance)
    summary(
        "triangulate", table, "item", skipped, f"{out} (<clip_id>/, {shard_table(tri_stage.STATUS_TABLE, batch.shard)})"
    )


def align_scale(
    depth_dir: Path = typer.Option(..., "--depth", help="Output folder of `realcam depth`."),
    sfm: Path = typer.Option(..., "--sfm", help="Output folder of `realcam triangulate`."),
    out: Path = typer.Option(..., "--out", help="Folder for frames.parquet and clips.parquet."),
    min_points: int = typer.Option(ALIGN_MIN_POINTS, "--min-points", help="Valid ratios needed for a frame factor."),
    min_track: int = typer.Option(ALIGN_MIN_TRACK, "--min-track", help="Frames a point must be seen in."),
    max_depth: Optional[float] = typer.Option(
        None, "--max-depth", help="Saturation depth (default: the one the depth stage recorded)."
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
    """Per-frame and per-clip metric factors: median of D(u, v) / z over SfM observations."""
    from stages import align_scale as align_stage

    batch = options.batch_settings(
        workers, ray, gpus_per_worker, cpus_per_task, timeout, retries, shard_spec, overwrite
    )
    with progress_bar("align-scale", total=None) as advance:
        clips, skipped = align_stage.run_align_scale(
            depth_dir,
            sfm,
            out,
            min_points=min_points,
            min_track=min_track,
            max_depth=max_depth,
            batch=batch,
            progress=advance,
        )
    tables = [shard_table(t, batch.shard) for t in (align_stage.FRAMES_TABLE, align_stage.CLIPS_TABLE)]
    summary("align-scale", clips, "clip_id", skipped, f"{out} ({', '.join(tables)})")


def filter_(
    scales_dir: Path = typer.Argument(..., help="Output folder of `realcam align-scale`."),
    cameras: Path = typer.Option(..., "--cameras", help="Dataset root whose cameras/ are made metric."),
    out: Path = typer.Option(..., "--out", help="Folder for keep/dropped tables and metric cameras."),
    quantile: float = typer.Option(
        FILTER_QUANTILE, "--quantile", help="Drop clips whose max or min factor is below this quantile or above 1 - it."
    ),
    cond_frame: int = typer.Option(0, "--cond-frame", help="Frame whose factor scales the clip."),
) -> None:
    """Quantile filter on clip factors; metric cameras (RealEstate10K text and Parquet)."""
    from stages import filter as filter_stage

    with progress_bar("filter", total=None) as advance:
        keep, dropped = filter_stage.run_filter(
            scales_dir, cameras, out, quantile=quantile, cond_frame=cond_frame, progress=advance
        )
    report(
        f"filter: kept {len(keep)}, dropped {len(dropped)} -> {out} (keep.parquet, dropped.parquet, "
        f"cameras/, cameras.parquet)"
    )
    if len(keep) == 0:
        raise typer.Exit(1)


def annotate(
    dataset: Path = typer.Argument(..., help="Dataset root: cameras/<clip_id>.txt and frames/<clip_id>/."),
    out: Path = typer.Option(
        ..., "--out", help="Work folder: depth/, sfm/, scales/, filtered/ (as the four commands)."
    ),
    sample_depth: bool = typer.Option(
        False,
        "--sample-depth",
        help="Triangulate first and store depth only at the SfM observations (a small fraction of whole maps).",
    ),
    model: str = typer.Option(DEPTH_MODEL, "--model", help="Hugging Face id or local folder of a metric depth model."),
    from_files: Optional[Path] = typer.Option(
        None, "--from-files", help="Read precomputed depth (<item>.npz, or <item>/<frame>.png 16-bit mm)."
    ),
    max_depth: Optional[float] = typer.Option(None, "--max-depth", help="Saturation depth in metres."),
    batch_size: int = typer.Option(4, "--batch-size", help="Frames per depth forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (depth)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, fp16 or bf16 (depth)."),
    seed: int = typer.Option(0, "--seed", help="Seed of pycolmap's random choices."),
    quantile: float = typer.Option(FILTER_QUANTILE, "--quantile", help="The filter's quantile."),
    workers: int = options.WORKERS,
    ray: Optional[str] = options.RAY,
    gpus_per_worker: Optional[float] = options.GPUS_PER_WORKER,
    cpus_per_task: float = options.CPUS_PER_TASK,
    timeout: Optional[float] = options.TIMEOUT,
    retries: int = options.RETRIES,
    shard_spec: Optional[str] = options.SHARD,
    overwrite: bool = options.OVERWRITE,
) -> None:
    """depth -> triangulate -> align-scale -> filter as one pipeline (stages overlap on Ray)."""
    from stages.annotate import run_annotate
    from stages.core.dataset import find_clips, shard

    batch = options.batch_settings(
        workers, ray, gpus_per_worker, cpus_per_task, timeout, retries, shard_spec, overwrite
    )
    n = len(shard(find_clips(dataset), batch.shard))
    with progress_bar("annotate", total=3 * n) as advance:
        result = run_annotate(
            dataset,
            out,
            batch=batch,
            sample_depth=sample_depth,
            model=model,
            from_files=from_files,
            max_depth=max_depth,
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            opts=TriangulateOptions(seed=seed),
            quantile=quantile,
            progress=advance,
        )
    ok = lambda t, key: int((t.drop_duplicates(key)["status"] == "ok").sum())
    report(
        f"annotate: depth {ok(result.depth, 'item')} ok, triangulate {ok(result.sfm, 'item')} ok, "
        f"align-scale {ok(result.clips, 'clip_id')} ok (skipped as done: {result.skipped}) -> {out}"
    )
    if result.keep is None:
        report("annotate: a shard: run `realcam filter` on the scales folder once every shard is done")
    else:
        report(
            f"annotate: filter kept {len(result.keep)}, dropped {len(result.dropped)} -> {result.folders['filtered']}"
        )
        if len(result.keep) == 0:
            raise typer.Exit(1)
