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

With ``dynamic=True`` (``realcam synth --poses ... --dynamic``) each clip's room also holds boxes
that translate and turn over time (:class:`MovingBox`, frame ``i`` at its timestamp in seconds),
placed in front of the cameras, clear of their path, and sized so that they cover a share of the
image drawn per clip (:func:`place_moving_boxes`); ``masks/<clip_id>/<timestamp_us>.png`` (255
where a moving box is the surface seen), their poses in the depth file and the realised share in
``truth.parquet`` come with them: the test bed of pose estimation on dynamic videos.

Intrinsics keep the file's horizontal field of view and principal point; pixels are square at
the output size (``fy = fx`` in pixels).

:func:`synthesize_multicam` instead builds its own scenes for ReCamMaster (video-to-video camera
re-rendering): one room per scene with boxes that move over time (:class:`MovingBox`, placed at
each frame's time by :func:`cast`), seen by N synchronized generated camera trajectories
(:func:`camera_path`), written in the MultiCamVideo layout (``sceneN/videos/camNN.mp4``,
``sceneN/cameras/camera_extrinsics.json`` in Unreal form, ``metadata.csv``) with the true
cameras, metric depth and object poses under ``sceneN/truth/``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .core import cameras as cam
from .core import checks
from .core.artifacts import (
    atomic_dir,
    atomic_write_text,
    merge_rows,
    read_table,
    should_skip,
    write_arrays,
    write_table,
)
from .core.dataset import clip_layout
from .core.errors import RealcamError
from .core.video import MICROSECONDS, read_image, write_clip_video, write_image

TRUTH_TABLE = "truth.parquet"
TRUTH_COLUMNS = ["clip_id", "alpha", "n_frames", "width", "height", "seed"]
#: More truth columns, present once a clip of the table was written with moving boxes (``dynamic``):
#: the range the share was drawn from, the share aimed at and the mean share realised (masks'
#: mean over the clip), how many moving boxes and how many still boxes were left out for them.
#: Clips written without them read ``dynamic`` False, shares 0 (range and target NaN), counts 0.
DYNAMIC_COLUMNS = [
    "dynamic",
    "moving_share_lo",
    "moving_share_hi",
    "moving_target",
    "moving_share",
    "n_moving",
    "n_still_removed",
]
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
class MovingBox:
    """A box moving rigidly along a smooth closed path; ``box`` is given in the object's own frame
    (centred on its origin, ``inside=False``), and :meth:`pose` places it at time ``t`` (seconds).

    Position: ``centre + a sin(omega t + phase) + b cos(omega t + phase)``, an ellipse spanned by
    ``a`` and ``b`` (a straight back-and-forth when ``b = 0``) at angular rate ``omega`` (rad/s).
    Orientation: a rotation about the unit ``spin_axis`` (world) by ``spin0 + spin_rate t`` (rad).
    Its texture moves with it.
    """

    box: Box
    centre: np.ndarray
    a: np.ndarray
    b: np.ndarray
    omega: float
    phase: float
    spin_axis: np.ndarray
    spin0: float
    spin_rate: float

    def pose(self, t: float) -> np.ndarray:
        """Object-to-world ``(4, 4)`` at time ``t`` (seconds)."""
        angle = self.omega * t + self.phase
        out = np.eye(4)
        out[:3, :3] = _axis_angle(self.spin_axis, self.spin0 + self.spin_rate * t)
        out[:3, 3] = self.centre + self.a * np.sin(angle) + self.b * np.cos(angle)
        return out

    def positions(self, times: np.ndarray) -> np.ndarray:
        """The box's centre at each of ``times`` (seconds), ``(T, 3)``."""
        angle = self.omega * np.asarray(times, dtype=np.float64)[:, None] + self.phase
        return self.centre + self.a * np.sin(angle) + self.b * np.cos(angle)


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by ``angle`` (rad) about the unit ``axis`` (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


@dataclass
class Scene:
    boxes: list[Box]  # static, axis-aligned (the room first)
    textures: list[np.ndarray]  # float32 (Ht, Wt, 3) in [0, 1]
    movers: list[MovingBox] = field(default_factory=list)  # placed at the time of the frame


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


def _first_hits(scene: Scene, origin: np.ndarray, dirs: np.ndarray, time: float):
    """Per ray: the parameter of the first hit, the index of the box hit (the static boxes first,
    then the moving ones) and its face, and the boxes placed at ``time``; ties go to the earlier box."""
    placed = [(box, None) for box in scene.boxes] + [(m.box, m.pose(time)) for m in scene.movers]
    best_t = np.full(len(dirs), np.inf)
    best_box = np.zeros(len(dirs), dtype=int)
    best_face = np.zeros(len(dirs), dtype=int)
    for b, (box, pose) in enumerate(placed):
        if pose is None:
            t, face = _intersect(box, origin, dirs)
        else:
            t, face = _intersect(box, (origin - pose[:3, 3]) @ pose[:3, :3], dirs @ pose[:3, :3])
        closer = t < best_t
        best_t[closer] = t[closer]
        best_box[closer] = b
        best_face[closer] = face[closer]
    return best_t, best_box, best_face, placed


def cast(scene: Scene, origin: np.ndarray, dirs: np.ndarray, shade: bool = True, time: float = 0.0):
    """Cast rays ``origin + t * dirs``: returns ``t`` and, with ``shade``, RGB in ``[0, 1]``.

    Moving boxes are placed at ``time`` (seconds): the rays are taken into each one's own frame,
    where it is axis-aligned (a rigid change keeps ``t``)."""
    best_t, best_box, best_face, placed = _first_hits(scene, origin, dirs, time)
    if not shade:
        return best_t, None
    points = origin + best_t[:, None] * dirs
    rgb = np.zeros((len(dirs), 3), dtype=np.float32)
    for b, (box, pose) in enumerate(placed):
        for face in range(6):
            sel = np.nonzero((best_box == b) & (best_face == face))[0]
            if sel.size == 0:
                continue
            axis = face // 2
            u_axis, v_axis = [a for a in range(3) if a != axis]
            tex = scene.textures[box.face_texture[face]]
            hit = points[sel] if pose is None else (points[sel] - pose[:3, 3]) @ pose[:3, :3]
            s = (hit[:, u_axis] - box.lo[u_axis]) / box.texel + box.face_offset[face, 0]
            t = (hit[:, v_axis] - box.lo[v_axis]) / box.texel + box.face_offset[face, 1]
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


def render_view(
    scene: Scene,
    k: np.ndarray,
    c2w: np.ndarray,
    width: int,
    height: int,
    supersample: int = 2,
    time: float = 0.0,
    with_mask: bool = False,
):
    """Render one view (moving boxes at ``time``, seconds): ``(H, W, 3)`` uint8 colour and
    ``(H, W)`` float32 metric z-depth; ``with_mask`` adds the ``(H, W)`` bool motion mask: the
    pixels whose depth ray (through the pixel centre) first hits a moving box."""
    origin = c2w[:3, 3]
    depth, hit, _, _ = _first_hits(scene, origin, camera_rays(k, c2w, width, height, 1), time)
    _, rgb = cast(scene, origin, camera_rays(k, c2w, width, height, supersample), time=time)
    rgb = rgb.reshape(height, supersample, width, supersample, 3).mean(axis=(1, 3))
    image = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    depth = depth.reshape(height, width).astype(np.float32)
    if with_mask:
        return image, depth, (hit >= len(scene.boxes)).reshape(height, width)
    return image, depth


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
# Moving boxes in front of a trajectory (``synthesize(..., dynamic=True)``)
# ----------------------------------------------------------------------------------------------
#: The default range of the share of the image covered by moving boxes, averaged over a clip.
MOVING_SHARE = (0.2, 0.4)
#: The largest share accepted (beyond it the boxes would have to swallow the cameras).
MAX_MOVING_SHARE = 0.9
#: The least distance (metres) from any camera position on the path to a moving box, at any time.
CAMERA_MARGIN = 0.3


@dataclass
class MoverPlacement:
    """The moving boxes of a clip and the still boxes kept (``boxes``: the room first); ``target``
    the share aimed at, ``estimate`` the share measured while sizing (on at most 24 frames, at most
    128 pixels wide), ``removed`` how many still boxes were left out (in a moving box's reach)."""

    movers: list[MovingBox]
    boxes: list[Box]
    target: float
    estimate: float
    removed: int


def _path_samples(centres: np.ndarray, spacing: float = 0.05) -> np.ndarray:
    """Points along the polyline of camera positions, every position and at most ``spacing`` apart."""
    pieces = [centres[:1]]
    for a, b in zip(centres[:-1], centres[1:], strict=True):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / spacing)))
        pieces.append(a + np.linspace(0.0, 1.0, n + 1)[1:, None] * (b - a))
    return np.concatenate(pieces)


