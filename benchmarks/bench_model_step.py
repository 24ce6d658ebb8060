"""One denoising step and one training step of the camera-controlled model: wall time and peak memory.

On CUDA (H100/H200): the ``512`` config (16 frames, 512x320, batch 1, fp16) with and without the
camera modules (baseline: the base model, camera ``none``), and the training-step peak memory of
the ``256`` config with gradient checkpointing (camera modules trainable, fp16 autocast; the
reference reports under 24 GB). Without CUDA it runs the ``tiny`` config on the CPU (float32).

    PYTHONPATH=. python benchmarks/bench_model_step.py [--config 512] [--train-config 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from stages.models import build_model, set_trainable


def _inputs(model, device, dtype, batch=1):
    cfg = model.config
    t = cfg.frames
    h, w = cfg.latent_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, t, h, w, generator=g).to(device, dtype)
    concat = torch.randn(batch, 4, 1, h, w, generator=g).expand(batch, 4, t, h, w).to(device, dtype)
    ctx = torch.randn(batch, 77 + t * cfg.unet.image_tokens_per_frame, cfg.unet.context_dim, generator=g).to(
        device, dtype
    )
    f = 0.5 * max(cfg.width, cfg.height)
    k = torch.tensor([[f, 0, cfg.width / 2], [0, f, cfg.height / 2], [0, 0, 1.0]]).expand(batch, t, 3, 3)
    c2w = torch.eye(4).repeat(batch, t, 1, 1)
    c2w[:, :, 0, 3] = torch.linspace(0, 1, t)
    ts = torch.full((batch,), 500, dtype=torch.long)
    return x, ts.to(device), ctx, concat, k.to(device), c2w.to(device)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak(device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def denoise_step(config, camera, device, dtype, repeats):
    model = build_model(config, camera=camera, encoders=False, gradient_checkpointing=False)
    model = model.to(device, dtype).eval()
    x, ts, ctx, concat, k, c2w = _inputs(model, device, dtype)
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            _peak_reset(device)
            _sync(device)
            t0 = time.perf_counter()
            model(x, ts, ctx, concat, k=k, c2w=c2w)
            _sync(device)
            if i:  # first call is warm-up
                times.append(time.perf_counter() - t0)
    peak = _peak(device)
    del model
    return min(times), peak


def train_step(config, camera, device, dtype, checkpointing):
    model = build_model(config, camera=camera, encoders=False, gradient_checkpointing=checkpointing)
    model = model.to(device).train()  # fp32 master weights, fp16 autocast (mixed precision)
    set_trainable(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)
    x, ts, ctx, concat, k, c2w = _inputs(model, device, torch.float32)
    _peak_reset(device)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(2):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(x, ts, ctx, concat, k=k, c2w=c2w).float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    wall = (time.perf_counter() - t0) / 2
    peak = _peak(device)
    del model, opt
    return wall, peak


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=None)
    parser.add_argument("--train-config", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    config = args.config or ("512" if cuda else "tiny")
    train_config = args.train_config or ("256" if cuda else "tiny")
    name = torch.cuda.get_device_name() if cuda else "CPU (no GPU)"
    print(f"device: {name}; dtype {dtype}; torch {torch.__version__}")
    rows = []
    base_t, base_m = denoise_step(config, "none", device, dtype, args.repeats)
    rows.append((f"denoise step {config}, camera none (baseline)", base_t, base_m, 1.0))
    for camera in ("cameractrl", "realcam"):
        t, m = denoise_step(config, camera, device, dtype, args.repeats)
        rows.append((f"denoise step {config}, camera {camera}", t, m, t / base_t))
    t, m = train_step(train_config, "realcam", device, dtype, checkpointing=True)
    rows.append((f"train step {train_config}, realcam, grad. checkpointing", t, m, float("nan")))
    print(f"{'what':58s} {'wall s':>9s} {'peak GiB':>9s} {'x baseline':>10s}")
    for what, t, m, r in rows:
        print(f"{what:58s} {t:9.3f} {m:9.2f} {r:10.2f}")


if __name__ == "__main__":
    main()
