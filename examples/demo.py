"""The end-to-end demo behind `make demo`: every stage that exists, as a user runs it.

1. `synth`: a small dataset from the bundled RealEstate10K trajectories and photos, with known
   factors (one trajectory held out for preview, generation and evaluation);
2. `depth --from-files` (the synthetic ground-truth depth), `triangulate`, `align-scale`, `filter`;
3. `train --res tiny` for a few hundred steps from a saved random base (the loss curve); then
   the generation model's base: the `small` config (16 frames of 128x128) with its f = 4
   autoencoder fitted to the training frames (standing in for the released pretrained VAE, which a demo cannot download;
   its held-out reconstruction PSNR is reported), UNet and camera modules random;
4. `train --res small` on the metric-scale clips from that base;
5. `preview --gif` of the held-out clip's first frame along its real trajectory;
6. `generate` of two videos (two seeds) on that image and trajectory with the trained model and
   the strongest noise shaping (t_NS = 0 by default: inside the preview's mask the latents are
   replaced by the noised preview latents before every DDIM step, so what the barely trained model
   contributes there is each step's denoising, the last one from t = 19, and everywhere else the
   content of the preview's holes);
7. `evaluate` of the held-out clip's rendered video and of the generated videos against the
   ground-truth trajectory (SfM, 3 trials each);
8. ReCamMaster on tiny random Wan2.1 parts: `synth --cameras 4 --dynamic` (one scene with moving
   boxes seen by four synchronized cameras), `train --model recammaster` from the random base, and
   `rerender` of one camera's video along ReCamMaster's arc-left trajectory (with its preview);
9. camera control on the tiny Wan2.1 DiT: `train --model wan-camera` on the metric clips of step 2,
   then `generate --model wan-camera` of the held-out image along its trajectory, with the preview
   and the strongest noise shaping;
then a report: recovered factors against the truth, camera metrics and SfM failure rates, the
autoencoder and training losses, where every output is. Exits 1 when a recovered factor is off by
2 % or more or a generated video's camera metrics could not be computed.

Usage: python examples/demo.py [--out demo_out] [--tiny-steps 300] [--train-steps 60] [--t-ns 0] [--media docs/media]
       [--store video]   (the training clips as lossless clip videos instead of PNG files: same results)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
MODEL = "small"  # 16 frames of 128x128, f = 4 autoencoder (stages/models/configs.py)
console = Console(width=max(100, Console().width))


def realcam(stage: str, *arguments, **options) -> None:
    """Run ``realcam STAGE ARGUMENTS --option value ...`` (``big_option`` -> ``--big-option``; a
    ``True`` option is a flag; a tuple gives several values); exit on failure."""
    args = [stage, *map(str, arguments)]
    for key, value in options.items():
        args.append("--" + key.replace("_", "-"))
        if value is not True:
            args += [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    console.print(f"[bold cyan]$ realcam {' '.join(args)}[/]")
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "realcam_cli", *args])
    if result.returncode != 0:
        console.print(f"[bold red]demo: `realcam {stage}` failed with status {result.returncode}[/]")
        sys.exit(result.returncode)
    console.print(f"[dim]  ({time.perf_counter() - t0:.1f} s)[/]")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--ae-steps", type=int, default=150, help="autoencoder fitting steps")
    parser.add_argument("--tiny-steps", type=int, default=300, help="steps of the tiny training run")
    parser.add_argument("--train-steps", type=int, default=60, help="steps of the small model's training")
    parser.add_argument("--gen-steps", type=int, default=50, help="DDIM steps of generate")
    parser.add_argument("--t-ns", type=int, default=0, help="noise shaping threshold t_NS of generate")
    parser.add_argument("--cfg", type=float, default=1.0, help="text-image guidance of generate")
    parser.add_argument("--videos", type=int, default=2, help="generated videos (seeds seed, seed+1, ...)")
    parser.add_argument("--media", default=None, help="also copy preview.gif and a trajectory plot here")
    parser.add_argument("--recam-steps", type=int, default=60, help="steps of the ReCamMaster training run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--store",
        choices=("frames", "video"),
        default="frames",
        help="the training dataset's frames as PNG files or as lossless clip videos (the same results)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = Path(args.out).resolve()
    poses = sorted((DATA / "poses").glob("*.txt"))
    held_out, train_poses = poses[-1], poses[:-1]
    t_start = time.perf_counter()
    ds = out / "dataset"
    annotate(args, out, ds, train_poses)
    held = HeldOut(args, out, held_out)
    ae = train_models(args, out, ds, held)
    generate_and_evaluate(args, out, held)
    rerender_demo(args, out)
    wan_camera_demo(args, out, ds, held)
    problems = report(args, out, ds, ae)
    problems += report_rerender(args, out)
    problems += report_wan_camera(args, out, held)
    if args.media:
        problems += copy_media(out, Path(args.media), held)
    console.print(f"demo finished in {time.perf_counter() - t_start:.0f} s")
    if problems:
        console.print(f"[bold red]demo: {'; '.join(problems)}[/]")
        sys.exit(1)


def annotate(args, out: Path, ds: Path, train_poses: list[Path]) -> None:
    """A synthetic dataset with known factors, then depth, triangulate, align-scale, filter."""
    size, seed = args.size, args.seed
    realcam(
        "synth",
        poses=tuple(train_poses),
        texture=DATA / "images",
        out=ds,
        random_scale=(0.1, 10),
        size=size,
        seed=seed,
        store=args.store,
    )
    realcam("depth", ds, out=out / "depth", from_files=ds / "depth_gt")
    realcam("triangulate", ds, out=out / "sfm", workers=2)
    realcam("align-scale", depth=out / "depth", sfm=out / "sfm", out=out / "scales")
    realcam("filter", out / "scales", cameras=ds, out=out / "filtered", quantile=0.0)


class HeldOut:
    """A held-out clip: its first frame and true depth make the preview; its video is evaluated."""

    def __init__(self, args, out: Path, poses: Path):
        self.folder = out / "heldout"
        realcam(
            "synth",
            poses=(poses,),
            texture=DATA / "images",
            out=self.folder,
            scale=1.0,
            size=args.size,
            seed=args.seed + 1,
        )
        self.clip = poses.stem
        self.frames = sorted((self.folder / "frames" / self.clip).glob("*.png"), key=lambda p: int(p.stem))
        self.cameras = self.folder / "cameras" / f"{self.clip}.txt"
        self.depth0 = out / "heldout_depth0.npy"
        np.save(self.depth0, np.load(self.folder / "depth_gt" / f"{self.clip}.npz")["depth"][0])


def train_models(args, out: Path, ds: Path, held: HeldOut) -> tuple[float, tuple[float, float]]:
    """The training stage at demo scale, twice; returns the autoencoder's held-out PSNR and loss.

    The `tiny` config for a few hundred steps from a saved random base (its loss curve is
    reported). Generation needs frames SfM can register, so the model that `generate` uses is the
    `small` one: the `small` config (16 frames of 128x128) with its autoencoder fitted to the
    training clips' frames. It stands in for the released pretrained weights (DynamiCrafter's
    KL-f8), which a demo cannot download; the UNet and camera modules start random."""
    common = dict(
        data=out / "filtered",
        frames=ds,
        batch=1,
        lr="1e-3",
        workers=0,
        device="cpu",
        precision="fp32",
        seed=args.seed,
        train_unet=True,
    )
    tiny_base = save_random_base("tiny", out / "tiny_base", args.seed)
    realcam(
        "train",
        res="tiny",
        out=out / "run_tiny",
        base_ckpt=tiny_base / "model.safetensors",
        steps=args.tiny_steps,
        ckpt_every=args.tiny_steps,
        **common,
    )
    base, ae_psnr, ae_loss = fit_base(ds, held.folder / "frames" / held.clip, out / "base", args.ae_steps, args.seed)
    realcam(
        "train",
        res=MODEL,
        out=out / "run",
        base_ckpt=base / "model.safetensors",
        steps=args.train_steps,
        ckpt_every=args.train_steps,
        **common,
    )
    return ae_psnr, ae_loss


def generate_and_evaluate(args, out: Path, held: HeldOut) -> None:
    """The preview, the generated videos, and the evaluation of both the held-out rendered video
    and the generated ones.

    Generation follows the held-out trajectory with the strongest noise shaping (t_NS = 0): inside
    the preview's mask the latents are the noised preview latents at every step above t_NS. With
    t_NS = 50 (the last of 25 steps unshaped) SfM registered only 7 and 13 of the 16 frames."""
    realcam(
        "preview",
        held.frames[0],
        held.cameras,
        out=out / "preview",
        depth=held.depth0,
        size=args.size,
        gif=True,
        overwrite=True,
    )
    generated, gen_refs, gen_depth = out / "generated", out / "generated_reference", out / "generated_depth"
    gen_refs.mkdir(parents=True, exist_ok=True)
    gen_depth.mkdir(parents=True, exist_ok=True)
    for k in range(args.videos):
        name = f"{held.clip}_seed{args.seed + k}"
        # The empty negative prompt of the official configs: the demo model was trained without
        # text, and the official demo's negative prompt needs the CLIP tokenizer (Hub).
        realcam(
            "generate",
            held.frames[0],
            held.cameras,
            ckpt=out / "base",
            camera_ckpt=out / "run" / "weights" / "model.safetensors",
            res=MODEL,
            depth=held.depth0,
            out=generated / f"{name}.mp4",
            steps=args.gen_steps,
            noise_shaping=args.t_ns,
            cfg=args.cfg,
            seed=args.seed + k,
            negative_prompt="",
        )
        shutil.copy(held.cameras, gen_refs / f"{name}.txt")
        # The metric depth generate was given (the condition image's) gives evaluate the metric
        # factor of each generated video's SfM reconstruction (from its first frame).
        np.savez(gen_depth / f"{name}.npz", depth=np.load(held.depth0)[None])
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    shutil.copytree(held.folder / "frames" / held.clip, videos / held.clip, dirs_exist_ok=True)
    evaluation = dict(trials=3, plot=True, seed=args.seed, overwrite=True)
    realcam(
        "evaluate",
        videos,
        reference=held.folder / "cameras",
        out=out / "eval",
        depth=held.folder / "depth_gt",
        **evaluation,
    )
    realcam("evaluate", generated, reference=gen_refs, out=out / "eval_generated", depth=gen_depth, **evaluation)


RECAM_SIZE, RECAM_FRAMES = "64x64", 9


def rerender_demo(args, out: Path) -> None:
    """ReCamMaster end to end on tiny random Wan2.1 parts (the 1.3B weights cannot be downloaded
    here): multi-camera synthetic scenes, a short training run from the random base, one video
    re-rendered along one of ReCamMaster's ten trajectories."""
    from stages.models.wan_tiny import save_tiny_base

    multicam, base = out / "multicam", out / "wan_base"
    realcam("synth", cameras=4, dynamic=True, frames=RECAM_FRAMES, size=RECAM_SIZE, out=multicam, seed=args.seed)
    if not (base / "transformer" / "config.json").exists():
        save_tiny_base(base, args.seed)
    realcam(
        "train",
        model="recammaster",
        data=multicam,
        base=base,
        out=out / "run_recam",
        size=RECAM_SIZE,
        num_frames=RECAM_FRAMES,
        steps=args.recam_steps,
        batch=1,
        lr=2e-3,
        workers=0,
        log_every=5,
        seed=args.seed,
    )
    depth = out / "rerendered" / "cam01_depth0.npy"
    depth.parent.mkdir(parents=True, exist_ok=True)
    np.save(depth, np.load(multicam / "scene1" / "truth" / "depth" / "cam01.npz")["depth"][0])
    caption = pd.read_csv(multicam / "metadata.csv")["text"].iloc[0]
    realcam(
        "rerender",
        multicam / "scene1" / "videos" / "cam01.mp4",
        "recam-arc-left",
        out=out / "rerendered" / "cam01_arc-left.mp4",
        weights=out / "run_recam" / "weights" / "recammaster.safetensors",
        base=base,
        size=RECAM_SIZE,
        frames=RECAM_FRAMES,
        steps=20,
        depth=depth,
        prompt=caption,
        seed=args.seed,
    )


