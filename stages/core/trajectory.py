"""Camera trajectories: the JSON schema, presets and SE(3) interpolation
(docs/method.md#trajectory-interpolation, docs/method.md#trajectory-presets).

Everything here is OpenCV camera-to-world (x right, y down, z forward), float64, in metres,
relative to the reference camera (the input image's camera is the identity). The versioned JSON
schema is documented in ``docs/trajectory.md``.

Interpolation is in SE(3): rotations by slerp (``scipy.spatial.transform.Slerp``) or, with
``spline``, by a C2 rotation spline (``RotationSpline``) through the keyframes; positions linearly
or by a Catmull-Rom spline (non-uniform in time). Easing reparametrises time; loop mode plays the
path out and back. Keyframes are reproduced exactly at their times.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.interpolate import CubicHermiteSpline
from scipy.spatial.transform import Rotation, RotationSpline, Slerp

from . import cameras as cam
from . import checks
from .artifacts import atomic_write_text
from .errors import RealcamError

SCHEMA_VERSION = 1
DEFAULT_FRAMES = 16
#: The most frames a dense trajectory may have (JSON ``frames``, ``--frames``, presets): enough for
#: any clip of the datasets and the models, and it keeps a typo from allocating billions of poses.
MAX_FRAMES = 10_000
EASINGS = ("linear", "ease-in-out", "ease-in", "ease-out")
#: A time within this of a keyframe's time returns that keyframe exactly.
_TIME_SNAP = 1e-12


@dataclass
class Trajectory:
    """Keyframes (or dense frames) of a camera path and the optional camera model it carries."""

    c2w: np.ndarray  # (K, 4, 4) float64, relative to the reference camera, metres
    times: np.ndarray  # (K,) float64, strictly increasing
    intrinsics: np.ndarray | None = None  # (4,) normalised fx/W fy/H cx/W cy/H
    fov_deg: float | None = None  # field of view across the image's long side
    frames: int | None = None  # requested dense frame count (None: the caller's default)
    spline: bool = False
    easing: str = "linear"
    loop: bool = False

    def __len__(self) -> int:
        return len(self.c2w)

    def pixel_intrinsics(self, width: int, height: int, fov_deg: float | None = None) -> np.ndarray:
        """``K`` in pixels: the trajectory's intrinsics, else a field of view, else the default."""
        if self.intrinsics is not None:
            return cam.denormalize_intrinsics(self.intrinsics, width, height)
        fov = self.fov_deg if self.fov_deg is not None else fov_deg
        return cam.default_intrinsics(width, height, fov)


# ----------------------------------------------------------------------------------------------
# Rotations and poses
# ----------------------------------------------------------------------------------------------
def pose(rotation: np.ndarray | None = None, position: Sequence[float] = (0, 0, 0)) -> np.ndarray:
    out = np.eye(4)
    if rotation is not None:
        out[:3, :3] = rotation
    out[:3, 3] = position
    return out


def axis_rotation(axis: str, degrees: float) -> np.ndarray:
    """Rotation about the camera's own ``x``, ``y`` or ``z`` axis (right-handed, OpenCV)."""
    return Rotation.from_euler(axis, degrees, degrees=True).as_matrix()


def look_at(
    position: Sequence[float], target: Sequence[float], up: Sequence[float] = (0, -1, 0), source: str = "<look-at>"
) -> np.ndarray:
    """OpenCV c2w at ``position`` looking at ``target``; ``up`` is the world's up (``-y`` default)."""
    p, t, u = (np.asarray(v, dtype=np.float64) for v in (position, target, up))
    forward = t - p
    if np.linalg.norm(forward) < 1e-12:
        raise RealcamError("look_at equals position", source)
    z = forward / np.linalg.norm(forward)
    x = np.cross(-u, z)  # OpenCV: x = y cross z, and y (down) is -up before orthogonalising
    if np.linalg.norm(x) < 1e-9 * max(1.0, np.linalg.norm(u)):
        raise RealcamError("up is parallel to the viewing direction", source)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return pose(np.stack([x, y, z], axis=1), p)


def orthonormalize(r: np.ndarray) -> np.ndarray:
    """The nearest proper rotation (SVD); exact rotations pass through unchanged to ~1e-16."""
    u, _, vt = np.linalg.svd(r)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


