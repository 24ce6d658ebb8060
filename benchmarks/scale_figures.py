"""The figures docs/scale.md rests on, measured on this machine: SfM CPU seconds per frame, depth
bytes per frame stored as whole maps (the baseline) and sampled at the SfM observations
(`--sample-depth`), and the FLOPs of one Depth Anything V2 Large forward at RealEstate10K's
aspect. GPU time is not measured here (no GPU); docs/scale.md states its assumption.

One synthetic clip along the longest bundled RealEstate10K trajectory, textured with the bundled
photos, at --size (default 640x360, RealEstate10K's 360p) and --frames frames.

Usage: python benchmarks/scale_figures.py [--frames 48] [--size 640x360] [--no-flops]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def large_flops(height: int, width: int) -> float:
    """FLOPs of one Depth Anything V2 Large forward (the released layout) at ``height x width``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        out_indices=[5, 12, 18, 24],
        patch_size=14,
        image_size=518,
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[256, 512, 1024, 1024],
        reassemble_hidden_size=1024,
        fusion_hidden_size=256,
        head_hidden_size=32,
        depth_estimation_type="metric",
        max_depth=20,
    )
    with torch.device("meta"):
        net = DepthAnythingForDepthEstimation(config).eval()
        x = torch.empty(1, 3, height, width)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(pixel_values=x)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--no-flops", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    from stages.depth import run_depth
    from stages.synth import synthesize
    from stages.triangulate import run_triangulate

    poses = max(sorted((DATA / "poses").glob("*.txt")), key=lambda p: len(p.read_text().splitlines()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lines = poses.read_text().splitlines()[: args.frames + 1]
        clip = tmp / "poses" / poses.name
        clip.parent.mkdir()
        clip.write_text("\n".join(lines) + "\n")
        images = sorted((DATA / "images").iterdir())
        synthesize([clip], tmp / "ds", scale=1.0, size=(width, height), textures=images, seed=0)
        n_frames = len(lines) - 1

        wall, cpu = time.perf_counter(), cpu_seconds()
        status, _ = run_triangulate(tmp / "ds", tmp / "sfm")
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        row = status.iloc[0]
        assert row["status"] == "ok", row["reason"]
        run_depth([tmp / "ds"], tmp / "maps", from_files=tmp / "ds" / "depth_gt")
        run_depth([tmp / "ds"], tmp / "samples", from_files=tmp / "ds" / "depth_gt", sample_at=tmp / "sfm")
        maps = (tmp / "maps" / f"{poses.stem}.npz").stat().st_size
        samples = (tmp / "samples" / f"{poses.stem}.samples.npz").stat().st_size

    console = Console()
    console.print(
        f"one clip: {n_frames} frames of {width}x{height} ({poses.stem}), {int(row['n_points'])} points, "
        f"{int(row['n_observations'])} observations ({row['n_observations'] / n_frames:.0f} per frame)"
    )
    sfm = Table(title="triangulate (pycolmap, one thread per clip)")
    for col in ("wall s", "CPU s", "CPU s / frame"):
        sfm.add_column(col, justify="right")
    sfm.add_row(f"{wall:.1f}", f"{cpu:.1f}", f"{cpu / n_frames:.3f}")
    console.print(sfm)
    size = Table(title="depth stored per clip (float16, compressed NPZ); baseline: whole maps")
    for col in ("storage", "bytes", "bytes / frame", "ratio to maps"):
        size.add_column(col, justify="left" if col == "storage" else "right")
    size.add_row("whole maps (depth)", f"{maps:,}", f"{maps / n_frames:,.0f}", "1.000")
    size.add_row(
        "at the observations (--sample-depth)", f"{samples:,}", f"{samples / n_frames:,.0f}", f"{samples / maps:.3f}"
    )
    console.print(size)
    if not args.no_flops:
        # the released processor: shorter side 518, aspect kept, multiples of 14
        h = 518
        w = int(round(518 * width / height / 14)) * 14
        flops = large_flops(h, w)
        console.print(
            f"Depth Anything V2 Large at {w}x{h} (a {width}x{height} frame): {flops / 1e12:.2f} TFLOP "
            "per frame (counted, torch.utils.flop_counter)"
        )


if __name__ == "__main__":
    main()
