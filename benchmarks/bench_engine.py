"""Benchmark: the batch engine (`stages.core.batch.run_batch`) — its overhead per item, and items per
minute with each executor — on 100+ small synthetic clips.

1. Overhead. Baseline (measured in the same run, on the same items): the stage's task called
   directly in a loop, `for item in items: task.run(item)`, its rows written as one Parquet table per
   table name at the end (sorted by the key, as the engine writes them). Against it: `run_batch(task,
   items, paths, BatchSettings())` (serial, in this process: a journal line written and synced per
   item, the tables merged and rewritten whenever that costs under 5 % of the run, and at the end).
   The task is `align-scale` (`AlignTask`: one triangulated clip and its depth in, a clip row and a
   row per frame out). Runs alternate (direct, engine, direct, ...) and each figure is the best of
   --repeats. A third path, the direct loop plus one journal line written and fsync'ed per item (what
   the engine syncs), attributes part of the overhead. A trivial task (one row per item, no work)
   gives the engine's fixed cost per item, next to one journal line written and fsync'ed alone.
2. Items per minute of `triangulate` (`run_triangulate`, one thread per clip) with 1 worker (in this
   process), 2 worker processes, and Ray started on this machine (`BatchSettings(ray="local",
   workers=2)`; the cluster's start is timed apart, not in the run's wall time), and of the trivial
   task with each executor. Ratio against the serial run.

Inputs are built once: the bundled trajectories cut to --frames frames and rendered at --size by
`synthesize`, copied under --clips clip ids (same images, so every copy does the same work), depth
from the synthetic ground truth (`run_depth --from-files`), and the serial triangulate run of part 2
is align-scale's input.

Usage: python benchmarks/bench_engine.py [--clips 120] [--quick] [--keep DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from stages import synth
from stages.align_scale import AlignTask
from stages.core.artifacts import read_table, write_table
from stages.core.batch import BatchTask, connect_ray, run_batch
from stages.core.constants import ALIGN_MIN_POINTS, ALIGN_MIN_TRACK
from stages.depth import run_depth
from stages.settings import BatchSettings
from stages.triangulate import run_triangulate

ROOT = Path(__file__).resolve().parents[1]
POSES = sorted((ROOT / "examples" / "data" / "poses").glob("*.txt"))
TEXTURES = sorted((ROOT / "examples" / "data" / "images").glob("*.jpg"))


@dataclass
class TrivialTask(BatchTask):
    """One status row per item and no work: what the engine costs by itself."""

    tables = {"status": ["item", "status", "reason", "value"]}
    key = "item"

    def key_of(self, item: str) -> str:
        return item

    def run(self, item: str) -> dict[str, list[dict]]:
        return {"status": [{"item": item, "status": "ok", "reason": "", "value": 1.0}]}


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def build_dataset(work: Path, clips: int, frames: int, size: tuple[int, int]) -> tuple[Path, Path]:
    """``work/ds`` (a dataset of ``clips`` copies of the bundled trajectories) and ``work/depth``."""
    poses = work / "poses"
    poses.mkdir()
    for p in POSES:  # the URL line, then the first ``frames`` poses
        lines = p.read_text().splitlines()
        (poses / p.name).write_text("\n".join(lines[: frames + 1]) + "\n")
    src = work / "src"
    synth.synthesize(sorted(poses.glob("*.txt")), src, size=size, textures=TEXTURES, seed=0)
    ds = work / "ds"
    for sub in ("cameras", "frames", "depth_gt"):
        (ds / sub).mkdir(parents=True)
    ids = [p.stem for p in POSES]
    for k in range(clips):
        s, clip = ids[k % len(ids)], f"c{k:04d}"
        shutil.copy(src / "cameras" / f"{s}.txt", ds / "cameras" / f"{clip}.txt")
        shutil.copytree(src / "frames" / s, ds / "frames" / clip)
        shutil.copy(src / "depth_gt" / f"{s}.npz", ds / "depth_gt" / f"{clip}.npz")
    index, _ = run_depth([ds], work / "depth", from_files=ds / "depth_gt")
    if not (index["status"] == "ok").all():
        raise SystemExit(f"depth failed: {index.loc[index['status'] != 'ok', 'reason'].iloc[0]}")
    return ds, work / "depth"


# ----------------------------------------------------------------------------------------------
# part 1: overhead
# ----------------------------------------------------------------------------------------------
def direct(task: BatchTask, items: list, paths: dict[str, Path], sync: bool = False) -> dict[str, pd.DataFrame]:
    """The baseline: the task in a loop, one table per name written at the end. ``sync``: also each
    item's rows as a journal line, written and fsync'ed, as the engine does (to attribute its cost)."""
    task.setup()
    rows: dict[str, list[dict]] = {name: [] for name in task.tables}
    journal = open(paths[next(iter(task.tables))].with_suffix(".journal"), "a", encoding="utf-8") if sync else None
    for item in items:
        result = task.run(item)
        for name, r in result.items():
            rows[name].extend(r)
        if journal is not None:
            journal.write(json.dumps({"key": task.key_of(item), "rows": result}, default=str) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
    if journal is not None:
        journal.close()
        Path(journal.name).unlink()
    out = {}
    for name, columns in task.tables.items():
        frame = pd.DataFrame(rows[name], columns=columns).astype(task.dtypes.get(name, {}))
        out[name] = frame.sort_values(task.key, kind="stable", ignore_index=True)
        write_table(paths[name], out[name])
    return out


def engine(task: BatchTask, items: list, paths: dict[str, Path]) -> dict[str, pd.DataFrame]:
    result = run_batch(task, items, paths, BatchSettings())
    assert len(result.ran) == len(items), "the engine skipped items: the output folder was not fresh"
    return result.tables


def direct_synced(task: BatchTask, items: list, paths: dict[str, Path]) -> dict[str, pd.DataFrame]:
    return direct(task, items, paths, sync=True)


def compare(task_name: str, make_task, items: list, work: Path, repeats: int, synced: bool = False) -> dict:
    """Seconds of ``repeats`` alternating runs of each path (each into a fresh folder): label -> list."""
    paths_fn = [("direct", direct), ("engine", engine)] + ([("synced", direct_synced)] if synced else [])
    times: dict[str, list[float]] = {label: [] for label, _ in paths_fn}
    make_task().run(items[0])  # warm-up: lazy imports and caches are not the first path's cost
    for r in range(repeats):
        outs = {}
        for label, fn in paths_fn:
            out = work / f"{task_name}_{label}_{r}"
            out.mkdir()
            task = make_task()
            paths = {name: out / f"{name}.parquet" for name in task.tables}
            t0 = time.perf_counter()
            fn(task, items, paths)
            times[label].append(time.perf_counter() - t0)
            outs[label] = {name: read_table(p) for name, p in paths.items()}
        for label in outs:  # every path wrote the same tables
            for name in outs["direct"]:
                pd.testing.assert_frame_equal(outs["direct"][name], outs[label][name], check_dtype=False)
        ok = outs["engine"][next(iter(outs["engine"]))]["status"]
        assert (ok == "ok").all(), f"{task_name}: {int((ok != 'ok').sum())} items failed"
    return times


def fsync_alone(folder: Path, n: int) -> float:
    """Seconds per journal-sized line written, flushed and fsync'ed (the engine's per-item sync)."""
    line = '{"key": "c0000", "rows": {"status": [{"item": "c0000", "status": "ok", "reason": ""}]}}\n'
    path = folder / "fsync.journal"
    t0 = time.perf_counter()
    with open(path, "a", encoding="utf-8") as f:
        for _ in range(n):
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    seconds = (time.perf_counter() - t0) / n
    path.unlink()
    return seconds


# ----------------------------------------------------------------------------------------------
# part 2: items per minute
# ----------------------------------------------------------------------------------------------
def throughput(ds: Path, work: Path, n: int) -> tuple[list[tuple], float, Path]:
    """Rows (executor, triangulate wall s, trivial wall s), the Ray start in seconds, and the serial
    triangulate output (align-scale's input)."""
    configs = [
        ("serial (1 worker, in-process)", BatchSettings()),
        ("2 worker processes", BatchSettings(workers=2)),
        ("Ray local, 2 workers", BatchSettings(ray="local", workers=2)),
    ]
    items = [f"c{k:04d}" for k in range(n)]
    rows, ray_start = [], float("nan")
    try:
        for k, (name, settings) in enumerate(configs):
            if settings.ray:
                t0 = time.perf_counter()
                connect_ray("local", num_cpus=settings.workers)
                ray_start = time.perf_counter() - t0
            out = work / f"sfm_{k}"
            t0 = time.perf_counter()
            status, _ = run_triangulate(ds, out, batch=settings)
            wall = time.perf_counter() - t0
            bad = status.loc[status["status"] != "ok"]
            if len(bad):
                raise SystemExit(f"{name}: {len(bad)} clips failed ({bad['reason'].iloc[0]})")
            trivial_out = work / f"trivial_{k}"
            trivial_out.mkdir()
            t0 = time.perf_counter()
            result = run_batch(TrivialTask(), items, {"status": trivial_out / "status.parquet"}, settings)
            trivial = time.perf_counter() - t0
            assert len(result.ran) == n
            rows.append((name, wall, trivial))
    finally:
        import ray

        ray.shutdown()
    return rows, ray_start, work / "sfm_0"


# ----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--quick", action="store_true", help="10 clips, 1 repeat (a smoke run)")
    parser.add_argument("--keep", type=Path, help="build the inputs (and outputs) here and keep them")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path in part 1 (best of)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--size", default="64x64", help="frame size WxH")
    args = parser.parse_args()
    n = 10 if args.quick else args.clips
    repeats = 1 if args.quick else args.repeats
    size = tuple(int(v) for v in args.size.split("x"))
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        raise SystemExit(f"--keep {args.keep}: give a new or empty folder")
    console = Console(width=150)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        ds, depth = build_dataset(work, n, args.frames, size)
        console.print(
            f"inputs: {n} clips of {args.frames} frames {size[0]}x{size[1]} in {time.perf_counter() - t0:.1f} s"
        )

        # part 2 first: its serial triangulate run is align-scale's input
        rows, ray_start, sfm = throughput(ds, work, n)

        ids = sorted(p.parent.name for p in sfm.glob("*/clip.json"))
        assert len(ids) == n

        def align_task() -> AlignTask:
            return AlignTask(depth, sfm, ALIGN_MIN_POINTS, ALIGN_MIN_TRACK, None, {})

        a = compare("align", align_task, ids, work, repeats, synced=True)
        a_direct, a_engine, a_synced = a["direct"], a["engine"], a["synced"]
        t = compare("trivial", TrivialTask, ids, work, repeats)
        t_direct, t_engine = t["direct"], t["engine"]
        sync = fsync_alone(work, 200)
        empty = []
        for r in range(repeats):  # what a run costs with no item: the tables read, written once
            out = work / f"empty_{r}"
            out.mkdir()
            t0 = time.perf_counter()
            run_batch(TrivialTask(), [], {"status": out / "status.parquet"}, BatchSettings())
            empty.append(time.perf_counter() - t0)

        table = Table(
            title=f"batch engine overhead, {n} items, best of {repeats} "
            f"(baseline: the task called in a loop, tables written once)"
        )
        for col in ("task", "path", "total s", "ms / item", "overhead"):
            table.add_column(col, justify="left" if col in ("task", "path") else "right")
        d, e = min(a_direct), min(a_engine)
        table.add_row("align-scale", "direct loop (baseline)", f"{d:.3f}", f"{d / n * 1e3:.2f}", "")
        table.add_row(
            "align-scale",
            "run_batch, serial",
            f"{e:.3f}",
            f"{e / n * 1e3:.2f}",
            f"{(e - d) / d * 100:+.1f} % (target < 5 %)",
        )
        y = min(a_synced)
        table.add_row(
            "align-scale",
            "direct loop + journal line fsync'ed per item",
            f"{y:.3f}",
            f"{y / n * 1e3:.2f}",
            f"{(y - d) / d * 100:+.1f} %",
        )
        md, me = statistics.median(a_direct), statistics.median(a_engine)
        table.add_row(
            "align-scale", "(medians: direct / engine)", f"{md:.3f} / {me:.3f}", "", f"{(me - md) / md * 100:+.1f} %"
        )
        d, e = min(t_direct), min(t_engine)
        table.add_row("trivial", "direct loop (baseline)", f"{d:.3f}", f"{d / n * 1e3:.2f}", "")
        table.add_row(
            "trivial", "run_batch, serial", f"{e:.3f}", f"{e / n * 1e3:.2f}", f"{(e - d) / n * 1e3:+.2f} ms / item"
        )
        table.add_row("trivial", "run_batch, 0 items (per-run fixed cost)", f"{min(empty):.3f}", "", "")
        table.add_row(
            "trivial",
            "run_batch per item, less the 0-item run",
            "",
            f"{(e - min(empty)) / n * 1e3:.2f}",
            "",
        )
        table.add_row("", "one journal line + fsync alone", "", f"{sync * 1e3:.2f}", "")
        console.print(table)

        rate = Table(
            title=f"items per minute, {n} clips (triangulate: {args.frames} frames {size[0]}x{size[1]}, one thread "
            f"per clip; trivial: no work); baseline: serial"
        )
        for col in (
            "executor",
            "triangulate wall s",
            "clips / min",
            "ratio",
            "trivial wall s",
            "items / min",
            "ratio ",
        ):
            rate.add_column(col, justify="left" if col == "executor" else "right")
        base_t, base_z = rows[0][1], rows[0][2]
        for name, wall, trivial in rows:
            rate.add_row(
                name,
                f"{wall:.2f}",
                f"{n / wall * 60:.1f}",
                f"{base_t / wall:.2f}x",
                f"{trivial:.2f}",
                f"{n / trivial * 60:.0f}",
                f"{base_z / trivial:.2f}x",
            )
        console.print(rate)
        console.print(f"Ray start (ray.init, local, 2 CPUs): {ray_start:.2f} s, not in the Ray wall time")
        console.print(f"os.cpu_count() = {os.cpu_count()}, load average before the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
