"""``annotate``: the metric-scale annotation of a dataset as one pipeline (docs/method.md#metric-factor).

``depth`` -> ``triangulate`` -> ``align-scale`` -> ``filter``, into ``WORK/depth``, ``WORK/sfm``,
``WORK/scales`` and ``WORK/filtered`` (the folders the four separate commands write, with the same
tables). On Ray, depth (GPU workers) and triangulation (CPU tasks) of different clips run at the
same time. With ``sample_depth`` the clips are triangulated first and each clip's depth is stored
only at its SfM observations (``<clip>.samples.npz``), not as whole maps. With a shard
(``--shard I/N``) the per-clip stages run on that shard only, and ``filter`` (which needs every
clip) is left for one run once all shards are done.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from .core import checks
from .core.constants import ALIGN_MIN_POINTS, ALIGN_MIN_TRACK, DEPTH_MODEL, FILTER_QUANTILE
from .core.dataset import find_clips, shard
from .core.errors import RealcamError
from .settings import BatchSettings, TriangulateOptions

FOLDERS = ("depth", "sfm", "scales", "filtered")


@dataclass
class AnnotateResult:
    folders: dict[str, Path]
    depth: object  # the depth index
    sfm: object  # triangulate's status table
    clips: object  # align-scale's clip table
    keep: object | None = None  # filter's tables (None for a shard: filter runs once at the end)
    dropped: object | None = None
    skipped: dict[str, int] | None = None  # items each stage had done before


def run_annotate(
    dataset: str | Path,
    work: str | Path,
    *,
    batch: BatchSettings | None = None,
    sample_depth: bool = False,
    model: str = DEPTH_MODEL,
    from_files: str | Path | None = None,
    max_depth: float | None = None,
    batch_size: int = 4,
    device: str = "auto",
    dtype: str = "auto",
    opts: TriangulateOptions | None = None,
    min_points: int = ALIGN_MIN_POINTS,
    min_track: int = ALIGN_MIN_TRACK,
    quantile: float = FILTER_QUANTILE,
    cond_frame: int = 0,
    progress: Callable[[str], None] | None = None,
) -> AnnotateResult:
    """The four stages over ``dataset`` into ``work``; each skips what an earlier run finished."""
    from .align_scale import run_align_scale
    from .depth import run_depth
    from .filter import run_filter
    from .triangulate import run_triangulate

    batch = (batch or BatchSettings()).check()
    opts = (opts or TriangulateOptions()).check()
    checks.input_dir(dataset, "dataset folder")
    work = checks.output_dir(work, "--out")
    folders = {name: work / name for name in FOLDERS}
    with checks.writing(work):
        work.mkdir(parents=True, exist_ok=True)

    def tagged(stage: str):
        return None if progress is None else (lambda label: progress(f"{stage}: {label}"))

    def depth(sample_at=None):
        return run_depth(
            [dataset],
            folders["depth"],
            model=model,
            from_files=from_files,
            max_depth=max_depth,
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            sample_at=sample_at,
            batch=batch,
            progress=tagged("depth"),
        )

    def triangulate():
        return run_triangulate(dataset, folders["sfm"], batch=batch, opts=opts, progress=tagged("triangulate"))

    if sample_depth:  # depth needs the observations: SfM first
        sfm, sfm_skipped = triangulate()
        index, depth_skipped = depth(sample_at=folders["sfm"])
    elif batch.ray:  # the two stages share the cluster: GPU workers for depth, CPU tasks for SfM
        (index, depth_skipped), (sfm, sfm_skipped) = _together(depth, triangulate, batch)
    else:
        index, depth_skipped = depth()
        sfm, sfm_skipped = triangulate()
    # align-scale's items are few and light: its own process, whatever the executor of the others
    ids = [c.clip_id for c in shard(find_clips(dataset), batch.shard)]  # this shard's, fixed
    clips, align_skipped = run_align_scale(
        folders["depth"],
        folders["sfm"],
        folders["scales"],
        clip_ids=ids,
        min_points=min_points,
        min_track=min_track,
        max_depth=max_depth,
        batch=replace(batch, ray=None, workers=1, timeout=None),
        progress=tagged("align-scale"),
    )
    skipped = {"depth": depth_skipped, "triangulate": sfm_skipped, "align-scale": align_skipped}
    result = AnnotateResult(folders, index, sfm, clips, skipped=skipped)
    if batch.shard is None:
        result.keep, result.dropped = run_filter(
            folders["scales"], dataset, folders["filtered"], quantile=quantile, cond_frame=cond_frame
        )
    return result


def _together(first: Callable, second: Callable, batch: BatchSettings):
    """Run two stages at once (threads submitting to the same Ray cluster); the first error wins."""
    from .core.batch import connect_ray

    connect_ray(batch.ray, num_cpus=None)
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def run(i: int, fn: Callable) -> None:
        try:
            results[i] = fn()
        except BaseException as err:  # re-raised in the calling thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if len(results) != 2:
        raise RealcamError("a stage of the pipeline ended without a result")
    return results[0], results[1]
