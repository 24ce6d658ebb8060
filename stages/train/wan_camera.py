"""``realcam train --model wan-camera``: CameraCtrl II's training of a Wan2.1 DiT with a Plücker
patchify layer (:mod:`stages.models.wan_camera`; docs/method.md#wan-camera-training) on metric-scale
clips, on the same DeepSpeed engine, checkpoints and ``--resume`` as the other trainers
(:mod:`stages.train.loop`).

- **Data**: the kept clips of ``realcam filter`` (metric cameras, or the dataset's own SfM scale
  with ``--relative-scale``), ``frames = 4k + 1`` frames at a random stride, resized to cover and
  centre-cropped (:func:`stages.train.loop.load_dataset`); the cameras relative to the clip's
  **first** frame (the frame an image-to-video sample starts from; the dataset's condition frame
  is not drawn at random here), pixel intrinsics at the training size.
- **Per sample**, drawn from the micro-batch's generator (so a resumed run draws the same):
  *labelled* with probability ``1 - unlabelled_ratio`` (CameraCtrl II: 4 : 1), an unlabelled
  sample gets no camera tokens (the zero Plücker embedding); the *task*: text-to-video (no clean
  latent frame), image-to-video (latent frame 0 clean) or extension (the first ``c`` latent frames
  clean, ``c`` uniform over the latent frames of ``extend_frames`` pixel frames), in the ratios
  ``tasks`` (stage 1 of the paper: 7 : 3 : 0; stage 2: 5 : 3 : 2); the caption dropped with
  ``text_dropout`` (for text CFG).
- **Loss**: flow matching as ReCamMaster's trainer (:func:`stages.train.recammaster.training_schedule`:
  a uniform index into 1000 shifted levels, shift 5, the time-dependent weight), the clean latent
  frames written over the noisy ones at the input (one timestep for all tokens, as ReCamMaster's
  unified I2V), MSE of the velocity on the generated latent frames only.
- **Trainable**: every parameter of the DiT (CameraCtrl II), or only the camera layer
  (``--trainable camera``); AdamW (betas 0.9/0.95, weight decay 0.01), warm-up from ``lr / 2`` over
  500 steps then cosine decay to 1e-5 (the paper's schedule), bf16 on GPUs.
- **Weights**: ``weights/wan_camera.safetensors``, the whole transformer in diffusers' names with
  ``camera_patchify.{weight,bias}`` (what ``generate --model wan-camera --weights`` loads strictly).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from ..core.constants import WAN_TEMPORAL_STRIDE
from ..settings import WanCameraTrainConfig
from .recammaster import prepare_parts, training_schedule

WEIGHTS_FILE = "wan_camera.safetensors"
#: AdamW betas of CameraCtrl II (seed 003, section 7).
BETAS = (0.9, 0.95)
#: The tasks, as drawn per sample.
T2V, I2V, EXTEND = 0, 1, 2


def extension_range(extend_frames: tuple[int, int], latent: int) -> tuple[int, int]:
    """The clean latent frames of an extension sample: ``n`` pixel frames of the previous clip
    fill ``1 + (n - 1) // 4`` whole latent frames (the causal VAE: 5 -> 2, 50 -> 13), at least 2
    and at most ``latent - 1`` (one frame is always generated)."""
    lo, hi = (1 + (n - 1) // WAN_TEMPORAL_STRIDE for n in extend_frames)
    return max(2, min(lo, latent - 1)), max(2, min(hi, latent - 1))


def draw_tasks(
    b: int, latent: int, cfg: WanCameraTrainConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: labelled (bool), task (0 T2V, 1 I2V, 2 extension), the count of clean leading
    latent frames and the caption kept (bool); in this order from ``generator``."""
    labelled = torch.rand(b, generator=generator) >= cfg.unlabelled_ratio
    ratios = torch.tensor(cfg.tasks, dtype=torch.float64)
    task = torch.multinomial(ratios / ratios.sum(), b, replacement=True, generator=generator)
    lo, hi = extension_range(cfg.extend_frames, latent) if cfg.tasks[EXTEND] > 0 else (2, 2)
    extend = torch.randint(lo, hi + 1, (b,), generator=generator)
    clean = torch.where(task == T2V, 0, torch.where(task == I2V, 1, extend))
    keep_text = torch.rand(b, generator=generator) >= cfg.text_dropout
    return labelled, task, clean, keep_text


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """``(B, 3, T, H, W)`` in [-1, 1] (the clip dataset's) -> ``(B, T, H, W, 3)`` uint8 (exact for
    values that came from uint8)."""
    return ((video.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1)


class WanCameraTrainer(nn.Module):
    """One micro-batch in, the loss out: the frozen VAE and text encoder encode, the DiT learns."""

    def __init__(self, parts, cfg: WanCameraTrainConfig):
        super().__init__()
        self.model, self.vae, self.text_encoder = parts.model, parts.vae, parts.text_encoder
        self.parts, self.cfg = parts, cfg
        sigmas, timesteps, weights = training_schedule(cfg.shift)
        self.register_buffer("sigmas", torch.tensor(sigmas, dtype=torch.float32), persistent=False)
        self.register_buffer("timesteps", torch.tensor(timesteps, dtype=torch.float32), persistent=False)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32), persistent=False)

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        from ..models import wan

        dtype = next(self.model.parameters()).dtype
        device = next(self.model.parameters()).device
        self.parts.device, self.parts.dtype = device, dtype
        video = batch["video"]
        b, height, width = video.shape[0], video.shape[-2], video.shape[-1]
        with torch.no_grad():  # the frozen encoders
            z = wan.encode_video(self.parts, to_uint8(video).numpy())
        latent = z.shape[2]
        labelled, _, clean, keep_text = draw_tasks(b, latent, self.cfg, generator)
        captions = [c if keep else "" for c, keep in zip(batch["caption"], keep_text.tolist())]
        with torch.no_grad():
            text = wan.encode_prompt(self.parts, captions)
        idx = torch.randint(0, len(self.sigmas), (b,), generator=generator).to(device)
        noise = torch.randn(z.shape, generator=generator).to(device, dtype)
        sigma = self.sigmas[idx].view(b, 1, 1, 1, 1)
        noisy = (1 - sigma) * z.float() + sigma * noise.float()
        given = (torch.arange(latent)[None] < clean[:, None]).to(device).view(b, 1, latent, 1, 1)
        x = torch.where(given, z.float(), noisy).to(dtype)
        target = noise.float() - z.float()
        c2w = batch["c2w"].to(device)  # relative to the clip's first frame
        plucker = self.model.camera_input(batch["k"].to(device), c2w, height, width, labelled.to(device))
        pred = self.model(x, self.timesteps[idx], text, plucker)
        generated = (~given).float()
        per_sample = (((pred.float() - target) ** 2) * generated).flatten(1).sum(1)
        per_sample = per_sample / (generated.flatten(1).sum(1) * z[0, :, 0].numel())
        return (per_sample * self.weights[idx]).mean()