def wan_camera_demo(args, out: Path, ds: Path, held: HeldOut) -> None:
    """Camera control on the tiny random Wan2.1 DiT (CameraCtrl II's patchify layer): a short
    training run on the metric clips from the random base, then image-to-video of the held-out
    image along its true trajectory with the preview and noise shaping at every step."""
    realcam(
        "train",
        model="wan-camera",
        data=out / "filtered",
        frames=ds,
        base=out / "wan_base",
        out=out / "run_wancam",
        size=RECAM_SIZE,
        num_frames=RECAM_FRAMES,
        steps=args.recam_steps,
        batch=1,
        lr=2e-3,
        warmup=10,
        workers=0,
        log_every=5,
        seed=args.seed,
    )
    realcam(
        "generate",
        held.frames[0],
        held.cameras,
        model="wan-camera",
        weights=out / "run_wancam" / "weights" / "wan_camera.safetensors",
        base=out / "wan_base",
        size=RECAM_SIZE,
        frames=RECAM_FRAMES,
        steps=20,
        noise_shaping=0,
        depth=held.depth0,
        out=out / "generated_wan" / f"{held.clip}.mp4",
        seed=args.seed,
    )


def report_wan_camera(args, out: Path, held: HeldOut) -> list[str]:
    """The wan-camera part of the report; returns the problems found."""
    metrics = pd.read_parquet(out / "run_wancam" / "metrics.parquet")
    first, last = metrics["loss"].head(10).mean(), metrics["loss"].tail(10).mean()
    console.print(
        f"train (wan-camera, tiny random Wan2.1 base, {len(metrics)} steps): loss first 10 mean {first:.4f}, "
        f"last 10 mean {last:.4f}"
    )
    video = out / "generated_wan" / f"{held.clip}.mp4"
    console.print(f"generate --model wan-camera: {video} (record {video.with_suffix('.json').name}, preview)")
    for name, what in (
        ("run_wancam", "wan-camera training run: weights/wan_camera.safetensors, metrics"),
        ("generated_wan", "the wan-camera video along the held-out trajectory, its record and preview"),
    ):
        console.print(f"  {out / name}: {what}")
    return [] if video.exists() else ["the wan-camera video is missing"]