# ----------------------------------------------------------------------------------------------
# Easing and interpolation
# ----------------------------------------------------------------------------------------------
def ease(s: np.ndarray, easing: str = "linear") -> np.ndarray:
    """Map normalised time ``[0, 1]`` onto itself (monotone, fixed end points)."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, 1.0)
    if easing == "linear":
        return s
    if easing == "ease-in-out":  # smoothstep
        return s * s * (3.0 - 2.0 * s)
    if easing == "ease-in":
        return s * s
    if easing == "ease-out":
        return 1.0 - (1.0 - s) ** 2
    raise RealcamError(f"unknown easing {easing!r} (one of {', '.join(EASINGS)})", "easing")


def check_frames(n_frames, source: str = "--frames") -> int:
    """A frame count: a whole number from 1 to :data:`MAX_FRAMES`."""
    return checks.integer(n_frames, source, minimum=1, maximum=MAX_FRAMES)


def sample_times(n_frames: int, t0: float, t1: float, easing: str = "linear", loop: bool = False) -> np.ndarray:
    """Path times of ``n_frames`` evenly spaced frames (eased; out and back with ``loop``)."""
    n_frames = check_frames(n_frames, "frames")
    s = np.linspace(0.0, 1.0, n_frames) if n_frames > 1 else np.zeros(1)
    if loop:
        s = 1.0 - np.abs(2.0 * s - 1.0)
    return t0 + (t1 - t0) * ease(s, easing)


def _catmull_rom_tangents(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Non-uniform Catmull-Rom tangents; one-sided differences at the two ends."""
    m = np.zeros_like(values)
    if len(times) < 2:
        return m
    m[1:-1] = (values[2:] - values[:-2]) / (times[2:] - times[:-2])[:, None]
    m[0] = (values[1] - values[0]) / (times[1] - times[0])
    m[-1] = (values[-1] - values[-2]) / (times[-1] - times[-2])
    return m


def interpolate_poses(c2w: np.ndarray, times: np.ndarray, query: np.ndarray, spline: bool = False) -> np.ndarray:
    """c2w poses at ``query`` times from keyframes ``c2w`` at ``times`` (SE(3), exact at keys)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    query = np.clip(np.asarray(query, dtype=np.float64), times[0], times[-1])
    if len(c2w) == 1:
        return np.repeat(c2w, len(query), axis=0)
    rots = Rotation.from_matrix(c2w[:, :3, :3])
    pos = c2w[:, :3, 3]
    if spline and len(c2w) > 2:
        r = RotationSpline(times, rots)(query).as_matrix()
        p = CubicHermiteSpline(times, pos, _catmull_rom_tangents(times, pos), axis=0)(query)
    else:
        r = Slerp(times, rots)(query).as_matrix()
        p = np.stack([np.interp(query, times, pos[:, i]) for i in range(3)], axis=1)
    out = np.zeros((len(query), 4, 4))
    out[:, :3, :3] = r
    out[:, :3, 3] = p
    out[:, 3, 3] = 1.0
    # Keyframes exactly at their times (no round-off from the quaternion path).
    idx = np.searchsorted(times, query)
    for j, (q, i) in enumerate(zip(query, idx)):
        for k in (i - 1, i):
            if 0 <= k < len(times) and abs(q - times[k]) <= _TIME_SNAP:
                out[j] = c2w[k]
    return out


def densify(traj: Trajectory, n_frames: int | None = None) -> Trajectory:
    """The dense trajectory of ``n_frames`` frames (default: the trajectory's own, else 16)."""
    n = n_frames or traj.frames or DEFAULT_FRAMES
    query = sample_times(n, traj.times[0], traj.times[-1], traj.easing, traj.loop)
    dense = interpolate_poses(traj.c2w, traj.times, query, traj.spline)
    return Trajectory(
        dense,
        np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1),
        traj.intrinsics,
        traj.fov_deg,
        n,
        traj.spline,
        "linear",
        False,
    )


# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------
#: name -> (kind, unit, default magnitude)
PRESETS: dict[str, tuple[str, str, float]] = {
    "stationary": ("none", "-", 0.0),
    "pan-left": ("pan", "deg", 30.0),
    "pan-right": ("pan", "deg", 30.0),
    "tilt-up": ("tilt", "deg", 20.0),
    "tilt-down": ("tilt", "deg", 20.0),
    "roll-cw": ("roll", "deg", 20.0),
    "roll-ccw": ("roll", "deg", 20.0),
    "dolly-in": ("dolly", "m", 0.5),
    "dolly-out": ("dolly", "m", 0.5),
    "zoom-in": ("dolly", "m", 0.5),
    "zoom-out": ("dolly", "m", 0.5),
    "truck-left": ("truck", "m", 0.5),
    "truck-right": ("truck", "m", 0.5),
    "pedestal-up": ("pedestal", "m", 0.3),
    "pedestal-down": ("pedestal", "m", 0.3),
    "orbit-left": ("orbit-y", "deg", 20.0),
    "orbit-right": ("orbit-y", "deg", 20.0),
    "orbit-up": ("orbit-x", "deg", 15.0),
    "orbit-down": ("orbit-x", "deg", 15.0),
}
_NEGATIVE = {
    "pan-left",
    "tilt-down",
    "roll-ccw",
    "dolly-out",
    "zoom-out",
    "truck-left",
    "pedestal-down",
    "orbit-left",
    "orbit-down",
}


def preset_pose(name: str, magnitude: float, s: float, centre_depth: float) -> np.ndarray:
    """The c2w of preset ``name`` at progress ``s`` in ``[0, 1]`` (``magnitude`` in m or deg).

    Directions in the reference camera (OpenCV): pan right turns the view towards ``+x``, tilt up
    towards ``-y``; dolly/zoom in moves along ``+z``, truck right along ``+x``, pedestal up along
    ``-y``; orbits turn around the point ``(0, 0, centre_depth)`` keeping it in view; roll
    clockwise turns the camera clockwise about its forward axis (the image content turns
    counter-clockwise).
    """
    kind, _, _ = PRESETS[name]
    a = -magnitude if name in _NEGATIVE else magnitude
    a *= s
    if kind == "none":
        return np.eye(4)
    if kind == "pan":
        return pose(axis_rotation("y", a))
    if kind == "tilt":
        return pose(axis_rotation("x", a))
    if kind == "roll":
        return pose(axis_rotation("z", a))
    if kind == "dolly":
        return pose(position=(0, 0, a))
    if kind == "truck":
        return pose(position=(a, 0, 0))
    if kind == "pedestal":
        return pose(position=(0, -a, 0))
    pivot = pose(position=(0, 0, centre_depth))
    # Orbit right: the camera swings towards +x about the pivot, turning left to keep it in view.
    r = axis_rotation("y", -a) if kind == "orbit-y" else axis_rotation("x", -a)
    return pivot @ pose(r) @ cam.invert_pose(pivot)


def parse_preset(spec: str) -> list[str]:
    names = [n.strip().lower() for n in str(spec).split("+")]
    if not 1 <= len(names) <= 2 or not all(names):
        raise RealcamError(f"a preset is NAME or NAME+NAME, got {spec!r}", "--preset")
    for n in names:
        if n not in PRESETS:
            raise RealcamError(f"unknown preset {n!r} (known: {', '.join(PRESETS)})", "--preset")
    return names


def preset_magnitudes(spec: str, magnitude: Sequence[float] | float | None = None) -> tuple[list[str], list[float]]:
    """The parts of a preset and one finite magnitude per part (``None``: each preset's default);
    a bad name or magnitude is an error naming ``--preset`` or ``--magnitude``."""
    names = parse_preset(spec)
    if magnitude is None:
        return names, [PRESETS[n][2] for n in names]
    values = [magnitude] if np.ndim(magnitude) == 0 else list(np.ravel(np.asarray(magnitude, dtype=object)))
    mags = [checks.number(m, "--magnitude") for m in values]
    if len(mags) == 1:
        mags = mags * len(names)
    if len(mags) != len(names):
        raise RealcamError(f"{len(names)} presets but {len(mags)} magnitudes", "--magnitude")
    return names, mags


def preset_trajectory(
    spec: str,
    magnitude: Sequence[float] | float | None = None,
    n_frames: int = DEFAULT_FRAMES,
    centre_depth: float = 2.0,
    easing: str = "linear",
    loop: bool = False,
) -> Trajectory:
    """A dense trajectory of a preset or a ``+``-combination of two (composed per frame).

    ``magnitude``: one value for every part, or one per part; ``None`` takes each preset's default.
    Combinations compose ``c2w = A(s) @ B(s)``: the second motion happens in the first's frame.
    """
    names, mags = preset_magnitudes(spec, magnitude)
    if not (math.isfinite(centre_depth) and centre_depth > 0):
        raise RealcamError(f"scene centre depth must be positive, got {centre_depth}", "depth")
    s = sample_times(n_frames, 0.0, 1.0, easing, loop)
    out = []
    for si in s:
        p = np.eye(4)
        for n, m in zip(names, mags):
            p = p @ preset_pose(n, m, si, centre_depth)
        out.append(p)
    return Trajectory(np.stack(out), np.linspace(0, 1, n_frames) if n_frames > 1 else np.zeros(1), frames=n_frames)


