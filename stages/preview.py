"""``preview``: a metric scene from one image, a trajectory through it, and a fast preview.

Steps (docs/method.md#point-cloud-preview): metric depth of the image (the ``depth`` stage's predictor, or a depth
file) -> unprojection with the image intrinsics -> flying-pixel and statistical outlier removal
(Open3D) -> rendering along the dense trajectory (the depth map as a continuous surface, or the
points) -> validity and noise-shaping masks.
Outputs in ``out``: ``preview.mp4``, ``preview.npz`` (``frames``, ``masks``, ``latent_masks``,
``valid``, ``K``, ``c2w``), ``scene.ply``, ``trajectory.json`` and ``trajectory.txt``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .core import cameras as cam
from .core import checks
from .core import trajectory as tr
from .core.artifacts import atomic_path, read_arrays, write_arrays
from .core.constants import LATENT_STRIDE, MASK_KERNEL
from .core.errors import RealcamError
from .core.image import fit_intrinsics
from .core.render import noise_shaping_masks
from .core.video import read_image, write_gif, write_video
from .settings import MAX_SIDE, RENDERERS, PreviewSettings

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
#: The scene is built from the image at most this many times finer (per side) than the preview:
#: an 8000x6000 photo previewed at 512x320 becomes a cloud of about 1024x768 points, not 48 M.
#: Images up to this size are used as they are, so normal inputs render as before.
SCENE_OVERSAMPLE = 2.0
#: Pixels of all frames together: the renderer holds about 20 bytes per pixel and frame at once.
MAX_RENDER_PIXELS = 2**30
#: The steps ``run_preview`` reports to its ``progress`` callback.
STEPS = ("image and depth", "scene", "trajectory", "render", "write")


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------
def default_preview_size(width: int, height: int, source) -> tuple[int, int]:
    """The preview size when none is given: the image's, an odd side one pixel less (H.264)."""
    if width > MAX_SIDE or height > MAX_SIDE:
        scale = 1024 / max(width, height)
        hint = f"{max(8, round(width * scale / 2) * 2)}x{max(8, round(height * scale / 2) * 2)}"
        raise RealcamError(
            f"the image is {width}x{height}, more than the {MAX_SIDE} pixels a preview "
            f"may have on a side; give --size (e.g. {hint})",
            source,
        )
    if width < 8 or height < 8:
        raise RealcamError(f"the image is {width}x{height}, smaller than the 8x8 a preview needs", source)
    return width - width % 2, height - height % 2


def check_render(n_frames: int, size: tuple[int, int], source: str = "--frames") -> None:
    """Refuse a render whose frames would not fit in memory (before anything is built)."""
    w, h = size
    if n_frames * w * h > MAX_RENDER_PIXELS:
        raise RealcamError(
            f"{n_frames} frames of {w}x{h} are {n_frames * w * h / 1e9:.1f} G pixels, "
            f"more than the {MAX_RENDER_PIXELS / 1e9:.1f} G a preview may render at "
            "once; use fewer frames or a smaller --size",
            source,
        )


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
                raise RealcamError(
                    f"a depth PNG must be single-channel 16-bit (millimetres), got {raw.dtype} with shape {raw.shape}",
                    path,
                )
            depth = raw.astype(np.float32) / 1000.0
        else:
            raise RealcamError(f"unknown depth file type {suffix!r} (.npy, .npz or 16-bit .png)", path)
    except RealcamError:
        raise
    except Exception as err:  # numpy's own text talks about pickles for any file that is not .npy
        what = "a NumPy .npy array" if suffix == ".npy" else "a 16-bit PNG"
        raise RealcamError(f"cannot read depth: not {what}, or damaged ({err.__class__.__name__})", path) from None
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
        raise RealcamError(
            f"the depth predictor cannot be loaded ({err}); give a depth file with --depth", "preview"
        ) from None

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
    # the same scene as an image grid (what the surface renderer draws): the image, its depth
    # with 0 where a pixel was dropped (edges, outliers), its pixel intrinsics
    image: np.ndarray | None = None
    depth: np.ndarray | None = None
    k: np.ndarray | None = None


def make_renderer(scene: SceneCloud, kind: str = "surface", device: str = "auto", compile: bool = False):
    """The renderer of ``kind`` (:data:`~stages.settings.RENDERERS`) holding ``scene`` (on ``device``):
    ``surface``, the depth map as a continuous surface (holes only where the image does not see the
    scene; docs/method.md#point-cloud-preview), or ``points``, each point on the one pixel that
    contains it (holes wherever the view magnifies the image)."""
    from .core.render import PointRenderer, SurfaceRenderer

    if kind == "points" or scene.depth is None:
        return PointRenderer(scene.points, scene.colors, device, compile)
    if kind != "surface":
        raise RealcamError(f"expected one of {', '.join(RENDERERS)}, got {kind!r}", "--renderer")
    return SurfaceRenderer(scene.image, scene.depth, scene.k, device, compile)


