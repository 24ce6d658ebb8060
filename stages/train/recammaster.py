"""``realcam train --model recammaster``: ReCamMaster's training on synchronized multi-camera clips
(docs/method.md#recammaster-training), on the same DeepSpeed engine, checkpoints and ``--resume``
as the RealCam-I2V trainer (:mod:`stages.train.loop`).

As the official ``train_recammaster.py``:

- data: the MultiCamVideo layout (``<scene>/videos/camXX.mp4`` and
  ``<scene>/cameras/camera_extrinsics.json``, captions from ``metadata.csv``); a sample is a scene,
  a target camera and a random *other* camera of the scene as the source, the first ``frames``
  frames of both; camera tokens of the target relative to the source camera's frame 0;
- the loss: a uniform timestep index ``i`` of 1000 shifted training sigmas (shift 5), the target
  latents noised to ``s_i`` while the source latents stay clean, MSE of the velocity on the
  target half, times the time-dependent training weight ``w_i`` (DiffSynth's
  ``FlowMatchScheduler.set_timesteps(1000, training=True)``);
- trainable: the camera encoder, the projector and the self-attention of every block;
- AdamW (weight decay 0.01, torch's default), no gradient clipping, bf16 on GPUs.

The paper's noise on the condition latents and its T2V/I2V dropout are not in the released
script and not here (docs/fidelity.md). Latents are encoded on the fly by the frozen VAE (the
official script pre-encodes them in a separate pass; the numbers are the same).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.errors import RealcamError
from ..core.image import fit_image
from ..core.video import read_video
from ..settings import RecamTrainConfig

SHIFT_TRAINING_STEPS = 1000


def training_schedule(shift: float, n: int = SHIFT_TRAINING_STEPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sigmas``, ``timesteps = 1000 sigmas`` and the loss weights of the ``n`` training levels:

    ``s_i = shift u_i / (1 + (shift - 1) u_i)`` with ``u = linspace(1, 0, n + 1)[:-1]``;
    ``w_i = y_i - min y`` rescaled to mean 1, ``y_i = exp(-2 ((t_i - n/2) / n)^2)``.
    """
    u = np.linspace(1.0, 0.0, n + 1)[:-1]
    sigmas = shift * u / (1 + (shift - 1) * u)
    t = sigmas * 1000.0
    y = np.exp(-2 * ((t - n / 2) / n) ** 2)
    y = y - y.min()
    return sigmas, t, y * (n / y.sum())


# ----------------------------------------------------------------------------------------------
# Data: MultiCamVideo scenes
# ----------------------------------------------------------------------------------------------
def find_scenes(root: str | Path) -> list[Path]:
    """Scene folders under ``root``: those with ``cameras/camera_extrinsics.json`` and ``videos/``."""
    root = Path(root)
    scenes = sorted(
        p.parent.parent for p in root.rglob("cameras/camera_extrinsics.json") if (p.parent.parent / "videos").is_dir()
    )
    if not scenes:
        raise RealcamError("no MultiCamVideo scene (<scene>/cameras/camera_extrinsics.json with videos/)", root)
    return scenes


def read_captions(root: Path) -> dict[str, str]:
    """``metadata.csv`` (``file_name,text``) under ``root``: video path (relative to the file) -> text."""
    out: dict[str, str] = {}
    for meta in sorted(root.rglob("metadata.csv")):
        with open(meta, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("file_name"):
                    out[str((meta.parent / row["file_name"]).resolve())] = row.get("text") or ""
    return out


class MultiCamDataset(torch.utils.data.Dataset):
    """``dataset[n]``: sample number ``n`` (a scene, a target and another camera as the source,
    drawn from ``(seed, n)`` alone, so a resumed run sees the same samples)."""

    def __init__(self, root: str | Path, frames: int, size: tuple[int, int], seed: int = 0):
        from ..rerender.cameras import read_multicam_cameras

        self.root = Path(root)
        self.frames, self.size, self.seed = frames, tuple(size), seed
        self.scenes = []
        for scene in find_scenes(root):
            cams = read_multicam_cameras(scene / "cameras" / "camera_extrinsics.json")
            videos = {name: scene / "videos" / f"{name}.mp4" for name in cams}
            have = [n for n in cams if videos[n].is_file() and len(cams[n]) >= frames]
            if len(have) >= 2:
                self.scenes.append((scene, {n: cams[n] for n in have}, videos))
        if not self.scenes:
            raise RealcamError(f"no scene has two cameras with videos and {frames} poses", root)
        self.captions = read_captions(self.root)

    def __len__(self) -> int:
        return sum(len(c) for _, c, _ in self.scenes)

    def choose(self, n: int) -> tuple[int, str, str]:
        rng = np.random.default_rng([self.seed, 2_000_003, n])
        s = int(rng.integers(len(self.scenes)))
        names = sorted(self.scenes[s][1])
        target, source = rng.choice(len(names), size=2, replace=False)
        return s, names[int(target)], names[int(source)]

    def _video(self, path: Path) -> torch.Tensor:
        frames = read_video(path)
        if len(frames) < self.frames:
            raise RealcamError(f"has {len(frames)} frames; training needs {self.frames}", path)
        video = np.stack([fit_image(f, None, self.size)[0] for f in frames[: self.frames]])
        return torch.from_numpy(video)  # (T, H, W, 3) uint8

    def __getitem__(self, n: int) -> dict:
        from ..rerender.cameras import multicam_tokens

        s, target, source = self.choose(int(n))
        scene, cams, videos = self.scenes[s]
        return {
            "target": self._video(videos[target]),
            "source": self._video(videos[source]),
            "camera": torch.from_numpy(multicam_tokens(cams, target, source, self.frames)),
            "caption": self.captions.get(str(videos[target].resolve()), ""),
            "item": f"{scene.name}/{target}<-{source}",
            "sample": int(n),
        }


# ----------------------------------------------------------------------------------------------
# The training module
# ----------------------------------------------------------------------------------------------
class ReCamMasterTrainer(nn.Module):
    """One micro-batch in, the loss out: the frozen VAE and text encoder encode, the DiT learns."""

    def __init__(self, parts, shift: float):
        super().__init__()
        self.model, self.vae, self.text_encoder = parts.model, parts.vae, parts.text_encoder
        self.parts = parts
        sigmas, timesteps, weights = training_schedule(shift)
        self.register_buffer("sigmas", torch.tensor(sigmas, dtype=torch.float32), persistent=False)
        self.register_buffer("timesteps", torch.tensor(timesteps, dtype=torch.float32), persistent=False)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32), persistent=False)

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        from ..models import wan

        dtype = next(self.model.parameters()).dtype
        device = next(self.model.parameters()).device
        self.parts.device, self.parts.dtype = device, dtype
        b = len(batch["target"])
        with torch.no_grad():  # the frozen encoders: target and source videos in one VAE batch
            videos = torch.stack([*batch["target"], *batch["source"]]).numpy()
            z_target, z_source = wan.encode_video(self.parts, videos).split(b)
            text = wan.encode_prompt(self.parts, list(batch["caption"]))
        idx = torch.randint(0, len(self.sigmas), (b,), generator=generator).to(device)
        noise = torch.randn(z_target.shape, generator=generator).to(device, dtype)
        sigma = self.sigmas[idx].view(b, 1, 1, 1, 1)
        noisy = ((1 - sigma) * z_target.float() + sigma * noise.float()).to(dtype)
        target = noise.float() - z_target.float()
        pred = self.model(noisy, z_source, self.timesteps[idx], text, batch["camera"].to(device, dtype))
        per_sample = ((pred.float() - target) ** 2).flatten(1).mean(1)
        return (per_sample * self.weights[idx]).mean()


