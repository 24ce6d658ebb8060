"""``preview``: a metric scene from one image, a trajectory through it, and a fast preview.

Steps (SPEC.md section 4): metric depth of the image (the ``depth`` stage's predictor, or a depth
file) -> unprojection with the image intrinsics -> flying-pixel and statistical outlier removal
(Open3D) -> point splatting along the dense trajectory -> validity and noise-shaping masks.
Outputs in ``out``: ``preview.mp4``, ``preview.npz`` (``frames``, ``masks``, ``latent_masks``,
``valid``, ``K``, ``c2w``), ``scene.ply``, ``trajectory.json`` and ``trajectory.txt``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .core import cameras as cam
from .core import trajectory as tr
from .core.artifacts import atomic_path, read_arrays, write_arrays
from .core.errors import RealcamError
from .core.device import resolve_device
from .core.render import PointRenderer, noise_shaping_masks
from .core.video import read_image, write_gif, write_video

OUTPUTS = ("preview.mp4", "preview.npz", "scene.ply", "trajectory.json", "trajectory.txt")
GIF = "preview.gif"  # written only when asked for


def output_names(gif: bool = False) -> tuple[str, ...]:
    """The files a preview run writes (``gif``: with ``preview.gif``)."""
    return OUTPUTS + ((GIF,) if gif else ())

#: A pixel is a flying pixel when the depths of its 3x3 neighbourhood differ by more than this
#: fraction of its own depth (a depth discontinuity, where unprojected points smear between layers).
EDGE_RATIO = 0.05
SOR_NEIGHBOURS = 16
SOR_STD_RATIO = 3.0


# ----------------------------------------------------------------------------------------------
# Depth files
# ----------------------------------------------------------------------------------------------
def load_depth_file(path: str | Path) -> np.ndarray:
    """Metric depth ``(H, W)`` float32 from ``.npy`` (metres), ``.npz`` (key ``depth``, metres;
    a stack takes its first map) or a 16-bit PNG (millimetres)."""
    path = Path(path)
    if not path.exists():
        raise RealcamError("no such depth file", path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            depth = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            arrays = read_arrays(path)
            if "depth" not in arrays:
                raise RealcamError(f"no key 'depth' in the archive (keys: {', '.join(arrays)})", path)
            depth = arrays["depth"]
        elif suffix == ".png":
            import imageio.v3 as iio

            raw = np.asarray(iio.imread(path))
            if raw.dtype != np.uint16 or raw.ndim != 2:
                raise RealcamError(f"a depth PNG must be single-channel 16-bit (millimetres), got "
                                   f"{raw.dtype} with shape {raw.shape}", path)
            depth = raw.astype(np.float32) / 1000.0
        else:
            raise RealcamError(f"unknown depth file type {suffix!r} (.npy, .npz or 16-bit .png)", path)
    except RealcamError:
        raise
    except Exception as err:
        raise RealcamError(f"cannot read depth ({err.__class__.__name__})", path) from None
    depth = np.asarray(depth)
    if depth.ndim == 3 and suffix == ".npz":
        depth = depth[0]
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
        raise RealcamError(f"depth must be an H x W array of numbers, got shape {depth.shape}", path)
    depth = depth.astype(np.float32)
    finite = np.isfinite(depth) & (depth > 0)
    if not finite.any():
        raise RealcamError("depth has no positive finite value", path)
    return np.where(finite, depth, 0.0).astype(np.float32)


def fit_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Depth at the image's size (nearest neighbour: no mixing across depth edges)."""
    if depth.shape == (height, width):
        return depth
    from PIL import Image

    return np.asarray(Image.fromarray(depth).resize((width, height), Image.NEAREST), dtype=np.float32)


