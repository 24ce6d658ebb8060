"""Benchmark: `realcam depth` frames per second against a naive per-image loop with
``transformers.pipeline("depth-estimation")`` on the same model, in the same run.

The model is a randomly initialised Depth Anything V2 metric model of the chosen architecture
(``small`` or ``large``, the released layouts; random weights time the same as trained ones), saved
to a temporary folder so both paths load it the same way. Ours: ``stages.depth.predict_depth``
(batches, the chosen dtype). Baseline: one pipeline call per PIL image (fp32, batch 1).
With ``--flops`` the forward's FLOPs are counted (torch.utils.flop_counter) and compared with the
device's measured dense fp16 (CUDA) / fp32 (CPU) matrix-multiply rate.
Usage: python benchmarks/bench_depth.py [--arch small|large] [--resolution 518] [--frames 8]
       [--batch-size 4] [--device auto] [--dtype auto] [--flops]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ARCHS = {
    # DINOv2 backbone size, neck, fusion and head sizes of the released Depth Anything V2 models
    "small": dict(hidden=384, layers=12, heads=6, out=[3, 6, 9, 12], neck=[48, 96, 192, 384], fusion=64),
    "large": dict(hidden=1024, layers=24, heads=16, out=[5, 12, 18, 24], neck=[256, 512, 1024, 1024], fusion=256),
}


def build_model(arch: str, folder: Path, resolution: int) -> Path:
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    a = ARCHS[arch]
    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=a["hidden"],
        num_hidden_layers=a["layers"],
        num_attention_heads=a["heads"],
        intermediate_size=4 * a["hidden"],
        out_indices=a["out"],
        patch_size=14,
        image_size=518,
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=a["neck"],
        reassemble_hidden_size=a["hidden"],
        fusion_hidden_size=a["fusion"],
        head_hidden_size=32,
        depth_estimation_type="metric",
        max_depth=20,
    )
    model = DepthAnythingForDepthEstimation(config)
    model.save_pretrained(folder)
    DPTImageProcessor(
        size={"height": resolution, "width": resolution},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder, sum(p.numel() for p in model.parameters())


def matmul_rate(device: str, dtype) -> float:
    """Measured dense matrix-multiply FLOP/s on ``device`` at ``dtype``."""
    import torch

    n = 8192 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    reps = 50 if device.startswith("cuda") else 5
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", choices=sorted(ARCHS), default="small")
    parser.add_argument("--resolution", type=int, default=518)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--flops", action="store_true")
    args = parser.parse_args()
    import torch
    from PIL import Image
    from transformers import pipeline

    from stages.core.device import resolve_device
    from stages.depth import load_model, predict_depth

    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(args.frames)]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        folder, n_params = build_model(args.arch, Path(tmp) / "model", args.resolution)
        pipe = pipeline("depth-estimation", model=str(folder), device=device)
        pipe(Image.fromarray(images[0]))  # warm-up
        sync()
        t0 = time.perf_counter()
        for img in images:
            pipe(Image.fromarray(img))
        sync()
        naive = time.perf_counter() - t0
        del pipe
        predict_depth(
            images[: args.batch_size], str(folder), device=device, dtype=args.dtype, batch_size=args.batch_size
        )  # warm-up
        sync()
        t0 = time.perf_counter()
        predict_depth(images, str(folder), device=device, dtype=args.dtype, batch_size=args.batch_size)
        sync()
        ours = time.perf_counter() - t0
        _, net, _, _ = load_model(str(folder), device, args.dtype)
        dtype = next(net.parameters()).dtype
        side = round(args.resolution / 14) * 14
        table = Table(
            title=f"depth: Depth Anything V2 {args.arch} ({n_params / 1e6:.1f} M params, random "
            f"weights), 256x256 frames at {side} px, {args.frames} frames, {device}"
        )
        for col in ("path", "dtype", "batch", "s", "frames / s", "ratio"):
            table.add_column(col, justify="right")
        table.add_row(
            'pipeline("depth-estimation") loop', "fp32", "1", f"{naive:.2f}", f"{args.frames / naive:.2f}", "1.00x"
        )
        table.add_row(
            "realcam predict_depth",
            str(dtype).replace("torch.", ""),
            str(args.batch_size),
            f"{ours:.2f}",
            f"{args.frames / ours:.2f}",
            f"{naive / ours:.2f}x",
        )
        Console().print(table)
        if args.flops:
            from torch.utils.flop_counter import FlopCounterMode

            x = torch.randn(1, 3, side, side, device=device, dtype=dtype)
            with FlopCounterMode(display=False) as counter, torch.inference_mode():
                net(pixel_values=x)
            flops = counter.get_total_flops()
            rate = matmul_rate(device, dtype)
            achieved = flops * args.frames / ours
            Console().print(
                f"FLOPs per {side}x{side} frame: {flops / 1e9:.1f} G; achieved "
                f"{achieved / 1e12:.3f} TFLOP/s; measured {str(dtype)} matmul rate "
                f"{rate / 1e12:.3f} TFLOP/s; fraction {achieved / rate * 100:.1f} %"
            )


if __name__ == "__main__":
    main()
