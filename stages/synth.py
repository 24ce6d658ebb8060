"""Synthetic scenes with a known metric scale: the test bed of every later stage.

Along each given trajectory (taken as metric), a static room with textured boxes is ray cast
exactly (analytic ray/box intersections), so frame ``i``'s depth unprojected and projected into
frame ``j`` lands on the matching pixel. The dataset written looks like RealEstate10K after SfM:

- ``cameras/<clip_id>.txt``: the poses with translations divided by the clip's true factor
  ``alpha`` (SfM's arbitrary scale), so ``metric = alpha * written``;
- ``frames/<clip_id>/<timestamp_us>.png``: the rendered frames (or, ``store="video"``,
  ``videos/<clip_id>.mp4``: a lossless clip video of them, decoded at the camera timestamps);
- ``depth_gt/<clip_id>.npz``: ``depth`` ``(F, H, W)`` float32 metric z-depth, ``timestamps``;
- ``truth.parquet``: ``clip_id``, ``alpha`` (plus frame count, size and seed).

Intrinsics keep the file's horizontal field of view and principal point; pixels are square at
the output size (``fy = fx`` in pixels).
"""

from __future__ import annotations

import contextlib
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .core import cameras as cam
from .core import checks
from .core.artifacts import atomic_dir, merge_rows, read_table, should_skip, write_arrays, write_table
from .core.dataset import clip_layout
from .core.errors import RealcamError
from .core.video import read_image, write_clip_video, write_image

TRUTH_TABLE = "truth.parquet"
TRUTH_COLUMNS = ["clip_id", "alpha", "n_frames", "width", "height", "seed"]
_EPS = 1e-6


# ----------------------------------------------------------------------------------------------
# Scene description and ray casting
# ----------------------------------------------------------------------------------------------
@dataclass
class Box:
    """An axis-aligned box; ``inside=True`` for the room seen from within."""

    lo: np.ndarray
    hi: np.ndarray
    inside: bool = False
    face_texture: np.ndarray = field(default_factory=lambda: np.zeros(6, dtype=int))
    face_offset: np.ndarray = field(default_factory=lambda: np.zeros((6, 2)))
    face_shade: np.ndarray = field(default_factory=lambda: np.ones(6))
    texel: float = 0.01  # metres per texture pixel


@dataclass
class Scene:
    boxes: list[Box]
    textures: list[np.ndarray]  # float32 (Ht, Wt, 3) in [0, 1]


