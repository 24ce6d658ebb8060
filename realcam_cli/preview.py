"""``realcam preview``: metric scene from an image, a trajectory, a fast preview and its masks."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stages.settings import PreviewSettings

from .parsers import parse_magnitude, parse_size
from .ui import progress_bar, report


def preview(
    image: Path = typer.Argument(..., help="The reference image (its camera is the identity)."),
    trajectory: Optional[Path] = typer.Argument(
        None, help="Trajectory JSON (docs/trajectory.md) or RealEstate10K text."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder for preview.mp4, preview.npz, scene.ply, trajectory.json/.txt."
    ),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="Preset instead of a file: pan-left, dolly-in, orbit-right, ... or A+B."
    ),
    magnitude: Optional[str] = typer.Option(
        None, "--magnitude", help="Preset magnitude in degrees or metres (one value, or one per part: 20,0.5)."
    ),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frame count (default: the file's, else 16)."),
    size: Optional[str] = typer.Option(
        None,
        "--size",
        help="Preview size WIDTHxHEIGHT, both even (H.264); default: the image's, an odd side one pixel less.",
    ),
    kernel: int = typer.Option(
        PreviewSettings.kernel, "--kernel", help="Edge filter: keep pixels whose KxK neighbourhood is all valid."
    ),
    latent_stride: int = typer.Option(
        PreviewSettings.latent_stride, "--latent-stride", help="Pixels per latent cell for the latent mask."
    ),
    depth: Optional[Path] = typer.Option(
        None, "--depth", help="Metric depth file (.npy/.npz metres, 16-bit .png millimetres) instead of predicting it."
    ),
    model: Optional[str] = typer.Option(
        None, "--model", help="Depth model (Hugging Face id or folder) when no --depth is given."
    ),
    fov: Optional[float] = typer.Option(
        None, "--fov", help="Field of view across the long side, degrees, when the trajectory carries no intrinsics."
    ),
    spline: Optional[bool] = typer.Option(
        None, "--spline/--linear", help="Smooth spline through keyframes, or slerp + linear."
    ),
    easing: Optional[str] = typer.Option(None, "--easing", help="linear, ease-in-out, ease-in or ease-out."),
    loop: Optional[bool] = typer.Option(None, "--loop/--no-loop", help="Play the path out and back."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    fps: float = typer.Option(PreviewSettings.fps, "--fps", help="Frame rate of preview.mp4."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="Frames rendered per batch (default: all at once)."
    ),
    compile: bool = typer.Option(
        False,
        "--compile",
        help="--renderer points: fuse its projection with torch.compile (one-time compile, then "
        "faster). The surface renderer gains nothing measurable from it and ignores it.",
    ),
    gif: bool = typer.Option(False, "--gif", help="Also write preview.gif (a looping GIF for documents)."),
    renderer: str = typer.Option(
        PreviewSettings.renderer,
        "--renderer",
        help="surface: the depth map as a continuous surface (holes only where the image does not see the "
        "scene); points: each point on one pixel (holes wherever the view magnifies the image).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo even when all outputs exist."),
) -> None:
    """Render a real-time preview of the image's metric scene along a camera trajectory."""
    from stages import preview as preview_stage

    settings = PreviewSettings(
        preset=preset,
        magnitude=parse_magnitude(magnitude),
        frames=frames,
        size=parse_size(size) if size else None,
        kernel=kernel,
        latent_stride=latent_stride,
        depth_file=None if depth is None else str(depth),
        model=model,
        device=device,
        fov=fov,
        spline=spline,
        easing=easing,
        loop=loop,
        fps=fps,
        overwrite=overwrite,
        batch_size=batch_size,
        compile=compile,
        gif=gif,
        renderer=renderer,
    )
    with progress_bar("preview", total=len(preview_stage.STEPS)) as advance:

        def step(name: str) -> None:  # called as each step begins: the first one advances nothing
            advance(name, n=0 if name == preview_stage.STEPS[0] else 1)

        result = preview_stage.run_preview(image, out, trajectory, settings, progress=step)
    if result is None:
        report(f"preview: outputs already in {out} (use --overwrite to redo)")
        return
    parts = ", ".join(f"{name} {sec * 1000:.1f} ms" for name, sec in result.timings.items())
    n, h, w = result.masks.shape
    report(f"preview: time per part: {parts}")
    report(
        f"preview: {n} frames of {w}x{h} from {len(result.scene.points)} points, "
        f"{result.masks.mean() * 100:.1f}% of pixels kept by the mask"
    )
    report(f"preview: wrote {', '.join(preview_stage.output_names(gif))} in {out}")
