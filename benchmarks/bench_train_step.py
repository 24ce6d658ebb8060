"""Benchmark: training-step throughput and peak memory, DeepSpeed ZeRO-1 against plain PyTorch.

Same model (random weights), same synthetic micro-batch, same number of steps, in one run:
- baseline: plain PyTorch, Adam over the camera modules, AMP fp16 + GradScaler on CUDA (fp32 on CPU);
- realcam: the DeepSpeed engine that ``realcam train`` uses (ZeRO-1, fp16 on CUDA, fp32 on CPU).

Usage: python benchmarks/bench_train_step.py [--res tiny|256|512] [--steps 5] [--device auto]
On a CPU only ``tiny`` is practical; the issue's figures (256/512, fp16) need a CUDA GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch
from rich.console import Console
from rich.table import Table

from stages.core.cameras import default_intrinsics
from stages.core.device import resolve_device
from stages.models.model import build_model
from stages.models.trainable import set_trainable
from stages.train.loop import (
    DiffusionTrainer,
    TrainConfig,
    deepspeed_config,
    init_distributed,
    scalar_parameters_as_vectors,
    shutdown,
)


def make_batch(cfg, device):
    t = cfg.frames
    c2w = torch.eye(4).repeat(1, t, 1, 1)
    c2w[0, :, 0, 3] = torch.linspace(0, 0.5, t)
    return {
        "video": torch.rand(1, 3, t, cfg.height, cfg.width) * 2 - 1,
        "k": torch.tensor(default_intrinsics(cfg.width, cfg.height), dtype=torch.float32).expand(1, t, 3, 3),
        "c2w": c2w,
        "cond_frame": torch.tensor([0]),
        "stride": torch.tensor([8]),
        "caption": [""],
    }


def peak_mb(device):
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(step, device, steps):
    """Mean seconds of ``step()`` over ``steps`` calls after one warm-up call, and peak memory."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps + 1):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times), peak_mb(device)


def run_plain(res, device, steps, batch):
    torch.manual_seed(0)
    model = build_model(res, camera="realcam")
    set_trainable(model)
    trainer = DiffusionTrainer(model).to(device)
    opt = torch.optim.Adam([p for p in trainer.parameters() if p.requires_grad], lr=1e-4)
    cuda = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    gen = torch.Generator().manual_seed(0)

    def step():
        ctx = torch.autocast("cuda", dtype=torch.float16) if cuda else contextlib.nullcontext()
        with ctx:
            loss = trainer(batch, gen)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_([p for p in trainer.parameters() if p.requires_grad], 0.5)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return time_steps(step, device, steps)


def run_deepspeed(res, device, steps, batch):
    import deepspeed

    torch.manual_seed(0)
    model = build_model(res, camera="realcam")
    set_trainable(model)
    trainer = DiffusionTrainer(model).to(device)
    cfg = TrainConfig(
        data="",
        frames_root="",
        out="",
        res=res,
        batch=1,
        micro_batch=1,
        precision="fp16" if device.startswith("cuda") else "fp32",
    )
    with scalar_parameters_as_vectors(trainer):
        engine, _, _, _ = deepspeed.initialize(
            model=trainer,
            config=deepspeed_config(cfg, 1),
            model_parameters=[p for p in trainer.parameters() if p.requires_grad],
        )
    gen = torch.Generator().manual_seed(0)

    def step():
        loss = engine(batch, gen)
        engine.backward(loss)
        engine.step()

    return time_steps(step, device, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--res", default="tiny")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/realcam/torch_extensions"))
    device = resolve_device(args.device)
    init_distributed(device)
    cfg = build_model(args.res, camera="none", encoders=False, device="meta").config
    batch = make_batch(cfg, device)
    # DeepSpeed casts the module; run it last so the plain run sees a fresh model.
    plain_s, plain_mb = run_plain(args.res, device, args.steps, batch)
    ds_s, ds_mb = run_deepspeed(args.res, device, args.steps, batch)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    table = Table(title=f"train step, {args.res}, micro-batch 1, {cfg.frames} frames, {name}")
    for col in ("runner", "s / step", "samples / s", "peak memory MB", "speed vs plain"):
        table.add_column(col, justify="right")
    table.add_row(
        "plain PyTorch" + (" AMP fp16" if device.startswith("cuda") else " fp32"),
        f"{plain_s:.3f}",
        f"{1 / plain_s:.2f}",
        f"{plain_mb:.0f}",
        "1.00x",
    )
    table.add_row(
        "DeepSpeed ZeRO-1" + (" fp16" if device.startswith("cuda") else " fp32"),
        f"{ds_s:.3f}",
        f"{1 / ds_s:.2f}",
        f"{ds_mb:.0f}",
        f"{plain_s / ds_s:.2f}x",
    )
    Console().print(table)
    shutdown()


if __name__ == "__main__":
    main()
