"""Preview speed: 16 frames at 512x320 from a 512x320 image (~164k points), depth excluded.

Our two renderers (render + noise-shaping masks): the surface renderer (the default: the depth map
as a continuous surface, ``SurfaceRenderer``) and the point renderer (one pixel per point,
``PointRenderer``), against Open3D's tensor-API
``PointCloud.project_to_rgbd_image`` (the z-buffered projection that runs headless here; Open3D's
``OffscreenRenderer`` needs a GPU/EGL context), measured in the same run on the same cloud and
cameras. Prints a table with the best and median of several repeats and the ratio to Open3D.

    PYTHONPATH=. python benchmarks/bench_preview.py [--device cpu|cuda] [--repeats 7] [--clip ID]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from stages import synth
from stages.core import cameras as cam
from stages.core import trajectory as tr
from stages.core.device import resolve_device
from stages.core.render import PointRenderer, noise_shaping_masks
from stages.preview import build_scene, make_renderer

ROOT = Path(__file__).resolve().parents[1]
W, H, N = 512, 320, 16


def timed(fn, repeats: int, sync=lambda: None):
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3, float(np.median(times)) * 1e3


def view_along(clip: str):
    """The benchmark's scene: a ray-cast synthetic view (procedural textures, exact depth) as the
    image, its scene cloud as ``preview`` builds it, pixel ``K`` and the ``w2c`` of the 16 frames
    along the bundled RealEstate10K path ``clip``; and the scene build's ms."""
    cams = cam.read_re10k(ROOT / "examples" / "data" / "poses" / f"{clip}.txt")
    c2w = cams.c2w
    rng = np.random.default_rng(0)
    scene = synth.build_scene(c2w, [synth.procedural_texture(np.random.default_rng(i)) for i in range(2)], rng)
    k = cam.denormalize_intrinsics(synth.square_pixel_intrinsics(cams.intrinsics[0], W, H), W, H)
    image, depth = synth.render_view(scene, k, c2w[0], W, H, supersample=1)
    t = time.perf_counter()
    cloud = build_scene(image, depth, k)
    scene_ms = (time.perf_counter() - t) * 1e3
    w2c = cam.invert_pose(tr.trajectory_from_re10k(cams).c2w)
    return cloud, k, w2c, scene_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument(
        "--clip",
        default="0f47577ab3441480",
        help="bundled trajectory (0f47577ab3441480: a gentle path; 0c9b371cc6225682 closes in 2-3x, "
        "where the surface renderer subdivides most quads)",
    )
    args = ap.parse_args()
    dev = torch.device(resolve_device(args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    # A real RealEstate10K path and a ray-cast synthetic view as the "image" with exact depth.
    cloud, k, w2c, scene_ms = view_along(args.clip)
    print(
        f"clip {args.clip}; device: {dev} ({torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}); "
        f"points: {len(cloud.points)} of {W * H} pixels; scene build (edges + outliers): {scene_ms:.0f} ms"
    )

    renderer = PointRenderer(cloud.points, cloud.colors, dev)
    fused = PointRenderer(cloud.points, cloud.colors, dev, compile=True)
    rows = []

    def ours(r, batch):
        def run():
            out = r.render(k, w2c, H, W, batch_size=batch)
            noise_shaping_masks(out.valid, 5, 8)

        return run

    surface = make_renderer(cloud, "surface", dev)
    for batch in (16, 4):
        rows.append(
            (f"surface (default), render + masks, batch {batch}", *timed(ours(surface, batch), args.repeats, sync))
        )
    for batch in (16, 4, 1):
        name = f"points (eager), render + masks, batch {batch}"
        rows.append((name, *timed(ours(renderer, batch), args.repeats, sync)))
    if not args.no_compile:
        t = time.perf_counter()
        a, b = renderer.render(k, w2c, H, W, batch_size=4), fused.render(k, w2c, H, W, batch_size=4)
        print(
            f"torch.compile of the projection (once per shape, cached on disk): "
            f"{time.perf_counter() - t:.1f} s; identical output: "
            f"{bool(torch.equal(a.rgb, b.rgb) and torch.equal(a.valid, b.valid))}"
        )
        for batch in (16, 4):
            rows.append(
                (f"points (--compile), render + masks, batch {batch}", *timed(ours(fused, batch), args.repeats, sync))
            )

    try:
        import open3d as o3d

        pcd = o3d.t.geometry.PointCloud(o3d.core.Tensor(cloud.points.astype(np.float32)))
        pcd.point.colors = o3d.core.Tensor(cloud.colors.astype(np.float32) / 255.0)
        kt = o3d.core.Tensor(k)
        exts = [o3d.core.Tensor(m) for m in w2c]

        def o3d_run():
            for e in exts:
                pcd.project_to_rgbd_image(W, H, kt, e, depth_scale=1.0, depth_max=100.0)

        rows.append(("Open3D t.PointCloud.project_to_rgbd_image (CPU)", *timed(o3d_run, args.repeats)))
        base = rows[-1][1]
    except Exception as err:  # pragma: no cover - reported, not hidden
        print(f"Open3D baseline could not run: {err}")
        base = None

    print(f"\n| {N} frames at {W}x{H} | best ms | median ms | speed vs Open3D (best) |")
    print("| --- | ---: | ---: | ---: |")
    for name, best, med in rows:
        ratio = f"{base / best:.2f}x" if base else "n/a"
        print(f"| {name} | {best:.1f} | {med:.1f} | {ratio} |")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print("\ntarget: < 100 ms total on a 2-core CPU, < 5 ms on an H100-class GPU")


if __name__ == "__main__":
    main()