class _MoverLayout:
    """Moving boxes of base half sizes ``half`` scaled together by ``s`` about their moving centres;
    their paths and turns do not depend on ``s``, so every constraint (keep off the camera path,
    stay in the room, keep apart) and the covered share are monotone in ``s``."""

    def __init__(self, movers: list[MovingBox], times: np.ndarray, path: np.ndarray, room: Box):
        self.movers = movers
        self.half = np.array([m.box.hi for m in movers])  # (M, 3) at s = 1
        poses = np.array([[m.pose(t) for t in times] for m in movers])  # (M, T, 4, 4)
        self.centres = poses[:, :, :3, 3]
        # camera path points in each box's own frame at every time, folded into the first octant
        local = np.einsum("mtji,mtpj->mtpi", poses[:, :, :3, :3], path[None, None] - self.centres[:, :, None])
        self.local = np.abs(local)
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
        self.corners = np.einsum("mtij,mkj->mtki", poses[:, :, :3, :3], signs[None] * self.half[:, None])
        self.room = room

    def fits(self, s: float, margin: float) -> bool:
        gap = np.maximum(self.local - s * self.half[:, None, None], 0.0)
        if np.sqrt((gap**2).sum(axis=-1)).min() < margin:
            return False
        corners = self.centres[:, :, None] + s * self.corners
        if np.any(corners < self.room.lo + 0.05) or np.any(corners > self.room.hi - 0.05):
            return False
        radius = s * np.linalg.norm(self.half, axis=1)
        for i in range(len(self.movers)):
            for j in range(i):
                apart = np.linalg.norm(self.centres[i] - self.centres[j], axis=1).min()
                if apart < radius[i] + radius[j] + 0.05:
                    return False
        return True

    def largest_scale(self, margin: float, top: float = 16.0, steps: int = 24) -> float | None:
        """The largest admissible ``s`` (``None`` when even points would not fit)."""
        if not self.fits(1e-6, margin):
            return None
        if self.fits(top, margin):
            return top
        lo, hi = 1e-6, top
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.fits(mid, margin) else (lo, mid)
        return lo

    def clear_of(self, box: Box, s: float) -> bool:
        """Whether a still box stays out of every moving box's bounding sphere at every time."""
        radius = s * np.linalg.norm(self.half, axis=1)
        return all(
            _box_distance(box.lo, box.hi, c).min() >= r + 0.02 for c, r in zip(self.centres, radius, strict=True)
        )

    def scaled(self, s: float) -> list[MovingBox]:
        out = []
        for m, half in zip(self.movers, self.half, strict=True):
            box = Box(
                -s * half,
                s * half,
                face_texture=m.box.face_texture,
                face_offset=m.box.face_offset,
                face_shade=m.box.face_shade,
                texel=max(2.0 * s * float(half.max()) / 300.0, 1e-4),  # a face spans about 300 texels
            )
            out.append(MovingBox(box, m.centre, m.a, m.b, m.omega, m.phase, m.spin_axis, m.spin0, m.spin_rate))
        return out


