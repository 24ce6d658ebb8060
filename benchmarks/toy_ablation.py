"""Toy ablation (issue 14): does camera-only training learn on a fitted base, and do metric cameras help?

RealCam-I2V trains only the camera modules (pose encoder, Plücker projections, epipolar attention)
on top of a frozen pretrained base. On the `tiny` config, on the CPU, seeded:

1. data: `realcam synth` over the real RealEstate10K trajectories (../shared/data, or the bundled
   examples/data) with known factors alpha in [0.1, 10], each trajectory forwards and time-reversed
   in several synthetic rooms; then `depth --from-files`, `triangulate`, `align-scale` and `filter`
   (as in examples/demo.py) give the metric cameras. All clips of one trajectory are held out.
2. base: the tiny model without camera modules (camera "none", the analogue of the DynamiCrafter
   base): its autoencoder fitted to the training frames (`fit_autoencoder`, with its posterior
   made near-deterministic, see NOTE below), then `train(train_unet=True)` on the training clips.
   The base holds no camera weights, so every camera run starts from fresh camera modules (their
   output projections zero: the fresh model's output equals the base's, which is checked).
3. from that base, `train(train_unet=False)` (camera modules only), same steps, for each seed, with
   (a) the metric cameras of `filter`, (b) relative-scale cameras (`relative_scale=True`: the
   dataset's own SfM scale), (c) the metric cameras permuted among the training clips (each clip
   gets the file of a clip of another trajectory; all files have 16 rows).
4. held-out denoising loss: a fixed set of draws (frame windows of the held-out clips, their
   condition frames, 8 stratified timesteps in [0, 1000), posterior samples and noise) shared by
   every model; the model's MSE against its training target in eval mode under no_grad, with the
   metric cameras of the held-out clips (for (b) also with their relative-scale cameras). Reference
   (0): the base with fresh camera modules (the camera is ignored).

NOTE on the base's autoencoder: the training target uses a sample of the autoencoder's posterior
(`encode_video(sample=True)` in DiffusionTrainer.forward, as the official trainer). A random
autoencoder's posterior spread is several times the spread of its latent means, so z0 would be
mostly noise that no condition can predict; `fit_autoencoder` therefore sets the fitted posterior's
spread to a constant (`stages.models.autoencoder.POSTERIOR_STD`, 1 % of the unit-variance scaled
latents). The benchmark prints the noise/signal ratio of the random and the fitted autoencoder.
(The run recorded in RESULTS.md set the same spread here, before fit_autoencoder did it.)

The default run took 23 min on a shared 2-core CPU (load average 3-5); `--quick` about 1 min once
its dataset exists (4 min with it). Results: benchmarks/RESULTS.md, and OUT/results.json.

Usage:
    .venv/bin/python benchmarks/toy_ablation.py [--steps 200] [--base-steps 500] [--seeds 3]
        [--out /tmp/realcam_toy_ablation] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch; the two cores are shared

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from stages import diffusion as diff  # noqa: E402
from stages.core import cameras as cam  # noqa: E402
from stages.models.autoencoder import POSTERIOR_STD, fit_autoencoder  # noqa: E402
from stages.models.checkpoint import load_checkpoint, read_state_dict, save_checkpoint  # noqa: E402
from stages.models.model import build_model  # noqa: E402
from stages.models.trainable import is_camera_parameter, parameter_group  # noqa: E402
from stages.train import loop  # noqa: E402
from stages.train.data import ClipDataset, collate, load_clips  # noqa: E402
from stages.train.loop import DiffusionTrainer, TrainConfig, train  # noqa: E402

CONFIG = "tiny"
SHARED = ROOT.parent / "shared" / "data"
POSES = SHARED / "realestate10k_poses" if (SHARED / "realestate10k_poses").is_dir() else ROOT / "examples/data/poses"
TEXTURES = SHARED / "images" if (SHARED / "images").is_dir() else ROOT / "examples/data/images"
HELD_OUT_TRAJECTORY = "2c80f9eb0d3b2bb4"  # the demo's held-out trajectory
LR = 1e-3  # the demo's tiny runs
EVAL_SEED = 1234
console = Console(width=max(160, Console().width))


# ----------------------------------------------------------------------------------------------
# 1. the dataset
# ----------------------------------------------------------------------------------------------
def realcam(*args) -> None:
    cmd = [sys.executable, "-m", "realcam_cli", *map(str, args)]
    console.print(f"[cyan]$ realcam {' '.join(map(str, args))}[/]")
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    if result.returncode != 0:
        sys.exit(f"toy_ablation: `realcam {args[0]}` failed with status {result.returncode}")
    console.print(f"[dim]  ({time.perf_counter() - t0:.1f} s)[/]")


def trajectory_of(clip_id: str) -> str:
    return clip_id.split("_")[0]


def write_pose_variants(out: Path, scenes: int) -> list[str]:
    """Each real trajectory forwards (``_fK``) and time-reversed (``_rK``) for ``scenes`` rooms
    (synth draws the room and alpha from the clip id). Returns the clip ids."""
    out.mkdir(parents=True, exist_ok=True)
    ids = []
    for path in sorted(POSES.glob("*.txt")):
        c = cam.read_re10k(path)
        rev = cam.CameraFile(c.timestamps.copy(), c.intrinsics[::-1].copy(), c.w2c[::-1].copy(), c.url)
        for k in range(scenes):
            for tag, cams in (("f", c), ("r", rev)):
                clip_id = f"{path.stem}_{tag}{k}"
                cam.write_re10k(out / f"{clip_id}.txt", cams)
                ids.append(clip_id)
    return ids


def build_dataset(work: Path, scenes: int, size: str, seed: int) -> tuple[Path, Path, Path]:
    """The synthetic dataset and its annotation; returns (frames root, train filter dir, held-out
    filter dir). Reused when the same settings already built it in ``work``."""
    ds, filtered = work / "dataset", work / "filtered"
    marker = work / "dataset.json"
    settings = {"scenes": scenes, "size": size, "seed": seed, "poses": str(POSES), "textures": str(TEXTURES)}
    if not (marker.exists() and json.loads(marker.read_text()) == settings and (filtered / "keep.parquet").exists()):
        for d in ("poses", "dataset", "depth", "sfm", "scales", "filtered"):
            shutil.rmtree(work / d, ignore_errors=True)
        write_pose_variants(work / "poses", scenes)
        realcam(
            "synth",
            "--poses",
            work / "poses",
            "--texture",
            TEXTURES,
            "--out",
            ds,
            "--random-scale",
            "0.1",
            "10",
            "--size",
            size,
            "--seed",
            seed,
        )
        realcam("depth", ds, "--out", work / "depth", "--from-files", ds / "depth_gt")
        realcam("triangulate", ds, "--out", work / "sfm", "--workers", "1")
        realcam("align-scale", "--depth", work / "depth", "--sfm", work / "sfm", "--out", work / "scales")
        realcam("filter", work / "scales", "--cameras", ds, "--out", filtered, "--quantile", "0.0")
        marker.write_text(json.dumps(settings))
    keep = pd.read_parquet(filtered / "keep.parquet")
    held = keep["clip_id"].astype(str).map(trajectory_of) == HELD_OUT_TRAJECTORY
    train_dir, held_dir = (
        subset(filtered, keep[~held], work / "data_train"),
        subset(filtered, keep[held], work / "data_heldout"),
    )
    return ds, train_dir, held_dir


def subset(filtered: Path, keep: pd.DataFrame, out: Path, cameras_from: dict[str, str] | None = None) -> Path:
    """A filter-output folder holding ``keep``'s clips; ``cameras_from`` maps a clip to the clip
    whose metric camera file it gets (the shuffled condition)."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "cameras").mkdir(parents=True)
    keep.reset_index(drop=True).to_parquet(out / "keep.parquet")
    for clip in keep["clip_id"].astype(str):
        src = (cameras_from or {}).get(clip, clip)
        shutil.copy(filtered / "cameras" / f"{src}.txt", out / "cameras" / f"{clip}.txt")
    return out


