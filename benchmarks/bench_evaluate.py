"""Benchmark: `realcam evaluate` pose estimation per SfM trial (target: under 3 s a trial for a
16-frame 256x256 video on a 2-core CPU), and the Fréchet distance.

Renders bundled RealEstate10K trajectories (textured with the bundled photos) at 256x256, then:
- per clip: SIFT once (amortised over the trials), then per trial matching + mapping, for the
  global (GLOMAP) and the incremental mapper; baseline = the naive protocol that runs the whole SfM
  (extraction + matching + mapping) afresh for every trial, measured in the same run;
- videos across workers: `evaluate` on all clips with --workers 1 against --workers 2;
- Fréchet distance of 400-d features (2048 videos) against scipy.linalg.sqrtm.
Usage: python benchmarks/bench_evaluate.py [--clips 3] [--trials 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.linalg
from rich.console import Console
from rich.table import Table

from stages import synth
from stages.core import cameras as cam
from stages.core.video import write_video
from stages.evaluate import fvd, metrics
from stages.evaluate.run import evaluate
from stages.evaluate.sfm import estimate_poses

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 3.0
SIZE = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="COLMAP threads per video")
    args = parser.parse_args()
    poses = sorted((ROOT / "examples/data/poses").glob("*.txt"))[: args.clips]
    textures = [synth.load_texture(p) for p in sorted((ROOT / "examples/data/images").glob("*.jpg"))]
    console = Console(width=160)
    table = Table(title=f"SfM per trial, {SIZE}x{SIZE}, 16 frames (target {TARGET_S:.0f} s a trial)")
    for col in (
        "clip",
        "mapper",
        "SIFT s (once)",
        "trial s",
        "trial CPU s",
        "amortised s/trial",
        "naive s/trial",
        "naive / ours",
        "target / ours",
        "RotErr",
        "TransErr rel",
    ):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "videos").mkdir()
        (tmp / "ref").mkdir()
        for p in poses:
            cams = cam.read_re10k(p)
            frames, _, written = synth.synth_clip(cams, textures, 1.0, (SIZE, SIZE), synth.clip_rng(0, p.stem))
            write_video(tmp / "videos" / f"{p.stem}.mp4", frames, lossless=True)
            cam.write_re10k(tmp / "ref" / f"{p.stem}.txt", written)
            k = cam.denormalize_intrinsics(written.intrinsics[0], SIZE, SIZE)
            gt = cam.relative_poses(written.c2w)
            for mapper in ("global", "incremental"):
                t0 = time.perf_counter()
                trials = estimate_poses(frames, k, trials=args.trials, mapper=mapper, num_threads=args.threads)
                total = time.perf_counter() - t0
                per_trial = float(np.mean([t.seconds for t in trials]))
                cpu = float(np.mean([t.cpu_seconds for t in trials]))
                sift = total - sum(t.seconds for t in trials)
                amortised = total / args.trials
                t0 = time.perf_counter()
                for t in range(args.trials):  # the naive protocol: everything again per trial
                    estimate_poses(frames, k, trials=1, mapper=mapper, seed=t, num_threads=args.threads)
                naive = (time.perf_counter() - t0) / args.trials
                ok = [t for t in trials if t.ok]
                rot = np.mean([metrics.rot_err(t.c2w[t.registered], gt[t.registered]) for t in ok]) if ok else np.nan
                tr = np.mean([metrics.trans_err(t.c2w[t.registered], gt[t.registered]) for t in ok]) if ok else np.nan
                table.add_row(
                    p.stem,
                    mapper,
                    f"{sift:.2f}",
                    f"{per_trial:.2f}",
                    f"{cpu:.2f}",
                    f"{amortised:.2f}",
                    f"{naive:.2f}",
                    f"{naive / amortised:.2f}x",
                    f"{TARGET_S / amortised:.1f}x",
                    f"{rot:.4f}",
                    f"{tr:.3f}",
                )
        console.print(table)

        workers = Table(title=f"evaluate, {len(poses)} videos x {args.trials} trials (global)")
        for col in ("workers", "wall s", "speed-up vs 1 worker"):
            workers.add_column(col, justify="right")
        times = {}
        for n in (1, 2):
            t0 = time.perf_counter()
            evaluate(tmp / "videos", tmp / "ref", tmp / f"out{n}", trials=args.trials, workers=n)
            times[n] = time.perf_counter() - t0
            workers.add_row(str(n), f"{times[n]:.2f}", f"{times[1] / times[n]:.2f}x")
        console.print(workers)

    rng = np.random.default_rng(0)
    a = rng.normal(size=(2048, 400))
    b = rng.normal(0.1, 1.1, size=(2048, 400))
    t0 = time.perf_counter()
    ours = fvd.frechet_distance(a, b)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))
    t_ref = time.perf_counter() - t0
    fd = Table(title="Fréchet distance, 2 x 2048 features of 400 dims")
    for col in ("method", "seconds", "value", "scipy / ours"):
        fd.add_column(col, justify="right")
    fd.add_row("ours (eigh, float64)", f"{t_ours:.3f}", f"{ours:.6f}", f"{t_ref / t_ours:.2f}x")
    fd.add_row("baseline scipy.linalg.sqrtm", f"{t_ref:.3f}", f"{ref:.6f}", "1.00x")
    console.print(fd)


if __name__ == "__main__":
    main()
