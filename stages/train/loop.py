"""The DeepSpeed training loop of ``realcam train`` (docs/method.md#training-loss).

ZeRO stage 1, AdamW (weight decay 1e-2, the official ``configure_optimizers``) at a constant
learning rate (1e-4), gradient accumulation to the effective
batch, gradient clipping 0.5, fp16 by default (bf16 or fp32 on request; DeepSpeed has no fp16 on
the CPU), epsilon-prediction at 256 and v-prediction with zero terminal SNR at 512/1024. Only the
camera modules are in the optimiser. Condition dropout 5 % for text, image and both.

The target is the official trainer's (``lvdm/models/ddpm3d.py``): ``z0`` is a sample of the
autoencoder's posterior (not its mode), scaled by the dynamic-rescale factor ``scale(t)`` at
512/1024 before noising, and the ``fps`` condition is the clip's frame rate (from its timestamps)
floor-divided by the frame stride.

Exact resume: data (see ``data.py``), timesteps, noise and dropout of a micro-batch are drawn from
generators seeded by the run seed and the sample numbers, so they depend on nothing but the step;
the checkpoint holds the camera modules and the optimiser state (DeepSpeed, frozen weights
excluded) and the step.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.artifacts import atomic_write_text, read_table, write_table
from ..core.device import resolve_device
from ..core.errors import RealcamError
from ..diffusion import NUM_TRAIN_TIMESTEPS, Schedule, q_sample, rescale_z0, training_target
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.model import CameraI2V, build_model
from ..models.trainable import set_trainable, trainable_report
from ..settings import TrainConfig
from .data import ClipDataset, RankBatches, collate, load_clips

UNCOND_PROB = 0.05
WEIGHT_DECAY = 1e-2  # official CameraControlLVDM: torch.optim.AdamW(params, lr, weight_decay=1e-2)


# ----------------------------------------------------------------------------------------------
# The training module: one micro-batch in, the loss out
# ----------------------------------------------------------------------------------------------
class DiffusionTrainer(nn.Module):
    """Wraps the model with the schedule and the condition encoders for one training step."""

    def __init__(self, model: CameraI2V, tokenizer=None):
        super().__init__()
        self.model = model
        self.schedule = Schedule.for_config(model.config)
        self.tokenizer = tokenizer

    def tokens(self, captions: list[str], drop: torch.Tensor) -> torch.Tensor:
        from ..models.encoders import empty_tokens, tokenize

        out = empty_tokens(len(captions), self.model.config.text.context_length)
        for i, (text, dropped) in enumerate(zip(captions, drop.tolist())):
            if text and not dropped:
                if self.tokenizer is None:
                    raise RealcamError("captions need a tokenizer", "--tokenizer")
                out[i] = tokenize([text], self.tokenizer, out.shape[1])[0]
        return out

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        m = self.model
        dtype = next(m.model.parameters()).dtype
        device = next(m.model.parameters()).device
        video = batch["video"].to(device, dtype)
        b, t_frames = video.shape[0], video.shape[2]
        cond = batch["cond_frame"].to(device)
        r = torch.rand(b, generator=generator).to(device)
        drop_text = r < 2 * UNCOND_PROB
        drop_image = (r >= UNCOND_PROB) & (r < 3 * UNCOND_PROB)
        rows = torch.arange(b, device=device)
        with torch.no_grad():
            z0 = m.encode_video(video, sample=True, generator=generator).to(dtype)
            # The contract shared with sampling; the concat latent is never dropped, only the CLIP
            # image is (official get_batch_input).
            context, concat, fs = m.condition(
                self.tokens(batch["caption"], drop_text.cpu()).to(device),
                video[rows, :, cond],
                z0[rows, :, cond],
                t_frames,
                batch["stride"],
                batch["fps"],
                keep_image=~drop_image,
            )
        timesteps = torch.randint(0, NUM_TRAIN_TIMESTEPS, (b,), generator=generator).to(device)
        noise = torch.randn(z0.shape, generator=generator).to(device, dtype)
        z0 = rescale_z0(self.schedule, z0, timesteps)  # dynamic rescale (512/1024); concat keeps z0
        z_t = q_sample(self.schedule, z0, timesteps, noise)
        target = training_target(self.schedule, z0, noise, timesteps)
        out = m(
            z_t,
            timesteps,
            context,
            concat,
            fs=fs,
            k=batch["k"].to(device, torch.float32),
            c2w=batch["c2w"].to(device, torch.float32),
        )
        return nn.functional.mse_loss(out.float(), target.float())


# ----------------------------------------------------------------------------------------------
# Distributed set-up
# ----------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(device: str) -> tuple[int, int]:
    """Initialise torch.distributed through DeepSpeed (a single process gets a local rendezvous)."""
    import deepspeed

    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if device.startswith("cuda") else "gloo")
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def start_process(device: str) -> tuple[int, int, str]:
    """DeepSpeed quieted, torch.distributed up; returns ``(rank, world, device)`` with a CUDA
    device narrowed to this process's GPU."""
    quiet_deepspeed()
    rank, world = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    return rank, world, device


