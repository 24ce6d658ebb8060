"""Camera control on Wan2.1 (``--model wan-camera``): seconds per step and peak memory of the DiT
with the Plücker patchify layer against the same DiT without it (the baseline), on random weights
of the real size (Wan2.1-T2V-1.3B, bf16 on CUDA) or, with ``--tiny``, the tests' tiny DiT on the CPU.

Rows (same run, same latents): one DiT call without and with the camera (the packing of the
81 frames' Plücker embedding included); one sampling step with text CFG (2 calls, the baseline's
sampling) and with text and camera CFG (3 calls); one training step (forward, backward, AdamW;
gradient checkpointing as ``train`` runs) of the base DiT and of the camera DiT, all parameters
trained. Ratios are against the row's baseline.

    PYTHONPATH=. python benchmarks/bench_wan_camera.py --device cuda [--frames 81 --size 832x480]
    PYTHONPATH=. python benchmarks/bench_wan_camera.py --tiny          # CPU smoke run of the same code
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from stages import flow_matching as fm
from stages.core import trajectory as tr
from stages.models import wan_tiny
from stages.models.wan_camera import WanCamera
from stages.models.wan_original import DIT_1_3B


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, device: torch.device, repeats: int) -> tuple[float, float]:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up, and the peak memory."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), peak_mb(device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny DiT (a CPU smoke run)")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--size", default=None, help="WxH (default 832x480; tiny: 64x32)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    dev = torch.device(args.device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    w, h = (int(v) for v in (args.size or ("64x32" if args.tiny else "832x480")).split("x"))
    n = args.frames or (9 if args.tiny else 81)
    torch.manual_seed(0)
    if args.tiny:
        transformer = wan_tiny.tiny_transformer().to(dev, dtype)
    else:
        from diffusers import WanTransformer3DModel

        with torch.device(dev):
            transformer = WanTransformer3DModel(**DIT_1_3B).to(dtype)
    model = WanCamera(transformer)
    with torch.no_grad():  # a non-zero layer, as after training
        model.camera_patchify.weight.normal_(0, 0.01)
    cfg = transformer.config
    f = (n - 1) // 4 + 1
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, cfg.in_channels, f, h // 8, w // 8, generator=g).to(dev, dtype)
    text = torch.randn(1, 512, cfg.text_dim, generator=g).to(dev, dtype)
    t = torch.tensor([500.0], device=dev)
    traj = tr.dense_trajectory(tr.preset_trajectory("orbit-left", None, n), n)
    k = torch.as_tensor(np.broadcast_to(traj.pixel_intrinsics(w, h), (n, 3, 3)).copy())[None]
    c2w = torch.as_tensor(traj.c2w)[None]

    def call(camera: bool):
        plucker = model.camera_input(k, c2w, h, w).to(dev) if camera else None
        return model(x, t, text, plucker)

    rows = []
    with torch.no_grad():
        transformer.eval()
        for name, camera in (("DiT call, no camera (baseline)", False), ("DiT call, camera", True)):
            rows.append((name, *timed(lambda c=camera: call(c), dev, args.repeats), "call"))
        plucker = model.camera_input(k, c2w, h, w).to(dev)

        def branch(camera):
            return lambda x_, t_: model(x_, t_, text, camera)

        text_cfg = fm.guided(branch(plucker), branch(plucker), 5.0)
        both = fm.guided(branch(plucker), branch(plucker), 5.0, branch(None), 2.0)
        for name, velocity in (
            ("sampling step, text CFG (2 calls; baseline)", text_cfg),
            ("sampling step, text + camera CFG (3 calls)", both),
        ):
            rows.append((name, *timed(lambda v=velocity: v(x, t), dev, args.repeats), "step"))

    transformer.train()
    transformer.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=0.01)
    target = torch.randn(x.shape, generator=g).to(dev, dtype)

    def train_step(camera: bool):
        optimizer.zero_grad(set_to_none=True)
        loss = ((call(camera).float() - target.float()) ** 2).mean()
        loss.backward()
        optimizer.step()

    rows.append(("training step, base DiT (baseline)", *timed(lambda: train_step(False), dev, args.repeats), "train"))
    rows.append(("training step, camera DiT", *timed(lambda: train_step(True), dev, args.repeats), "train"))

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    params = sum(p.numel() for p in transformer.parameters())
    size = "tiny" if args.tiny else "1.3B"
    print(f"device: {name}; {size} DiT ({params / 1e6:.1f} M parameters with the camera layer)")
    tokens = f * (h // 16) * (w // 16)
    print(f"{n} frames of {w}x{h} ({f} latent frames, {tokens} tokens), {dtype}, median of {args.repeats}")
    print("\n| run | s | peak MB | time vs baseline | peak vs baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    base = {}
    for row, sec, peak, group in rows:
        base.setdefault(group, (sec, peak))
        print(f"| {row} | {sec:.3f} | {peak:.0f} | {sec / base[group][0]:.2f}x | {peak / base[group][1]:.2f}x |")
    if dev.type != "cuda":
        print("(CPU: peak is the process's peak resident memory, so it never goes down between rows)")


if __name__ == "__main__":
    main()
