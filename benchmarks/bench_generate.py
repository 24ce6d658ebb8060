"""Benchmark: seconds per generated video with noise shaping on and off, and peak memory.

Baseline: the same sampling with noise shaping off (``t_NS = 1000``), measured in the same run;
target: shaping adds under 3 % time. On CUDA (H100/H200): the ``512`` config with random weights,
16 frames at 512x320, 25 DDIM steps, text-image CFG 7.5 (two UNet passes per step), fp16; the
reference publishes 12.8 GB peak for DynamiCrafter 512 sampling. Without CUDA: the ``tiny`` config
on the CPU (float32), which only checks the relative cost of shaping.

The preview is synthetic (random frames, a random partial latent mask; the model is random
anyway), so the figure is the sampler's: conditioning encoders + DDIM + guidance + shaping + VAE
decode, not depth or preview rendering (see bench_preview.py for those).

    PYTHONPATH=. python benchmarks/bench_generate.py [--config 512] [--steps 25] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from stages import generate as g
from stages.models import build_model

REFERENCE_PEAK_GB = 12.8  # DynamiCrafter 512, published


def main() -> None:
    ap = argparse.ArgumentParser()
    cuda = torch.cuda.is_available()
    ap.add_argument("--config", default="512" if cuda else "tiny")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dtype", default="fp16" if cuda else "fp32")
    args = ap.parse_args()
    device = "cuda" if cuda else "cpu"
    dtype = g.DTYPES[args.dtype]
    torch.manual_seed(0)
    model = build_model(args.config, camera="realcam").to(device=device, dtype=dtype).eval()
    cfg = model.config
    h, w = cfg.latent_size
    rng = np.random.default_rng(0)
    preview = g.PreviewInputs(
        frames=rng.integers(0, 256, (cfg.frames, cfg.height, cfg.width, 3), dtype=np.uint8),
        latent_masks=rng.random((cfg.frames, h, w)) < 0.6,
        k=np.repeat(
            np.array(
                [
                    [0.5 * max(cfg.width, cfg.height), 0, cfg.width / 2],
                    [0, 0.5 * max(cfg.width, cfg.height), cfg.height / 2],
                    [0, 0, 1.0],
                ]
            )[None],
            cfg.frames,
            0,
        ),
        c2w=np.stack(
            [np.eye(4) + np.pad(np.array([[0, 0, 0, 0.05 * i]]), ((0, 3), (0, 0))) for i in range(cfg.frames)]
        ),
        folder=None,
    )
    image = preview.frames[0]
    rows = []
    for label, t_ns in (
        ("shaping off (t_NS=1000), baseline", 1000),
        ("shaping on (t_NS=900)", 900),
        ("shaping on (t_NS=800)", 800),
    ):
        times = []
        for r in range(args.repeats + 1):  # the first run warms up
            settings = g.GenerateSettings(
                res=cfg.name, steps=args.steps, noise_shaping=t_ns, seed=r, negative_prompt=""
            )  # no tokenizer offline
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=dtype, enabled=cuda and dtype != torch.float32):
                cond = g.build_conditioning(model, image, preview, settings, device, dtype)
                z = g.run_sampling(cond, settings)
                g.decode_frames(model, z)
            if cuda:
                torch.cuda.synchronize()
            if r:
                times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")
        rows.append((label, float(np.median(times)), peak))
    base = rows[0][1]
    table = Table(
        title=f"generate: {args.config} config, {cfg.frames} frames {cfg.width}x{cfg.height}, "
        f"{args.steps} steps, CFG 7.5, {args.dtype}, {device}"
    )
    for col in ("run", "s / video", "vs baseline", "peak GB", "vs reference 12.8 GB"):
        table.add_column(col)
    for label, sec, peak in rows:
        table.add_row(
            label,
            f"{sec:.2f}",
            f"{sec / base:.3f}x",
            "-" if np.isnan(peak) else f"{peak:.2f}",
            "-" if np.isnan(peak) else f"{peak / REFERENCE_PEAK_GB:.2f}x",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