def _intersect(box: Box, origin: np.ndarray, dirs: np.ndarray):
    """Ray parameter of the first hit and the face hit (``2 * axis + side``), inf when missed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t_lo = (box.lo - origin) * inv
        t_hi = (box.hi - origin) * inv
    t_near = np.minimum(t_lo, t_hi)
    t_far = np.maximum(t_lo, t_hi)
    if box.inside:
        axis = np.argmin(t_far, axis=1)
        t = np.take_along_axis(t_far, axis[:, None], 1)[:, 0]
        side = np.take_along_axis(dirs, axis[:, None], 1)[:, 0] > 0
    else:
        axis = np.argmax(t_near, axis=1)
        t = np.take_along_axis(t_near, axis[:, None], 1)[:, 0]
        hit = (t <= t_far.min(axis=1)) & (t > _EPS)
        t = np.where(hit, t, np.inf)
        side = np.take_along_axis(dirs, axis[:, None], 1)[:, 0] < 0
    return t, 2 * axis + side


def _bilinear_wrap(tex: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = tex.shape[:2]
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0)[:, None].astype(np.float32)
    fy = (y - y0)[:, None].astype(np.float32)
    x0 = x0.astype(np.int64) % w
    y0 = y0.astype(np.int64) % h
    x1 = (x0 + 1) % w
    y1 = (y0 + 1) % h
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def cast(scene: Scene, origin: np.ndarray, dirs: np.ndarray, shade: bool = True):
    """Cast rays ``origin + t * dirs``: returns ``t`` and, with ``shade``, RGB in ``[0, 1]``."""
    best_t = np.full(len(dirs), np.inf)
    best_box = np.zeros(len(dirs), dtype=int)
    best_face = np.zeros(len(dirs), dtype=int)
    for b, box in enumerate(scene.boxes):
        t, face = _intersect(box, origin, dirs)
        closer = t < best_t
        best_t[closer] = t[closer]
        best_box[closer] = b
        best_face[closer] = face[closer]
    if not shade:
        return best_t, None
    points = origin + best_t[:, None] * dirs
    rgb = np.zeros((len(dirs), 3), dtype=np.float32)
    for b, box in enumerate(scene.boxes):
        for face in range(6):
            sel = np.nonzero((best_box == b) & (best_face == face))[0]
            if sel.size == 0:
                continue
            axis = face // 2
            u_axis, v_axis = [a for a in range(3) if a != axis]
            tex = scene.textures[box.face_texture[face]]
            s = (points[sel, u_axis] - box.lo[u_axis]) / box.texel + box.face_offset[face, 0]
            t = (points[sel, v_axis] - box.lo[v_axis]) / box.texel + box.face_offset[face, 1]
            rgb[sel] = _bilinear_wrap(tex, s, t) * box.face_shade[face]
    return best_t, rgb


def camera_rays(k: np.ndarray, c2w: np.ndarray, width: int, height: int, supersample: int = 1):
    """Unnormalised world rays whose camera-z component is 1 (so ``t`` is the z-depth).

    With ``supersample = s``, each pixel gets ``s x s`` rays on a regular sub-grid, ordered so
    that reshaping to ``(H, s, W, s)`` groups a pixel's rays.
    """
    offsets = (np.arange(supersample) + 0.5) / supersample
    us = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)
    vs = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)
    uu, vv = np.meshgrid(us, vs)
    pix = np.stack([uu, vv, np.ones_like(uu)], axis=-1).reshape(-1, 3)
    rays_cam = pix @ np.linalg.inv(k).T
    rays_cam /= rays_cam[:, 2:3]
    return rays_cam @ c2w[:3, :3].T


def render_view(scene: Scene, k: np.ndarray, c2w: np.ndarray, width: int, height: int, supersample: int = 2):
    """Render one view: ``(H, W, 3)`` uint8 colour and ``(H, W)`` float32 metric z-depth."""
    origin = c2w[:3, 3]
    depth, _ = cast(scene, origin, camera_rays(k, c2w, width, height, 1), shade=False)
    _, rgb = cast(scene, origin, camera_rays(k, c2w, width, height, supersample))
    rgb = rgb.reshape(height, supersample, width, supersample, 3).mean(axis=(1, 3))
    image = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, depth.reshape(height, width).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Scene construction around a trajectory
# ----------------------------------------------------------------------------------------------
def procedural_texture(rng: np.random.Generator, size: int = 384) -> np.ndarray:
    """A colourful texture rich in corners and blobs (for SIFT) when no photo is given."""
    from scipy.ndimage import zoom

    tex = np.zeros((size, size, 3), dtype=np.float32)
    for cells, weight in ((4, 0.5), (16, 0.3), (64, 0.2)):
        noise = rng.random((cells, cells, 3)).astype(np.float32)
        tex += (
            weight
            * zoom(noise, (size / cells, size / cells, 1), order=1, mode="grid-wrap", grid_mode=True)[:size, :size]
        )
    yy, xx = np.mgrid[:size, :size]
    for _ in range(60):
        cx, cy, r = rng.integers(0, size), rng.integers(0, size), rng.integers(4, 24)
        colour = rng.random(3).astype(np.float32)
        if rng.random() < 0.5:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        else:
            mask = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r * rng.uniform(0.3, 1.0))
        tex[mask] = colour
    return np.clip(tex, 0, 1)


def load_texture(path: str | Path, max_side: int = 512) -> np.ndarray:
    from PIL import Image

    try:
        img = read_image(path)
    except (ValueError, TypeError, OverflowError) as err:  # a decodable file in an odd pixel format
        raise RealcamError(f"unsupported image format ({err.__class__.__name__})", path) from None
    if img.ndim != 3 or img.shape[-1] != 3 or min(img.shape[:2]) < 1:
        raise RealcamError(f"not a single RGB image (array of shape {img.shape})", path)
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        img = np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.LANCZOS))
    return img.astype(np.float32) / 255.0


def _box_distance(lo: np.ndarray, hi: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.maximum(np.maximum(lo - points, 0), points - hi), axis=1)


def build_scene(
    c2w: np.ndarray, textures: list[np.ndarray], rng: np.random.Generator, n_objects: int = 6, clearance: float = 0.4
) -> Scene:
    """A room around the camera path and boxes in front of the first camera, none near the path."""
    centres = c2w[:, :3, 3]
    lo = centres.min(axis=0) - rng.uniform(2.0, 3.5, size=3)
    hi = centres.max(axis=0) + rng.uniform(2.0, 3.5, size=3)
    n_tex = len(textures)

    def faces(box: Box, shade_lo: float) -> Box:
        box.face_texture = rng.integers(0, n_tex, size=6)
        box.face_offset = rng.uniform(0, 512, size=(6, 2))
        box.face_shade = rng.uniform(shade_lo, 1.0, size=6)
        return box

    boxes = [faces(Box(lo, hi, inside=True, texel=0.008), 0.7)]
    forward, right, down = c2w[0, :3, 2], c2w[0, :3, 0], c2w[0, :3, 1]
    # Sample the whole path densely so no box sits on the line between two frames.
    steps = np.linspace(0, 1, 8)[:, None]
    path = np.concatenate(
        [centres[i] + steps * (centres[i + 1] - centres[i]) for i in range(len(centres) - 1)] or [centres]
    )
    for _ in range(200):
        if len(boxes) > n_objects:
            break
        centre = (
            centres[0]
            + forward * rng.uniform(1.2, 3.5)
            + right * rng.uniform(-1.8, 1.8)
            + down * rng.uniform(-0.8, 0.8)
        )
        half = rng.uniform(0.15, 0.45, size=3)
        b_lo, b_hi = centre - half, centre + half
        if np.any(b_lo < lo + 0.05) or np.any(b_hi > hi - 0.05):
            continue
        if _box_distance(b_lo, b_hi, path).min() < clearance:
            continue
        boxes.append(faces(Box(b_lo, b_hi, texel=0.004), 0.6))
    return Scene(boxes, textures)


# ----------------------------------------------------------------------------------------------
# The dataset writer
# ----------------------------------------------------------------------------------------------
def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the clip (so skipping clips changes nothing)."""
    return np.random.default_rng([seed, zlib.crc32(clip_id.encode())])


