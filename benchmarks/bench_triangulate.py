"""Benchmark: `realcam triangulate` per 16-frame 256x256 clip, its overhead over the bare pycolmap
calls, and clips per minute with 1 and 2 worker processes.

Baseline (measured in the same run, on the same clips): the bare pycolmap sequence written out
inline here — extract_features, match_sequential, a fixed-pose Reconstruction, triangulate_points —
with no frame checks, no tables, no atomic writes. The stage's overhead is its wall time minus the
baseline's, over the baseline's. The baseline runs on one thread per clip, as the stage does since
it became reproducible (multithreaded pycolmap is not); parallelism comes from worker processes.
Usage: python benchmarks/bench_triangulate.py [--size 256x256] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from stages import synth
from stages.core import cameras as cam
from stages.core.dataset import find_clips
from stages.triangulate import TriangulateOptions, run_triangulate, triangulate_clip

ROOT = Path(__file__).resolve().parents[1]


def bare_pycolmap(camera_path: Path, frames_dir: Path, work: Path, size: tuple[int, int]) -> int:
    import pycolmap

    cams = cam.read_re10k(camera_path)
    k = cam.denormalize_intrinsics(cams.intrinsics[0], *size)
    names = [f"{t}.png" for t in cams.timestamps]
    db = work / "database.db"
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    reader.camera_params = f"{k[0, 0]},{k[1, 1]},{k[0, 2]},{k[1, 2]}"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = 1
    pycolmap.extract_features(
        db,
        frames_dir,
        image_names=names,
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = 10
    pairing.quadratic_overlap = False
    pairing.num_threads = 1
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = 1
    pycolmap.match_sequential(db, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu)
    database = pycolmap.Database.open(db)
    rec = pycolmap.Reconstruction()
    for c in database.read_all_cameras():
        rec.add_camera_with_trivial_rig(c)
    index = {n: i for i, n in enumerate(names)}
    for im in database.read_all_images():
        w = cams.w2c[index[im.name]]
        rec.add_image_with_trivial_frame(im, pycolmap.Rigid3d(pycolmap.Rotation3d(w[:3, :3]), w[:3, 3]))
    database.close()
    (work / "sparse").mkdir()
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = options.mapper.num_threads = 1
    rec = pycolmap.triangulate_points(rec, db, frames_dir, work / "sparse", options=options)
    return rec.num_points3D()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    import pycolmap

    pycolmap.logging.minloglevel = 2
    poses = sorted((ROOT / "examples/data/poses").glob("*.txt"))
    textures = sorted((ROOT / "examples/data/images").glob("*.jpg"))
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth.synthesize(poses, tmp / "ds", random_scale=(0.1, 10.0), size=size, textures=textures, seed=0)
        clips = find_clips(tmp / "ds")
        table = Table(
            title=f"triangulate, 16 frames {size[0]}x{size[1]} per clip "
            f"(best of {args.repeats}; baseline: bare pycolmap calls)"
        )
        for col in ("clip", "points", "bare pycolmap s", "realcam s", "overhead"):
            table.add_column(col, justify="right")
        bare_t, ours_t = [], []
        for c in clips:
            tb, to = [], []
            for r in range(args.repeats):
                work = tmp / f"bare_{c.clip_id}_{r}"
                work.mkdir()
                t0 = time.perf_counter()
                n_bare = bare_pycolmap(c.camera_path, c.frames_dir, work, size)
                tb.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                row = triangulate_clip(c, tmp / f"ours_{r}", TriangulateOptions())
                to.append(time.perf_counter() - t0)
                shutil.rmtree(work)
            bare_t.append(min(tb))
            ours_t.append(min(to))
            table.add_row(
                c.clip_id,
                f"{row['n_points']} ({n_bare})",
                f"{bare_t[-1]:.2f}",
                f"{ours_t[-1]:.2f}",
                f"{(ours_t[-1] - bare_t[-1]) / bare_t[-1] * 100:+.1f} %",
            )
        b, o = float(np.sum(bare_t)), float(np.sum(ours_t))
        table.add_row("total", "", f"{b:.2f}", f"{o:.2f}", f"{(o - b) / b * 100:+.1f} % (target < 10 %)")
        console.print(table)

        rate = Table(title="triangulate throughput over the 6 clips (run_triangulate)")
        for col in ("workers", "wall s", "clips / min", "ratio vs 1 worker"):
            rate.add_column(col, justify="right")
        base = None
        for workers in (1, 2):
            t0 = time.perf_counter()
            st, _ = run_triangulate(tmp / "ds", tmp / f"w{workers}", workers=workers)
            wall = time.perf_counter() - t0
            assert (st["status"] == "ok").all()
            base = base or wall
            rate.add_row(str(workers), f"{wall:.2f}", f"{len(clips) / wall * 60:.1f}", f"{base / wall:.2f}x")
        console.print(rate)


if __name__ == "__main__":
    main()