def report_rerender(args, out: Path) -> list[str]:
    """The ReCamMaster part of the report; returns the problems found."""
    problems = []
    metrics = pd.read_parquet(out / "run_recam" / "metrics.parquet")
    first, last = metrics["loss"].head(10).mean(), metrics["loss"].tail(10).mean()
    console.print(
        f"train (recammaster, tiny random Wan2.1 base, {len(metrics)} steps): loss first 10 mean {first:.4f}, "
        f"last 10 mean {last:.4f}"
    )
    video = out / "rerendered" / "cam01_arc-left.mp4"
    console.print(f"rerender: {video} (record {video.with_suffix('.json').name}, preview {video.stem}_preview/)")
    if not video.exists():
        problems.append("the re-rendered video is missing")
    for name, what in (
        ("multicam", "synthetic MultiCamVideo scene: 4 cameras, moving boxes, truth/"),
        ("wan_base", "the tiny random Wan2.1 base (Diffusers layout)"),
        ("run_recam", "ReCamMaster training run: weights/recammaster.safetensors, metrics"),
        ("rerendered", "the re-rendered video, its record and preview"),
    ):
        console.print(f"  {out / name}: {what}")
    return problems


def report(args, out: Path, ds: Path, ae: tuple[float, tuple[float, float]]) -> list[str]:
    """Recovered factors against the truth, camera metrics, losses, where every output is; returns
    the problems found."""
    problems = []
    truth = pd.read_parquet(ds / "truth.parquet")[["clip_id", "alpha"]]
    clips = pd.read_parquet(out / "scales" / "clips.parquet")[["clip_id", "scale", "status"]]
    merged = truth.merge(clips, on="clip_id", how="left")
    merged["error_%"] = 100 * (merged["scale"] / merged["alpha"] - 1)
    table = Table(title="metric scale: recovered factor against the truth")
    for col in ("clip", "true alpha", "recovered", "error %", "status"):
        table.add_column(col, justify="right")
    for r in merged.itertuples():
        table.add_row(r.clip_id, f"{r.alpha:.4f}", f"{r.scale:.4f}", f"{r._5:+.3f}", r.status)
    console.print(table)
    within = int((merged["error_%"].abs() < 2).sum())  # NaN (no factor) counts as outside
    console.print(f"{within}/{len(merged)} clips within 2 % of the truth")
    if within < len(merged):
        problems.append(f"{len(merged) - within} recovered factor(s) outside 2 % of the truth")

    console.print(metrics_table(out / "eval", "camera metrics of the held-out rendered video (SfM, 3 trials)"))
    console.print(f"SfM trial failure rate (held-out rendered video): {failure_rate(out / 'eval'):.0%}")
    title = f"camera metrics of the generated videos ({MODEL} model, t_NS {args.t_ns}, cfg {args.cfg}; SfM, 3 trials)"
    console.print(metrics_table(out / "eval_generated", title))
    console.print(f"SfM trial failure rate (generated videos): {failure_rate(out / 'eval_generated'):.0%}")
    gen = pd.read_parquet(out / "eval_generated" / "per_video.parquet")
    scores = ["rot_err", "trans_err_rel", "cammc_rel", "trans_err_metric", "cammc_metric"]
    unscored = gen[gen[scores].isna().any(axis=1)]
    if len(gen) != args.videos or len(unscored):
        problems.append(
            f"camera metrics missing (NaN) for {args.videos - len(gen) + len(unscored)} of "
            f"{args.videos} generated videos"
        )
    tiny = pd.read_parquet(out / "run_tiny" / "metrics.parquet")
    first, last = tiny["loss"].head(20).mean(), tiny["loss"].tail(20).mean()
    console.print(f"train (tiny, {len(tiny)} steps): loss first 20 mean {first:.4f}, last 20 mean {last:.4f}")
    if not last < first:
        problems.append("the tiny training run did not lower the loss")
    metrics = pd.read_parquet(out / "run" / "metrics.parquet")
    ae_psnr, ae_loss = ae
    console.print(
        f"autoencoder ({MODEL}, f = 4, fitted {args.ae_steps} steps): loss {ae_loss[0]:.4f} -> "
        f"{ae_loss[1]:.4f}, reconstruction PSNR on the held-out clip {ae_psnr:.1f} dB"
    )
    console.print(
        f"train ({MODEL}, {len(metrics)} steps): loss first 5 mean {metrics['loss'].head(5).mean():.4f}, "
        f"last 5 mean {metrics['loss'].tail(5).mean():.4f}"
    )
    console.print(
        f"generate: {args.videos} videos, {args.gen_steps} DDIM steps, noise shaping t_NS = "
        f"{args.t_ns} (inside the preview's mask the latents are the noised preview latents at "
        f"every step with t >= t_NS; the model denoises them), cfg {args.cfg}"
    )
    console.print(f"\n[bold]demo outputs[/] in {out}:")
    for name, what in (
        ("dataset", "synthetic dataset + truth.parquet"),
        ("depth", "metric depth per clip"),
        ("sfm", "COLMAP models, points, observations"),
        ("scales", "frames.parquet, clips.parquet"),
        ("filtered", "keep/dropped, metric cameras"),
        ("base", f"the {MODEL} base model (fitted autoencoder, random UNet)"),
        ("run_tiny", f"tiny training run ({args.tiny_steps} steps): weights/, metrics"),
        ("run", f"{MODEL} training run: weights/, metrics"),
        ("preview", "preview.mp4/.gif, preview.npz, scene.ply, trajectory"),
        ("generated", "generated videos, their previews and JSON records"),
        ("eval", "held-out rendered video: per_trial/per_video/summary.parquet, plots/"),
        ("eval_generated", "generated videos: per_trial/per_video/summary.parquet, plots/"),
    ):
        console.print(f"  {out / name}: {what}")
    return problems