def train_module(
    cfg,
    trainer: nn.Module,
    model: nn.Module,
    dataset,
    collate_fn,
    *,
    device: str,
    rank: int,
    world: int,
    record: dict,
    summary: str,
    save: Callable,
    ds_config: dict | None = None,
    parameters: list | None = None,
    lr_scheduler=None,
    progress=None,
    log=None,
) -> pd.DataFrame:
    """A DeepSpeed run of ``trainer`` (``trainer(batch, generator)`` -> loss) over ``dataset``:
    the engine on its trainable parameters (``ds_config``, default :func:`deepspeed_config`),
    ``--resume``, rank 0's ``train_config.json`` (``cfg``, ``record``, the DeepSpeed config) and
    ``summary`` line, rank-aware batches, then :func:`run_steps` with ``save``. ``parameters``:
    the optimiser's parameter groups (default: every trainable parameter at the config's lr)."""
    import deepspeed

    out = Path(cfg.out)
    ds_cfg = ds_config or deepspeed_config(cfg, world)
    params = parameters if parameters is not None else [p for p in trainer.parameters() if p.requires_grad]
    engine, _, _, _ = deepspeed.initialize(
        model=trainer, model_parameters=params, config=ds_cfg, lr_scheduler=lr_scheduler
    )
    accum = ds_cfg["gradient_accumulation_steps"]
    start, history = resume(engine, out, cfg.resume)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        config = {**asdict(cfg), **record, "world_size": world, "accumulation": accum, "deepspeed": ds_cfg}
        atomic_write_text(out / "train_config.json", json.dumps(config, indent=2) + "\n")
        if log:
            log(f"{summary}, world size {world}, accumulation {accum}, device {device}, precision {cfg.precision}")
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=RankBatches(start, cfg.steps, accum, world, rank, cfg.micro_batch),
        num_workers=cfg.workers,
        collate_fn=collate_fn,
    )
    t0 = time.perf_counter()
    batches = iter(loader)
    history = run_steps(cfg, engine, model, batches, start, accum, rank, world, device, history, progress, save=save)
    if log and rank == 0:
        log(f"trained {cfg.steps - start} steps in {time.perf_counter() - t0:.1f} s")
    torch.distributed.barrier()
    return history


@contextlib.contextmanager
def scalar_parameters_as_vectors(module: nn.Module):
    """Give 0-dim parameters shape ``(1,)`` while DeepSpeed sets up, then restore them.

    DeepSpeed 0.19 broadcasts parameters as byte views, which fails for 0-dim tensors; the official
    checkpoints hold such parameters (the image cross-attention scales), so their shape must stay.
    """
    scalars = [p for p in module.parameters() if p.dim() == 0]
    for p in scalars:
        p.data = p.data.reshape(1)
    try:
        yield
    finally:
        for p in scalars:
            p.data = p.data.reshape(())


