"""Preview coverage and fidelity on synthetic clips with exact depth, along every bundled real
RealEstate10K trajectory: the point renderer (before) against the surface renderer (now).

For each trajectory a clip is ray cast with ``stages.synth`` (the bundled photos as textures,
factor 1, so the poses are metric), frame 0 and its exact depth make the preview's scene (built as
``preview`` builds it: flying pixels and outliers dropped), and frames 1..15 are rendered along the
clip's true path and compared with the true frames:

- **seen**: the share of frame i's pixels whose scene point frame 0 sees
  (``stages.preview.seen_by_image``): what a preview can show at all (every figure comes from
  ``stages.preview.preview_fidelity``);
- **rendered** / **mask**: the share of those seen pixels the preview renders / the noise-shaping
  mask keeps (5x5 rule);
- **PSNR mask**: PSNR of the preview against the true frame on the mask; **PSNR seen**: on the mask
  and seen pixels only (the rest of the mask shows surfaces that an object frame 0 never saw hides
  in the true frame: no renderer of frame 0 can get them right);
- **oracle**: PSNR on the same pixels of frame 0 sampled (bilinearly) along each pixel's ray at the
  frame's *true* depth (``SurfaceRenderer.colour_at_depth``): the bound frame 0's own pixels set.

Figures pool all pixels of frames 1..15. Targets (issue 21): rendered >= 95 %, mask >= 80 %,
PSNR >= 28 dB.

    PYTHONPATH=. python benchmarks/preview_coverage.py [--size 256] [--threads 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stages import synth
from stages.core import cameras as cam
from stages.preview import build_scene, make_renderer, preview_fidelity

ROOT = Path(__file__).resolve().parents[1] / "examples" / "data"


def synthetic_clip(pose_file: Path, size: tuple[int, int], textures: list[np.ndarray]):
    """Frames, exact depth, pixel intrinsics and c2w relative to frame 0 of one trajectory."""
    cams = cam.read_re10k(pose_file)
    frames, depth, written = synth.synth_clip(cams, textures, 1.0, size, synth.clip_rng(0, pose_file.stem))
    k = cam.denormalize_intrinsics(written.intrinsics, *size)
    c2w = written.c2w
    return frames, depth, k, np.linalg.inv(c2w[0])[None] @ c2w


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256, help="square frame side (unless --width/--height)")
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    size = (args.width or args.size, args.height or args.size)
    textures = [synth.load_texture(p) for p in sorted((ROOT / "images").glob("*.jpg"))]
    head = "| trajectory | renderer | seen | rendered | mask | PSNR mask | PSNR seen | oracle |"
    print(f"{head} ms (16 frames {size[0]}x{size[1]}) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for pose_file in sorted((ROOT / "poses").glob("*.txt")):
        frames, depth, k, rel = synthetic_clip(pose_file, size, textures)
        scene = build_scene(frames[0], depth[0], k[0])
        oracle = make_renderer(scene, "surface", "cpu")
        for kind in ("points", "surface"):
            r = preview_fidelity(frames, depth, k, rel, make_renderer(scene, kind, "cpu"), oracle)
            print(
                f"| {pose_file.stem} | {kind} | {r['seen']:.1%} | {r['rendered']:.1%} | {r['mask']:.1%} | "
                f"{r['psnr_mask']:.1f} | {r['psnr_seen']:.1f} | {r['oracle']:.1f} | {r['ms']:.0f} |"
            )


if __name__ == "__main__":
    main()