def copy_media(out: Path, media: Path, held: HeldOut) -> list[str]:
    """The README's preview GIF, a trajectory plot and the editor's screenshot; returns problems."""
    problems = []
    media.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "preview" / "preview.gif", media / "preview.gif")
    plots = sorted((out / "eval_generated" / "plots").glob("*.png"))
    if plots:
        shutil.copy(plots[0], media / "trajectory.png")
    else:
        problems.append("no trajectory plot of a generated video for the docs media")
    console.print(f"  {media}: preview.gif, trajectory.png (from {plots[0].name if plots else 'nothing'})")
    # The editor on the held-out image and its trajectory, in headless Chromium.
    script = ROOT / "examples" / "edit_screenshot.py"
    shot = subprocess.run(
        [sys.executable, str(script), str(held.frames[0]), str(held.depth0), str(held.cameras), str(media / "edit.png")]
    )
    if shot.returncode != 0:
        problems.append("the editor screenshot failed")
    return problems


def failure_rate(eval_dir: Path) -> float:
    summary = pd.read_parquet(eval_dir / "summary.parquet")
    return float(summary.loc[summary["metric"] == "trial_failure_rate", "mean"].iloc[0])


def metrics_table(eval_dir: Path, title: str) -> Table:
    table = Table(title=title)
    # rel: in the video's own scale; m: metric (needs a metric factor); frames: fewest registered
    table.add_column("video", no_wrap=True)
    for col in ("RotErr", "TransErr", "CamMC", "TransErr m", "CamMC m", "trials", "frames"):
        table.add_column(col, justify="right")
    trials = pd.read_parquet(eval_dir / "per_trial.parquet")
    for r in pd.read_parquet(eval_dir / "per_video.parquet").itertuples():
        reg = trials.loc[trials["video"] == r.video, "n_registered"].fillna(0)  # per trial
        table.add_row(
            r.video,
            f"{r.rot_err:.4f}",
            f"{r.trans_err_rel:.4f}",
            f"{r.cammc_rel:.4f}",
            f"{r.trans_err_metric:.4f}",
            f"{r.cammc_metric:.4f}",
            f"{r.n_success}/{r.n_trials}",
            f"{int(reg.min())}/{r.n_frames}" if len(reg) else "-",
        )
    return table


