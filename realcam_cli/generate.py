"""``realcam generate``: a camera-controlled video from one image and a trajectory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stages.settings import GenerateSettings, WanGenerateSettings

from . import options
from .parsers import parse_magnitude, parse_size
from .ui import progress_bar, report


def generate(
    image: Optional[Path] = typer.Argument(None, help="The condition image (first frame)."),
    trajectory: Optional[str] = typer.Argument(
        None,
        help=(
            "Trajectory JSON, RealEstate10K .txt, or a preset name (pan-left, dolly-in, orbit-right+pedestal-up, ...)."
        ),
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output video (.mp4); the record goes to OUT.json, the preview to OUT_preview/."
    ),
    model: str = typer.Option(
        "realcam",
        "--model",
        help="realcam (RealCam-I2V on DynamiCrafter) or wan-camera (the Plücker patchify DiT on Wan2.1).",
    ),
    ckpt: Optional[str] = typer.Option(
        None,
        "--ckpt",
        help=(
            "Our saved model folder, or an official DynamiCrafter model.ckpt (file, folder or Hub id). "
            "Default: the released weights for --res."
        ),
    ),
    camera_ckpt: Optional[str] = typer.Option(
        None, "--camera-ckpt", help="RealCam-I2V camera weights on top of an official --ckpt."
    ),
    weights: Optional[Path] = typer.Option(
        None, "--weights", help="wan-camera: the trained DiT (weights/wan_camera.safetensors of `realcam train`)."
    ),
    base: Optional[str] = typer.Option(
        None, "--base", help="wan-camera: the Wan2.1 base (Hub id or folder, either layout) for VAE and text encoder."
    ),
    task: str = typer.Option(
        WanGenerateSettings.task, "--task", help="wan-camera: i2v (IMAGE is frame 0) or t2v (no IMAGE, no preview)."
    ),
    size: str = typer.Option(
        "x".join(map(str, WanGenerateSettings.size)), "--size", help="wan-camera: WIDTHxHEIGHT (multiples of 16)."
    ),
    frames: int = typer.Option(WanGenerateSettings.frames, "--frames", help="wan-camera: frames (4k+1)."),
    shift: float = typer.Option(WanGenerateSettings.shift, "--shift", help="wan-camera: flow-matching shift."),
    prompt: str = typer.Option("", "--prompt", help="Text prompt (empty by default)."),
    negative_prompt: Optional[str] = typer.Option(
        None,
        "--negative-prompt",
        help=(
            "Prompt of the unconditional CFG branch (default: the official demo's, wan-camera: Wan's; '' = the "
            "empty prompt, which needs no tokenizer)."
        ),
        show_default=False,
    ),
    tokenizer: str = typer.Option(
        GenerateSettings.tokenizer,
        "--tokenizer",
        help="CLIP tokenizer for the prompts: a Hugging Face id or a local folder.",
    ),
    res: str = typer.Option(
        GenerateSettings.res, "--res", help="256, 512 or 1024 (released weights); a saved --ckpt brings its own."
    ),
    steps: Optional[int] = typer.Option(
        None,
        "--steps",
        help=f"Sampling steps (DDIM {GenerateSettings.steps}; wan-camera Euler {WanGenerateSettings.steps}).",
    ),
    eta: float = typer.Option(GenerateSettings.eta, "--eta", help="DDIM eta."),
    cfg: Optional[float] = typer.Option(
        None,
        "--cfg",
        help=(
            f"Text(-image) classifier-free guidance (default {GenerateSettings.cfg}; "
            f"wan-camera {WanGenerateSettings.cfg})."
        ),
    ),
    guidance_rescale: float = typer.Option(
        GenerateSettings.guidance_rescale, "--guidance-rescale", help="Guidance rescale factor."
    ),
    camera_cfg: float = typer.Option(
        GenerateSettings.camera_cfg,
        "--camera-cfg",
        help="Camera CFG weight (1 = off); realcam: acts inside text-image CFG (--cfg above 1).",
    ),
    camera_cfg_schedule: str = typer.Option(
        GenerateSettings.camera_cfg_schedule,
        "--camera-cfg-schedule",
        help="constant or cosine (1 + (w-1) cos((1 - t/999) pi/2)).",
    ),
    noise_shaping: Optional[int] = typer.Option(
        None,
        "--noise-shaping",
        help=(
            f"t_NS: shape the noise at steps with t >= t_NS (default {GenerateSettings.noise_shaping}; 1000 = off; "
            "wan-camera: t = 1000 sigma, off for t2v)."
        ),
        show_default=False,
    ),
    shaping_variant: str = typer.Option(
        GenerateSettings.noise_shaping_variant,
        "--shaping-variant",
        help="noise (final form) or z0 (paste onto the predicted z_0).",
    ),
    kernel: int = typer.Option(GenerateSettings.kernel, "--kernel", help="Mask edge filter size."),
    seed: int = typer.Option(GenerateSettings.seed, "--seed", help="Random seed."),
    frame_stride: int = typer.Option(GenerateSettings.frame_stride, "--frame-stride", help="Frame stride condition."),
    magnitude: Optional[str] = typer.Option(
        None, "--magnitude", help="Preset magnitude (degrees or metres; one per part: 20,0.5)."
    ),
    fov: Optional[float] = typer.Option(
        None, "--fov", help="Field of view across the long side when the trajectory has no intrinsics."
    ),
    depth: Optional[Path] = typer.Option(
        None, "--depth", help="Metric depth file for the preview instead of predicting it."
    ),
    preview: Optional[Path] = typer.Option(
        None, "--preview", help="Reuse the preview folder of an earlier `realcam preview`."
    ),
    batch: Optional[Path] = typer.Option(
        None,
        "--batch",
        help=(
            "Batch form: a CSV/Parquet table with columns image, trajectory[, prompt, seed, id, depth]; "
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
    record: Optional[Path] = typer.Option(
        None, "--record", help="Regenerate from a JSON record written by an earlier run."
    ),
    end_image: Optional[Path] = typer.Option(None, "--end-image", help="Interpolation: the last frame is this image."),
    loop: bool = typer.Option(
        False, "--loop", help="Loop: the path goes out and back and the last frame is the first."
    ),
    continue_video: Optional[Path] = typer.Option(
        None,
        "--continue",
        help=(
            "Continuation: start from the last --context-frames of this video (IMAGE may be left out); "
            "writes the long video."
        ),
    ),
    context_frames: Optional[int] = typer.Option(
        None,
        "--context-frames",
        help=(
            f"Frames taken from the --continue video (default {GenerateSettings.context_frames}; wan-camera "
            f"{WanGenerateSettings.context_frames}, 4k+1)."
        ),
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: Optional[str] = typer.Option(
        None, "--dtype", help="fp32, fp16 or bf16 (default fp32; wan-camera: bf16 on CUDA, fp32 on the CPU)."
    ),
) -> None:
    """Generate a video from IMAGE that follows TRAJECTORY (with scene-constrained noise shaping)."""
    from stages import generate as gen_stage
    from stages.core.errors import RealcamError

    if model not in ("realcam", "wan-camera"):
        raise RealcamError(f"unknown model {model!r} (realcam or wan-camera)", "--model")
    if record is not None and _record_format(record) == "wan":
        return _report(_wan_stage().regenerate(record, out, device=None if device == "auto" else device))
    if model == "wan-camera":
        for name, value in (
            ("--ckpt", ckpt),
            ("--camera-ckpt", camera_ckpt),
            ("--end-image", end_image),
            ("--loop", loop or None),
        ):
            if value is not None:
                raise RealcamError("not an option of --model wan-camera", name)
        if continue_video is not None and trajectory is None and image is not None:
            image, trajectory = None, str(image)  # `generate TRAJECTORY --continue VIDEO`
        if task == "t2v" and trajectory is None and image is not None:
            image, trajectory = None, str(image)  # `generate TRAJECTORY --task t2v`
        wan = dict(
            task=task,
            prompt=prompt,
            size=parse_size(size),
            frames=frames,
            shift=shift,
            camera_cfg=camera_cfg,
            camera_cfg_schedule=camera_cfg_schedule,
            kernel=kernel,
            seed=seed,
            magnitude=parse_magnitude(magnitude),
            fov=fov,
            dtype=dtype or "auto",
            continue_video=str(continue_video) if continue_video else None,
            context_frames=WanGenerateSettings.context_frames if context_frames is None else context_frames,
        )
        for key, value in (("steps", steps), ("cfg", cfg), ("negative_prompt", negative_prompt)):
            if value is not None:
                wan[key] = value
        if noise_shaping is not None:
            wan["noise_shaping"] = None if noise_shaping >= 1000 else noise_shaping
        elif task == "t2v":
            wan["noise_shaping"] = None
        settings = WanGenerateSettings(**wan)
        stage = _wan_stage()
        if batch is not None:
            engine = options.batch_settings(
                workers, ray, gpus_per_worker, cpus_per_task, timeout, retries, shard_spec, overwrite
            )
            return run_batch(
                batch,
                out,
                engine,
                lambda advance: stage.generate_batch(
                    batch,
                    out,
                    settings=settings,
                    weights=weights,
                    base=base,
                    depth=depth,
                    device=device,
                    batch=engine,
                    progress=advance,
                ),
            )
        with progress_bar("generate", settings.steps) as advance:
            result = stage.generate(
                image,
                trajectory,
                out,
                settings=settings,
                weights=weights,
                base=base,
                depth=depth,
                preview_dir=preview,
                device=device,
                on_step=lambda i, n: advance(f"step {i}/{n}"),
            )
        return _report(result)
    steps = GenerateSettings.steps if steps is None else steps
    cfg = GenerateSettings.cfg if cfg is None else cfg
    negative_prompt = GenerateSettings.negative_prompt if negative_prompt is None else negative_prompt
    noise_shaping = GenerateSettings.noise_shaping if noise_shaping is None else noise_shaping
    dtype = dtype or GenerateSettings.dtype
    # The settings both forms share (the record form reads its own).
    common = dict(
        res=res,
        prompt=prompt,
        negative_prompt=negative_prompt,
        tokenizer=tokenizer,
        steps=steps,
        eta=eta,
        cfg=cfg,
        guidance_rescale=guidance_rescale,
        camera_cfg=camera_cfg,
        camera_cfg_schedule=camera_cfg_schedule,
        noise_shaping=noise_shaping,
        noise_shaping_variant=shaping_variant,
        kernel=kernel,
        seed=seed,
        frame_stride=frame_stride,
        fov=fov,
        dtype=dtype,
    )
    if batch is not None:
        settings = GenerateSettings(**common, magnitude=parse_magnitude(magnitude))
        engine = options.batch_settings(
            workers, ray, gpus_per_worker, cpus_per_task, timeout, retries, shard_spec, overwrite
        )
        return run_batch(
            batch,
            out,
            engine,
            lambda advance: gen_stage.generate_batch(
                batch,
                out,
                settings=settings,
                ckpt=ckpt,
                camera_ckpt=camera_ckpt,
                depth=depth,
                device=device,
                batch=engine,
                progress=advance,
            ),
        )
    if record is not None:
        result = gen_stage.regenerate(record, out, device=None if device == "auto" else device)
    else:
        if continue_video is not None and trajectory is None and image is not None and preview is None:
            image, trajectory = None, str(image)  # `generate TRAJECTORY --continue VIDEO`
        if (image is None and continue_video is None) or (trajectory is None and preview is None):
            raise RealcamError("give IMAGE and TRAJECTORY (or --preview DIR), or --record FILE", "generate")
        modes = [
            m
            for m, on in (("interp", end_image is not None), ("loop", loop), ("continue", continue_video is not None))
            if on
        ]
        if len(modes) > 1:
            raise RealcamError(f"choose one mode, not {' and '.join(modes)}", "generate")
        settings = GenerateSettings(
            **common,
            magnitude=parse_magnitude(magnitude),
            mode=modes[0] if modes else "basic",
            end_image=str(end_image) if end_image else None,
            continue_video=str(continue_video) if continue_video else None,
            context_frames=GenerateSettings.context_frames if context_frames is None else context_frames,
        )
        with progress_bar("generate", steps) as advance:
            result = gen_stage.generate(
                image,
                trajectory,
                out,
                settings=settings,
                ckpt=ckpt,
                camera_ckpt=camera_ckpt,
                preview_dir=preview,
                depth=depth,
                device=device,
                on_step=lambda i, t, z: advance(f"t={t}"),
            )
    _report(result)


def _report(result) -> None:
    n, h, w = result.frames.shape[:3]
    report(f"generate: {n} frames of {w}x{h} written to {result.video}")
    where = f"preview in {result.preview}; " if result.preview is not None else "no preview (text-to-video); "
    report(f"generate: {where}record in {result.record}")


def _wan_stage():
    from stages import generate_wan

    return generate_wan


def _record_format(path: Path) -> str:
    """``wan`` for a record of ``--model wan-camera``, else ``realcam`` (read by the stage)."""
    import json

    try:
        fmt = json.loads(Path(path).read_text()).get("format", "")
    except (OSError, ValueError, AttributeError):
        return "realcam"  # the stage names what is wrong with it
    return "wan" if str(fmt).startswith("realcam-generate-wan/") else "realcam"


def run_batch(batch: Path, out: Path, engine, run) -> None:
    """The batch form: one video per table row (``run(progress)`` runs the stage's batch and
    returns its status table); exit 1 when every row failed."""
    from stages import generate as gen_stage
    from stages.core.batch import read_media_table
    from stages.core.dataset import shard, shard_table

    rows = shard(read_media_table(batch, "image"), engine.shard)
    with progress_bar("generate", len(rows)) as advance:
        table = run(advance)
    skipped = table.attrs.get("skipped", 0)
    table = table[table["item"].isin({r["item"] for r in rows})]  # this run's (shard's) rows
    failed = table[table["status"] != "ok"]
    report(
        f"generate: {len(table) - len(failed)} of {len(rows)} rows done ({skipped} skipped as done "
        f"earlier), {len(failed)} failed; videos and {shard_table(gen_stage.BATCH_TABLE, engine.shard)} in {out}"
    )
    if len(rows) and len(failed) == len(rows):
        raise typer.Exit(1)  # the batch rule: every item failed