def set_trainable(model, which: str) -> int:
    """``all``: every DiT parameter; ``camera``: only the patchify layer. Returns the count."""
    from ..models.wan_camera import PREFIX

    count = 0
    for name, p in model.transformer.named_parameters():
        on = which == "all" or name.startswith(PREFIX + ".")
        p.requires_grad_(on)
        count += p.numel() if on else 0
    return count


def camera_lr_scale(model, cfg: WanCameraTrainConfig) -> float:
    """The camera layer's learning rate over ``lr``: ``cfg.camera_lr_scale``, or by default the
    ratio of the fan-ins of the DiT's own patch embedding and of the camera layer (64 / 6144 on
    Wan2.1), so that one Adam step moves the camera tokens about as much as the video tokens."""
    if cfg.camera_lr_scale is not None:
        return cfg.camera_lr_scale
    own = model.transformer.patch_embedding.weight[0].numel()
    return own / model.camera_patchify.weight[0].numel()


def parameter_groups(model, cfg: WanCameraTrainConfig) -> list[dict]:
    """The trainable parameters for the optimiser: the DiT's at ``lr``, the camera layer's at
    ``lr * camera_lr_scale``."""
    from ..models.wan_camera import PREFIX

    camera, base = [], []
    for name, p in model.transformer.named_parameters():
        if p.requires_grad:
            (camera if name.startswith(PREFIX + ".") else base).append(p)
    groups = [{"params": camera, "lr": cfg.lr * camera_lr_scale(model, cfg)}]
    return ([{"params": base}] if base else []) + groups