def _draw_movers(
    rng: np.random.Generator,
    c2w: np.ndarray,
    norm: np.ndarray,
    n_tex: int,
    times: np.ndarray,
    samples: np.ndarray,
    path: np.ndarray,
    room: Box,
    margin: float,
    obstacles: Sequence[Box] = (),
    candidates: int = 48,
) -> list[MovingBox]:
    """1-5 boxes, placed one after the other, each the best of ``candidates`` drawn 1-3 m in front
    of a camera of the middle half of the clip (``c2w``, normalised intrinsics ``norm``), seen in the
    middle 60 % of its image. A candidate moves on a small ellipse mostly across that view
    (amplitude 4-10 % of its distance, period 2.5-6 s) while turning about a random axis
    (15-60 deg/s); its bounding sphere is made as large as it may be (``margin`` off every point of
    the camera ``path``, 5 cm off the walls and off the spheres of the boxes already placed, 2 cm off
    the ``obstacles``, at every time of ``samples``), and the candidate whose bounding square
    covers the most of the images on average (frame ``i`` at ``times[i]``) wins. The boxes' half
    sizes span their spheres (the layout is then scaled as a whole, :class:`_MoverLayout`)."""
    n_frames = len(c2w)
    w2c = cam.invert_pose(c2w)
    placed: list[tuple[np.ndarray, float]] = []  # centre path (T, 3), bounding radius
    movers = []
    for _ in range(int(rng.integers(1, 6))):
        best, best_score = None, 0.0
        for _ in range(candidates):
            ref = int(rng.integers(n_frames // 4, n_frames - n_frames // 4)) if n_frames > 1 else 0
            right, down, forward = c2w[ref, :3, 0], c2w[ref, :3, 1], c2w[ref, :3, 2]
            fx, fy, cx, cy = norm[ref]
            distance = rng.uniform(1.0, 3.0)
            tan_x = (rng.uniform(0.2, 0.8) - cx) / fx
            tan_y = (rng.uniform(0.2, 0.8) - cy) / fy
            centre = c2w[ref, :3, 3] + distance * _unit(forward + tan_x * right + tan_y * down)
            heading = rng.uniform(0, 2 * np.pi)
            across = np.cos(heading) * right + np.sin(heading) * down
            other = _unit(np.cross(forward, across) + 0.3 * rng.normal() * forward)
            amplitude = distance * rng.uniform(0.04, 0.10)
            mover = MovingBox(
                box=Box(-np.ones(3), np.ones(3)),
                centre=centre,
                a=amplitude * _unit(across + 0.3 * rng.normal() * forward),
                b=amplitude * rng.uniform(0.0, 0.6) * other,
                omega=2 * np.pi / rng.uniform(2.5, 6.0),
                phase=rng.uniform(0, 2 * np.pi),
                spin_axis=_unit(rng.normal(size=3)),
                spin0=rng.uniform(0, 2 * np.pi),
                spin_rate=np.radians(rng.uniform(15, 60)) * rng.choice([-1.0, 1.0]),
            )
            sweep = mover.positions(samples)
            reach = min(
                np.linalg.norm(path[:, None] - sweep[None], axis=-1).min() - margin,
                np.min(sweep - room.lo) - 0.05,
                np.min(room.hi - sweep) - 0.05,
                *(np.linalg.norm(sweep - other_sweep, axis=1).min() - r - 0.05 for other_sweep, r in placed),
                *(_box_distance(box.lo, box.hi, sweep).min() - 0.02 for box in obstacles),
            )
            if reach < 0.2:
                continue
            # the bounding square of the sphere in every frame (at the frame's time), clipped to the image
            at = mover.positions(times)
            local = np.einsum("fij,fj->fi", w2c[:, :3, :3], at) + w2c[:, :3, 3]
            z = np.maximum(local[:, 2], 1e-6)
            u, v = norm[:, 0] * local[:, 0] / z + norm[:, 2], norm[:, 1] * local[:, 1] / z + norm[:, 3]
            ru, rv = norm[:, 0] * reach / z, norm[:, 1] * reach / z
            overlap_u = np.clip(u + ru, 0, 1) - np.clip(u - ru, 0, 1)
            overlap_v = np.clip(v + rv, 0, 1) - np.clip(v - rv, 0, 1)
            score = float(np.mean(np.where(local[:, 2] > 0.05, overlap_u * overlap_v, 0.0)))
            if score > best_score:
                best, best_score = (mover, sweep, reach), score
        if best is None:
            continue
        mover, sweep, reach = best
        half = reach * _unit(rng.uniform(0.6, 1.0, size=3))
        mover.box = _box_faces(Box(-half, half, texel=0.004), rng, n_tex, 0.6)
        placed.append((sweep, reach))
        movers.append(mover)
    return movers


def place_moving_boxes(
    scene: Scene,
    c2w: np.ndarray,
    norm: np.ndarray,
    times: np.ndarray,
    size: tuple[int, int],
    target: float,
    rng: np.random.Generator,
    *,
    margin: float = CAMERA_MARGIN,
    attempts: int = 16,
    max_frames: int = 24,
    max_side: int = 128,
) -> MoverPlacement:
    """Moving boxes for the static ``scene`` seen along ``c2w`` (metric, normalised intrinsics
    ``norm``, frame ``i`` at ``times[i]`` seconds) that cover about ``target`` of the image,
    averaged over the clip.

    A layout is drawn (:func:`_draw_movers`) and scaled as a whole: first as large as it may be
    (every box at least ``margin`` from every point of the camera path at every time of the clip,
    inside the room, the boxes' bounding spheres apart), then bisected on the covered share
    (monotone in the scale), measured by casting the depth rays of up to ``max_frames`` frames
    (downscaled to ``max_side``) against the still scene. Still boxes within reach of a moving box's
    bounding sphere at the scale chosen are left out (a first half of the attempts draws layouts
    clear of them all). A layout too small for ``target`` even at its
    largest is redrawn, up to ``attempts`` times; the one covering the most is kept then (the
    share falls short)."""
    n_frames = len(c2w)
    if target <= 0:
        return MoverPlacement([], list(scene.boxes), float(target), 0.0, 0)
    width, height = size
    shrink = min(1.0, max_side / max(width, height))
    ew, eh = max(8, round(width * shrink)), max(8, round(height * shrink))
    picks = np.unique(np.linspace(0, n_frames - 1, min(n_frames, max_frames)).round().astype(int))
    ks = cam.denormalize_intrinsics(norm, ew, eh)
    rays = [camera_rays(ks[i], c2w[i], ew, eh, 1) for i in picks]
    span = np.linspace(times.min(), times.max(), 64)
    samples = np.unique(np.concatenate([times, span]))
    path = _path_samples(c2w[:, :3, 3])
    room, still = scene.boxes[0], scene.boxes[1:]
    static_t: dict[tuple[int, ...], list[np.ndarray]] = {}

    def static_depth(kept: tuple[int, ...]) -> list[np.ndarray]:
        if kept not in static_t:
            view = Scene([room, *(still[i] for i in kept)], scene.textures)
            static_t[kept] = [cast(view, c2w[i, :3, 3], r, shade=False)[0] for i, r in zip(picks, rays, strict=True)]
        return static_t[kept]

    def share(layout: _MoverLayout, s: float, depth: list[np.ndarray]) -> float:
        view = Scene([], scene.textures, layout.scaled(s))
        covered = [
            (cast(view, c2w[i, :3, 3], r, shade=False, time=times[i])[0] < d).mean()
            for i, r, d in zip(picks, rays, depth, strict=True)
        ]
        return float(np.mean(covered))

    def fit(layout: _MoverLayout, top: float, depth: list[np.ndarray], most: float) -> tuple[float, float]:
        """The covered share and scale closest to ``target`` (``most`` covered at ``top``)."""
        if most <= target:
            return most, top
        lo, hi = 0.0, top
        chosen = (most, top)
        for _ in range(20):
            mid = 0.5 * (lo + hi)
            got = share(layout, mid, depth)
            if abs(got - target) < abs(chosen[0] - target):
                chosen = (got, mid)
            if abs(got - target) < 0.002:
                break
            lo, hi = (mid, hi) if got < target else (lo, mid)
        return chosen

    def clear(layout: _MoverLayout, s: float, among: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(i for i in among if layout.clear_of(still[i], s))

    best = None  # (share, layout, scale, kept still boxes)
    everything = tuple(range(len(still)))
    for attempt in range(attempts):
        obstacles = still if attempt < attempts // 2 else ()  # keep clear of the still boxes first
        movers = _draw_movers(rng, c2w, norm, len(scene.textures), times, samples, path, room, margin, obstacles)
        if not movers:
            continue
        layout = _MoverLayout(movers, samples, path, room)
        top = layout.largest_scale(margin)
        if top is None:
            continue
        # the most this layout can cover: at its largest, with the still boxes in its reach left out
        fewest = clear(layout, top, everything)
        most = share(layout, top, static_depth(fewest))
        if most < target:
            if best is None or most > best[0]:
                best = (most, layout, top, fewest)
            continue
        # Leave out only the still boxes in the reach of the boxes at the scale chosen: fewer
        # occluders cover more, so the scale then shrinks and those left out stay clear.
        kept = everything
        while True:
            depth = static_depth(kept)
            got, s = fit(layout, top, depth, share(layout, top, depth))
            now = clear(layout, s, kept)
            if now == kept:
                break
            kept = now
        best = (got, layout, s, kept)
        break
    if best is None:
        return MoverPlacement([], list(scene.boxes), float(target), 0.0, 0)
    got, layout, s, kept = best
    boxes = [room, *(still[i] for i in kept)]
    return MoverPlacement(layout.scaled(s), boxes, float(target), got, len(still) - len(kept))


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


@dataclass
class DynamicClip:
    """One clip rendered with moving boxes: ``frames`` ``(F, H, W, 3)`` uint8, ``depth``
    ``(F, H, W)`` float32 metric, ``masks`` ``(F, H, W)`` bool (a moving box is the surface seen
    through the pixel centre), ``written`` the cameras to write, ``object_pose`` ``(M, F, 4, 4)``
    object-to-world (metric) of the moving boxes at every frame, ``object_half`` ``(M, 3)`` their
    half sizes, ``placement`` how they were placed; ``share`` the mean of ``masks``."""

    frames: np.ndarray
    depth: np.ndarray
    masks: np.ndarray
    written: cam.CameraFile
    object_pose: np.ndarray
    object_half: np.ndarray
    placement: MoverPlacement

    @property
    def share(self) -> float:
        return float(self.masks.mean()) if self.masks.size else 0.0


def synth_dynamic_clip(
    cams: cam.CameraFile,
    textures: list[np.ndarray],
    alpha: float,
    size: tuple[int, int],
    rng: np.random.Generator,
    moving_share: tuple[float, float] = MOVING_SHARE,
    supersample: int = 2,
) -> DynamicClip:
    """:func:`synth_clip` with moving boxes: the same still scene (drawn first from ``rng``), then a
    share drawn uniformly in ``moving_share`` and boxes placed to cover it
    (:func:`place_moving_boxes`); frame ``i`` shows them at its timestamp in seconds."""
    problem = cam.camera_file_problem(cams)
    if problem:
        raise RealcamError(problem, cams.url or "cameras")
    width, height = size
    c2w = cams.c2w
    scene = build_scene(c2w, textures, rng)
    norm = square_pixel_intrinsics(cams.intrinsics, width, height)
    ks = cam.denormalize_intrinsics(norm, width, height)
    times = np.asarray(cams.timestamps, dtype=np.float64) / MICROSECONDS
    lo, hi = moving_share
    target = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    placement = place_moving_boxes(scene, c2w, norm, times, size, target, rng)
    scene = Scene(placement.boxes, textures, placement.movers)
    frames, depths, masks = zip(
        *(
            render_view(scene, k, p, width, height, supersample, time=t, with_mask=True)
            for k, p, t in zip(ks, c2w, times)
        )
    )
    written = cam.CameraFile(
        cams.timestamps, norm, cam.c2w_to_w2c(cam.metric_poses(c2w, 1.0 / alpha)), cams.url, cams.distortion
    )
    pose = np.array([[m.pose(t) for t in times] for m in scene.movers]).reshape(-1, len(times), 4, 4)
    half = np.array([m.box.hi for m in scene.movers]).reshape(-1, 3)
    return DynamicClip(np.stack(frames), np.stack(depths), np.stack(masks), written, pose, half, placement)


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


def check_moving_share(moving_share: tuple[float, float] | None, dynamic: bool) -> tuple[float, float] | None:
    """The share range of :func:`synthesize` checked: :data:`MOVING_SHARE` by default with
    ``dynamic``, ``None`` without (``RealcamError`` naming ``--moving-share``)."""
    if moving_share is None:
        return MOVING_SHARE if dynamic else None
    if not dynamic:
        raise RealcamError("only with --dynamic (the share of the image the moving boxes cover)", "--moving-share")
    try:
        lo, hi = moving_share
    except (TypeError, ValueError):
        raise RealcamError(f"expected LO HI, got {moving_share!r}", "--moving-share") from None
    lo = checks.number(lo, "--moving-share", minimum=0, maximum=MAX_MOVING_SHARE)
    hi = checks.number(hi, "--moving-share", minimum=0, maximum=MAX_MOVING_SHARE)
    if lo > hi:
        raise RealcamError(f"the share range must satisfy LO <= HI, got {lo:g} {hi:g}", "--moving-share")
    return lo, hi


def _fill_static_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Give the clips written without moving boxes their values in the :data:`DYNAMIC_COLUMNS`."""
    table = table.copy()
    table["dynamic"] = table["dynamic"].astype("boolean").fillna(False).astype(bool)
    for column, value, dtype in (("moving_share", 0.0, float), ("n_moving", 0, int), ("n_still_removed", 0, int)):
        table[column] = table[column].fillna(value).astype(dtype)
    return table


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
    dynamic: bool = False,
    moving_share: tuple[float, float] | None = None,
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

    ``dynamic``: each clip's scene also gets moving boxes (:func:`synth_dynamic_clip`) covering a
    share of the image drawn per clip in ``moving_share`` (default :data:`MOVING_SHARE`), frame
    ``i`` showing them at its timestamp (seconds); then also ``masks/<clip>/<timestamp>.png``
    (uint8, 255 where a moving box is the surface seen), ``object_pose`` ``(M, F, 4, 4)``
    (object-to-world, metric like the trajectory given) and ``object_half`` ``(M, 3)`` in the
    depth file, and the :data:`DYNAMIC_COLUMNS` in the truth table. A clip recorded with other
    ``dynamic``/``moving_share`` settings is an error unless ``overwrite``. Without ``dynamic``
    the output is what it always was.
    """
    if store not in STORES:
        raise RealcamError(f"expected one of {', '.join(STORES)}, got {store!r}", "--store")
    size, scale, (lo_s, hi_s), seed, supersample = check_options(size, scale, random_scale, seed, supersample)
    moving_share = check_moving_share(moving_share, dynamic)
    dynamic = bool(dynamic)
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
    now = (dynamic, *(moving_share or (None, None)))
    skipped = []
    for clip_id, cams in clips.items():
        where = clip_layout(out, clip_id)
        stored = where.frames_dir if store == "frames" else where.video_path
        outputs = [where.camera_path, stored, out / "depth_gt" / f"{clip_id}.npz"]
        masks_dir = out / "masks" / clip_id
        if not overwrite and clip_id in done and all(p.exists() for p in outputs):
            was = _recorded_dynamic(old, clip_id)
            if was != now:
                said = (
                    f"dynamic {was[0]} (now {now[0]})"
                    if was[0] != now[0]
                    else f"moving share {was[1]:g} {was[2]:g} (now {now[1]:g} {now[2]:g})"
                )
                raise RealcamError(f"written with other settings ({said}); use --overwrite or another --out", stored)
        if dynamic:
            outputs.append(masks_dir)
        if should_skip(clip_id, done, outputs, overwrite):
            skipped.append(clip_id)
            if progress:
                progress(f"{clip_id} (done)")
            continue
        rng = clip_rng(seed, clip_id)
        alpha = float(scale) if scale is not None else float(np.exp(rng.uniform(np.log(lo_s), np.log(hi_s))))
        row = {"clip_id": clip_id, "alpha": alpha, "width": width, "height": height, "seed": seed}
        if dynamic:
            clip = synth_dynamic_clip(cams, tex, alpha, size, rng, moving_share, supersample)
            frames, depth, written = clip.frames, clip.depth, clip.written
            extra = {"object_pose": clip.object_pose, "object_half": clip.object_half}
            row |= {
                "dynamic": True,
                "moving_share_lo": moving_share[0],
                "moving_share_hi": moving_share[1],
                "moving_target": clip.placement.target,
                "moving_share": clip.share,
                "n_moving": len(clip.placement.movers),
                "n_still_removed": clip.placement.removed,
            }
        else:
            frames, depth, written = synth_clip(cams, tex, alpha, size, rng, supersample)
            extra = {}
        row["n_frames"] = len(written)
        columns = TRUTH_COLUMNS + (DYNAMIC_COLUMNS if dynamic else [])
        merged = merge_rows(old, pd.DataFrame([row], columns=columns), key="clip_id")
        if "dynamic" in merged.columns:
            merged = _fill_static_rows(merged)
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
            if dynamic:
                current = masks_dir
                with atomic_dir(masks_dir) as tmp:
                    for ts, mask in zip(written.timestamps, clip.masks, strict=True):
                        write_image(tmp / f"{ts}.png", np.where(mask, 255, 0).astype(np.uint8))
            current = outputs[2]
            write_arrays(outputs[2], depth=depth, timestamps=written.timestamps, **extra)
            current = outputs[0]
            cam.write_re10k(outputs[0], written)
            current = truth_path
            write_table(truth_path, merged)
            if not dynamic and masks_dir.exists():  # the masks of this clip written before with moving boxes
                current = masks_dir
                shutil.rmtree(masks_dir)
        except OSError as err:
            _remove(outputs)
            raise RealcamError(checks.os_error_message(err), current) from None
        except RealcamError:
            _remove(outputs)
            raise
        old = merged
        if progress:
            progress(clip_id)
    truth = old.reset_index(drop=True)
    truth.attrs["skipped"] = skipped
    return truth


def _recorded_dynamic(table: pd.DataFrame, clip_id: str) -> tuple[bool, float | None, float | None]:
    """``(dynamic, LO, HI)`` a clip of the truth table was written with."""
    if "dynamic" not in table.columns:
        return False, None, None
    row = table[table["clip_id"].astype(str) == clip_id].iloc[-1]
    if not bool(row["dynamic"]):
        return False, None, None
    return True, float(row["moving_share_lo"]), float(row["moving_share_hi"])


# ----------------------------------------------------------------------------------------------
# Multi-camera scenes (ReCamMaster's MultiCamVideo layout)
# ----------------------------------------------------------------------------------------------
#: The fixed reflection taking the OpenCV world (x right, y down, z forward) to Unreal's left-handed
#: one (X forward = z, Y right = x, Z up = -y). ``camera_extrinsics.json`` holds ``W @ c2w``, so
#: :func:`stages.rerender.cameras.read_multicam_cameras` gives ``UNREAL_WORLD @ c2w`` (det -1) and
#: relative poses ``inv(W A) @ (W B) = inv(A) @ B`` exactly as in the true right-handed world.
UNREAL_WORLD = np.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
#: Camera motions, each from a start that looks at the scene's centre (magnitudes drawn per camera):
#: ``arc`` (orbit 15-45 deg around the centre, looking at it), ``dolly`` (0.3-1.2 m along the view
#: axis), ``pan`` (yaw 10-25 deg in place), ``tilt`` (pitch 5-12 deg in place), ``crane`` (rise or
#: sink 0.4-0.9 m, looking at the centre), ``truck`` (0.6-1.5 m sideways, orientation kept),
#: ``arc-dolly`` (orbit while closing in or backing off), ``static`` (never moves; only on request).
CAMERA_MOTIONS = ("arc", "dolly", "pan", "tilt", "crane", "truck", "arc-dolly", "static")
RANDOM_MOTIONS = CAMERA_MOTIONS[:-1]
#: Most cameras per scene (names ``cam01`` ... ``cam99``), most moving boxes.
MAX_CAMERAS = 99
MAX_MOVING = 8
MULTICAM_TABLE = "scenes.parquet"
MULTICAM_COLUMNS = [
    "scene",
    "n_cameras",
    "n_frames",
    "width",
    "height",
    "fps",
    "dynamic",
    "n_moving",
    "n_static",
    "caption",
    "settings",
]
METADATA_CSV = "metadata.csv"
EXTRINSICS_JSON = "camera_extrinsics.json"

# Scene geometry (metres; floor at y = 0, up is -y): the moving boxes stay within _MOVE_RADIUS of
# the vertical axis through the origin, cameras between _CAM_RADIUS (horizontally) and the walls.
_MOVE_RADIUS = 2.0
_CAM_RADIUS = (2.6, 5.0)
_CAM_HEIGHT = (0.4, 2.8)


@dataclass
class MulticamScene:
    """One synthetic scene and its cameras: ``c2w`` ``(N, F, 4, 4)`` OpenCV (right-handed world,
    metres), ``k`` the ``(3, 3)`` pixel intrinsics shared by all cameras, ``times`` ``(F,)`` the
    seconds at which each frame shows the moving boxes (all 0 for a still scene)."""

    scene: Scene
    names: list[str]
    motions: list[str]
    c2w: np.ndarray
    k: np.ndarray
    times: np.ndarray
    caption: str

    def object_poses(self) -> np.ndarray:
        """Object-to-world poses of the moving boxes at every frame, ``(M, F, 4, 4)``."""
        return np.array([[m.pose(t) for t in self.times] for m in self.scene.movers]).reshape(-1, len(self.times), 4, 4)

    def render(self, camera: int, width: int, height: int, supersample: int = 2):
        """Frames ``(F, H, W, 3)`` uint8 and metric z-depth ``(F, H, W)`` float32 of one camera."""
        frames, depth = zip(
            *(
                render_view(self.scene, self.k, p, width, height, supersample, time=t)
                for p, t in zip(self.c2w[camera], self.times)
            )
        )
        return np.stack(frames), np.stack(depth)


def _box_faces(box: Box, rng: np.random.Generator, n_tex: int, shade_lo: float) -> Box:
    box.face_texture = rng.integers(0, n_tex, size=6)
    box.face_offset = rng.uniform(0, 512, size=(6, 2))
    box.face_shade = rng.uniform(shade_lo, 1.0, size=6)
    return box


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _moving_boxes(rng: np.random.Generator, n: int, n_tex: int, duration: float) -> list[MovingBox]:
    """``n`` boxes near the centre: on the floor (turning about the vertical) or floating (tumbling
    and bobbing), each on an ellipse or a line, apart from each other at all times."""
    times = np.linspace(0.0, max(duration, 1.0), 48)
    movers: list[MovingBox] = []
    for _ in range(200 * max(n, 1)):
        if len(movers) == n:
            break
        half = rng.uniform(0.2, 0.45, size=3)
        radius = float(np.linalg.norm(half))
        heading = rng.uniform(0, 2 * np.pi)
        a = rng.uniform(0.3, 0.7) * np.array([np.cos(heading), 0.0, np.sin(heading)])
        b = rng.uniform(0.0, 0.5) * np.array([-np.sin(heading), 0.0, np.cos(heading)])
        if rng.random() < 0.6:  # on the floor, turning about the vertical
            centre_y = -half[1]
            axis = np.array([0.0, -1.0, 0.0])
        else:  # floating: tumbling about a random axis and bobbing
            bob = rng.uniform(0.05, 0.2)
            b[1] = bob * rng.choice([-1.0, 1.0])
            centre_y = -(radius + bob + rng.uniform(0.1, 0.8))
            axis = _unit(rng.normal(size=3))
        reach = _MOVE_RADIUS - radius - np.linalg.norm(a) - np.linalg.norm(b)
        if reach <= 0:
            continue
        r, phi = reach * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        mover = MovingBox(
            box=_box_faces(Box(-half, half, texel=0.003), rng, n_tex, 0.6),
            centre=np.array([r * np.cos(phi), centre_y, r * np.sin(phi)]),
            a=a,
            b=b,
            omega=2 * np.pi / rng.uniform(3.0, 8.0),
            phase=rng.uniform(0, 2 * np.pi),
            spin_axis=axis,
            spin0=rng.uniform(0, 2 * np.pi),
            spin_rate=np.radians(rng.uniform(20, 90)) * rng.choice([-1.0, 1.0]),
        )
        path = np.array([mover.pose(t)[:3, 3] for t in times])
        if all(
            np.linalg.norm(path - np.array([o.pose(t)[:3, 3] for t in times]), axis=1).min()
            > radius + np.linalg.norm(o.box.hi) + 0.05
            for o in movers
        ):
            movers.append(mover)
    return movers


def _look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    from .core.trajectory import look_at

    return look_at(position, target, (0.0, -1.0, 0.0))


def _yaw(degrees: float) -> np.ndarray:
    """Rotation about the world's vertical (y) axis."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _orbit_position(azimuth: float, radius: float, height: float) -> np.ndarray:
    return np.array([radius * np.sin(azimuth), -height, radius * np.cos(azimuth)])


def camera_path(
    motion: str, azimuth: float, radius: float, height: float, target: np.ndarray, n_frames: int, rng
) -> np.ndarray:
    """``(F, 4, 4)`` OpenCV c2w of one camera: it starts at ``azimuth`` (rad), horizontal
    ``radius`` and ``height`` above the floor (metres) looking at ``target``, then performs
    ``motion`` (:data:`CAMERA_MOTIONS`, magnitudes drawn from ``rng``) with smoothstep easing."""
    s = np.linspace(0.0, 1.0, n_frames) if n_frames > 1 else np.zeros(1)
    s = s * s * (3.0 - 2.0 * s)
    sign = rng.choice([-1.0, 1.0])
    start = _look_at(_orbit_position(azimuth, radius, height), target)
    out = np.repeat(start[None], len(s), axis=0)
    lo_r, hi_r = _CAM_RADIUS

    def radial_change(amount: float) -> float:
        """``amount`` signed towards (negative) or away from the centre, kept within the ring."""
        change = float(np.clip(sign * amount, lo_r - radius, hi_r - radius))
        if abs(change) < 0.3:  # no room this way: go the other way
            change = float(np.clip(-sign * amount, lo_r - radius, hi_r - radius))
        return change

    if motion in ("arc", "arc-dolly", "crane"):
        turn = np.radians(sign * rng.uniform(15, 45)) if motion != "crane" else 0.0
        if motion == "crane":
            lift = sign * rng.uniform(0.4, 0.9)
            lift = float(np.clip(lift, _CAM_HEIGHT[0] - height, _CAM_HEIGHT[1] - height))
        else:
            lift = rng.uniform(-0.2, 0.2)
        closer = radial_change(rng.uniform(0.5, 1.2)) if motion == "arc-dolly" else 0.0
        for i, si in enumerate(s):
            p = _orbit_position(azimuth + si * turn, radius + si * closer, height + si * lift)
            out[i] = _look_at(p, target)
    elif motion == "dolly":
        forward = start[:3, 2]
        amount = radial_change(rng.uniform(0.3, 1.2)) / np.linalg.norm(forward[[0, 2]])
        out[:, :3, 3] = start[:3, 3] - s[:, None] * amount * forward  # closer (amount < 0) moves forward
    elif motion == "truck":
        right = start[:3, 0]
        out[:, :3, 3] = start[:3, 3] + s[:, None] * sign * rng.uniform(0.6, 1.5) * right
    elif motion == "pan":
        turn = sign * rng.uniform(10, 25)
        for i, si in enumerate(s):
            out[i, :3, :3] = _yaw(si * turn) @ start[:3, :3]
    elif motion == "tilt":
        from .core.trajectory import axis_rotation

        turn = sign * rng.uniform(5, 12)
        for i, si in enumerate(s):
            out[i, :3, :3] = start[:3, :3] @ axis_rotation("x", si * turn)
    elif motion != "static":
        raise RealcamError(f"unknown camera motion {motion!r} (one of {', '.join(CAMERA_MOTIONS)})", "motions")
    return out


def _static_boxes(
    rng: np.random.Generator, n: int, n_tex: int, room: Box, c2w: np.ndarray, targets: np.ndarray
) -> list[Box]:
    """Still boxes on the floor, away from the moving boxes, the camera paths and the lines of sight."""
    path = c2w[:, :, :3, 3].reshape(-1, 3)
    picks = sorted({0, c2w.shape[1] // 2, c2w.shape[1] - 1})
    along = np.linspace(0.0, 1.0, 16)[:, None]
    sight = np.concatenate(
        [c2w[c, f, :3, 3] + along * (targets[c] - c2w[c, f, :3, 3]) for c in range(len(c2w)) for f in picks]
    )
    boxes: list[Box] = []
    for _ in range(300):
        if len(boxes) == n:
            break
        half = np.array([rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.6)])
        x = rng.uniform(room.lo[0] + half[0] + 0.05, room.hi[0] - half[0] - 0.05)
        z = rng.uniform(room.lo[2] + half[2] + 0.05, room.hi[2] - half[2] - 0.05)
        lo, hi = np.array([x, -2 * half[1], z]) - [half[0], 0, half[2]], np.array([x, 0.0, z]) + [half[0], 0, half[2]]
        # horizontal distance of the footprint from the vertical axis through the centre
        if np.hypot(max(lo[0], -hi[0], 0.0), max(lo[2], -hi[2], 0.0)) < _MOVE_RADIUS + 0.2:
            continue
        if _box_distance(lo, hi, path).min() < 0.5 or _box_distance(lo, hi, sight).min() < 0.25:
            continue
        if any(np.all(lo < o.hi + 0.05) and np.all(o.lo - 0.05 < hi) for o in boxes):
            continue
        boxes.append(_box_faces(Box(lo, hi, texel=0.004), rng, n_tex, 0.6))
    return boxes


def build_multicam_scene(
    rng: np.random.Generator,
    textures: list[np.ndarray],
    n_cameras: int,
    n_frames: int,
    size: tuple[int, int],
    *,
    fps: float = 15.0,
    dynamic: bool = True,
    fov_deg: float = 60.0,
    motions: Sequence[str] | None = None,
    n_moving: int | None = None,
    n_static: int | None = None,
) -> MulticamScene:
    """One room (floor at ``y = 0``, up ``-y``, 12-16 m wide, 3.2-4 m high) with 1-3 moving boxes
    near its centre (``n_moving``) and 3-6 still ones (``n_static``; either fewer when they do not
    fit: moving boxes never meet, still ones keep off the moving area and the cameras' paths and
    lines of sight), and ``n_cameras`` trajectories around it: camera ``i`` starts at its own
    azimuth (spread evenly around the centre with jitter), 3-4.6 m away and 0.6-2.2 m high, looking
    at a point near the centre, and performs ``motions[i]`` (drawn from :data:`RANDOM_MOTIONS` when not given).
    Frame ``f`` shows the moving boxes at ``f / fps`` seconds (``dynamic``) or at 0."""
    width, height = size
    n_tex = len(textures)
    half_x, half_z, room_h = rng.uniform(6.0, 8.0), rng.uniform(6.0, 8.0), rng.uniform(3.2, 4.0)
    room = _box_faces(
        Box(np.array([-half_x, -room_h, -half_z]), np.array([half_x, 0.0, half_z]), inside=True, texel=0.012),
        rng,
        n_tex,
        0.6,
    )
    n_moving = int(rng.integers(1, 4)) if n_moving is None else n_moving
    movers = _moving_boxes(rng, n_moving, n_tex, (n_frames - 1) / fps)
    if motions is None:
        motions = [str(m) for m in rng.choice(RANDOM_MOTIONS, size=n_cameras)]
    base = rng.uniform(0, 2 * np.pi)
    azimuths = base + 2 * np.pi * (np.arange(n_cameras) + rng.uniform(-0.3, 0.3, size=n_cameras)) / n_cameras
    azimuths = azimuths[rng.permutation(n_cameras)]
    targets = np.column_stack(
        [
            rng.uniform(-0.3, 0.3, size=n_cameras),
            -rng.uniform(0.3, 0.8, size=n_cameras),
            rng.uniform(-0.3, 0.3, size=n_cameras),
        ]
    )
    c2w = np.stack(
        [
            camera_path(motion, az, rng.uniform(3.0, 4.6), rng.uniform(0.6, 2.2), target, n_frames, rng)
            for motion, az, target in zip(motions, azimuths, targets)
        ]
    )
    n_static = int(rng.integers(3, 7)) if n_static is None else n_static
    still = _static_boxes(rng, n_static, n_tex, room, c2w, targets)
    times = np.arange(n_frames) / fps if dynamic else np.zeros(n_frames)
    moving = "moving" if dynamic else "standing"
    caption = (
        f"A room with textured walls and floor, {len(still)} still boxes and {len(movers)} textured boxes "
        f"{moving} near its centre, filmed by a moving camera."
    )
    return MulticamScene(
        scene=Scene([room, *still], textures, movers),
        names=[f"cam{i + 1:02d}" for i in range(n_cameras)],
        motions=list(motions),
        c2w=c2w,
        k=cam.default_intrinsics(width, height, fov_deg),
        times=times,
        caption=caption,
    )


def unreal_extrinsics(names: Sequence[str], c2w: np.ndarray) -> dict:
    """The ``camera_extrinsics.json`` document of OpenCV c2w ``(N, F, 4, 4)`` (right-handed world):
    ``frame{f}`` -> ``name`` -> the Unreal string of ``UNREAL_WORLD @ c2w[n, f]``."""
    from .rerender.cameras import c2w_to_unreal

    return {
        f"frame{f}": {name: c2w_to_unreal(UNREAL_WORLD @ c2w[n, f], f"{name} frame{f}") for n, name in enumerate(names)}
        for f in range(c2w.shape[1])
    }


def multicam_layout(out: str | Path, scene: str, names: Sequence[str]) -> dict[str, Path | list[Path]]:
    """Where a scene's files go (see :func:`synthesize_multicam`)."""
    root = Path(out) / scene
    return {
        "root": root,
        "videos": [root / "videos" / f"{n}.mp4" for n in names],
        "extrinsics": root / "cameras" / EXTRINSICS_JSON,
        "cameras": root / "truth" / "cameras.npz",
        "objects": root / "truth" / "objects.npz",
        "depth": [root / "truth" / "depth" / f"{n}.npz" for n in names],
    }


def check_multicam_options(
    n_cameras, n_frames, size, scenes, fps, seed, supersample, fov_deg, motions, n_moving, n_static
):
    """Every option of :func:`synthesize_multicam` checked (``RealcamError`` naming the option)."""
    from .core.trajectory import MAX_FRAMES

    n_cameras = checks.integer(n_cameras, "--cameras", minimum=2, maximum=MAX_CAMERAS)
    n_frames = checks.integer(n_frames, "--frames", minimum=1, maximum=MAX_FRAMES)
    scenes = checks.integer(scenes, "--scenes", minimum=1, maximum=100_000)
    fps = checks.number(fps, "--fps", above=0, maximum=1000)
    fov_deg = checks.number(fov_deg, "fov_deg", above=1, below=170)
    size, _, _, seed, supersample = check_options(size, None, (1.0, 1.0), seed, supersample)
    if motions is not None:
        motions = [str(m) for m in motions]
        if len(motions) != n_cameras:
            raise RealcamError(f"expected {n_cameras} motions (one per camera), got {len(motions)}", "motions")
        for m in motions:
            checks.choice(m, "motions", CAMERA_MOTIONS)
    if n_moving is not None:
        n_moving = checks.integer(n_moving, "n_moving", minimum=0, maximum=MAX_MOVING)
    if n_static is not None:
        n_static = checks.integer(n_static, "n_static", minimum=0, maximum=20)
    return n_cameras, n_frames, size, scenes, fps, seed, supersample, fov_deg, motions, n_moving, n_static


def _write_metadata(out: Path, table: pd.DataFrame) -> None:
    """``metadata.csv`` (``file_name,text``): one row per video of every finished scene."""
    order = sorted(range(len(table)), key=lambda i: int(str(table["scene"].iloc[i])[len("scene") :]))
    rows = [
        {"file_name": f"{table['scene'].iloc[i]}/videos/cam{c + 1:02d}.mp4", "text": table["caption"].iloc[i]}
        for i in order
        for c in range(int(table["n_cameras"].iloc[i]))
    ]
    atomic_write_text(out / METADATA_CSV, pd.DataFrame(rows, columns=["file_name", "text"]).to_csv(index=False))


def synthesize_multicam(
    out: str | Path,
    n_cameras: int,
    *,
    n_frames: int = 81,
    size: tuple[int, int] = (256, 256),
    scenes: int = 1,
    textures: Sequence[str | Path] = (),
    seed: int = 0,
    dynamic: bool = True,
    fps: float = 15.0,
    fov_deg: float = 60.0,
    motions: Sequence[str] | None = None,
    n_moving: int | None = None,
    n_static: int | None = None,
    supersample: int = 2,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Write ``scenes`` synthetic scenes in ReCamMaster's MultiCamVideo layout; returns the scene table.

    Each scene (``scene1`` ... ``sceneK``, scene ``i`` drawn from ``seed`` and its name only) is
    one room seen by ``n_cameras`` synchronized cameras (:func:`build_multicam_scene`) over
    ``n_frames`` frames at ``fps``; with ``dynamic`` its moving boxes move (frame ``f`` at
    ``f / fps`` s), otherwise they stand at their time-0 poses (the same layout). Under ``out``::

        metadata.csv                          file_name,text: sceneN/videos/camNN.mp4, a caption
        scenes.parquet                        one row per finished scene and its settings
        sceneN/videos/cam01.mp4 ...           lossless RGB H.264 (libx264rgb qp 0), F frames at fps
        sceneN/cameras/camera_extrinsics.json frame0.. -> cam01.. -> Unreal string (UNREAL_WORLD @ c2w)
        sceneN/truth/cameras.npz              c2w (N, F, 4, 4) OpenCV right-handed, metres; k (3, 3)
                                              pixels; names; times (F,) s; unreal_world (4, 4); fps
        sceneN/truth/depth/camNN.npz          depth (F, H, W) float32 metric z-depth
        sceneN/truth/objects.npz              pose (M, F, 4, 4) object-to-world of the moving boxes
                                              at every frame; half (M, 3) their half sizes

    The intrinsics keep ``fov_deg`` across the long side (square pixels, centred). A scene folder
    appears whole or not at all; a scene recorded in ``scenes.parquet`` with all its files is
    skipped unless ``overwrite`` (``table.attrs["skipped"]``), and one recorded with other settings
    is an error. ``motions`` (one of :data:`CAMERA_MOTIONS` per camera), ``n_moving`` and
    ``n_static`` fix what is otherwise drawn per scene. Textures: photos, or procedural ones drawn
    per scene.
    """
    opts = check_multicam_options(
        n_cameras, n_frames, size, scenes, fps, seed, supersample, fov_deg, motions, n_moving, n_static
    )
    n_cameras, n_frames, size, scenes, fps, seed, supersample, fov_deg, motions, n_moving, n_static = opts
    width, height = size
    out = checks.output_dir(out, "--out")
    settings = json.dumps(
        {
            "seed": seed,
            "n_cameras": n_cameras,
            "n_frames": n_frames,
            "size": [width, height],
            "fps": fps,
            "dynamic": bool(dynamic),
            "fov_deg": fov_deg,
            "motions": motions,
            "n_moving": n_moving,
            "n_static": n_static,
            "supersample": supersample,
        },
        sort_keys=True,
    )
    table_path = out / MULTICAM_TABLE
    old = read_table(table_path, MULTICAM_COLUMNS) if table_path.exists() else None
    tex = [load_texture(checks.input_file(t, "texture")) for t in textures]
    names = [f"cam{i + 1:02d}" for i in range(n_cameras)]
    todo, skipped = [], []
    recorded = {} if old is None else dict(zip(old["scene"].astype(str), old["settings"].astype(str)))
    for i in range(scenes):
        name = f"scene{i + 1}"
        where = multicam_layout(out, name, names)
        outputs = [*where["videos"], where["extrinsics"], where["cameras"], where["objects"], *where["depth"]]
        if should_skip(name, set(recorded), outputs, overwrite):
            if recorded[name] != settings:
                was, now = json.loads(recorded[name]), json.loads(settings)
                diff = ", ".join(
                    f"{k} {was.get(k)} (now {now.get(k)})" for k in sorted(now) if was.get(k) != now.get(k)
                )
                raise RealcamError(
                    f"written with other settings ({diff or 'unknown'}); use --overwrite or another --out", out / name
                )
            skipped.append(name)
        else:
            todo.append(name)
    with checks.writing(out):
        out.mkdir(parents=True, exist_ok=True)
    for name in skipped:
        if progress:
            progress(f"{name} (done)")
    for name in todo:
        rng = clip_rng(seed, name)
        scene_tex = tex or [
            procedural_texture(np.random.default_rng([seed, zlib.crc32(name.encode()), j])) for j in range(6)
        ]
        ms = build_multicam_scene(
            rng,
            scene_tex,
            n_cameras,
            n_frames,
            size,
            fps=fps,
            dynamic=dynamic,
            fov_deg=fov_deg,
            motions=motions,
            n_moving=n_moving,
            n_static=n_static,
        )
        timestamps = np.round(np.arange(n_frames) * (MICROSECONDS / fps)).astype(np.int64)
        where = multicam_layout(out, name, names)
        current: Path = where["root"]
        try:
            with atomic_dir(where["root"]) as tmp:
                inside = multicam_layout(tmp.parent, tmp.name, names)  # the same files in the temporary folder
                for c in range(n_cameras):
                    frames, depth = ms.render(c, width, height, supersample)
                    current = where["videos"][c]
                    write_clip_video(inside["videos"][c], frames, timestamps)
                    current = where["depth"][c]
                    write_arrays(inside["depth"][c], depth=depth)
                current = where["cameras"]
                write_arrays(
                    inside["cameras"],
                    c2w=ms.c2w,
                    k=ms.k,
                    names=np.array(names),
                    times=ms.times,
                    unreal_world=UNREAL_WORLD,
                    fps=np.float64(fps),
                )
                current = where["objects"]
                write_arrays(
                    inside["objects"],
                    pose=ms.object_poses(),
                    half=np.array([m.box.hi for m in ms.scene.movers]).reshape(-1, 3),
                )
                current = where["extrinsics"]
                atomic_write_text(inside["extrinsics"], json.dumps(unreal_extrinsics(names, ms.c2w), indent=1))
                current = where["root"]
            row = pd.DataFrame(
                [
                    {
                        "scene": name,
                        "n_cameras": n_cameras,
                        "n_frames": n_frames,
                        "width": width,
                        "height": height,
                        "fps": fps,
                        "dynamic": bool(dynamic),
                        "n_moving": len(ms.scene.movers),
                        "n_static": len(ms.scene.boxes) - 1,
                        "caption": ms.caption,
                        "settings": settings,
                    }
                ],
                columns=MULTICAM_COLUMNS,
            )
            old = merge_rows(old, row, key="scene")
            current = table_path
            write_table(table_path, old)
            current = out / METADATA_CSV
            _write_metadata(out, old)
        except OSError as err:
            raise RealcamError(checks.os_error_message(err), current) from None
        if progress:
            progress(name)
    table = old.reset_index(drop=True)
    table.attrs["skipped"] = skipped
    return table
