"""Benchmark: `realcam synth` wall time per 16-frame clip against the 10 s target.

Renders every bundled RealEstate10K trajectory (examples/data/poses) with the bundled photos as
textures, and prints a table: per clip seconds, frames, and the ratio target / time (> 1 is faster
than the target). Usage: python benchmarks/bench_synth.py [--size 256x256] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from stages import synth
from stages.core import cameras as cam

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="256x256")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    poses = sorted((ROOT / "examples/data/poses").glob("*.txt"))
    textures = [synth.load_texture(p) for p in sorted((ROOT / "examples/data/images").glob("*.jpg"))]
    table = Table(title=f"realcam synth, {w}x{h}, per clip (target {TARGET_S:.0f} s)")
    for col in ("clip", "frames", "render s", "write s", "total s", "target / total"):
        table.add_column(col, justify="right")
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in poses:
            t0 = time.perf_counter()
            cams = cam.read_re10k(p)
            frames, depth, written = synth.synth_clip(cams, textures, 1.7, (w, h), synth.clip_rng(0, p.stem))
            t1 = time.perf_counter()
            # The full stage (render + PNG/NPZ/text writes) through the public entry point.
            synth.synthesize(
                [p],
                Path(tmp) / p.stem,
                scale=1.7,
                size=(w, h),
                textures=sorted((ROOT / "examples/data/images").glob("*.jpg")),
            )
            t2 = time.perf_counter()
            total = t2 - t1
            totals.append(total)
            table.add_row(
                p.stem,
                str(len(frames)),
                f"{t1 - t0:.2f}",
                f"{total - (t1 - t0):.2f}",
                f"{total:.2f}",
                f"{TARGET_S / total:.1f}x",
            )
    table.add_row("mean", "", "", "", f"{np.mean(totals):.2f}", f"{TARGET_S / np.mean(totals):.1f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