def save_weights(model, folder: Path, step: int) -> Path:
    """The whole transformer with the camera layer, in diffusers' names."""
    from ..models.checkpoint import save_state_file

    meta = {"format": "realcam wan-camera (diffusers names)", "step": str(step)}
    return save_state_file(model.transformer.state_dict(), Path(folder) / WEIGHTS_FILE, meta)


def lr_factor(step: int, cfg: WanCameraTrainConfig) -> float:
    """The learning rate of optimiser step ``step`` (from 0) over ``cfg.lr``: linear warm-up from
    1/2 over ``warmup`` steps, then a cosine down to ``lr_final / lr`` at the last step."""
    if step < cfg.warmup:
        return 0.5 + 0.5 * step / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - 1 - cfg.warmup))
    final = cfg.lr_final / cfg.lr
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_schedule(cfg: WanCameraTrainConfig) -> Callable:
    """For ``deepspeed.initialize(lr_scheduler=...)``: a ``LambdaLR`` of :func:`lr_factor`
    (DeepSpeed's own ``WarmupCosineLR`` runs its first step at learning rate 0)."""

    def make(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))

    return make


def train(
    cfg: WanCameraTrainConfig,
    progress: Callable[[int, float], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Train the camera DiT; returns the metrics table (rank 0 also writes it)."""
    from ..core.device import resolve_device
    from ..models import wan
    from .data import collate
    from .loop import deepspeed_config, load_dataset, resume_tag, start_process, train_module

    cfg = cfg.check()
    device = resolve_device(cfg.device)
    if cfg.resume:
        resume_tag(Path(cfg.out) / "checkpoints")
    # before DeepSpeed and the model: bad data is named at once; poses relative to the first frame
    dataset, skipped = load_dataset(cfg, cfg.frames, cfg.size, random_condition=False)
    rank, world, device = start_process(device)
    torch.manual_seed(cfg.seed)
    parts = wan.load_parts(cfg.weights, cfg.base, device, "fp32", from_base=cfg.weights is None, kind="wan-camera")
    trainable = set_trainable(parts.model, cfg.trainable)
    prepare_parts(parts, cfg.gradient_checkpointing)
    trainer = WanCameraTrainer(parts, cfg).to(device)
    ds_cfg = deepspeed_config(cfg, world)
    ds_cfg["optimizer"]["params"]["betas"] = list(BETAS)
    return train_module(
        cfg,
        trainer,
        parts.model,
        dataset,
        collate,
        device=device,
        rank=rank,
        world=world,
        record={
            "model": "wan-camera",
            "trainable_parameters": trainable,
            "camera_lr": cfg.lr * camera_lr_scale(parts.model, cfg),
            "clips": len(dataset),
            "skipped": skipped,
        },
        parameters=parameter_groups(parts.model, cfg),
        summary=f"{len(dataset)} clips ({len(skipped)} skipped), {trainable:,} trainable parameters",
        save=save_weights,
        ds_config=ds_cfg,
        lr_scheduler=lr_schedule(cfg),
        progress=progress,
        log=log,
    )