def square_pixel_intrinsics(norm: np.ndarray, width: int, height: int) -> np.ndarray:
    """Keep ``fx/W`` and the principal point; set ``fy`` so that pixels are square."""
    out = np.array(norm, dtype=np.float64, copy=True)
    out[..., 1] = out[..., 0] * width / height
    return out


def synth_clip(
    cams: cam.CameraFile,
    textures: list[np.ndarray],
    alpha: float,
    size: tuple[int, int],
    rng: np.random.Generator,
    supersample: int = 2,
):
    """Render one clip. Returns frames ``(F, H, W, 3)``, depth ``(F, H, W)`` and the written cameras."""
    problem = cam.camera_file_problem(cams)
    if problem:  # files are checked by the reader; this guards cameras built in code
        raise RealcamError(problem, cams.url or "cameras")
    width, height = size
    c2w = cams.c2w  # taken as metric
    scene = build_scene(c2w, textures, rng)
    norm = square_pixel_intrinsics(cams.intrinsics, width, height)
    ks = cam.denormalize_intrinsics(norm, width, height)
    frames, depths = zip(*(render_view(scene, k, p, width, height, supersample) for k, p in zip(ks, c2w)))
    written = cam.CameraFile(
        cams.timestamps, norm, cam.c2w_to_w2c(cam.metric_poses(c2w, 1.0 / alpha)), cams.url, cams.distortion
    )
    return np.stack(frames), np.stack(depths), written


#: Largest frame side accepted (a 2-clip dataset at 8192x8192 is already tens of GB of rays).
MAX_SIZE = 8192
#: How the frames are stored: frame files, or one lossless clip video per clip.
STORES = ("frames", "video")


def check_options(
    size: tuple[int, int], scale: float | None, random_scale: tuple[float, float], seed: int, supersample: int
) -> tuple[tuple[int, int], float | None, tuple[float, float], int, int]:
    """Every option of :func:`synthesize` checked (``RealcamError`` naming the option)."""
    try:
        width, height = size
    except (TypeError, ValueError):
        raise RealcamError(f"expected a (width, height) pair, got {size!r}", "--size") from None
    width = checks.integer(width, "--size", minimum=8, maximum=MAX_SIZE)
    height = checks.integer(height, "--size", minimum=8, maximum=MAX_SIZE)
    if scale is not None:
        scale = checks.number(scale, "--scale", above=0)
    try:
        lo_s, hi_s = random_scale
    except (TypeError, ValueError):
        raise RealcamError(f"expected LO HI, got {random_scale!r}", "--random-scale") from None
    lo_s = checks.number(lo_s, "--random-scale", above=0)
    hi_s = checks.number(hi_s, "--random-scale", above=0)
    if lo_s > hi_s:
        raise RealcamError(f"random scale range must satisfy 0 < LO <= HI, got {lo_s:g} {hi_s:g}", "--random-scale")
    seed = checks.integer(seed, "--seed", minimum=0, maximum=2**63 - 1)
    supersample = checks.integer(supersample, "supersample", minimum=1, maximum=8)
    return (width, height), scale, (lo_s, hi_s), seed, supersample