def predict_image_depth(image: np.ndarray, model: str | None, device: str) -> np.ndarray:
    try:  # lazy: the depth model is heavy and not needed with --depth
        from .depth import predict_depth
    except ImportError as err:
        raise RealcamError(f"the depth predictor cannot be loaded ({err}); give a depth file "
                           "with --depth", "preview") from None

    kwargs = {"device": device}
    if model:
        kwargs["model"] = model
    return np.asarray(predict_depth([image], **kwargs)[0], dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# Scene
# ----------------------------------------------------------------------------------------------
def unproject(depth: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``p = D(u, v) * inv(K) @ [u + 0.5, v + 0.5, 1]`` for every pixel: ``(H, W, 3)`` float64."""
    h, w = depth.shape
    uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([uu, vv, np.ones_like(uu)], axis=-1) @ np.linalg.inv(k).T
    return rays * depth[..., None].astype(np.float64)


def depth_edges(depth: np.ndarray, ratio: float = EDGE_RATIO) -> np.ndarray:
    """Flying pixels: where ``max - min`` of the 3x3 neighbourhood exceeds ``ratio * depth``."""
    from scipy.ndimage import maximum_filter, minimum_filter

    d = depth.astype(np.float64)
    spread = maximum_filter(d, 3, mode="nearest") - minimum_filter(d, 3, mode="nearest")
    return spread > ratio * d


@dataclass
class SceneCloud:
    points: np.ndarray  # (P, 3) float32, reference camera frame (= world), metres
    colors: np.ndarray  # (P, 3) uint8
    centre_depth: float  # median depth of the kept points
    counts: dict = field(default_factory=dict)  # pixels, after edge filter, after outliers


def build_scene(image: np.ndarray, depth: np.ndarray, k: np.ndarray, edge_ratio: float | None = EDGE_RATIO,
                outlier_neighbours: int = SOR_NEIGHBOURS, outlier_std: float = SOR_STD_RATIO) -> SceneCloud:
    """Coloured point cloud of the image: unproject, drop flying pixels, then outliers (Open3D).

    ``edge_ratio=None`` or ``outlier_neighbours=0`` switch the respective filter off.
    """
    h, w = depth.shape
    if image.shape[:2] != (h, w):
        raise RealcamError(f"depth {w}x{h} does not match the image {image.shape[1]}x{image.shape[0]}",
                           "depth")
    keep = np.isfinite(depth) & (depth > 0)
    counts = {"pixels": int(h * w), "valid_depth": int(keep.sum())}
    if edge_ratio is not None:
        keep &= ~depth_edges(np.where(keep, depth, 0), edge_ratio)
    counts["after_edges"] = int(keep.sum())
    points = unproject(depth, k)[keep]
    colors = image[keep]
    if outlier_neighbours and len(points) > outlier_neighbours:
        import open3d as o3d

        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        _, kept = pcd.remove_statistical_outlier(nb_neighbors=outlier_neighbours, std_ratio=outlier_std)
        kept = np.asarray(kept, dtype=np.int64)
        points, colors = points[kept], colors[kept]
    counts["after_outliers"] = int(len(points))
    if len(points) == 0:
        raise RealcamError("no scene point is left (depth empty or all filtered)", "depth")
    return SceneCloud(points.astype(np.float32), np.ascontiguousarray(colors, dtype=np.uint8),
                      float(np.median(points[:, 2])), counts)


def write_ply(path: str | Path, scene: SceneCloud) -> Path:
    """The scene as a binary PLY with colours (Open3D)."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(scene.points.astype(np.float64)))
    pcd.colors = o3d.utility.Vector3dVector(scene.colors.astype(np.float64) / 255.0)
    path = Path(path)
    with atomic_path(path) as tmp:
        # Open3D picks the format from the name, so write beside the temporary file as .ply.
        ply = tmp.with_name(tmp.name + ".ply")
        try:
            if not o3d.io.write_point_cloud(str(ply), pcd, write_ascii=False):
                raise RealcamError("Open3D could not write the point cloud", path)
            os.replace(ply, tmp)
        finally:
            ply.unlink(missing_ok=True)
    return path


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(path), format="ply")
    return np.asarray(pcd.points), (np.asarray(pcd.colors) * 255 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------
def fit_image(image: np.ndarray, k: np.ndarray, size: tuple[int, int] | None):
    """Resize keeping aspect then centre crop to ``size``; returns the image and its intrinsics."""
    h, w = image.shape[:2]
    if size is None or tuple(size) == (w, h):
        return image, k
    from PIL import Image

    (rw, rh), (left, top) = cam.resize_crop_geometry((w, h), size)
    resized = np.asarray(Image.fromarray(image).resize((rw, rh), Image.BICUBIC))
    out = resized[top:top + size[1], left:left + size[0]]
    return np.ascontiguousarray(out), cam.resize_crop_intrinsics(k, (w, h), tuple(size))


def load_scene(image_path: str | Path, trajectory: tr.Trajectory | None = None,
               depth_file: str | Path | None = None, model: str | None = None,
               device: str = "auto", fov: float | None = None):
    """The image, its pixel intrinsics and its metric scene: ``(image, K, SceneCloud, timings)``.

    Intrinsics: the trajectory's (file intrinsics or ``fov_deg``), else ``fov``, else the default.
    Depth: the file, else the depth model's prediction.
    """
    timings = {}
    t = time.perf_counter()
    image = read_image(image_path)
    h, w = image.shape[:2]
    k_image = (trajectory.pixel_intrinsics(w, h, fov) if trajectory is not None
               else cam.default_intrinsics(w, h, fov))
    depth = load_depth_file(depth_file) if depth_file is not None else None
    timings["read"] = time.perf_counter() - t
    t = time.perf_counter()
    if depth is None:
        depth = predict_image_depth(image, model, device)
        timings["depth"] = time.perf_counter() - t
        t = time.perf_counter()
    depth = fit_depth(depth, h, w)
    scene = build_scene(image, depth, k_image)
    timings["scene"] = time.perf_counter() - t
    return image, k_image, scene, timings


@dataclass
class PreviewResult:
    frames: np.ndarray  # (N, H, W, 3) uint8
    valid: np.ndarray  # (N, H, W) bool
    masks: np.ndarray  # (N, H, W) bool, edge-filtered
    latent_masks: np.ndarray  # (N, h, w) bool
    k: np.ndarray  # (3, 3) pixel intrinsics at the preview size
    c2w: np.ndarray  # (N, 4, 4)
    scene: SceneCloud
    timings: dict  # seconds per part
    skipped: bool = False


def render_preview(scene: SceneCloud, k: np.ndarray, c2w: np.ndarray, size: tuple[int, int],
                   kernel: int = 5, latent_stride: int = 8, device: str = "auto",
                   batch_size: int | None = None, background=(0, 0, 0), compile: bool = False,
                   renderer: PointRenderer | None = None):
    """Render the dense trajectory; returns frames, valid, masks, latent masks and seconds spent.

    ``renderer``: one already holding ``scene`` (the editor keeps one between refreshes).
    """
    import torch

    w, h = size
    if renderer is None:
        renderer = PointRenderer(scene.points, scene.colors, device, compile)
    dev = renderer.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    out = renderer.render(k, cam.invert_pose(c2w), h, w, background, batch_size)
    sync()
    t1 = time.perf_counter()
    masks, latent = noise_shaping_masks(out.valid, kernel, latent_stride)
    sync()
    t2 = time.perf_counter()
    return (out.rgb.cpu().numpy(), out.valid.cpu().numpy(), masks.cpu().numpy(),
            latent.cpu().numpy(), {"render": t1 - t0, "masks": t2 - t1})


def run_preview(image_path: str | Path, out: str | Path, trajectory: str | Path | None = None, *,
                preset: str | None = None, magnitude: Sequence[float] | float | None = None,
                frames: int | None = None, size: tuple[int, int] | None = None, kernel: int = 5,
                latent_stride: int = 8, depth_file: str | Path | None = None,
                model: str | None = None, device: str = "auto", fov: float | None = None,
                spline: bool | None = None, easing: str | None = None, loop: bool | None = None,
                fps: float = 8.0, overwrite: bool = False, batch_size: int | None = None,
                compile: bool = False, gif: bool = False) -> PreviewResult | None:
    """The whole stage: read, build the scene, render, write the five outputs atomically
    (``gif``: also ``preview.gif``, for documents and web pages).

    Returns ``None`` when every output exists already and ``overwrite`` is false.
    """
    out = Path(out)
    if not overwrite and all((out / name).exists() for name in output_names(gif)):
        return None
    if fov is not None and not 0 < fov < 180:
        raise RealcamError(f"field of view must be in (0, 180) degrees, got {fov}", "--fov")
    if frames is not None and frames < 1:
        raise RealcamError(f"frame count must be at least 1, got {frames}", "--frames")
    if size is not None and (size[0] < 8 or size[1] < 8):
        raise RealcamError(f"size {size[0]}x{size[1]} is too small (at least 8x8)", "--size")
    if kernel < 1 or kernel % 2 == 0:
        raise RealcamError(f"kernel must be a positive odd number, got {kernel}", "--kernel")
    if latent_stride < 1:
        raise RealcamError(f"latent stride must be at least 1, got {latent_stride}", "--latent-stride")
    resolve_device(device)
    # The trajectory file first: it may carry the image intrinsics (before any heavy work).
    file_traj = tr.load_trajectory(trajectory) if trajectory is not None else None
    if (file_traj is None) == (preset is None):
        raise RealcamError("give a trajectory file or --preset (not both)", "preview")
    image, k_image, scene, timings = load_scene(image_path, file_traj, depth_file, model, device, fov)
    h, w = image.shape[:2]
    t = time.perf_counter()
    traj = tr.resolve_trajectory(file_traj, preset, magnitude, frames, scene.centre_depth, spline,
                                 easing, loop)
    timings["trajectory"] = time.perf_counter() - t
    out_size = tuple(size) if size is not None else (w, h)
    _, k = fit_image(image, k_image, out_size)
    frames_rgb, valid, masks, latent, render_t = render_preview(scene, k, traj.c2w, out_size,
                                                                kernel, latent_stride, device,
                                                                batch_size, compile=compile)
    timings.update(render_t)
    t = time.perf_counter()
    dense = tr.Trajectory(traj.c2w, traj.times, cam.normalize_intrinsics(k, *out_size), None,
                          len(traj.c2w))
    write_video(out / "preview.mp4", frames_rgb, fps=fps)
    if gif:
        write_gif(out / GIF, frames_rgb, fps=fps)
    write_arrays(out / "preview.npz", frames=frames_rgb, masks=masks, latent_masks=latent,
                 valid=valid, K=np.repeat(k[None], len(traj.c2w), axis=0), c2w=traj.c2w)
    write_ply(out / "scene.ply", scene)
    tr.write_trajectory_json(out / "trajectory.json", dense)
    cam.write_re10k(out / "trajectory.txt", tr.to_re10k(dense, *out_size, k=k, fps=fps))
    timings["write"] = time.perf_counter() - t
    return PreviewResult(frames_rgb, valid, masks, latent, k, traj.c2w, scene, timings)