def clip_frames(folder: Path, size: int) -> np.ndarray:
    """A clip's frames in time order, resized and centre-cropped to ``size x size``."""
    from stages.generate import condition_image

    return np.stack([condition_image(p, size, size) for p in sorted(folder.glob("*.png"), key=lambda p: int(p.stem))])


def dataset_frames(clip, size: int) -> np.ndarray:
    """A dataset clip's frames (files or clip video) at its camera timestamps, fitted to ``size x size``."""
    from stages.core import cameras as cam
    from stages.generate import condition_image

    frames = clip.read_frames(cam.read_re10k(clip.camera_path).timestamps)
    return np.stack([condition_image(f, size, size) for f in frames])


def save_random_base(config: str, out: Path, seed: int) -> Path:
    """A randomly initialised model of ``config`` saved as a base checkpoint folder; its random
    autoencoder gets a narrow posterior (training samples it, as the official trainer does)."""
    import torch

    from stages.models.autoencoder import set_posterior_std
    from stages.models.checkpoint import save_checkpoint
    from stages.models.model import build_model

    torch.manual_seed(seed)
    model = build_model(config)
    set_posterior_std(model.first_stage_model, scale_factor=model.config.autoencoder.scale_factor)
    return save_checkpoint(model, out)


def fit_base(ds: Path, held_frames: Path, out: Path, steps: int, seed: int):
    """The demo's base model: ``small`` with its autoencoder fitted to the training frames; returns
    the saved folder, the held-out reconstruction PSNR (dB) and the first/last fitting loss."""
    import torch

    from stages.core.dataset import find_clips
    from stages.generate import to_tensor_video
    from stages.models.autoencoder import fit_autoencoder
    from stages.models.checkpoint import save_checkpoint
    from stages.models.model import build_model

    torch.manual_seed(seed)
    model = build_model(MODEL)
    size = model.config.width
    images = np.concatenate([dataset_frames(clip, size) for clip in find_clips(ds)])
    t0 = time.perf_counter()
    console.print(f"[bold cyan]fitting the {MODEL} autoencoder to {len(images)} training frames ({steps} steps)[/]")
    losses = fit_autoencoder(
        model.first_stage_model, images, steps, scale_factor=model.config.autoencoder.scale_factor, seed=seed
    )
    held = to_tensor_video(clip_frames(held_frames, size), "cpu", torch.float32)
    with torch.no_grad():
        rec = model.decode_latents(model.encode_video(held)).clamp(-1, 1)
    psnr = float(10 * torch.log10(4.0 / ((rec - held) ** 2).mean()))
    folder = save_checkpoint(model, out)
    console.print(
        f"saved the {MODEL} base model in {folder}: autoencoder loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
        f"held-out PSNR {psnr:.1f} dB  ({time.perf_counter() - t0:.1f} s)"
    )
    return folder, psnr, (float(np.mean(losses[:5])), float(np.mean(losses[-5:])))


if __name__ == "__main__":
    main()