def shuffled_cameras(filtered: Path, train_dir: Path, out: Path, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """The training clips with camera files permuted: a fixed permutation (seeded) in which every
    clip gets the file of a clip of another trajectory with the same number of rows."""
    keep = pd.read_parquet(train_dir / "keep.parquet")
    clips = keep["clip_id"].astype(str).tolist()
    rows = {c: len(cam.read_re10k(filtered / "cameras" / f"{c}.txt")) for c in clips}
    rng = np.random.default_rng([seed, 14])
    for _ in range(10_000):
        perm = rng.permutation(len(clips))
        mapping = {c: clips[j] for c, j in zip(clips, perm)}
        if all(trajectory_of(c) != trajectory_of(s) and rows[c] == rows[s] for c, s in mapping.items()):
            return subset(filtered, keep, out, mapping), mapping
    sys.exit("toy_ablation: no permutation gives every clip another trajectory's camera file of equal length")


# ----------------------------------------------------------------------------------------------
# 2. the base
# ----------------------------------------------------------------------------------------------
def training_images(clips, size: int) -> np.ndarray:
    from PIL import Image

    frames = [p for c in clips for p in c.frames]
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BICUBIC)) for p in frames])


@torch.no_grad()
def posterior_noise_ratio(model, images: np.ndarray) -> tuple[float, float, float]:
    """(std of the scaled posterior means, mean posterior std (scaled), ratio) on ``images``."""
    x = torch.from_numpy(images[:32]).permute(0, 3, 1, 2).float() / 127.5 - 1
    dist = model.first_stage_model.encode(x).latent_dist
    s = model.config.autoencoder.scale_factor
    signal, noise = float(dist.mode().std()) * s, float(dist.std.mean()) * s
    return signal, noise, noise / signal


