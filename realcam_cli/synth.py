"""``realcam synth``: a synthetic RealEstate10K-layout dataset with known metric scale."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer

from stages import synth as synth_stage
from stages.core.errors import RealcamError
from stages.core.video import IMAGE_SUFFIXES

from .app import app, progress_bar, report


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except (ValueError, OverflowError):
        raise RealcamError(f"expected WIDTHxHEIGHT such as 256x256, got {text!r}", "--size") from None
    return w, h


def expand(paths: list[Path], suffixes: set[str], option: str) -> list[Path]:
    """Files as given, folders expanded to their files with one of ``suffixes``."""
    out = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in suffixes)
            if not found:
                raise RealcamError(f"folder holds no {'/'.join(sorted(suffixes))} files", p)
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise RealcamError(f"no such file or folder (given to {option})", p)
    return out


@app.command()
def synth(
    poses: List[Path] = typer.Option(..., "--poses", help="RealEstate10K camera files or folders of them (repeat, or list several)."),
    more_poses: Optional[List[Path]] = typer.Argument(None, hidden=True),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    scale: Optional[float] = typer.Option(None, "--scale", help="True factor alpha for every clip (metric = alpha * written)."),
    random_scale: Tuple[float, float] = typer.Option((0.5, 2.0), "--random-scale", help="Draw alpha log-uniformly in [LO, HI] per clip."),
    size: str = typer.Option("256x256", "--size", help="Frame size WIDTHxHEIGHT."),
    texture: Optional[List[Path]] = typer.Option(None, "--texture", help="Photos (or folders of photos) to texture the scene; procedural textures otherwise."),
    seed: int = typer.Option(0, "--seed", help="Random seed (scene layout, alpha)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo clips that are already written."),
) -> None:
    """Render a textured static scene along each trajectory: frames, metric depth, scaled cameras."""
    files = expand(list(poses) + list(more_poses or []), {".txt"}, "--poses")
    textures = expand(list(texture or []), IMAGE_SUFFIXES, "--texture")
    with progress_bar("synth", total=len(files)) as advance:
        truth = synth_stage.synthesize(files, out, scale=scale, random_scale=random_scale,
                                       size=parse_size(size), textures=textures, seed=seed,
                                       overwrite=overwrite, progress=advance)
    skipped = len(truth.attrs.get("skipped", []))
    report(f"synth: {len(files) - skipped} written ({skipped} skipped as already done), {len(truth)} clips "
           f"in {out} (cameras/, frames/, depth_gt/, {synth_stage.TRUTH_TABLE})")
