"""ReCamMaster sampling cost: seconds per sampling step and peak memory, with and without
``--offload`` and VAE tiling, on randomly initialised parts of the real size (the 1.3B DiT, the
Wan2.1 VAE and UMT5-XXL: no weights needed) or, with ``--tiny``, on the tests' tiny parts.

Rows (same run): the full pipeline as ``rerender`` runs it (text encoding, source encoding, the
sampling steps with text CFG, decoding) with everything resident (the baseline), with
``--offload`` (text encoder and VAE off the GPU while the DiT runs), and without VAE tiling.
Prints a table: seconds per step, total seconds, peak GPU memory (CPU: peak resident memory) and
the ratio of each row's peak memory to the baseline's.

    PYTHONPATH=. python benchmarks/bench_rerender.py --device cuda [--frames 81 --size 832x480 --steps 3]
    PYTHONPATH=. python benchmarks/bench_rerender.py --tiny            # CPU smoke run of the same code
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace

import numpy as np
import torch

from stages import flow_matching as fm
from stages.models import wan, wan_original
from stages.models.recammaster import ReCamMaster
from stages.models.wan_original import DIT_1_3B
from stages.settings import RerenderSettings


def build_parts(tiny: bool, device: torch.device, dtype: torch.dtype) -> wan.WanParts:
    """Random parts: the real 1.3B configuration, or the tests' tiny one."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from stages.models import wan_tiny

    torch.manual_seed(0)
    if tiny:
        return wan.WanParts(
            ReCamMaster(wan_tiny.tiny_transformer()).to(device, dtype).eval(),
            wan_tiny.tiny_vae().to(device).eval(),
            wan_tiny.tiny_text_encoder().to(device, dtype).eval(),
            wan_tiny.tiny_tokenizer(),
            device,
            dtype,
        )
    with torch.device(device):
        transformer = WanTransformer3DModel(**DIT_1_3B).to(dtype)
        vae = AutoencoderKLWan(**wan_original.VAE_CONFIG).to(dtype)
        text_encoder = UMT5EncoderModel(UMT5Config(**wan_original.UMT5_XXL)).to(dtype)
    return wan.WanParts(
        ReCamMaster(transformer).eval(), vae.eval(), text_encoder.eval(), wan_tiny.tiny_tokenizer(), device, dtype
    )


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(parts: wan.WanParts, s: RerenderSettings, frames: np.ndarray) -> tuple[float, float, float]:
    """One re-rendering as the stage does it; returns (seconds per step, total seconds, peak MB)."""
    dev = parts.device
    for module in (parts.vae, parts.text_encoder):
        module.to(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    wan.set_tiling(parts.vae, s.tiling)
    positive = wan.encode_prompt(parts, [s.prompt])
    negative = wan.encode_prompt(parts, [s.negative_prompt])
    if s.offload:
        parts.text_encoder.to("cpu")
    z_source = wan.encode_video(parts, frames)
    if s.offload:
        parts.vae.to("cpu")
        torch.cuda.empty_cache()
    f = z_source.shape[2]
    cam = torch.zeros(1, f, 12, device=dev, dtype=parts.dtype)
    cam[:, :, [0, 5, 10]] = 1

    def branch(text):
        return lambda x, t: parts.model(x, z_source, t, text, cam)

    noise = torch.randn(z_source.shape, generator=torch.Generator().manual_seed(0)).to(dev, parts.dtype)
    steps_t = []

    def on_step(i, n):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        steps_t.append(time.perf_counter())

    t_sample = time.perf_counter()
    z = fm.sample(fm.guided(branch(positive), branch(negative), s.cfg), noise, s.steps, s.shift, on_step=on_step)
    if s.offload:
        parts.vae.to(dev)
    wan.decode_video(parts, z)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    total = time.perf_counter() - t0
    per_step = (steps_t[-1] - t_sample) / len(steps_t)
    return per_step, total, peak_mb(dev)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny parts (a CPU smoke run)")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--size", default=None, help="WxH (default 832x480; tiny: 64x32)")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    dev = torch.device(args.device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    w, h = (int(v) for v in (args.size or ("64x32" if args.tiny else "832x480")).split("x"))
    n = args.frames or (9 if args.tiny else 81)
    parts = build_parts(args.tiny, dev, dtype)
    frames = (np.random.default_rng(0).random((n, h, w, 3)) * 255).astype(np.uint8)
    base = RerenderSettings(size=(w, h), frames=n, steps=args.steps, prompt="a street").check()
    rows = []
    for name, s in (
        ("resident, tiling (baseline)", base),
        ("--offload, tiling", replace(base, offload=dev.type == "cuda")),
        ("resident, no tiling", replace(base, tiling=False)),
    ):
        per_step, total, peak = run(parts, s, frames)
        rows.append((name, per_step, total, peak))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(
        f"device: {name}; {'tiny' if args.tiny else '1.3B'} parts, {n} frames of {w}x{h}, {args.steps} steps, {dtype}"
    )
    print("\n| run | s / step (CFG: 2 DiT calls) | total s | peak MB | peak vs baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, per_step, total, peak in rows:
        print(f"| {name} | {per_step:.3f} | {total:.1f} | {peak:.0f} | {peak / rows[0][3]:.2f}x |")
    if dev.type != "cuda":
        print("(CPU: peak is the process's peak resident memory, so it never goes down between rows)")


if __name__ == "__main__":
    main()