def fit_base(
    work: Path, ds: Path, train_dir: Path, ae_steps: int, base_steps: int, batch: int, seed: int, log
) -> tuple[Path, dict]:
    """The base model (camera ``none``): fitted autoencoder + UNet trained on the training clips."""
    info = {}
    torch.manual_seed(seed)
    model = build_model(CONFIG, camera="none")
    clips, _ = load_clips(train_dir, ds)
    images = training_images(clips, model.config.width)
    info["posterior_random"] = posterior_noise_ratio(model, images)
    t0 = time.perf_counter()
    losses = fit_autoencoder(
        model.first_stage_model,
        images,
        ae_steps,
        batch=8,
        crop=model.config.width,
        scale_factor=model.config.autoencoder.scale_factor,
        seed=seed,
    )
    info["ae_loss"] = (float(np.mean(losses[:10])), float(np.mean(losses[-10:])))
    info["posterior_fitted"] = posterior_noise_ratio(model, images)
    info["posterior_used"] = info["posterior_fitted"]  # fit_autoencoder sets the spread (POSTERIOR_STD)
    info["ae_s"] = time.perf_counter() - t0
    ae_base = save_checkpoint(model, work / "ae_base")
    log(
        f"autoencoder fitted to {len(images)} training frames in {ae_steps} steps ({info['ae_s']:.0f} s): "
        f"loss {info['ae_loss'][0]:.3f} -> {info['ae_loss'][1]:.3f}; posterior std / latent std: random "
        f"{info['posterior_random'][2]:.2f}, fitted {info['posterior_fitted'][2]:.2f}, used "
        f"{info['posterior_used'][2]:.3f}"
    )

    # The UNet: `train` builds the camera model; here it builds camera "none" (the base has no camera
    # modules, like DynamiCrafter), so nothing camera-related is fitted into the base.
    original = loop.build_model
    loop.build_model = lambda res, camera="realcam", **kw: original(res, camera="none", **kw)
    try:
        t0 = time.perf_counter()
        cfg = TrainConfig(
            data=str(train_dir),
            frames_root=str(ds),
            out=str(work / "base_run"),
            res=CONFIG,
            steps=base_steps,
            batch=batch,
            micro_batch=1,
            lr=LR,
            precision="fp32",
            seed=seed,
            base_ckpt=[str(ae_base / "model.safetensors")],
            ckpt_every=base_steps,
            log_every=max(1, base_steps // 10),
            workers=0,
            device="cpu",
            train_unet=True,
        )
        shutil.rmtree(cfg.out, ignore_errors=True)
        history = train(cfg)
        info["base_s"] = time.perf_counter() - t0
    finally:
        loop.build_model = original
    weights = Path(cfg.out) / "weights" / "model.safetensors"
    names = list(read_state_dict(weights))
    if any(is_camera_parameter(n) for n in names) or not any(parameter_group(n) == "unet" for n in names):
        sys.exit(
            f"toy_ablation: the base run's weights hold camera parameters or no UNet ({weights}); "
            "stages.train.loop no longer builds its model through `build_model`?"
        )
    load_checkpoint(model, weights)
    base = save_checkpoint(model, work / "base")
    info["base_history"] = history
    log(f"base: UNet trained {base_steps} steps x batch {batch} ({info['base_s']:.0f} s): {loss_summary(history)}")
    return base / "model.safetensors", info


def loss_summary(history: pd.DataFrame) -> str:
    k = first_last_k(len(history))
    first, last = history["loss"].head(k).mean(), history["loss"].tail(k).mean()
    return f"train loss first {k} mean {first:.4f}, last {k} mean {last:.4f}"


def first_last_k(n: int) -> int:
    return max(1, min(50, n // 5))


# ----------------------------------------------------------------------------------------------
# 4. the held-out loss: DiffusionTrainer.forward with the random draws given
# ----------------------------------------------------------------------------------------------
def forward_loss(
    trainer: DiffusionTrainer,
    batch: dict,
    z0_generator: torch.Generator | None,
    timesteps: torch.Tensor,
    noise: torch.Tensor | None = None,
    noise_generator: torch.Generator | None = None,
    drop_text: torch.Tensor | None = None,
    drop_image: torch.Tensor | None = None,
    z0: torch.Tensor | None = None,
) -> dict:
    """Per-sample MSE of the model output against its training target, as DiffusionTrainer.forward
    computes it, with the draws given instead of taken from one generator. Returns the per-sample
    ``loss``, ``z0`` (to reuse), the model ``out`` and the ``target``."""
    m = trainer.model
    video = batch["video"]
    b, t_frames = video.shape[0], video.shape[2]
    ar = torch.arange(b)
    cond = batch["cond_frame"]
    drop_text = torch.zeros(b, dtype=torch.bool) if drop_text is None else drop_text
    drop_image = torch.zeros(b, dtype=torch.bool) if drop_image is None else drop_image
    with torch.no_grad():
        if z0 is None:
            z0 = m.encode_video(video, sample=True, generator=z0_generator)
        cond_image = video[ar, :, cond] * (~drop_image).float()[:, None, None, None]
        context = torch.cat(
            [m.encode_text(trainer.tokens(batch["caption"], drop_text)), m.encode_image(cond_image)], dim=1
        )
    concat = z0[ar, :, cond][:, :, None].expand(-1, -1, t_frames, -1, -1)
    if noise is None:
        noise = torch.randn(z0.shape, generator=noise_generator)
    z0_t = diff.rescale_z0(trainer.schedule, z0, timesteps) if hasattr(diff, "rescale_z0") else z0
    z_t = diff.q_sample(trainer.schedule, z0_t, timesteps, noise)
    target = diff.training_target(trainer.schedule, z0_t, noise, timesteps)
    out = m(
        z_t,
        timesteps,
        context,
        concat,
        fs=m.fs_condition(batch["stride"], batch["fps"]),
        k=batch["k"].float(),
        c2w=batch["c2w"].float(),
    )
    loss = ((out.float() - target.float()) ** 2).flatten(1).mean(1)
    return {"loss": loss, "z0": z0, "out": out.float(), "target": target.float()}


def check_forward_matches_library(trainer: DiffusionTrainer, batch: dict, seed: int = 5) -> float:
    """``forward_loss`` with the draws DiffusionTrainer.forward takes from its generator (in its
    order) must give the library's loss; returns the relative difference (exits when it differs)."""
    trainer.eval()
    with torch.no_grad():
        torch.manual_seed(seed)  # the epipolar zero-translation jitter draws from the global generator
        ref = float(trainer(batch, torch.Generator().manual_seed(seed)))
        g = torch.Generator().manual_seed(seed)
        b = batch["video"].shape[0]
        r = torch.rand(b, generator=g)
        drop_text = r < 2 * loop.UNCOND_PROB
        drop_image = (r >= loop.UNCOND_PROB) & (r < 3 * loop.UNCOND_PROB)
        z0 = trainer.model.encode_video(batch["video"], sample=True, generator=g)
        timesteps = torch.randint(0, diff.NUM_TRAIN_TIMESTEPS, (b,), generator=g)
        noise = torch.randn(z0.shape, generator=g)
        torch.manual_seed(seed)
        ours = forward_loss(
            trainer, batch, g, timesteps, noise=noise, drop_text=drop_text, drop_image=drop_image, z0=z0
        )["loss"]
    rel = abs(float(ours.mean()) - ref) / max(abs(ref), 1e-12)
    if rel > 1e-4:
        sys.exit(
            f"toy_ablation: the held-out loss no longer reproduces DiffusionTrainer.forward "
            f"(library {ref:.6f}, benchmark {float(ours.mean()):.6f}): update forward_loss"
        )
    return rel


class HeldOut:
    """Fixed draws on the held-out clips: ``windows`` frame windows (ClipDataset samples: random
    stride, start and condition frame), ``n_t`` stratified timesteps, posterior samples and noise."""

    def __init__(self, held_dir: Path, ds: Path, mc, windows: int, n_t: int, seed: int = EVAL_SEED):
        self.batches = {}
        for name, rel in (("metric", False), ("relative", True)):
            clips, _ = load_clips(held_dir, ds, relative_scale=rel)
            data = ClipDataset(clips, frames=mc.frames, size=(mc.width, mc.height), train=True, seed=seed)
            self.batches[name] = collate([data[n] for n in range(windows)])
        a, b = self.batches["metric"], self.batches["relative"]
        assert a["clip_id"] == b["clip_id"] and torch.equal(a["video"], b["video"])
        self.clip_ids = a["clip_id"]
        rng = np.random.default_rng([seed, 3])
        self.timesteps = [int((j + rng.random()) * diff.NUM_TRAIN_TIMESTEPS / n_t) for j in range(n_t)]
        self.seed = seed

    @torch.no_grad()
    def evaluate(self, model, cameras: str = "metric") -> dict:
        """``loss``: (n_t, windows) per-draw losses; ``out`` / ``target``: the model outputs and
        targets per timestep (for the camera-effect measure)."""
        trainer = DiffusionTrainer(model).eval()
        batch = self.batches[cameras]
        b = batch["video"].shape[0]
        z0, losses, outs, targets = None, [], [], []
        for j, t in enumerate(self.timesteps):
            torch.manual_seed(self.seed + j)  # epipolar zero-translation jitter: the same for every model
            r = forward_loss(
                trainer,
                batch,
                torch.Generator().manual_seed(self.seed),
                torch.full((b,), t),
                noise_generator=torch.Generator().manual_seed(self.seed * 1000 + j),
                z0=z0,
            )
            z0 = r["z0"]
            losses.append(r["loss"].numpy())
            outs.append(r["out"])
            targets.append(r["target"])
        return {"loss": np.stack(losses), "out": outs, "target": targets}


def camera_effect(ev: dict, ref: dict) -> float:
    """RMS difference of a model's outputs from the reference's on the same draws, relative to the
    RMS of the target: how much the camera modules change the prediction (0 for fresh modules)."""
    num = sum(float(((a - b) ** 2).sum()) for a, b in zip(ev["out"], ref["out"]))
    den = sum(float((t**2).sum()) for t in ref["target"])
    return float(np.sqrt(num / den))


# ----------------------------------------------------------------------------------------------
# 3. camera-only training and the diagnostics
# ----------------------------------------------------------------------------------------------
def camera_model(base: Path, seed: int, weights: Path | None = None):
    """The camera model on the base: fresh camera modules (built after ``torch.manual_seed(seed)``,
    as ``train`` does), or the trained ones from ``weights`` (which must hold camera weights only)."""
    torch.manual_seed(seed)
    model = build_model(CONFIG, camera="realcam")
    files = [base]
    if weights is not None:
        names = list(read_state_dict(weights))
        if not names or not all(is_camera_parameter(n) for n in names):
            sys.exit(f"toy_ablation: {weights} should hold camera weights only")
        files.append(weights)
    load_checkpoint(model, *files)
    return model.eval()


def output_projection_norm(model) -> float:
    """Frobenius norm of the zero-initialised camera output projections (Plücker projections and
    the epipolar attention's ``to_out``): 0 for fresh modules."""
    total = 0.0
    for name, p in model.named_parameters():
        if ".pluker_projection." in name or (".epipolar." in name and ".to_out." in name):
            total += float((p.detach() ** 2).sum())
    return float(np.sqrt(total))


def gradient_norms(model, train_dir: Path, ds: Path, samples: int = 4, seed: int = 0) -> dict[str, float]:
    """Gradient norm per parameter group (camera groups and the UNet for scale), summed over
    ``samples`` training micro-batches of the metric training data."""
    mc = model.config
    clips, _ = load_clips(train_dir, ds)
    data = ClipDataset(clips, frames=mc.frames, size=(mc.width, mc.height), train=True, seed=seed)
    trainer = DiffusionTrainer(model).train()
    for name, p in model.named_parameters():
        p.requires_grad_(is_camera_parameter(name) or (parameter_group(name) == "unet" and p.dim() > 0))
        p.grad = None
    for n in range(samples):
        torch.manual_seed(n)
        trainer(collate([data[n]]), torch.Generator().manual_seed(n)).backward()
    norms: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            g = parameter_group(name)
            norms[g] = norms.get(g, 0.0) + float((p.grad**2).sum())
    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    model.eval()
    return {k: float(np.sqrt(v)) for k, v in norms.items()}


def camera_run(
    work: Path, name: str, data_dir: Path, ds: Path, base: Path, steps: int, batch: int, seed: int, relative: bool
) -> tuple[Path, pd.DataFrame, float]:
    out = work / "runs" / f"{name}_seed{seed}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(
        data=str(data_dir),
        frames_root=str(ds),
        out=str(out),
        res=CONFIG,
        steps=steps,
        batch=batch,
        micro_batch=1,
        lr=LR,
        precision="fp32",
        seed=seed,
        relative_scale=relative,
        base_ckpt=[str(base)],
        ckpt_every=steps,
        log_every=max(1, steps // 10),
        workers=0,
        device="cpu",
        train_unet=False,
    )
    t0 = time.perf_counter()
    history = train(cfg)
    return out / "weights" / "model.safetensors", history, time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="camera-only training steps per run (default 200)")
    parser.add_argument("--base-steps", type=int, default=None, help="UNet training steps of the base (default 500)")
    parser.add_argument("--ae-steps", type=int, default=None, help="autoencoder fitting steps (default 100)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds of the camera-only runs (default 3)")
    parser.add_argument("--batch", type=int, default=1, help="samples per optimiser step (micro-batch 1)")
    parser.add_argument("--scenes", type=int, default=None, help="rooms per trajectory and direction (default 2)")
    parser.add_argument("--windows", type=int, default=None, help="held-out frame windows (default 16)")
    parser.add_argument("--timesteps", type=int, default=8, help="held-out timesteps per window")
    parser.add_argument(
        "--size", default="128x128", help="synth frame size (SfM runs on it; training resizes to 64x64)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default=None, help="work folder (default /tmp/realcam_toy_ablation[_quick])")
    parser.add_argument("--quick", action="store_true", help="a much smaller run for smoke checks")
    args = parser.parse_args()
    q = args.quick
    steps = args.steps or (6 if q else 200)
    base_steps = args.base_steps or (10 if q else 500)
    ae_steps = args.ae_steps or (10 if q else 100)
    n_seeds = args.seeds or (2 if q else 3)
    scenes = args.scenes or (1 if q else 2)
    windows = args.windows or (4 if q else 16)
    n_t = 2 if q and args.timesteps == 8 else args.timesteps
    work = Path(args.out or ("/tmp/realcam_toy_ablation_quick" if q else "/tmp/realcam_toy_ablation")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/realcam/torch_extensions"))
    t_start = time.perf_counter()
    log = lambda s: console.print(f"[dim]{time.perf_counter() - t_start:6.0f} s[/] {s}")
    loop.init_distributed("cpu")

    # 1. data
    ds, train_dir, held_dir = build_dataset(work, scenes, args.size, seed=0)
    shuffled_dir, mapping = shuffled_cameras(work / "filtered", train_dir, work / "data_shuffled")
    n_train = len(pd.read_parquet(train_dir / "keep.parquet"))
    n_held = len(pd.read_parquet(held_dir / "keep.parquet"))
    dropped = len(pd.read_parquet(work / "filtered" / "dropped.parquet"))
    truth = pd.read_parquet(ds / "truth.parquet")
    log(
        f"data: {n_train} training clips, {n_held} held-out clips (trajectory {HELD_OUT_TRAJECTORY}), "
        f"{dropped} dropped by filter; alpha {truth['alpha'].min():.2f}..{truth['alpha'].max():.2f}"
    )

    # 2. base (camera none), then the reference (0): the base with fresh camera modules
    base, info = fit_base(work, ds, train_dir, ae_steps, base_steps, args.batch, seed=0, log=log)
    mc = build_model(CONFIG, camera="none", encoders=False, device="meta").config
    held = HeldOut(held_dir, ds, mc, windows, n_t)
    torch.manual_seed(0)
    random_model = build_model(CONFIG, camera="none").eval()
    random_loss = float(held.evaluate(random_model)["loss"].mean())
    ref = camera_model(base, seed=0)
    rel_check = check_forward_matches_library(DiffusionTrainer(ref), held.batches["metric"])
    ref_eval = held.evaluate(ref)
    ref_losses = ref_eval["loss"]
    base_none = build_model(CONFIG, camera="none")
    load_checkpoint(base_none, base)
    none_losses = held.evaluate(base_none.eval())["loss"]
    log(
        f"held-out loss: random model {random_loss:.4f}, base {none_losses.mean():.4f}; base with fresh camera "
        f"modules {ref_losses.mean():.4f} (max |difference| to the base {np.abs(ref_losses - none_losses).max():.2e}); "
        f"benchmark forward vs DiffusionTrainer.forward: relative difference {rel_check:.1e}"
    )
    grads_fresh = gradient_norms(camera_model(base, seed=0), train_dir, ds)

    # 3. camera-only runs
    conditions = [
        ("a", "metric cameras", train_dir, False),
        ("b", "relative-scale cameras", train_dir, True),
        ("c", "shuffled cameras", shuffled_dir, False),
    ]
    results: dict[str, dict] = {}
    for key, label, data_dir, relative in conditions:
        r = results[key] = {
            "label": label,
            "loss": {},
            "loss_rel": {},
            "first": [],
            "last": [],
            "proj": [],
            "effect": [],
            "per_t": [],
            "s": [],
        }
        for seed in range(n_seeds):
            weights, history, secs = camera_run(work, key, data_dir, ds, base, steps, args.batch, seed, relative)
            model = camera_model(base, seed, weights)
            ev = held.evaluate(model)
            losses = ev["loss"]
            r["loss"][seed] = float(losses.mean())
            r["per_t"].append(losses.mean(1))
            if relative:
                r["loss_rel"][seed] = float(held.evaluate(model, "relative")["loss"].mean())
            k = first_last_k(len(history))
            r["first"].append(float(history["loss"].head(k).mean()))
            r["last"].append(float(history["loss"].tail(k).mean()))
            r["proj"].append(output_projection_norm(model))
            r["effect"].append(camera_effect(ev, ref_eval))
            r["s"].append(secs)
            if key == "a" and seed == 0:  # the benchmark's forward against the library's, with a camera effect
                check_forward_matches_library(DiffusionTrainer(model), held.batches["metric"])
                r["grads_trained"] = gradient_norms(model, train_dir, ds)
            log(
                f"({key}) {label}, seed {seed}: {secs:.0f} s, {loss_summary(history)}; held-out {losses.mean():.5f} "
                f"(fresh camera {ref_losses.mean():.5f}); output projections |W| {r['proj'][-1]:.3f}, "
                f"camera effect {r['effect'][-1]:.4f}"
            )

    # 5. report
    base_mean = float(ref_losses.mean())
    k = first_last_k(steps)
    title = (
        f"held-out denoising loss ({CONFIG}; camera-only training {steps} steps x batch {args.batch} from one "
        f"fitted base; {n_seeds} seeds; {windows} held-out windows x {n_t} timesteps, same draws for every model)"
    )
    header = [
        "condition",
        "eval cameras",
        "held-out loss",
        "std (seeds)",
        "ratio vs (0)",
        "per seed",
        f"train loss first/last {k}",
        "camera effect",
        "W_out norm",
    ]
    rows = [
        [
            "(0) base + fresh camera modules",
            "metric",
            f"{base_mean:.5f}",
            "-",
            "1.0000",
            "-",
            "-",
            "0",
            f"{output_projection_norm(ref):.3f}",
        ]
    ]
    for key, r in results.items():
        variants = [("metric", r["loss"])] + ([("relative (as trained)", r["loss_rel"])] if r["loss_rel"] else [])
        for cams, per_seed in variants:
            vals = np.array([per_seed[s] for s in sorted(per_seed)])
            rows.append(
                [
                    f"({key}) {r['label']}",
                    cams,
                    f"{vals.mean():.5f}",
                    f"{vals.std(ddof=1) if len(vals) > 1 else 0:.5f}",
                    f"{vals.mean() / base_mean:.4f}",
                    " ".join(f"{v:.5f}" for v in vals),
                    f"{np.mean(r['first']):.4f} / {np.mean(r['last']):.4f}",
                    f"{np.mean(r['effect']):.4f}",
                    f"{np.mean(r['proj']):.3f}",
                ]
            )
    table = Table(title=title)
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(
        "(0): the base with fresh camera modules (zero output projections: the camera is ignored); "
        "(a)-(c): camera modules trained from it. camera effect: RMS of (model output - (0)'s output) "
        "/ RMS of the target on the held-out draws; W_out norm: Frobenius norm of the zero-initialised output "
        "projections (Plücker projections + epipolar to_out); train loss: mean of the first / last "
        f"{k} steps' losses, mean over seeds."
    )

    per_t = Table(title="held-out loss by timestep (mean over seeds), ratio vs (0)")
    per_t.add_column("t", justify="right")
    per_t.add_column("(0) loss", justify="right")
    for key in results:
        per_t.add_column(f"({key}) / (0)", justify="right")
    per_t_rows = []
    for j, t in enumerate(held.timesteps):
        b0 = float(ref_losses[j].mean())
        per_t_rows.append(
            [str(t), f"{b0:.5f}", *[f"{np.mean([p[j] for p in r['per_t']]) / b0:.4f}" for r in results.values()]]
        )
        per_t.add_row(*per_t_rows[-1])
    console.print(per_t)

    # paired differences (same seeds, same draws): (a) - (b) and (a) - (c)
    a = np.array([results["a"]["loss"][s] for s in range(n_seeds)])
    paired = {}
    for other in ("b", "c"):
        d = a - np.array([results[other]["loss"][s] for s in range(n_seeds)])
        paired[other] = d
        console.print(f"paired (a) - ({other}) per seed: {' '.join(f'{v:+.5f}' for v in d)}; mean {d.mean():+.5f}")
    groups = sorted(set(grads_fresh) | set(results["a"]["grads_trained"]))
    grads = Table(title="gradient norm by parameter group, summed over 4 training micro-batches (metric cameras)")
    for col in ("model", *groups):
        grads.add_column(col, justify="right")
    grads.add_row("base + fresh camera", *[f"{grads_fresh.get(g, 0):.2e}" for g in groups])
    grads.add_row(
        f"(a) seed 0 after {steps} steps", *[f"{results['a']['grads_trained'].get(g, 0):.2e}" for g in groups]
    )
    console.print(grads)
    console.print("\nmarkdown:\n")
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("| t | (0) loss | " + " | ".join(f"({key}) / (0)" for key in results) + " |")
    print("| " + " | ".join(["---:"] * (2 + len(results))) + " |")
    for row in per_t_rows:
        print("| " + " | ".join(row) + " |")
    print()
    total = time.perf_counter() - t_start
    console.print(
        f"random-init held-out loss {random_loss:.5f}; base {base_mean:.5f} "
        f"({base_mean / random_loss:.3f}x the random model's); total {total:.0f} s"
    )

    summary = {
        "settings": {
            "steps": steps,
            "base_steps": base_steps,
            "ae_steps": ae_steps,
            "seeds": n_seeds,
            "batch": args.batch,
            "scenes": scenes,
            "windows": windows,
            "timesteps": held.timesteps,
            "size": args.size,
            "threads": args.threads,
            "lr": LR,
            "posterior_std": POSTERIOR_STD,
        },
        "data": {
            "train": n_train,
            "heldout": n_held,
            "dropped": dropped,
            "shuffle": mapping,
            "heldout_windows": list(held.clip_ids),
        },
        "posterior_noise_ratio": {k: info[k] for k in ("posterior_random", "posterior_fitted", "posterior_used")},
        "random_loss": random_loss,
        "base_loss": base_mean,
        "base_train": loss_summary(info["base_history"]),
        "results": {
            k: {
                kk: (
                    vv
                    if not isinstance(vv, list) or not vv or not isinstance(vv[0], np.ndarray)
                    else [list(map(float, x)) for x in vv]
                )
                for kk, vv in r.items()
            }
            for k, r in results.items()
        },
        "paired": {k: list(map(float, v)) for k, v in paired.items()},
        "grads_fresh": grads_fresh,
        "table": rows,
        "per_t": per_t_rows,
        "seconds": total,
    }
    (work / "results.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    console.print(f"results: {work / 'results.json'}")
    loop.shutdown()


if __name__ == "__main__":
    main()
