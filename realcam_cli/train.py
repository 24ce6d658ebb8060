"""``realcam train``: fit the camera modules with DeepSpeed (ZeRO-1) on metric-scale clips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import typer

from stages.core.errors import RealcamError
from stages.settings import RecamTrainConfig, TrainConfig, WanCameraTrainConfig

from .ui import console, progress_bar, report


def _launch(gpus: int, nodes: int, hostfile: Optional[Path]) -> int:
    """Re-run this command under the DeepSpeed launcher, one process per GPU."""
    launcher = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
    if not Path(launcher).exists():
        raise RealcamError("the deepspeed launcher is not installed", "--gpus")
    cmd = [launcher, "--num_gpus", str(gpus)]
    if nodes > 1:
        if hostfile is None:
            raise RealcamError("several nodes need a hostfile", "--hostfile")
        cmd += ["--num_nodes", str(nodes), "--hostfile", str(hostfile)]
    cmd += ["--module", "realcam_cli"] + sys.argv[1:]
    console.print(f"launching: {' '.join(cmd)}")
    return subprocess.call(cmd, env={**os.environ, "REALCAM_LAUNCHED": "1"})


def train(
    data: Path = typer.Option(
        ...,
        "--data",
        help="Output folder of `realcam filter` (keep.parquet, cameras/); recammaster: a MultiCamVideo root.",
    ),
    frames: Optional[Path] = typer.Option(
        None, "--frames", help="Dataset root with frames/<clip_id>/ (or videos/<clip_id>.mp4); not for recammaster."
    ),
    model: str = typer.Option(
        "realcam",
        "--model",
        help=(
            "realcam (camera modules on DynamiCrafter), recammaster (ReCamMaster on Wan2.1) or wan-camera "
            "(CameraCtrl II's Plücker patchify on Wan2.1, on the same metric clips as realcam)."
        ),
    ),
    res: str = typer.Option(TrainConfig.res, "--res", help="Model resolution: tiny, small, 256, 512 or 1024."),
    out: Path = typer.Option(
        ...,
        "--out",
        help=(
            "Run folder: checkpoints/ (DeepSpeed, for --resume), weights/ (trained weights as safetensors), "
            "metrics.parquet."
        ),
    ),
    gpus: int = typer.Option(1, "--gpus", help="Processes (GPUs) per node; > 1 starts the DeepSpeed launcher."),
    nodes: int = typer.Option(1, "--nodes", help="Nodes (with --hostfile)."),
    hostfile: Optional[Path] = typer.Option(None, "--hostfile", help="DeepSpeed hostfile for several nodes."),
    steps: Optional[int] = typer.Option(
        None,
        "--steps",
        help=(
            f"Optimiser steps (default {TrainConfig.steps}; recammaster {RecamTrainConfig.steps}, "
            f"wan-camera {WanCameraTrainConfig.steps})."
        ),
    ),
    batch: Optional[int] = typer.Option(
        None,
        "--batch",
        help=(
            "Effective batch (micro-batch x processes x accumulation; default "
            f"{TrainConfig.batch}, recammaster {RecamTrainConfig.batch}, wan-camera {WanCameraTrainConfig.batch})."
        ),
    ),
    micro_batch: int = typer.Option(
        TrainConfig.micro_batch, "--micro-batch", help="Samples per process per forward pass."
    ),
    lr: float = typer.Option(TrainConfig.lr, "--lr", help="Constant learning rate (Adam)."),
    base_ckpt: Optional[List[Path]] = typer.Option(
        None, "--base-ckpt", help="DynamiCrafter model.ckpt (and optionally camera weights) to start from."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out."),
    precision: str = typer.Option("auto", "--precision", help="auto (fp16 on CUDA, fp32 on CPU), fp16, bf16 or fp32."),
    relative_scale: bool = typer.Option(
        False, "--relative-scale", help="Ablation: the dataset's own SfM scale instead of metric cameras."
    ),
    seed: int = typer.Option(TrainConfig.seed, "--seed", help="Seed of data order, noise and initialisation."),
    ckpt_every: int = typer.Option(TrainConfig.ckpt_every, "--ckpt-every", help="Checkpoint every K steps."),
    log_every: int = typer.Option(TrainConfig.log_every, "--log-every", help="Write metrics.parquet every K steps."),
    workers: int = typer.Option(TrainConfig.workers, "--workers", help="Data-loading worker processes."),
    captions: Optional[Path] = typer.Option(None, "--captions", help="Table with clip_id, caption (Parquet or CSV)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    train_unet: bool = typer.Option(
        False,
        "--train-unet",
        help="Also train the UNet weights (full fine-tuning); by default only the camera modules train.",
    ),
    epipolar_form: str = typer.Option(
        TrainConfig.epipolar_form,
        "--epipolar-form",
        help=(
            "Epipolar masks: exact (per-frame intrinsics, pixel-centre cells) or official (as the released "
            "weights were trained; use it to fine-tune them). Saved with the weights."
        ),
    ),
    base: str = typer.Option(
        RecamTrainConfig.base, "--base", help="recammaster, wan-camera: the Wan2.1 base (Hub id or folder)."
    ),
    weights: Optional[Path] = typer.Option(
        None,
        "--weights",
        help="recammaster, wan-camera: weights of that model to start from (default: the base DiT).",
    ),
    size: str = typer.Option("832x480", "--size", help="recammaster, wan-camera: WIDTHxHEIGHT of the training clips."),
    num_frames: int = typer.Option(
        RecamTrainConfig.frames, "--num-frames", help="recammaster, wan-camera: frames per clip (4k+1)."
    ),
    unlabelled_ratio: float = typer.Option(
        WanCameraTrainConfig.unlabelled_ratio,
        "--unlabelled-ratio",
        help="wan-camera: share of samples trained without cameras (zero Plücker; CameraCtrl II 4:1).",
    ),
    tasks: str = typer.Option(
        ",".join(f"{r:g}" for r in WanCameraTrainConfig.tasks),
        "--tasks",
        help="wan-camera: T2V,I2V,EXTEND ratios (stage 1 of the paper 0.7,0.3,0; stage 2 0.5,0.3,0.2).",
    ),
    warmup: int = typer.Option(
        WanCameraTrainConfig.warmup,
        "--warmup",
        help="wan-camera: warm-up steps from lr/2 to --lr, then a cosine decay to 1e-5 (the paper's schedule).",
    ),
    camera_lr_scale: Optional[float] = typer.Option(
        None,
        "--camera-lr-scale",
        help=(
            "wan-camera: the camera layer's learning rate over --lr (default: the patch embedding's fan-in over "
            "the camera layer's, 1/96 on Wan2.1; 1 = one rate for all, as the paper states)."
        ),
    ),
    trainable: str = typer.Option(
        WanCameraTrainConfig.trainable,
        "--trainable",
        help="wan-camera: all (every DiT parameter, CameraCtrl II) or camera (the patchify layer only).",
    ),
    local_rank: Optional[int] = typer.Option(None, "--local_rank", hidden=True),
) -> None:
    """Train camera control with DeepSpeed: RealCam-I2V (DynamiCrafter), ReCamMaster or wan-camera (Wan2.1)."""
    from stages.core.device import resolve_device
    from stages.train.loop import train as run_train

    if (gpus > 1 or nodes > 1) and "LOCAL_RANK" not in os.environ and not os.environ.get("REALCAM_LAUNCHED"):
        raise typer.Exit(_launch(gpus, nodes, hostfile))
    dev = resolve_device(device)
    if model not in ("realcam", "recammaster", "wan-camera"):
        raise RealcamError(f"unknown model {model!r} (realcam, recammaster or wan-camera)", "--model")
    if model == "wan-camera":
        from stages.train.wan_camera import train as run_wan

        from .parsers import parse_size

        if frames is None:
            raise RealcamError("the dataset root is needed (frames/ or videos/ of the clips)", "--frames")
        cfg = WanCameraTrainConfig(
            data=str(data),
            frames_root=str(frames),
            out=str(out),
            base=base,
            weights=str(weights) if weights else None,
            size=parse_size(size),
            frames=num_frames,
            steps=WanCameraTrainConfig.steps if steps is None else steps,
            batch=WanCameraTrainConfig.batch if batch is None else batch,
            micro_batch=micro_batch,
            lr=lr,
            warmup=warmup,
            lr_final=min(WanCameraTrainConfig.lr_final, lr),
            precision=("bf16" if dev.startswith("cuda") else "fp32") if precision == "auto" else precision,
            seed=seed,
            unlabelled_ratio=unlabelled_ratio,
            tasks=_ratios(tasks),
            trainable=trainable,
            camera_lr_scale=camera_lr_scale,
            relative_scale=relative_scale,
            captions=str(captions) if captions else None,
            resume=resume,
            ckpt_every=ckpt_every,
            log_every=log_every,
            workers=workers,
            device=dev,
        )
        return _run(run_wan, cfg, out, "weights/wan_camera.safetensors")
    if model == "recammaster":
        steps = RecamTrainConfig.steps if steps is None else steps
        batch = RecamTrainConfig.batch if batch is None else batch
        return _train_recammaster(
            data,
            out,
            base,
            weights,
            size,
            num_frames,
            steps,
            batch,
            micro_batch,
            lr,
            precision,
            seed,
            resume,
            ckpt_every,
            log_every,
            workers,
            dev,
        )
    if frames is None:
        raise RealcamError("the dataset root is needed (frames/ or videos/ of the clips)", "--frames")
    steps = TrainConfig.steps if steps is None else steps
    batch = TrainConfig.batch if batch is None else batch
    if precision == "auto":
        precision = "fp16" if dev.startswith("cuda") else "fp32"
    cfg = TrainConfig(
        data=str(data),
        frames_root=str(frames),
        out=str(out),
        res=res,
        steps=steps,
        batch=batch,
        micro_batch=micro_batch,
        lr=lr,
        precision=precision,
        seed=seed,
        relative_scale=relative_scale,
        base_ckpt=[str(p) for p in base_ckpt or []],
        resume=resume,
        ckpt_every=ckpt_every,
        log_every=log_every,
        workers=workers,
        captions=str(captions) if captions else None,
        device=dev,
        train_unet=train_unet,
        epipolar_form=epipolar_form,
    )

    _run(run_train, cfg, out, "weights/")


def _ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise RealcamError(f"expected ratios such as 0.7,0.3,0, got {text!r}", "--tasks") from None


def _run(run_train, cfg, out: Path, weights: str) -> None:
    """One training run with its progress bar; rank 0 reports where the outputs went."""
    from stages.train.loop import shutdown

    rank0 = int(os.environ.get("RANK", "0")) == 0
    try:
        with progress_bar("train", total=cfg.steps) as advance:
            metrics = run_train(
                cfg,
                progress=lambda step, loss: advance(f"step {step} loss {loss:.4f}"),
                log=console.print if rank0 else None,
            )
    finally:
        shutdown()
    if rank0:
        last = metrics["loss"].tail(20).mean() if len(metrics) else float("nan")
        report(
            f"train: {len(metrics)} steps logged (last-20 mean loss {last:.4f}) -> {out} "
            f"(checkpoints/, {weights}, metrics.parquet, train_config.json)"
        )


def _train_recammaster(
    data,
    out,
    base,
    weights,
    size,
    frames,
    steps,
    batch,
    micro_batch,
    lr,
    precision,
    seed,
    resume,
    ckpt_every,
    log_every,
    workers,
    device,
) -> None:
    """``--model recammaster``: ReCamMaster's training on MultiCamVideo-layout scenes."""
    from stages.train.recammaster import train as run_train

    from .parsers import parse_size

    cfg = RecamTrainConfig(
        data=str(data),
        out=str(out),
        base=base,
        weights=str(weights) if weights else None,
        size=parse_size(size),
        frames=frames,
        steps=steps,
        batch=batch,
        micro_batch=micro_batch,
        lr=lr,
        precision=("bf16" if device.startswith("cuda") else "fp32") if precision == "auto" else precision,
        seed=seed,
        resume=resume,
        ckpt_every=ckpt_every,
        log_every=log_every,
        workers=workers,
        device=device,
    )
    _run(run_train, cfg, out, "weights/recammaster.safetensors")