# ----------------------------------------------------------------------------------------------
# JSON schema (version 1) and file loading
# ----------------------------------------------------------------------------------------------
def _number_list(value, n: int, what: str, source: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RealcamError(f"{what} must be {n} numbers", source) from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise RealcamError(f"{what} must be {n} finite numbers, got {value!r}", source)
    return arr


#: The keys of a trajectory document (version 1) and of one keyframe.
DOCUMENT_KEYS = (
    "version",
    "keyframes",
    "frames",
    "intrinsics",
    "fov_deg",
    "interpolation",
    "easing",
    "loop",
    "units",
    "convention",
)
KEYFRAME_KEYS = ("c2w", "position", "look_at", "up", "time")


def parse_trajectory_json(data, source: str = "<json>") -> Trajectory:
    """Validate a decoded trajectory JSON document; errors name the key and the keyframe."""
    opts = _document_options(data, source)
    keys = data.get("keyframes")
    if not isinstance(keys, list) or not keys:
        raise RealcamError("key 'keyframes': a non-empty list is required", source)
    poses, times = zip(*(_parse_keyframe(kf, f"keyframe {i}", source) for i, kf in enumerate(keys)))
    t_arr = _keyframe_times(list(times), source)
    return Trajectory(
        np.stack(poses),
        t_arr,
        opts["intrinsics"],
        opts["fov"],
        opts["frames"],
        opts["spline"],
        opts["easing"],
        opts["loop"],
    )


def _document_options(data, source: str) -> dict:
    """The document-level keys, checked: version, units, convention, frames, intrinsics, fov,
    interpolation, easing, loop."""
    if not isinstance(data, dict):
        raise RealcamError("the trajectory must be a JSON object", source)
    version = data.get("version")
    if version != SCHEMA_VERSION:
        raise RealcamError(f"key 'version': expected {SCHEMA_VERSION}, got {version!r}", source)
    extra = sorted(set(data) - set(DOCUMENT_KEYS))
    if extra:
        raise RealcamError(f"unknown key {extra[0]!r} (known: {', '.join(sorted(DOCUMENT_KEYS))})", source)
    if data.get("units", "metres") not in ("metres", "meters", "m"):
        raise RealcamError(f"key 'units': only metres are supported, got {data['units']!r}", source)
    if data.get("convention", "opencv-c2w") != "opencv-c2w":
        raise RealcamError(f"key 'convention': only 'opencv-c2w', got {data['convention']!r}", source)
    frames = data.get("frames")
    if frames is not None and (not isinstance(frames, int) or isinstance(frames, bool) or frames < 1):
        raise RealcamError(f"key 'frames': a positive integer, got {frames!r}", source)
    if frames is not None and frames > MAX_FRAMES:
        raise RealcamError(f"key 'frames': at most {MAX_FRAMES}, got {frames}", source)
    intr = data.get("intrinsics")
    if intr is not None:
        intr = _number_list(intr, 4, "key 'intrinsics' (normalised fx/W fy/H cx/W cy/H)", source)
        if intr[0] <= 0 or intr[1] <= 0:
            raise RealcamError("key 'intrinsics': focal lengths must be positive", source)
    fov = data.get("fov_deg")
    if fov is not None:
        if isinstance(fov, bool) or not isinstance(fov, (int, float)) or not 0 < fov < 180:
            raise RealcamError(f"key 'fov_deg': a number in (0, 180), got {fov!r}", source)
        fov = float(fov)
    interp = data.get("interpolation", "linear")
    if interp not in ("linear", "spline"):
        raise RealcamError(f"key 'interpolation': 'linear' or 'spline', got {interp!r}", source)
    easing = data.get("easing", "linear")
    if easing not in EASINGS:
        raise RealcamError(f"key 'easing': one of {', '.join(EASINGS)}, got {easing!r}", source)
    loop = data.get("loop", False)
    if not isinstance(loop, bool):
        raise RealcamError(f"key 'loop': true or false, got {loop!r}", source)
    return {
        "frames": frames,
        "intrinsics": intr,
        "fov": fov,
        "spline": interp == "spline",
        "easing": easing,
        "loop": loop,
    }


def _parse_keyframe(kf, where: str, source: str) -> tuple[np.ndarray, float | None]:
    """One keyframe: its c2w (given, or from position + look_at + up) and its time (or None)."""
    if not isinstance(kf, dict):
        raise RealcamError(f"{where}: must be an object", source)
    extra = sorted(set(kf) - set(KEYFRAME_KEYS))
    if extra:
        raise RealcamError(f"{where}: unknown key {extra[0]!r}", source)
    if "c2w" in kf:
        if "position" in kf or "look_at" in kf:
            raise RealcamError(f"{where}: give either 'c2w' or 'position' + 'look_at'", source)
        m = _c2w_matrix(kf["c2w"], where, source)
    elif "position" in kf and "look_at" in kf:
        p = _number_list(kf["position"], 3, f"{where}: key 'position'", source)
        t = _number_list(kf["look_at"], 3, f"{where}: key 'look_at'", source)
        u = _number_list(kf.get("up", [0, -1, 0]), 3, f"{where}: key 'up'", source)
        m = look_at(p, t, u, f"{source}: {where}")
    else:
        raise RealcamError(f"{where}: needs key 'c2w' or keys 'position' and 'look_at'", source)
    if "time" not in kf:
        return m, None
    t = kf["time"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise RealcamError(f"{where}: key 'time' must be a number, got {t!r}", source)
    return m, float(t)


def _c2w_matrix(value, where: str, source: str) -> np.ndarray:
    """A keyframe's ``c2w`` (4x4, or 3x4 without the last row) with a proper rotation; a rotation
    off by rounding only is orthonormalised."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RealcamError(f"{where}: key 'c2w' must be a 4x4 list of numbers", source) from None
    if m.shape == (3, 4):
        m = np.vstack([m, [0, 0, 0, 1]])
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise RealcamError(f"{where}: key 'c2w' must be a 4x4 (or 3x4) list of finite numbers", source)
    if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-9):
        raise RealcamError(f"{where}: key 'c2w': the last row must be 0 0 0 1", source)
    problem = cam.rotation_problem(m[:3, :3])
    if problem:
        raise RealcamError(f"{where}: key 'c2w': {problem}", source)
    if not np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12):
        m[:3, :3] = orthonormalize(m[:3, :3])
    return m


def _keyframe_times(times: list[float | None], source: str) -> np.ndarray:
    """The keyframe times: given on all (strictly increasing) or on none (evenly spaced in [0, 1])."""
    given = [t is not None for t in times]
    if any(given) and not all(given):
        raise RealcamError(
            f"keyframe {given.index(False)}: key 'time' is missing (give it on all keyframes or on none)", source
        )
    if not all(given):
        return np.linspace(0.0, 1.0, len(times)) if len(times) > 1 else np.zeros(1)
    t_arr = np.asarray(times)
    bad = np.nonzero(np.diff(t_arr) <= 0)[0]
    if bad.size:
        raise RealcamError(
            f"keyframe {bad[0] + 1}: key 'time' must increase ({t_arr[bad[0] + 1]} after {t_arr[bad[0]]})", source
        )
    return t_arr


def trajectory_to_json(traj: Trajectory) -> dict:
    doc = {
        "version": SCHEMA_VERSION,
        "convention": "opencv-c2w",
        "units": "metres",
        "frames": int(traj.frames or len(traj)),
        "interpolation": "spline" if traj.spline else "linear",
        "easing": traj.easing,
        "loop": bool(traj.loop),
    }
    if traj.intrinsics is not None:
        doc["intrinsics"] = [float(v) for v in traj.intrinsics]
    if traj.fov_deg is not None:
        doc["fov_deg"] = float(traj.fov_deg)
    doc["keyframes"] = [
        {"time": float(t), "c2w": [[float(v) for v in row] for row in m]} for t, m in zip(traj.times, traj.c2w)
    ]
    return doc


def format_trajectory_json(traj: Trajectory) -> str:
    """Readable JSON: one line per keyframe (numbers written exactly, as Python's repr)."""
    doc = trajectory_to_json(traj)
    keys = doc.pop("keyframes")
    head = json.dumps(doc, indent=2)[:-2]  # drop the closing "\n}"
    lines = ",\n    ".join(json.dumps(k) for k in keys)
    return f'{head},\n  "keyframes": [\n    {lines}\n  ]\n}}\n'


def write_trajectory_json(path: str | Path, traj: Trajectory) -> Path:
    return atomic_write_text(path, format_trajectory_json(traj))


def trajectory_from_re10k(cams: cam.CameraFile) -> Trajectory:
    """All frames of a RealEstate10K file as keyframes, relative to frame 0, timed by timestamp."""
    c2w = cams.c2w.copy()
    # Files carry 9 decimals (rotations orthonormal to ~1e-8): project onto SO(3) first.
    c2w[:, :3, :3] = np.stack([orthonormalize(r) for r in c2w[:, :3, :3]])
    rel = cam.relative_poses(c2w)
    rel[0] = np.eye(4)
    ts = cams.timestamps.astype(np.float64)
    if len(ts) > 1:
        if np.any(np.diff(ts) <= 0):
            ts = np.arange(len(ts), dtype=np.float64)
        times = (ts - ts[0]) / (ts[-1] - ts[0])
    else:
        times = np.zeros(1)
    return Trajectory(rel, times, cams.intrinsics[0].copy(), None, len(cams))


def to_re10k(
    traj: Trajectory,
    width: int,
    height: int,
    k: np.ndarray | None = None,
    fps: float = 8.0,
    url: str = "realcam-preview",
) -> cam.CameraFile:
    """RealEstate10K cameras of a dense trajectory (intrinsics normalised at ``width x height``)."""
    if k is None:
        k = traj.pixel_intrinsics(width, height)
    norm = cam.normalize_intrinsics(k, width, height)
    ts = np.round(np.arange(len(traj)) * 1e6 / fps).astype(np.int64)
    return cam.CameraFile(ts, np.repeat(norm[None], len(traj), axis=0), cam.invert_pose(traj.c2w), url)


def load_trajectory(path: str | Path) -> Trajectory:
    """A trajectory JSON (``.json``) or a RealEstate10K text file (anything else)."""
    path = Path(path)
    if not path.exists():
        raise RealcamError("no such trajectory file", path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RealcamError(f"invalid JSON: {err.msg}", path, err.lineno) from None
        except (OSError, UnicodeDecodeError) as err:
            raise RealcamError(f"cannot read trajectory ({err.__class__.__name__})", path) from None
        return parse_trajectory_json(data, str(path))
    return trajectory_from_re10k(cam.read_re10k(path))


def resolve_trajectory(
    path: str | Path | Trajectory | None = None,
    preset: str | None = None,
    magnitude: Sequence[float] | float | None = None,
    frames: int | None = None,
    centre_depth: float = 2.0,
    spline: bool | None = None,
    easing: str | None = None,
    loop: bool | None = None,
) -> Trajectory:
    """The dense trajectory from a file (or one already loaded) or a preset (options override what
    the file says).

    A file whose keyframe count already equals the frame count wanted (``frames``, else the file's
    own ``frames``, else its keyframe count for RealEstate10K text) is used as is.
    """
    if (path is None) == (preset is None):
        raise RealcamError("give a trajectory file or a preset (not both)", "trajectory")
    if preset is not None:
        return preset_trajectory(
            preset, magnitude, frames or DEFAULT_FRAMES, centre_depth, easing or "linear", bool(loop)
        )
    traj = dataclasses.replace(path) if isinstance(path, Trajectory) else load_trajectory(path)
    if spline is not None:
        traj.spline = spline
    if easing is not None:
        traj.easing = easing
    if loop is not None:
        traj.loop = loop
    return dense_trajectory(traj, frames)


def dense_trajectory(traj: Trajectory, frames: int | None = None) -> Trajectory:
    """The frames a trajectory renders as: ``frames``, else its own count, else 16.

    A trajectory whose keyframe count already equals that count (linear time, no loop) is used as
    is; anything else is densified. ``preview`` and the editor both go through here, so an exported
    file renders the editor's frames exactly.
    """
    n = check_frames(frames or traj.frames or DEFAULT_FRAMES, "frames")
    if n == len(traj) and traj.easing == "linear" and not traj.loop:
        return Trajectory(traj.c2w, np.linspace(0, 1, n) if n > 1 else np.zeros(1), traj.intrinsics, traj.fov_deg, n)
    return densify(traj, n)
