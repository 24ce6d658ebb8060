"""Start-up time of the command line: `realcam --help`, `realcam <stage> --help` and a `filter` run
on a small table, against the eager baseline measured in the same run.

Baseline ("eager"): the same commands in an interpreter that first imports the stage libraries the
command line imported at load before its commands imported their stage inside the command (torch,
pandas, scipy, transformers, open3d, pycolmap loaded by every call). Each figure is the median
wall time of --repeats fresh interpreters.

Usage: python benchmarks/bench_cli_startup.py [--repeats 3] [--all-stages]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
POSES = sorted((ROOT / "examples" / "data" / "poses").glob("*.txt"))
# What the command line imported at load before (every command module imported its stage).
EAGER = (
    "import stages.depth, stages.triangulate, stages.align_scale, stages.filter, stages.synth, "
    "stages.preview, stages.generate, stages.evaluate.run; "
)
RUN = "import sys; from realcam_cli.app import app; app(sys.argv[1:])"


def seconds(code: str, args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        if res.returncode != 0:
            raise SystemExit(f"{args}: exit {res.returncode}\n{res.stderr.decode()[-2000:]}")
    return statistics.median(times)


def small_table(tmp: Path) -> list[str]:
    """A scales folder (6 clips) and its cameras: the input of `filter`."""
    (tmp / "ds" / "cameras").mkdir(parents=True)
    ids = [p.stem for p in POSES]
    for p in POSES:
        (tmp / "ds" / "cameras" / p.name).write_text(p.read_text())
    (tmp / "scales").mkdir()
    f = np.linspace(1.0, 2.0, len(ids))
    pd.DataFrame(
        {
            "clip_id": ids,
            "scale": f,
            "scale_max": f + 0.1,
            "scale_min": f - 0.1,
            "scale_spread": 0.1,
            "n_frames": 2,
            "n_points": 100,
            "status": "ok",
            "reason": "",
        }
    ).to_parquet(tmp / "scales" / "clips.parquet")
    pd.DataFrame(
        {"clip_id": np.repeat(ids, 2), "frame": np.tile([0, 1], len(ids)), "timestamp": 0, "scale": 1.5, "n_points": 50}
    ).to_parquet(tmp / "scales" / "frames.parquet")
    return ["filter", str(tmp / "scales"), "--cameras", str(tmp / "ds"), "--out", str(tmp / "out")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--all-stages", action="store_true", help="every stage's --help (default: four of them)")
    args = parser.parse_args()
    stages = [
        "synth",
        "depth",
        "triangulate",
        "align-scale",
        "filter",
        "train",
        "preview",
        "edit",
        "generate",
        "evaluate",
    ]
    table = Table(title=f"realcam start-up, median of {args.repeats} fresh interpreters (seconds)")
    for col in ("command", "eager (baseline)", "lazy (ours)", "speed-up"):
        table.add_column(col, justify="left" if col == "command" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        filter_args = small_table(Path(tmp))
        cases = [("realcam --help", ["--help"])]
        shown = stages if args.all_stages else ["filter", "train", "generate", "evaluate"]
        cases += [(f"realcam {s} --help", [s, "--help"]) for s in shown]
        cases += [("realcam filter (6 clips)", filter_args + ["--quantile", "0.0"])]
        rows = []
        for name, cmd in cases:
            eager = seconds(EAGER + RUN, cmd, args.repeats)
            lazy = seconds(RUN, cmd, args.repeats)
            rows.append((name, eager, lazy))
            table.add_row(name, f"{eager:.2f}", f"{lazy:.2f}", f"{eager / lazy:.1f}x")
    Console().print(table)
    helps = [r for r in rows if r[0].endswith("--help")]
    print(
        f"median over the {len(helps)} --help commands: eager {statistics.median(r[1] for r in helps):.2f} s, "
        f"lazy {statistics.median(r[2] for r in helps):.2f} s"
    )


if __name__ == "__main__":
    main()
