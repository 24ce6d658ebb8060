"""``realcam edit``: design a camera path in the browser, inside the image's metric scene."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from stages.core import checks
from stages.settings import EditSettings

from .parsers import parse_magnitude, parse_size
from .ui import report


def edit(
    image: Path = typer.Argument(..., help="The reference image (its camera is the identity)."),
    trajectory: Optional[Path] = typer.Option(
        None, "--trajectory", help="Start from this trajectory (JSON or RealEstate10K text); default: a preset."
    ),
    port: int = typer.Option(
        EditSettings.port, "--port", help="Port to serve on (the next free one if taken; 0: any free port)."
    ),
    host: str = typer.Option(
        EditSettings.host,
        "--host",
        help="Address to serve on; localhost only by default (0.0.0.0 serves every interface).",
    ),
    export: Optional[Path] = typer.Option(
        None,
        "--export",
        help="Default export file (.json; .txt and .sh are written beside it). Default: IMAGE_trajectory.json here.",
    ),
    preset: str = typer.Option(EditSettings.preset, "--preset", help="Starting preset when no --trajectory is given."),
    magnitude: Optional[str] = typer.Option(None, "--magnitude", help="Preset magnitude (degrees or metres)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frame count (default: the trajectory's, else 16)."),
    size: Optional[str] = typer.Option(
        None, "--size", help="Preview size WIDTHxHEIGHT (default: 256 on the long side)."
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
    device: str = typer.Option(
        EditSettings.device, "--device", help="Device for depth and the preview renderer (cpu, cuda, auto)."
    ),
    fps: float = typer.Option(EditSettings.fps, "--fps", help="Playback rate of the preview panel."),
    renderer: str = typer.Option(
        EditSettings.renderer, "--renderer", help="surface (holes only where the image does not see) or points."
    ),
    duration: Optional[float] = typer.Option(
        None, "--duration", help="Stop after this many seconds (scripts, tests); default: until Ctrl+C."
    ),
) -> None:
    """Open an interactive trajectory editor in the browser (move keyframe cameras, see the preview)."""
    from stages.core.errors import RealcamError
    from stages.edit.session import EditorSession
    from stages.edit.viewer import EditorViewer, free_port

    # Options first, the address included (a bad one would hang the server), then the scene.
    settings = EditSettings(
        preset=preset,
        magnitude=parse_magnitude(magnitude),
        frames=frames,
        size=parse_size(size) if size else None,
        depth_file=None if depth is None else str(depth),
        model=model,
        fov=fov,
        device=device,
        host=host,
        port=port,
        export=str(export or Path(f"{image.stem}_trajectory.json")),
        fps=fps,
        renderer=renderer,
    ).check()
    export = Path(settings.export)
    if duration is not None:
        duration = checks.number(duration, "--duration", minimum=0)
    port = free_port(host, settings.port)
    report(f"edit: building the metric scene of {image} ...")
    session = EditorSession(image, trajectory, settings)
    try:
        viewer = EditorViewer(session, host=host, port=port, export=export, fps=settings.fps)
    except OSError as err:
        raise RealcamError(f"cannot serve on {host}:{port} ({err.strerror or err})", "--port") from None
    report(
        f"edit: {len(session.scene.points)} scene points, {len(session)} keyframes, "
        f"{session.frames} frames of {session.size[0]}x{session.size[1]}"
    )
    report(f"edit: open {viewer.url} in a browser (Ctrl+C to stop)")
    report(
        f"edit: Export writes {export} (keyframes), {export.with_suffix('.txt')} (RealEstate10K), "
        f"{export.with_suffix('.sh')} (the generate command)"
    )
    try:
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
    report("edit: stopped")