def build_scene(
    image: np.ndarray,
    depth: np.ndarray,
    k: np.ndarray,
    edge_ratio: float | None = EDGE_RATIO,
    outlier_neighbours: int = SOR_NEIGHBOURS,
    outlier_std: float = SOR_STD_RATIO,
) -> SceneCloud:
    """Coloured point cloud of the image: unproject, drop flying pixels, then outliers (Open3D).

    ``edge_ratio=None`` or ``outlier_neighbours=0`` switch the respective filter off.
    """
    h, w = depth.shape
    if image.shape[:2] != (h, w):
        raise RealcamError(f"depth {w}x{h} does not match the image {image.shape[1]}x{image.shape[0]}", "depth")
    keep = np.isfinite(depth) & (depth > 0)
    surface = keep.copy()  # the surface renderer's grid: edges are cut by its quads, not dropped
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
        dropped = np.ones(int(keep.sum()), dtype=bool)
        dropped[kept] = False
        surface[np.unravel_index(np.flatnonzero(keep)[dropped], (h, w))] = False  # outliers leave both
    counts["after_outliers"] = int(len(points))
    if len(points) == 0:
        raise RealcamError("no scene point is left (depth empty or all filtered)", "depth")
    return SceneCloud(
        points.astype(np.float32),
        np.ascontiguousarray(colors, dtype=np.uint8),
        float(np.median(points[:, 2])),
        counts,
        np.ascontiguousarray(image[..., :3], dtype=np.uint8),
        np.where(surface, depth, 0.0).astype(np.float32),
        np.asarray(k, dtype=np.float64),
    )


