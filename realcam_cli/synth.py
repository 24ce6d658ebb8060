"""``realcam synth``: a synthetic RealEstate10K-layout dataset with known metric scale (with
``--dynamic``, moving boxes and their masks too), or (with ``--cameras N``) synchronized
multi-camera scenes in ReCamMaster's MultiCamVideo layout."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer

from .parsers import expand_paths, parse_size
from .ui import progress_bar, report


def synth(
    poses: Optional[List[Path]] = typer.Option(
        None,
        "--poses",
        help="RealEstate10K camera files or folders of them (repeat, or list several); not with --cameras.",
    ),
    more_poses: Optional[List[Path]] = typer.Argument(None, hidden=True),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    cameras: Optional[int] = typer.Option(
        None,
        "--cameras",
        help="Render N >= 2 synchronized camera trajectories around one scene per --scenes, written in "
        "ReCamMaster's MultiCamVideo layout (sceneN/videos/camNN.mp4, cameras/camera_extrinsics.json, truth/); "
        "no --poses needed.",
    ),
    dynamic: bool = typer.Option(
        False,
        "--dynamic",
        help="Moving boxes: with --poses, boxes in front of the cameras covering --moving-share of the image "
        "(plus masks/<clip>/<timestamp>.png, 255 on them); with --cameras, the scene's boxes near the centre move.",
    ),
    moving_share: Optional[Tuple[float, float]] = typer.Option(
        None,
        "--moving-share",
        help="With --poses --dynamic: the share of the image the moving boxes cover on average over a clip, "
        "drawn per clip in [LO, HI] (0 <= LO <= HI <= 0.9; default 0.2 0.4).",
    ),
    frames: Optional[int] = typer.Option(None, "--frames", help="With --cameras: frames per video (default 81)."),
    scenes: Optional[int] = typer.Option(None, "--scenes", help="With --cameras: scenes to write (default 1)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="With --cameras: frame rate of the videos (default 15)."),
    scale: Optional[float] = typer.Option(
        None, "--scale", help="True factor alpha for every clip (metric = alpha * written); not with --cameras."
    ),
    random_scale: Tuple[float, float] = typer.Option(
        (0.5, 2.0), "--random-scale", help="Draw alpha log-uniformly in [LO, HI] per clip (not used with --cameras)."
    ),
    size: str = typer.Option("256x256", "--size", help="Frame size WIDTHxHEIGHT."),
    texture: Optional[List[Path]] = typer.Option(
        None, "--texture", help="Photos (or folders of photos) to texture the scene; procedural textures otherwise."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (scene layout, alpha, camera trajectories)."),
    store: str = typer.Option(
        "frames",
        "--store",
        help="frames (frames/<clip>/<timestamp>.png) or video (videos/<clip>.mp4, lossless); "
        "--cameras always writes lossless videos.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo clips (or scenes) that are already written."),
) -> None:
    """Render a textured scene: along each trajectory of --poses (a room: frames, metric depth, scaled
    cameras; with --dynamic also moving boxes and their masks), or with --cameras N, N synchronized
    cameras around one room per scene."""
    from stages import synth as synth_stage
    from stages.core.errors import RealcamError
    from stages.core.video import IMAGE_SUFFIXES

    given = list(poses or []) + list(more_poses or [])
    if moving_share is not None and (cameras is not None or not dynamic):
        raise RealcamError("only with --poses and --dynamic", "--moving-share")
    if cameras is None:
        for name, value in (("--frames", frames), ("--scenes", scenes), ("--fps", fps)):
            if value is not None:
                raise RealcamError("only with --cameras (the camera files set a single trajectory's frames)", name)
        if not given:
            if dynamic:
                raise RealcamError("needs camera files (--poses) or generated cameras (--cameras N)", "--dynamic")
            raise RealcamError("no camera files given (or use --cameras N for generated cameras)", "--poses")
        files = expand_paths(given, {".txt"}, "--poses")
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
                dynamic=dynamic,
                moving_share=moving_share,
                progress=advance,
            )
        skipped = len(truth.attrs.get("skipped", []))
        masks = "masks/, " if dynamic else ""
        shares = ""
        if dynamic and "moving_share" in truth.columns:
            share = truth.loc[truth["dynamic"], "moving_share"]
            low, high = (f"{x:.0%}" for x in (share.min(), share.max()))
            if len(share):
                shares = f"; moving boxes cover {low if low == high else f'{low}-{high}'} of the image (clip means)"
        report(
            f"synth: {len(files) - skipped} written ({skipped} skipped as already done), {len(truth)} clips in {out} "
            f"(cameras/, {'videos' if store == 'video' else 'frames'}/, {masks}depth_gt/, {synth_stage.TRUTH_TABLE})"
            f"{shares}"
        )
        return
    if given:
        raise RealcamError("not used with --cameras (the cameras are generated)", "--poses")
    if scale is not None:
        raise RealcamError("not used with --cameras (the scenes are metric)", "--scale")
    textures = expand_paths(list(texture or []), IMAGE_SUFFIXES, "--texture")
    n_scenes = 1 if scenes is None else scenes
    with progress_bar("synth", total=max(n_scenes, 1)) as advance:
        table = synth_stage.synthesize_multicam(
            out,
            cameras,
            n_frames=81 if frames is None else frames,
            size=parse_size(size),
            scenes=n_scenes,
            textures=textures,
            seed=seed,
            dynamic=dynamic,
            fps=15.0 if fps is None else fps,
            overwrite=overwrite,
            progress=advance,
        )
    skipped = len(table.attrs.get("skipped", []))
    report(
        f"synth: {n_scenes - skipped} scenes written ({skipped} skipped as already done), {len(table)} scenes of "
        f"{cameras} cameras in {out} (sceneN/videos/cam01..cam{cameras:02d}.mp4, "
        f"sceneN/cameras/{synth_stage.EXTRINSICS_JSON}, sceneN/truth/, {synth_stage.METADATA_CSV}, "
        f"{synth_stage.MULTICAM_TABLE})"
    )