def deepspeed_config(cfg: TrainConfig, world: int) -> dict:
    if cfg.batch % (cfg.micro_batch * world):
        raise RealcamError(
            f"batch {cfg.batch} is not a multiple of micro-batch x processes ({cfg.micro_batch} x {world})", "--batch"
        )
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch,
        "gradient_accumulation_steps": cfg.batch // (cfg.micro_batch * world),
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": 1},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": cfg.lr,
                "betas": [0.9, 0.999],
                "eps": 1e-8,
                "weight_decay": WEIGHT_DECAY,
                "torch_adam": True,
            },
        },
        "fp16": {"enabled": cfg.precision == "fp16", "initial_scale_power": 16},
        "bf16": {"enabled": cfg.precision == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _current_lr(engine, default: float) -> float:
    """The learning rate of the coming step (a schedule's, when there is one)."""
    try:
        return float(engine.get_lr()[0])
    except (AttributeError, IndexError, TypeError):
        return default


def _memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
def train(
    cfg: TrainConfig, progress: Callable[[int, float], None] | None = None, log: Callable[[str], None] | None = None
) -> pd.DataFrame:
    """Train the camera modules; returns the metrics table (rank 0 also writes it)."""
    cfg = cfg.check()
    out = Path(cfg.out)
    device = resolve_device(cfg.device)
    if cfg.precision == "fp16" and not device.startswith("cuda"):
        raise RealcamError("fp16 training needs a GPU (DeepSpeed on the CPU supports fp32 and bf16)", "--precision")
    if cfg.resume:
        resume_tag(out / "checkpoints")  # a usable checkpoint, named before anything starts
    dataset, skipped = load_dataset(cfg)  # before DeepSpeed and the model: a wrong --frames is named at once
    base_state = None
    if cfg.base_ckpt:
        from ..models.checkpoint import read_state_dict

        base_state = [read_state_dict(p) for p in cfg.base_ckpt]  # readable, before the model is built

    quiet_deepspeed()
    rank, world = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    model, engine, ds_cfg = build_engine(cfg, device, world, base_state, captions=any(c.caption for c in dataset.clips))
    del base_state  # the model holds the weights now
    accum = ds_cfg["gradient_accumulation_steps"]
    start, history = resume(engine, out, cfg.resume)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            out / "train_config.json",
            json.dumps(
                {
                    **asdict(cfg),
                    "world_size": world,
                    "accumulation": accum,
                    "deepspeed": ds_cfg,
                    "skipped": skipped,
                    "trainable": trainable_report(model).to_dict("records"),
                },
                indent=2,
            )
            + "\n",
        )
        if log:
            log(
                f"{len(dataset)} clips ({len(skipped)} skipped), world size {world}, "
                f"accumulation {accum}, device {device}, precision {cfg.precision}"
            )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=RankBatches(start, cfg.steps, accum, world, rank, cfg.micro_batch),
        num_workers=cfg.workers,
        pin_memory=device.startswith("cuda"),
        collate_fn=collate,
        persistent_workers=False,
    )
    history = run_steps(cfg, engine, model, iter(loader), start, accum, rank, world, device, history, progress)
    torch.distributed.barrier()
    return history


