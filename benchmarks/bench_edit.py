"""`realcam edit` preview refresh: 16 frames at 256x256 after a keyframe move (target < 200 ms).

A 256x256 synthetic view along a real RealEstate10K path (exact depth, ~60k points) is opened in
the editor. Each repeat moves the last keyframe and times:

- ``session render``: the 16 frames of the new path in one call (``EditorSession.render``);
- ``viewer refresh``: what the browser panel does, rendering in chunks of 4 and pushing each chunk's
  frame to the page as a JPEG (a live viser server, no browser attached);
- baseline ``realcam preview`` re-run: the preview stage from the files for each change (read,
  scene, render, write), what one would do without the editor.

    PYTHONPATH=. python benchmarks/bench_edit.py [--repeats 15] [--threads N] [--photo 1024x576]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from stages import preview as pv
from stages import synth
from stages.edit import EditorSession
from stages.edit.viewer import EditorViewer

ROOT = Path(__file__).resolve().parents[1]
CLIP = "0f47577ab3441480"


def measure(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3, float(np.median(times)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument(
        "--photo",
        default="256x256",
        help="size of the image the scene is built from (points = its pixels, less cleaning)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_edit_"))
    photo = tuple(int(v) for v in args.photo.lower().split("x"))
    synth.synthesize([ROOT / "examples" / "data" / "poses" / f"{CLIP}.txt"], tmp / "s", scale=1.0, size=photo, seed=0)
    image = sorted((tmp / "s" / "frames" / CLIP).iterdir())[0]
    depth = tmp / "s" / "depth_gt" / f"{CLIP}.npz"
    session = EditorSession(image, depth_file=depth, size=(256, 256), frames=16, preset="orbit-right")
    rng = np.random.default_rng(0)
    last = session.keyframes().c2w[-1]

    def move() -> None:
        m = last.copy()
        m[:3, 3] += rng.normal(scale=0.05, size=3)
        session.move_keyframe(len(session) - 1, m)

    def render() -> None:
        move()
        frames = session.render().frames
        assert frames.shape == (16, 256, 256, 3)

    viewer = EditorViewer(session, port=0)
    time.sleep(0.5)

    def refresh() -> None:
        move()
        viewer.refresh()

    session.export(tmp / "traj.json")

    def rerun_preview() -> None:
        pv.run_preview(
            image, tmp / "pv", tmp / "traj.json", depth_file=depth, size=(256, 256), device="cpu", overwrite=True
        )

    rows = [
        ("session render (16 frames, one call)", *measure(render, args.repeats)),
        ("viewer refresh (chunks of 4, streamed as JPEG)", *measure(refresh, args.repeats)),
        ("baseline: `realcam preview` re-run", *measure(rerun_preview, max(3, args.repeats // 3))),
    ]
    viewer.stop()
    base = rows[-1][2]
    table = Table(
        title=f"edit: preview refresh, 16 frames at 256x256, scene from a {photo[0]}x{photo[1]} "
        f"image ({len(session.scene.points)} points)"
    )
    for col in ("what", "best ms", "median ms", "x faster than re-run (median)"):
        table.add_column(col, justify="right")
    for name, best, med in rows:
        table.add_row(name, f"{best:.1f}", f"{med:.1f}", f"{base / med:.1f}")
    console = Console(width=110)
    console.print(table)
    console.print(
        f"target: refresh < 200 ms on a 2-core CPU. Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
