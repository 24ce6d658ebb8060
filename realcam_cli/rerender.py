"""``realcam rerender``: re-shoot a video along a new camera path (ReCamMaster on Wan2.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stages.settings import RerenderSettings

from . import options
from .parsers import parse_magnitude, parse_size
from .ui import progress_bar, report


def rerender(
    video: Optional[Path] = typer.Argument(None, help="The source video (at least --frames frames)."),
    trajectory: Optional[str] = typer.Argument(
        None,
        help=(
            "Target camera path in metres: trajectory JSON, RealEstate10K .txt, one of our presets "
            "(pan-left, dolly-in, ...) or one of ReCamMaster's ten (recam-pan-right ... recam-arc-right, "
            "or recam-1 ... recam-10)."
        ),
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output video (.mp4); the record goes to OUT.json, the preview to OUT_preview/."
    ),
    weights: Optional[Path] = typer.Option(
        None,
        "--weights",
        help="ReCamMaster checkpoint (step20000.ckpt). Default: the release, KwaiVGI/ReCamMaster-Wan2.1.",
    ),
    base: str = typer.Option(
        "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        "--base",
        help="Wan2.1 base in the Diffusers layout (Hub id or folder): DiT config, VAE, text encoder, tokenizer.",
    ),
    prompt: str = typer.Option("", "--prompt", help="What the video shows (ReCamMaster was trained with captions)."),
    negative_prompt: str = typer.Option(
        RerenderSettings.negative_prompt,
        "--negative-prompt",
        help="Prompt of the negative CFG branch (default: Wan2.1's standard one).",
        show_default=False,
    ),
    size: str = typer.Option("832x480", "--size", help="WIDTHxHEIGHT (multiples of 16): resize to cover, centre crop."),
    frames: int = typer.Option(RerenderSettings.frames, "--frames", help="Frames to re-render (4k+1)."),
    steps: int = typer.Option(RerenderSettings.steps, "--steps", help="Euler flow-matching steps."),
    cfg: float = typer.Option(RerenderSettings.cfg, "--cfg", help="Text classifier-free guidance (1 = off)."),
    shift: float = typer.Option(RerenderSettings.shift, "--shift", help="Flow shift of the sigma schedule."),
    seed: int = typer.Option(RerenderSettings.seed, "--seed", help="Random seed."),
    noise_shaping: Optional[float] = typer.Option(
        None,
        "--noise-shaping",
        help="Shape the noise with the preview at the steps with sigma >= SIGMA (off by default; e.g. 0.9).",
    ),
    kernel: int = typer.Option(RerenderSettings.kernel, "--kernel", help="Preview mask edge filter size."),
    magnitude: Optional[str] = typer.Option(None, "--magnitude", help="Magnitude of one of our presets."),
    fps: float = typer.Option(RerenderSettings.fps, "--fps", help="Frame rate of the written video."),
    depth: Optional[Path] = typer.Option(
        None, "--depth", help="Metric depth of the source's first frame for the preview, instead of predicting it."
    ),
    depth_model: Optional[str] = typer.Option(
        None, "--depth-model", help="Depth model of the preview (Hub id or folder; default: the preview stage's)."
    ),
    no_preview: bool = typer.Option(False, "--no-preview", help="Skip the preview (and its depth model)."),
    tiling: bool = typer.Option(True, "--tiling/--no-tiling", help="VAE tiling (the official 30x52 latent tiles)."),
    offload: bool = typer.Option(
        False, "--offload", help="Move the text encoder and the VAE off the GPU while the DiT runs."
    ),
    record: Optional[Path] = typer.Option(
        None, "--record", help="Re-render from a JSON record written by an earlier run."
    ),
    batch: Optional[Path] = typer.Option(
        None,
        "--batch",
        help=(
            "Batch form: a CSV/Parquet table with columns video, trajectory[, prompt, seed, id, depth]; "
            "--out is then a folder; resumes where it stopped."
        ),
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Batch: redo rows already done."),
    workers: int = options.WORKERS,
    ray: Optional[str] = options.RAY,
    gpus_per_worker: Optional[float] = options.GPUS_PER_WORKER,
    cpus_per_task: float = options.CPUS_PER_TASK,
    timeout: Optional[float] = options.TIMEOUT,
    retries: int = options.RETRIES,
    shard_spec: Optional[str] = options.SHARD,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option(RerenderSettings.dtype, "--dtype", help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16."),
) -> None:
    """Re-render VIDEO along TRAJECTORY with ReCamMaster: the same scene, a new camera."""
    from stages import rerender as stage
    from stages.core.errors import RealcamError

    if record is None:
        settings = RerenderSettings(
            prompt=prompt,
            negative_prompt=negative_prompt,
            size=parse_size(size),
            frames=frames,
            steps=steps,
            cfg=cfg,
            shift=shift,
            seed=seed,
            noise_shaping=noise_shaping,
            kernel=kernel,
            magnitude=parse_magnitude(magnitude),
            fps=fps,
            dtype=dtype,
            tiling=tiling,
            offload=offload,
        ).check()
    if batch is not None:
        engine = options.batch_settings(
            workers, ray, gpus_per_worker, cpus_per_task, timeout, retries, shard_spec, overwrite
        )
        return run_batch(batch, out, settings, weights, base, depth, depth_model, not no_preview, device, engine)
    if record is not None:
        with progress_bar("rerender", None) as advance:
            result = stage.regenerate(
                record,
                out,
                device=None if device == "auto" else device,
                on_step=lambda i, n: advance(f"step {i}/{n}"),
            )
    else:
        if video is None or trajectory is None:
            raise RealcamError("give VIDEO and TRAJECTORY, or --record FILE", "rerender")
        with progress_bar("rerender", steps) as advance:
            result = stage.rerender(
                video,
                trajectory,
                out,
                settings=settings,
                weights=weights,
                base=base,
                depth=depth,
                depth_model=depth_model,
                preview=not no_preview,
                device=device,
                on_step=lambda i, n: advance(f"step {i}/{n}"),
            )
    n, h, w = result.frames.shape[:3]
    report(f"rerender: {n} frames of {w}x{h} written to {result.video}")
    where = f"preview in {result.preview}; " if result.preview else ""
    report(f"rerender: {where}record in {result.record}")


def run_batch(batch: Path, out: Path, settings, weights, base, depth, depth_model, preview, device, engine) -> None:
    """The batch form: one video per table row; exit 1 when every row failed."""
    from stages.core.batch import read_media_table
    from stages.core.dataset import shard, shard_table
    from stages.rerender import pipeline

    rows = shard(read_media_table(batch, "video"), engine.shard)
    with progress_bar("rerender", len(rows)) as advance:
        table = pipeline.rerender_batch(
            batch,
            out,
            settings=settings,
            weights=weights,
            base=base,
            depth=depth,
            depth_model=depth_model,
            preview=preview,
            device=device,
            batch=engine,
            progress=advance,
        )
    skipped = table.attrs.get("skipped", 0)
    table = table[table["item"].isin({r["item"] for r in rows})]
    failed = table[table["status"] != "ok"]
    report(
        f"rerender: {len(table) - len(failed)} of {len(rows)} rows done ({skipped} skipped as done earlier), "
        f"{len(failed)} failed; videos and {shard_table(pipeline.BATCH_TABLE, engine.shard)} in {out}"
    )
    if len(rows) and len(failed) == len(rows):
        raise typer.Exit(1)
