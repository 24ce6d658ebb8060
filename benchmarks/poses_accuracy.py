"""Accuracy of ``realcam poses`` on synthetic dynamic clips with known cameras, depth and masks.

Each bundled RealEstate10K trajectory is rendered (``synth --dynamic``) with moving boxes covering
a share of the image; the stage then runs on the frames three ways, measured in the same run:
with the ground-truth masks, with the built-in geometric masks, and with no masks (the baseline).
Per clip and way it reports the ATE-aligned errors against the true trajectory
(``evaluate``'s ``ate_aligned``: position error as a share of the path's extent, rotation error in
degrees), the metric factor's error (the recovered path's extent against the true one, exact
depth) and the focal length's error; for the geometric masks also their IoU with the truth.

    PYTHONPATH=. python benchmarks/poses_accuracy.py [--size 256x160] [--share 0.2 0.4] [--out /tmp/poses_bench]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from stages.core import cameras as cam
from stages.core.video import read_image
from stages.evaluate.metrics import ate_aligned

ROOT = Path(__file__).resolve().parents[1]


def realcam(*args) -> None:
    subprocess.run([sys.executable, "-m", "realcam_cli", *map(str, args)], check=True)


def extent(c2w: np.ndarray) -> float:
    return float(np.linalg.norm(c2w[:, :3, 3], axis=1).max())


def score(ds: Path, out: Path, clip: str) -> dict:
    row = pd.read_parquet(out / "poses.parquet").set_index("clip_id").loc[clip]
    if row["status"] != "ok":
        return {"status": f"{row['status']}: {row['reason']}"}
    truth = cam.read_re10k(ds / "cameras" / f"{clip}.txt")
    est = cam.read_re10k(out / "cameras" / f"{clip}.txt")
    keep = np.isin(truth.timestamps, est.timestamps)
    gt = cam.relative_poses(truth.c2w[keep], reference=0)
    c2w = cam.relative_poses(est.c2w, reference=0)
    ate = ate_aligned(c2w, gt)
    return {
        "status": "ok",
        "registered": f"{int(row['registered'])}/{int(row['frames'])}",
        "ate_%": 100 * ate["ate_trans"] / extent(gt),
        "rot_deg": ate["ate_rot_deg"],
        "factor_err_%": 100 * (extent(c2w) / extent(gt) - 1),
        "focal_err_%": 100 * (est.intrinsics[0, 0] / truth.intrinsics[0, 0] - 1),
    }


def iou(ds: Path, out: Path, clip: str) -> float:
    inter = union = 0
    for f in sorted((ds / "masks" / clip).glob("*.png")):
        gt = read_image(f) > 0
        est = out / "masks" / clip / f.name
        if not est.exists():
            continue
        e = read_image(est) > 0
        gt = gt if gt.ndim == 2 else gt[..., 0]
        e = e if e.ndim == 2 else e[..., 0]
        inter += int((gt & e).sum())
        union += int((gt | e).sum())
    return inter / union if union else float("nan")


def markdown(df: pd.DataFrame) -> str:
    """A Markdown table (numbers to 2 decimals) without extra dependencies."""
    cols = list(df.columns)
    fmt = lambda v: f"{v:.2f}" if isinstance(v, (float, np.floating)) else str(v)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="256x160")
    ap.add_argument("--share", type=float, nargs=2, default=(0.2, 0.4))
    ap.add_argument("--out", default="/tmp/poses_bench")
    args = ap.parse_args()
    work = Path(args.out)
    shutil.rmtree(work, ignore_errors=True)
    ds = work / "ds"
    poses = sorted((ROOT / "examples" / "data" / "poses").glob("*.txt"))
    realcam(
        "synth",
        "--poses",
        *poses,
        "--out",
        ds,
        "--size",
        args.size,
        "--scale",
        1,
        "--dynamic",
        "--moving-share",
        *args.share,
    )
    videos = work / "videos"
    videos.mkdir()
    for clip in sorted(p.name for p in (ds / "frames").iterdir()):
        (videos / clip).symlink_to(ds / "frames" / clip)
    common = ["--fps", 30, "--depth", ds / "depth_gt", "--min-registered", 0.5]
    ways = {
        "ground-truth masks": ["--masks", ds / "masks", "--dilate", 2],
        "geometric masks": ["--mask-method", "geometric"],
        "no masks (baseline)": ["--mask-method", "none"],
    }
    rows = []
    for way, extra in ways.items():
        out = work / way.split()[0]
        realcam("poses", videos, "--out", out, *common, *extra)
        for clip in sorted(p.name for p in videos.iterdir()):
            r = {"clip": clip, "masks": way, **score(ds, out, clip)}
            if way.startswith("geometric"):
                r["mask_IoU"] = iou(ds, out, clip)
            rows.append(r)
    table = pd.DataFrame(rows)
    truth = pd.read_parquet(ds / "truth.parquet")
    share = truth.set_index("clip_id").filter(like="share")
    print(f"\nsynthetic dynamic clips at {args.size}, moving share requested {args.share}; realised:")
    print(share.to_string())
    print()
    print(markdown(table))
    print("\nmeans per way:")
    cols = ["ate_%", "rot_deg", "factor_err_%", "focal_err_%"]
    means = table.groupby("masks")[cols].agg(lambda v: np.abs(v).mean()).reset_index()
    print(markdown(means))


if __name__ == "__main__":
    main()
