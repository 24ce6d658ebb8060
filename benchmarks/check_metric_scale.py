"""Check: the annotation pipeline recovers each clip's true metric factor on synthetic clips.

Renders a synthetic clip along every trajectory in ../shared/data/realestate10k_poses (or
--poses) with random true factors in [0.1, 10], then runs depth (--from-files: the ground truth,
and the ground truth times per-pixel noise of 5 %) -> triangulate -> align-scale, and prints each
clip's relative error of clips.parquet `scale` against truth.parquet `alpha`.
Pass: >= 90 % of clips within 2 % (exact depth), all within 5 % (noisy depth).
Usage: python benchmarks/check_metric_scale.py [--poses DIR] [--size 256x256] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from stages.align_scale import run_align_scale
from stages.core.artifacts import read_arrays, write_arrays
from stages.depth import run_depth
from stages.synth import synthesize
from stages.triangulate import run_triangulate

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default = ROOT.parent / "shared" / "data" / "realestate10k_poses"
    parser.add_argument("--poses", type=Path, default=default if default.is_dir() else ROOT / "examples/data/poses")
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        truth = synthesize(
            sorted(args.poses.glob("*.txt")),
            tmp / "ds",
            random_scale=(0.1, 10.0),
            size=size,
            textures=sorted((ROOT / "examples/data/images").glob("*.jpg")),
            seed=args.seed,
        )
        run_triangulate(tmp / "ds", tmp / "sfm", workers=1)
        rng = np.random.default_rng(args.seed)
        for f in (tmp / "ds" / "depth_gt").glob("*.npz"):
            a = read_arrays(f)
            a["depth"] = (a["depth"] * (1 + 0.05 * rng.standard_normal(a["depth"].shape))).astype(np.float32)
            write_arrays(tmp / "noisy" / f.name, **a)
        errs = {}
        for name, src in (("exact", tmp / "ds" / "depth_gt"), ("noise 5 %", tmp / "noisy")):
            run_depth([tmp / "ds"], tmp / f"depth_{name}", from_files=src)
            clips, _ = run_align_scale(tmp / f"depth_{name}", tmp / "sfm", tmp / f"scales_{name}")
            errs[name] = clips.set_index("clip_id")["scale"] / truth.set_index("clip_id")["alpha"] - 1
        wall = time.perf_counter() - t0
    table = Table(title=f"metric factor recovery, {len(truth)} synthetic clips {size[0]}x{size[1]}, seed {args.seed}")
    for col in ("clip", "true alpha", "rel. err (exact depth)", "rel. err (5 % noise)"):
        table.add_column(col, justify="right")
    for cid, alpha in zip(truth["clip_id"], truth["alpha"]):
        table.add_row(
            cid, f"{alpha:.4f}", f"{errs['exact'][cid] * 100:+.3f} %", f"{errs['noise 5 %'][cid] * 100:+.3f} %"
        )
    ok2 = float((errs["exact"].abs() < 0.02).mean())
    ok5 = float((errs["noise 5 %"].abs() < 0.05).mean())
    Console().print(table)
    print(f"within 2 % (exact): {ok2 * 100:.0f} % of clips; within 5 % (noisy): {ok5 * 100:.0f} %; wall {wall:.1f} s")
    return 0 if ok2 >= 0.9 and ok5 == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
