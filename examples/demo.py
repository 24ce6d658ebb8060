"""The end-to-end demo behind `make demo`: every stage that exists, as a user runs it.

1. `synth`: a small dataset from the bundled RealEstate10K trajectories and photos, with known
   factors (one clip held out for preview and evaluation);
2. `depth --from-files` (the synthetic ground-truth depth), `triangulate`, `align-scale`, `filter`;
3. `train --res tiny` for a few steps on the metric-scale clips, from a saved random tiny base (no
   released weights can be downloaded for a demo; `generate` resolves them when online);
4. `preview` of the held-out clip's first frame along its real trajectory;
5. `generate` with the tiny model (base + trained weights) on that image and trajectory: the whole
   sampling path with noise shaping; a random tiny model gives noise, not a scene;
6. `evaluate` of the held-out clip's rendered video (and of the generated one) against the
   ground-truth trajectory;
then a report: recovered factors against the truth, camera metrics, where every output is.

Usage: python examples/demo.py [--out demo_out] [--size 256x256] [--train-steps 30]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
console = Console()


def realcam(*args: str) -> None:
    cmd = [sys.executable, "-m", "realcam_cli", *map(str, args)]
    console.print(f"[bold cyan]$ realcam {' '.join(map(str, args))}[/]")
    t0 = time.perf_counter()
    result = subprocess.run(cmd)
    if result.returncode != 0:
        console.print(f"[bold red]demo: `realcam {args[0]}` failed with status {result.returncode}[/]")
        sys.exit(result.returncode)
    console.print(f"[dim]  ({time.perf_counter() - t0:.1f} s)[/]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    poses = sorted((DATA / "poses").glob("*.txt"))
    held_out, train_poses = poses[-1], poses[:-1]
    t_start = time.perf_counter()

    ds = out / "dataset"
    realcam("synth", "--poses", *train_poses, "--texture", DATA / "images", "--out", ds,
            "--random-scale", "0.1", "10", "--size", args.size, "--seed", args.seed)
    realcam("depth", ds, "--out", out / "depth", "--from-files", ds / "depth_gt")
    realcam("triangulate", ds, "--out", out / "sfm", "--workers", "2")
    realcam("align-scale", "--depth", out / "depth", "--sfm", out / "sfm", "--out", out / "scales")
    realcam("filter", out / "scales", "--cameras", ds, "--out", out / "filtered", "--quantile", "0.0")
    import torch

    from stages.models.checkpoint import save_checkpoint
    from stages.models.model import build_model

    torch.manual_seed(args.seed)
    base = save_checkpoint(build_model("tiny"), out / "base")
    console.print(f"saved a random tiny base model in {base}")
    realcam("train", "--data", out / "filtered", "--frames", ds, "--res", "tiny", "--out", out / "run",
            "--base-ckpt", base / "model.safetensors",
            "--steps", args.train_steps, "--batch", "1", "--lr", "1e-3", "--workers", "0",
            "--device", "cpu", "--precision", "fp32", "--ckpt-every", args.train_steps,
            "--seed", args.seed, "--train-unet")

    # A held-out clip: its first frame and true depth make the preview; its video is evaluated.
    held = out / "heldout"
    realcam("synth", "--poses", held_out, "--texture", DATA / "images", "--out", held,
            "--scale", "1.0", "--size", args.size, "--seed", args.seed + 1)
    clip = held_out.stem
    frames = sorted((held / "frames" / clip).glob("*.png"), key=lambda p: int(p.stem))
    depth0 = out / "heldout_depth0.npy"
    import numpy as np

    np.save(depth0, np.load(held / "depth_gt" / f"{clip}.npz")["depth"][0])
    realcam("preview", frames[0], held / "cameras" / f"{clip}.txt", "--out", out / "preview",
            "--depth", depth0, "--size", args.size, "--overwrite")
    realcam("generate", frames[0], held / "cameras" / f"{clip}.txt", "--ckpt", out / "base",
            "--camera-ckpt", out / "run" / "weights" / "model.safetensors", "--res", "tiny",
            "--depth", depth0, "--out", out / "generated" / f"{clip}.mp4", "--steps", "25",
            "--seed", args.seed)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    shutil.copytree(held / "frames" / clip, videos / clip, dirs_exist_ok=True)
    realcam("evaluate", videos, "--reference", held / "cameras", "--out", out / "eval", "--trials", "3",
            "--depth", held / "depth_gt", "--plot", "--seed", args.seed, "--overwrite")

    # ------------------------------------------------------------------------------------------
    truth = pd.read_parquet(ds / "truth.parquet")[["clip_id", "alpha"]]
    clips = pd.read_parquet(out / "scales" / "clips.parquet")[["clip_id", "scale", "status"]]
    merged = truth.merge(clips, on="clip_id", how="left")
    merged["error_%"] = 100 * (merged["scale"] / merged["alpha"] - 1)
    table = Table(title="metric scale: recovered factor against the truth")
    for col in ("clip", "true alpha", "recovered", "error %", "status"):
        table.add_column(col, justify="right")
    for r in merged.itertuples():
        table.add_row(r.clip_id, f"{r.alpha:.4f}", f"{r.scale:.4f}", f"{r._5:+.3f}", r.status)
    console.print(table)
    within = (merged["error_%"].abs() < 2).sum()
    console.print(f"{within}/{len(merged)} clips within 2 % of the truth")

    per_video = pd.read_parquet(out / "eval" / "per_video.parquet")
    summary = pd.read_parquet(out / "eval" / "summary.parquet")
    table = Table(title="camera metrics of the held-out video (SfM, 3 trials)")
    for col in ("video", "RotErr (rad)", "TransErr rel", "CamMC rel", "TransErr metric", "CamMC metric",
                "trials ok"):
        table.add_column(col, justify="right")
    for r in per_video.itertuples():
        table.add_row(r.video, f"{r.rot_err:.4f}", f"{r.trans_err_rel:.4f}", f"{r.cammc_rel:.4f}",
                      f"{r.trans_err_metric:.4f}", f"{r.cammc_metric:.4f}", f"{r.n_success}/{r.n_trials}")
    console.print(table)
    failure = float(summary.loc[summary["metric"] == "trial_failure_rate", "mean"].iloc[0])
    console.print(f"SfM trial failure rate: {failure:.0%}")
    realcam("evaluate", out / "generated", "--reference", held / "cameras", "--out", out / "eval_generated",
            "--trials", "2", "--seed", args.seed, "--overwrite")
    gen = pd.read_parquet(out / "eval_generated" / "per_video.parquet")
    for r in gen.itertuples():
        console.print(f"generated video {r.video} (tiny random model, 4 frames of 64x64): status {r.status}"
                      + (f" ({r.reason})" if r.reason else f", RotErr {r.rot_err:.4f}"))
    metrics = pd.read_parquet(out / "run" / "metrics.parquet")
    console.print(f"train (tiny, {len(metrics)} steps): loss first 5 mean {metrics['loss'].head(5).mean():.4f}, "
                  f"last 5 mean {metrics['loss'].tail(5).mean():.4f}")
    console.print(f"\n[bold]demo outputs[/] in {out}:")
    for name, what in (("dataset", "synthetic dataset + truth.parquet"), ("depth", "metric depth per clip"),
                       ("sfm", "COLMAP models, points, observations"), ("scales", "frames.parquet, clips.parquet"),
                       ("filtered", "keep/dropped, metric cameras"), ("base", "the tiny base model"), ("run", "training run: weights/, metrics"),
                       ("generated", "generated video, its preview and JSON record"),
                       ("preview", "preview.mp4, preview.npz, scene.ply, trajectory"),
                       ("eval", "per_trial/per_video/summary.parquet, plots/")):
        console.print(f"  {out / name}: {what}")
    console.print(f"demo finished in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