def seen_by_image(
    depth: np.ndarray, k: np.ndarray, c2w: np.ndarray, image_depth: np.ndarray, image_k: np.ndarray, ratio: float = 0.02
) -> np.ndarray:
    """``(H, W)`` bool: the pixels of a view (its true ``depth``, pixel ``k``, ``c2w`` in the image
    camera's frame) whose scene point the image sees: unprojected, it projects into the image's
    frame, in front of its camera, where the image's depth agrees to ``ratio`` (not occluded).
    The coverage a preview can reach (docs/method.md#point-cloud-preview)."""
    points = unproject(np.asarray(depth, dtype=np.float64), k) @ c2w[:3, :3].T + c2w[:3, 3]
    q = points @ np.asarray(image_k, dtype=np.float64).T
    z = q[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = q[..., 0] / z, q[..., 1] / z
    h0, w0 = image_depth.shape
    inside = (depth > 0) & (z > 1e-3) & (u >= 0) & (u < w0) & (v >= 0) & (v < h0)
    d0 = image_depth[np.clip(np.nan_to_num(v), 0, h0 - 1).astype(int), np.clip(np.nan_to_num(u), 0, w0 - 1).astype(int)]
    return inside & (np.abs(d0 - z) <= ratio * z)


def _psnr(err: float) -> float:
    return float(10 * np.log10(255.0**2 / err)) if err > 0 else float("inf")


def preview_fidelity(frames, depth, k, rel, renderer, oracle) -> dict:
    """How well ``renderer`` previews a clip whose true ``frames`` ``(F, H, W, 3)``, ``depth``
    ``(F, H, W)``, pixel ``k`` ``(F, 3, 3)`` and ``rel`` c2w (relative to frame 0) are known, from
    frame 0 (the scene the renderer holds), pooled over frames 1..: ``seen`` (share of pixels whose
    point frame 0 sees, :func:`seen_by_image`), ``rendered`` / ``mask`` (shares of those the preview
    renders / the noise-shaping mask keeps), ``psnr_mask`` (on the mask), ``psnr_seen`` (on the mask
    and seen), ``oracle`` (on the same pixels, frame 0 sampled at the frames' true depth by
    ``oracle.colour_at_depth``: the bound frame 0 sets) and ``ms`` (render time)."""
    size = frames.shape[2], frames.shape[1]
    t = time.perf_counter()
    out = renderer.render(k, np.linalg.inv(rel), size[1], size[0])
    seconds = time.perf_counter() - t
    rgb, valid = out.rgb.cpu().numpy(), out.valid.cpu().numpy()
    masks = noise_shaping_masks(valid)[0]
    ideal = oracle.colour_at_depth(k, np.linalg.inv(rel), depth)
    ideal_rgb, ideal_valid = ideal.rgb.cpu().numpy(), ideal.valid.cpu().numpy()
    n_seen = n_rendered = n_mask = 0
    sq_mask = sq_seen = sq_oracle = 0.0
    c_mask = c_seen = 0
    for i in range(1, len(rel)):
        seen = seen_by_image(depth[i], k[i], rel[i], depth[0], k[0])
        n_seen += seen.sum()
        n_rendered += (valid[i] & seen).sum()
        n_mask += (masks[i] & seen).sum()
        err = ((rgb[i].astype(np.float64) - frames[i]) ** 2).mean(-1)
        sq_mask += err[masks[i]].sum()
        c_mask += masks[i].sum()
        both = masks[i] & seen & ideal_valid[i]
        sq_seen += err[both].sum()
        sq_oracle += ((ideal_rgb[i].astype(np.float64) - frames[i]) ** 2).mean(-1)[both].sum()
        c_seen += both.sum()
    seen_share = n_seen / ((len(rel) - 1) * size[0] * size[1])
    return {
        "seen": seen_share,
        "rendered": n_rendered / n_seen,
        "mask": n_mask / n_seen,
        "psnr_mask": _psnr(sq_mask / max(c_mask, 1)),
        "psnr_seen": _psnr(sq_seen / max(c_seen, 1)),
        "oracle": _psnr(sq_oracle / max(c_seen, 1)),
        "ms": seconds * 1e3,
    }


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
def scene_size(image_size: tuple[int, int], render_size: tuple[int, int] | None) -> tuple[int, int]:
    """The resolution the scene is built at: the image's, or less when the image is more than
    :data:`SCENE_OVERSAMPLE` times finer (per side) than the preview rendered from it."""
    w, h = image_size
    if render_size is None:
        return w, h
    scale = SCENE_OVERSAMPLE * max(render_size[0] / w, render_size[1] / h)
    if scale >= 1.0:
        return w, h
    return max(1, round(w * scale)), max(1, round(h * scale))


def load_scene(
    image_path: str | Path,
    trajectory: tr.Trajectory | None = None,
    depth_file: str | Path | None = None,
    model: str | None = None,
    device: str = "auto",
    fov: float | None = None,
    size=None,
    progress=None,
):
    """The image, its pixel intrinsics and its metric scene: ``(image, K, SceneCloud, timings)``.

    Intrinsics: the trajectory's (file intrinsics or ``fov_deg``), else ``fov``, else the default.
    Depth: the file, else the depth model's prediction. ``size``: the preview size the scene is
    rendered at (or a function of the image's ``(W, H)`` giving it); the scene is built from the
    image and depth brought to :func:`scene_size` first, so a huge photo costs what its preview
    needs. ``progress(step)`` is called as each step begins.
    """
    timings = {}
    t = time.perf_counter()
    image = read_image(image_path)
    h, w = image.shape[:2]
    k_image = trajectory.pixel_intrinsics(w, h, fov) if trajectory is not None else cam.default_intrinsics(w, h, fov)
    depth = load_depth_file(depth_file) if depth_file is not None else None
    render = size(w, h) if callable(size) else size
    sw, sh = scene_size((w, h), render)
    small, k_small = image, k_image
    if (sw, sh) != (w, h):
        from PIL import Image

        small = np.asarray(Image.fromarray(image).resize((sw, sh), Image.BICUBIC))
        k_small = cam.resize_intrinsics(k_image, (w, h), (sw, sh))
    timings["read"] = time.perf_counter() - t
    t = time.perf_counter()
    if depth is None:
        depth = predict_image_depth(small, model, device)
        timings["depth"] = time.perf_counter() - t
        t = time.perf_counter()
    if progress:
        progress("scene")
    depth = fit_depth(depth, sh, sw)
    scene = build_scene(small, depth, k_small)
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


def render_preview(
    scene: SceneCloud,
    k: np.ndarray,
    c2w: np.ndarray,
    size: tuple[int, int],
    kernel: int = MASK_KERNEL,
    latent_stride: int = LATENT_STRIDE,
    device: str = "auto",
    batch_size: int | None = None,
    background=(0, 0, 0),
    compile: bool = False,
    renderer=None,
    kind: str = "surface",
):
    """Render the dense trajectory; returns frames, valid, masks, latent masks and seconds spent.

    ``renderer``: one already holding ``scene`` (the editor keeps one between refreshes); else one
    of ``kind`` (:data:`RENDERERS`) is made.
    """
    import torch

    w, h = size
    if renderer is None:
        renderer = make_renderer(scene, kind, device, compile)
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
    return (
        out.rgb.cpu().numpy(),
        out.valid.cpu().numpy(),
        masks.cpu().numpy(),
        latent.cpu().numpy(),
        {"render": t1 - t0, "masks": t2 - t1},
    )


def run_preview(
    image_path: str | Path,
    out: str | Path,
    trajectory: str | Path | None = None,
    settings: PreviewSettings | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    **overrides,
) -> PreviewResult | None:
    """The whole stage: read, build the scene, render, write the five outputs atomically
    (``settings.gif``: also ``preview.gif``, for documents and web pages).

    ``overrides`` are :class:`~stages.settings.PreviewSettings` fields. Every option and input is
    checked before any work. Returns ``None`` when every output exists already and
    ``overwrite`` is false. ``progress(step)`` is called as each of :data:`STEPS` begins (and
    with ``"done"``).
    """
    out = checks.output_dir(out)
    s = replace(settings or PreviewSettings(), **overrides).check()
    checks.input_file(image_path, "image")
    if not s.overwrite and all((out / name).exists() for name in output_names(s.gif)):
        return None
    # The trajectory file first: it may carry the image intrinsics (before any heavy work).
    file_traj = tr.load_trajectory(trajectory) if trajectory is not None else None
    if (file_traj is None) == (s.preset is None):
        raise RealcamError("give a trajectory file or --preset (not both)", "preview")
    n_frames = s.frames or (file_traj.frames if file_traj is not None else None) or tr.DEFAULT_FRAMES
    if n_frames > tr.MAX_FRAMES:  # only a RealEstate10K file's own line count can get here
        raise RealcamError(
            f"holds {n_frames} frames, more than the {tr.MAX_FRAMES} a preview renders; give --frames", trajectory
        )
    if s.size is not None:
        check_render(n_frames, s.size)

    def render_size(w: int, h: int) -> tuple[int, int]:
        chosen = s.size if s.size is not None else default_preview_size(w, h, image_path)
        check_render(n_frames, chosen)
        return chosen

    if progress:
        progress(STEPS[0])
    image, k_image, scene, timings = load_scene(
        image_path, file_traj, s.depth_file, s.model, s.device, s.fov, size=render_size, progress=progress
    )
    h, w = image.shape[:2]
    out_size = render_size(w, h)
    if progress:
        progress("trajectory")
    t = time.perf_counter()
    traj = tr.resolve_trajectory(
        file_traj, s.preset, s.magnitude, s.frames, scene.centre_depth, s.spline, s.easing, s.loop
    )
    timings["trajectory"] = time.perf_counter() - t
    k = fit_intrinsics(k_image, (w, h), out_size)
    if progress:
        progress("render")
    frames_rgb, valid, masks, latent, render_t = render_preview(
        scene,
        k,
        traj.c2w,
        out_size,
        s.kernel,
        s.latent_stride,
        s.device,
        s.batch_size,
        compile=s.compile,
        kind=s.renderer,
    )
    timings.update(render_t)
    if progress:
        progress("write")
    t = time.perf_counter()
    result = PreviewResult(frames_rgb, valid, masks, latent, k, traj.c2w, scene, timings)
    write_preview(out, result, traj, out_size, s)
    timings["write"] = time.perf_counter() - t
    if progress:
        progress("done")
    return result


def write_preview(
    out: Path, result: PreviewResult, traj: tr.Trajectory, size: tuple[int, int], settings: PreviewSettings
) -> None:
    """The outputs of :data:`OUTPUTS` (and the GIF when asked for), each atomically."""
    k, c2w, frames = result.k, result.c2w, result.frames
    dense = tr.Trajectory(c2w, traj.times, cam.normalize_intrinsics(k, *size), None, len(c2w))
    with checks.writing(out / "preview.mp4"):
        write_video(out / "preview.mp4", frames, fps=settings.fps)
    if settings.gif:
        with checks.writing(out / GIF):
            write_gif(out / GIF, frames, fps=settings.fps)
    with checks.writing(out / "preview.npz"):
        write_arrays(
            out / "preview.npz",
            frames=frames,
            masks=result.masks,
            latent_masks=result.latent_masks,
            valid=result.valid,
            K=np.repeat(k[None], len(c2w), axis=0),
            c2w=c2w,
        )
    with checks.writing(out / "scene.ply"):
        write_ply(out / "scene.ply", result.scene)
    with checks.writing(out / "trajectory.json"):
        tr.write_trajectory_json(out / "trajectory.json", dense)
    with checks.writing(out / "trajectory.txt"):
        cam.write_re10k(out / "trajectory.txt", tr.to_re10k(dense, *size, k=k, fps=settings.fps))
