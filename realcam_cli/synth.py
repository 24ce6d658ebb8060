"""``realcam synth``: a synthetic RealEstate10K-layout dataset with known metric scale."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer

from .parsers import expand_paths, parse_size
from .ui import progress_bar, report


def synth(
    poses: List[Path] = typer.Option(
        ..., "--poses", help="RealEstate10K camera files or folders of them (repeat, or list several)."
    ),
    more_poses: Optional[List[Path]] = typer.Argument(None, hidden=True),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    scale: Optional[float] = typer.Option(
        None, "--scale", help="True factor alpha for every clip (metric = alpha * written)."
    ),
    random_scale: Tuple[float, float] = typer.Option(
        (0.5, 2.0), "--random-scale", help="Draw alpha log-uniformly in [LO, HI] per clip."
    ),
    size: str = typer.Option("256x256", "--size", help="Frame size WIDTHxHEIGHT."),
    texture: Optional[List[Path]] = typer.Option(
        None, "--texture", help="Photos (or folders of photos) to texture the scene; procedural textures otherwise."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (scene layout, alpha)."),
    store: str = typer.Option(
        "frames", "--store", help="frames (frames/<clip>/<timestamp>.png) or video (videos/<clip>.mp4, lossless)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo clips that are already written."),
) -> None:
    """Render a textured static scene along each trajectory: frames, metric depth, scaled cameras."""
    from stages import synth as synth_stage
    from stages.core.video import IMAGE_SUFFIXES

    files = expand_paths(list(poses) + list(more_poses or []), {".txt"}, "--poses")
    textures = expand_paths(list(texture or []), IMAGE_SUFFIXES, "--texture")
    with progress_bar("synth", total=len(files)) as advance:
        truth = synth_stage.synthesize(
            files,
            out,
            scale=scale,
            random_scale=random_scale,
            size=parse_size(size),
            textures=textures,
            seed=seed,
            overwrite=overwrite,
            store=store,
            progress=advance,
        )
    skipped = len(truth.attrs.get("skipped", []))
    report(
        f"synth: {len(files) - skipped} written ({skipped} skipped as already done), {len(truth)} clips "
        f"in {out} (cameras/, {'videos' if store == 'video' else 'frames'}/, depth_gt/, {synth_stage.TRUTH_TABLE})"
    )