def set_recam_trainable(model) -> int:
    """Freeze everything but the camera modules and self-attention; returns the trainable count."""
    from ..models.recammaster import trainable_parameters

    names = set(trainable_parameters(model))
    count = 0
    for name, p in model.transformer.named_parameters():
        p.requires_grad_(name in names)
        count += p.numel() if name in names else 0
    return count


def load_for_training(cfg: RecamTrainConfig, device: str):
    """The Wan parts with ReCamMaster's DiT: from ``--weights`` (a ReCamMaster checkpoint), else
    the base transformer's weights with freshly attached camera modules."""
    from ..models import wan

    if cfg.weights:
        return wan.load_parts(cfg.weights, cfg.base, device, "fp32")
    return wan.load_parts(None, cfg.base, device, "fp32", from_base=True)


def prepare_parts(parts, gradient_checkpointing: bool) -> None:
    """The Wan parts set for training the DiT: the VAE and text encoder frozen, the DiT in train
    mode (with gradient checkpointing on request)."""
    for module in (parts.vae, parts.text_encoder):
        module.requires_grad_(False)
    if gradient_checkpointing:
        parts.model.transformer.enable_gradient_checkpointing()
    parts.model.transformer.train()


def save_weights(model, folder: Path, step: int) -> Path:
    """The whole DiT in the original names (what ``rerender --weights`` loads strictly)."""
    from ..models.checkpoint import save_state_file
    from ..models.recammaster import diffusers_to_original

    state = diffusers_to_original(model.transformer.state_dict())
    meta = {"format": "recammaster (Wan original names)", "step": str(step)}
    return save_state_file(state, Path(folder) / "recammaster.safetensors", meta)


def train(
    cfg: RecamTrainConfig,
    progress: Callable[[int, float], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Train ReCamMaster; returns the metrics table (rank 0 also writes it)."""
    from ..core.device import resolve_device
    from .loop import resume_tag, start_process, train_module

    cfg = cfg.check()
    device = resolve_device(cfg.device)
    if cfg.resume:
        resume_tag(Path(cfg.out) / "checkpoints")
    dataset = MultiCamDataset(cfg.data, cfg.frames, cfg.size, cfg.seed)
    rank, world, device = start_process(device)
    torch.manual_seed(cfg.seed)
    parts = load_for_training(cfg, device)
    trainable = set_recam_trainable(parts.model)
    prepare_parts(parts, cfg.gradient_checkpointing)
    trainer = ReCamMasterTrainer(parts, cfg.shift).to(device)
    return train_module(
        cfg,
        trainer,
        parts.model,
        dataset,
        _collate,
        device=device,
        rank=rank,
        world=world,
        record={"model": "recammaster", "trainable_parameters": trainable, "scenes": len(dataset.scenes)},
        summary=f"{len(dataset.scenes)} scenes, {trainable:,} trainable parameters",
        save=save_weights,
        progress=progress,
        log=log,
    )


def _collate(items: list[dict]) -> dict:
    return {
        "target": [it["target"] for it in items],
        "source": [it["source"] for it in items],
        "camera": torch.stack([it["camera"] for it in items]),
        "caption": [it["caption"] for it in items],
        "item": [it["item"] for it in items],
        "sample": torch.tensor([it["sample"] for it in items]),
    }