def _remove(paths) -> None:
    """Remove what a failed clip wrote (files or folders); errors are ignored (the disk may be full)."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


def synthesize(
    pose_files: Sequence[str | Path],
    out: str | Path,
    *,
    scale: float | None = None,
    random_scale: tuple[float, float] = (0.5, 2.0),
    size: tuple[int, int] = (256, 256),
    textures: Sequence[str | Path] = (),
    seed: int = 0,
    overwrite: bool = False,
    supersample: int = 2,
    store: str = "frames",
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Write a synthetic RealEstate10K-layout dataset; returns the truth table.

    ``scale`` fixes every clip's factor ``alpha``; otherwise it is drawn log-uniformly from
    ``random_scale`` per clip. All inputs (options, the output folder, an existing truth table,
    every camera file and texture) are validated before anything is written. Each finished clip is
    recorded in ``truth.parquet`` at once, so an interrupted run keeps what it finished; a clip
    whose writing fails (disk full, read-only) leaves none of its files behind and the error names
    the file. ``truth.attrs["skipped"]`` lists the clips skipped as already done. ``store``:
    ``frames`` (``frames/<clip>/<timestamp>.png``) or ``video`` (``videos/<clip>.mp4``, a lossless
    clip video: the same pixels, decoded at the camera timestamps).
    """
    if store not in STORES:
        raise RealcamError(f"expected one of {', '.join(STORES)}, got {store!r}", "--store")
    size, scale, (lo_s, hi_s), seed, supersample = check_options(size, scale, random_scale, seed, supersample)
    width, height = size
    if not pose_files:
        raise RealcamError("no camera files given", "--poses")
    out = checks.output_dir(out, "--out")
    truth_path = out / TRUTH_TABLE
    old = read_table(truth_path, TRUTH_COLUMNS[:1]) if truth_path.exists() else None
    clips = {}
    for f in pose_files:
        clip_id = Path(f).stem
        if clip_id in clips:
            raise RealcamError(f"clip id {clip_id!r} appears twice", f)
        clips[clip_id] = cam.read_re10k(checks.input_file(f, "camera file"))
    tex = [load_texture(checks.input_file(t, "texture")) for t in textures]
    if not tex:
        tex = [procedural_texture(np.random.default_rng([seed, i])) for i in range(4)]
    with checks.writing(out):  # an output that cannot be created fails now, before any rendering
        out.mkdir(parents=True, exist_ok=True)

    done = set(old["clip_id"].astype(str)) if old is not None else set()
    skipped = []
    for clip_id, cams in clips.items():
        where = clip_layout(out, clip_id)
        stored = where.frames_dir if store == "frames" else where.video_path
        outputs = [where.camera_path, stored, out / "depth_gt" / f"{clip_id}.npz"]
        if should_skip(clip_id, done, outputs, overwrite):
            skipped.append(clip_id)
            if progress:
                progress(f"{clip_id} (done)")
            continue
        rng = clip_rng(seed, clip_id)
        alpha = float(scale) if scale is not None else float(np.exp(rng.uniform(np.log(lo_s), np.log(hi_s))))
        frames, depth, written = synth_clip(cams, tex, alpha, size, rng, supersample)
        row = pd.DataFrame(
            [
                {
                    "clip_id": clip_id,
                    "alpha": alpha,
                    "n_frames": len(written),
                    "width": width,
                    "height": height,
                    "seed": seed,
                }
            ],
            columns=TRUTH_COLUMNS,
        )
        # The camera file is written last: a clip is visible to later stages only when complete.
        current = outputs[1]
        try:
            if store == "video":
                write_clip_video(outputs[1], frames, written.timestamps)
            else:
                with atomic_dir(outputs[1]) as tmp:
                    for ts, frame in zip(written.timestamps, frames):
                        write_image(tmp / f"{ts}.png", frame)
                    n_files = len(list(tmp.iterdir()))
                    if n_files != len(written):  # the reader guarantees distinct timestamps; never write less
                        raise RealcamError(f"{n_files} frame files for {len(written)} cameras", outputs[1])
            current = outputs[2]
            write_arrays(outputs[2], depth=depth, timestamps=written.timestamps)
            current = outputs[0]
            cam.write_re10k(outputs[0], written)
            current = truth_path
            write_table(truth_path, merge_rows(old, row, key="clip_id"))
        except OSError as err:
            _remove(outputs)
            raise RealcamError(checks.os_error_message(err), current) from None
        except RealcamError:
            _remove(outputs)
            raise
        old = merge_rows(old, row, key="clip_id")
        if progress:
            progress(clip_id)
    truth = old.reset_index(drop=True)
    truth.attrs["skipped"] = skipped
    return truth