def load_dataset(
    cfg, frames: int | None = None, size: tuple[int, int] | None = None, random_condition: bool = True
) -> tuple[ClipDataset, list[dict]]:
    """The kept clips readable under ``cfg.frames_root`` at ``frames`` of ``size`` (W, H) (default:
    the model config ``cfg.res``'s), and the skipped ones with their reasons; none readable is an
    error naming the first few."""
    if frames is None or size is None:
        from ..models.configs import get_config

        mc = get_config(cfg.res)
        frames, size = mc.frames, (mc.width, mc.height)
    clips, skipped = load_clips(cfg.data, cfg.frames_root, relative_scale=cfg.relative_scale, captions=cfg.captions)
    if not clips:
        reasons = "; ".join(f"{s['item']}: {s['reason']}" for s in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        raise RealcamError(
            f"none of the {len(skipped)} kept clips can be read from {cfg.frames_root} ({reasons}{more})", "--frames"
        )
    dataset = ClipDataset(
        clips, frames=frames, size=tuple(size), train=True, seed=cfg.seed, random_condition=random_condition
    )
    skipped += [{"item": c, "reason": f"fewer than {frames} frames at stride 1"} for c in dataset.too_short]
    return dataset, skipped


def build_engine(cfg: TrainConfig, device: str, world: int, base_state: list | None, captions: bool):
    """The model (base weights loaded, camera modules trainable) wrapped in a DeepSpeed engine."""
    import deepspeed

    torch.manual_seed(cfg.seed)  # module initialisation is identical on every rank
    model = build_model(cfg.res, camera="realcam")
    model.config.camera.epipolar_form = cfg.epipolar_form  # saved with the weights' config.json
    if cfg.base_ckpt:
        load_checkpoint(model, *cfg.base_ckpt, preloaded=dict(zip(cfg.base_ckpt, base_state)))
    set_trainable(model, camera=True)
    if cfg.train_unet:
        # Every UNet weight tensor; the 0-dim image cross-attention scales stay frozen, since
        # DeepSpeed 0.19's ZeRO buffers cannot hold 0-dim trainable parameters.
        for p in model.unet.parameters():
            p.requires_grad_(p.dim() > 0)
    tokenizer = None
    if captions:
        from ..models.encoders import load_tokenizer

        tokenizer = load_tokenizer(cfg.tokenizer, "--tokenizer")
    trainer = DiffusionTrainer(model, tokenizer).to(device)
    params = [p for p in trainer.parameters() if p.requires_grad]
    ds_cfg = deepspeed_config(cfg, world)
    with scalar_parameters_as_vectors(trainer):
        engine, _, _, _ = deepspeed.initialize(model=trainer, model_parameters=params, config=ds_cfg)
    return model, engine, ds_cfg


def resume(engine, out: Path, enabled: bool) -> tuple[int, pd.DataFrame]:
    """The step to start from and the metrics logged up to it (0 and nothing for a new run)."""
    if not enabled:
        return 0, pd.DataFrame()
    ckpt_dir = out / "checkpoints"
    try:
        _, client = engine.load_checkpoint(str(ckpt_dir), tag=resume_tag(ckpt_dir), load_module_strict=False)
        start = int(client["step"])
    except Exception as exc:  # truncated or foreign files: DeepSpeed's own errors vary
        raise RealcamError(
            f"cannot resume from the last checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else 'unreadable'})",
            ckpt_dir,
        ) from None
    history = pd.DataFrame()
    if (out / "metrics.parquet").exists():
        history = read_table(out / "metrics.parquet")
        history = history[history["step"] <= start]
    return start, history


def run_steps(
    cfg: TrainConfig,
    engine,
    model: CameraI2V,
    batches,
    start: int,
    accum: int,
    rank: int,
    world: int,
    device: str,
    history: pd.DataFrame,
    progress=None,
    save: Callable | None = None,
) -> pd.DataFrame:
    """The optimiser steps from ``start`` to ``cfg.steps``: checkpoints every ``ckpt_every``,
    metrics every ``log_every`` (and at the end). ``save(model, folder, step)`` writes the trained
    weights beside the DeepSpeed checkpoint (default: the camera modules as safetensors)."""
    out = Path(cfg.out)
    ckpt_dir, metrics_path = out / "checkpoints", out / "metrics.parquet"
    rows = []
    for step in range(start, cfg.steps):
        t0 = time.perf_counter()
        # Anything drawing from the global generators (e.g. the epipolar zero-translation jitter)
        # sees the same numbers at a step whether or not the run was resumed.
        torch.manual_seed(int(np.random.default_rng([cfg.seed, 11, step, rank]).integers(2**62)))
        lr = _current_lr(engine, cfg.lr)  # this step's (a schedule moves it in engine.step)
        losses = []
        for _ in range(accum):
            batch = next(batches)
            ids = batch["sample"].tolist()
            gen = torch.Generator().manual_seed(int(np.random.default_rng([cfg.seed, 7, ids[0]]).integers(2**62)))
            loss = engine(batch, gen)
            engine.backward(loss)
            engine.step()
            losses.append(loss.detach().float())
        loss = torch.stack(losses).mean().to(device)
        if world > 1:
            torch.distributed.all_reduce(loss)
            loss /= world
        elapsed = time.perf_counter() - t0
        rows.append(
            {
                "step": step + 1,
                "loss": float(loss),
                "lr": lr,
                "samples_per_s": cfg.batch / elapsed,
                "memory_mb": _memory_mb(device),
            }
        )
        done = step + 1
        if progress and rank == 0:
            progress(done, float(loss))
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            _checkpoint(engine, model, ckpt_dir, out, done, rank, save or _save_camera_weights)
        if rank == 0 and (done % cfg.log_every == 0 or done == cfg.steps):
            history = _write_metrics(metrics_path, history, rows)
            rows = []
    if rank == 0 and rows:
        history = _write_metrics(metrics_path, history, rows)
    return history


def resume_tag(ckpt_dir: Path) -> str:
    """The checkpoint tag ``checkpoints/latest`` names, checked to exist with its files."""
    latest = ckpt_dir / "latest"
    if not latest.is_file():
        raise RealcamError("nothing to resume: no checkpoint in this run folder", ckpt_dir)
    tag = latest.read_text().strip()
    folder = ckpt_dir / tag
    if not tag or not folder.is_dir():
        raise RealcamError(f"the last checkpoint {tag!r} named in 'latest' is missing", latest)
    states = sorted(folder.glob("*model_states.pt"))
    if not states:
        raise RealcamError("no model states in the checkpoint", folder)
    import zipfile

    for path in states + sorted(folder.glob("*optim_states.pt")):
        try:
            with zipfile.ZipFile(path) as z:  # torch.save files are zip archives: a truncated one is not
                z.namelist()
        except (zipfile.BadZipFile, OSError):
            raise RealcamError("truncated or corrupt checkpoint file", path) from None
    return tag


def quiet_deepspeed() -> None:
    """DeepSpeed's info lines (accelerator detection, set-up) stay out of the user's output."""
    import logging

    os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")
    for name in ("DeepSpeed", "deepspeed"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _write_metrics(path: Path, history: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    history = pd.concat([history, pd.DataFrame(rows)], ignore_index=True) if len(history) else pd.DataFrame(rows)
    write_table(path, history)
    return history


def _save_camera_weights(model: CameraI2V, folder: Path, step: int) -> None:
    save_checkpoint(model, folder, only_trainable=True, extra={"step": step})


def _checkpoint(engine, model, ckpt_dir: Path, out: Path, step: int, rank: int, save: Callable) -> None:
    engine.save_checkpoint(
        str(ckpt_dir), tag=f"step_{step:07d}", client_state={"step": step}, exclude_frozen_parameters=True
    )
    if rank == 0:
        save(model, out / "weights", step)


def shutdown() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
