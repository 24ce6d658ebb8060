"""Camera conventions (docs/method.md#conventions), in one place.

- OpenCV axes (x right, y down, z forward); poses are 4x4 float64; ``c2w = inv(w2c)``.
- RealEstate10K text: line 1 the source URL, then one line per frame:
  ``timestamp_us fx fy cx cy 0 0 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3``
  (normalised intrinsics, the 3x4 world-to-camera matrix row-major). Timestamps are integers
  that increase strictly (one line per frame); focal lengths are positive.
- Relative poses: ``inv(c2w_0) @ c2w_i``; metric poses: translations times ``alpha``.
- Intrinsics are normalised (``fx/W, fy/H, cx/W, cy/H``) in files and in pixels once a resolution
  is fixed; pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)`` so its centre is at ``+0.5``. Resizing
  scales ``fx, cx`` by ``W'/W`` (``fy, cy`` by ``H'/H``); a crop shifts the principal point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import atomic_write_text
from .errors import RealcamError

#: ``||R R^T - I||_max`` accepted for a stored rotation. Real files carry 9 decimals, so their
#: rotations are orthonormal to ~1e-7; anything off by more than this is a broken file.
ORTHONORMAL_TOL = 1e-4
NUMBERS_PER_LINE = 19


# ----------------------------------------------------------------------------------------------
# RealEstate10K text
# ----------------------------------------------------------------------------------------------
@dataclass
class CameraFile:
    """The contents of one RealEstate10K camera file (all frames of a clip)."""

    timestamps: np.ndarray  # (F,) int64, microseconds
    intrinsics: np.ndarray  # (F, 4) float64, normalised fx, fy, cx, cy
    w2c: np.ndarray  # (F, 4, 4) float64
    url: str = ""
    distortion: np.ndarray = field(default=None)  # (F, 2), the two columns stored as 0 0

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.int64)
        self.intrinsics = np.asarray(self.intrinsics, dtype=np.float64).reshape(-1, 4)
        self.w2c = np.asarray(self.w2c, dtype=np.float64).reshape(-1, 4, 4)
        n = len(self.timestamps)
        if self.distortion is None:
            self.distortion = np.zeros((n, 2))
        self.distortion = np.asarray(self.distortion, dtype=np.float64).reshape(-1, 2)
        if not (len(self.intrinsics) == len(self.w2c) == len(self.distortion) == n):
            raise ValueError("timestamps, intrinsics, w2c and distortion need one row per frame")

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def c2w(self) -> np.ndarray:
        return invert_pose(self.w2c)

    def with_c2w(self, c2w: np.ndarray) -> "CameraFile":
        """A copy with new camera-to-world poses (timestamps and intrinsics kept)."""
        return CameraFile(
            self.timestamps.copy(), self.intrinsics.copy(), invert_pose(c2w), self.url, self.distortion.copy()
        )


def _format_number(x: float) -> str:
    """Nine decimals (the dataset's own format) when exact, else the shortest exact repr."""
    s = f"{x:.9f}"
    return s if float(s) == x else repr(float(x))


def format_re10k(cams: CameraFile) -> str:
    lines = [cams.url] if cams.url else []
    for ts, k, dist, w2c in zip(cams.timestamps, cams.intrinsics, cams.distortion, cams.w2c):
        numbers = [*k, *dist, *w2c[:3, :].reshape(-1)]
        lines.append(" ".join([str(int(ts))] + [_format_number(float(x)) for x in numbers]))
    return "\n".join(lines) + "\n"


def write_re10k(path: str | Path, cams: CameraFile) -> Path:
    """Write a RealEstate10K camera file atomically; cameras the reader would reject (repeated
    timestamps, focal lengths that are not positive, ...) are a ``RealcamError`` and nothing is
    written."""
    problem = camera_file_problem(cams)
    if problem:
        raise RealcamError(f"refusing to write cameras that could not be read back: {problem}", path)
    return atomic_write_text(path, format_re10k(cams))


def _looks_like_camera_line(tokens: list[str]) -> bool:
    if len(tokens) != NUMBERS_PER_LINE:
        return False
    try:
        [float(t) for t in tokens]
    except ValueError:
        return False
    return True


#: Frame rate assumed when timestamps cannot tell it (RealEstate10K's YouTube videos, NTSC).
DEFAULT_FPS = 29.97


def frame_rate(timestamps, default: float = DEFAULT_FPS) -> float:
    """Frames per second of a clip from its microsecond timestamps (median spacing); ``default``
    for fewer than two frames or non-increasing timestamps."""
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.size < 2:
        return default
    step = float(np.median(np.diff(ts)))
    return 1e6 / step if step > 0 else default


def parse_re10k(text: str, source: str | Path = "<text>") -> CameraFile:
    """Parse RealEstate10K text; every problem is a ``RealcamError`` naming file and line."""
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise RealcamError("empty camera file", source)
    url = ""
    start = 0
    if not _looks_like_camera_line(lines[0].split()):
        url = lines[0].strip()
        start = 1
    timestamps, intrinsics, dist, w2c = [], [], [], []
    previous_line = 0
    for lineno, line in enumerate(lines[start:], start=start + 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != NUMBERS_PER_LINE:
            raise RealcamError(
                f"expected {NUMBERS_PER_LINE} numbers on a camera line, found {len(tokens)}", source, lineno
            )
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise RealcamError(f"not a number: {bad!r}", source, lineno) from None
        if not all(math.isfinite(v) for v in values):
            raise RealcamError("non-finite number (NaN or inf) on a camera line", source, lineno)
        ts = _timestamp(tokens[0], source, lineno)
        if timestamps and ts <= timestamps[-1]:
            if ts == timestamps[-1]:
                raise RealcamError(
                    f"timestamp {ts} repeats the one on line {previous_line} (one line per frame)", source, lineno
                )
            raise RealcamError(
                f"timestamp {ts} is earlier than {timestamps[-1]} on line {previous_line} (timestamps must increase)",
                source,
                lineno,
            )
        problem = intrinsics_problem(values[1:5])
        if problem:
            raise RealcamError(problem, source, lineno)
        m = np.eye(4)
        m[:3, :] = np.asarray(values[7:], dtype=np.float64).reshape(3, 4)
        problem = rotation_problem(m[:3, :3])
        if problem:
            raise RealcamError(problem, source, lineno)
        timestamps.append(ts)
        previous_line = lineno
        intrinsics.append(values[1:5])
        dist.append(values[5:7])
        w2c.append(m)
    if not timestamps:
        raise RealcamError("no camera lines after the URL line", source)
    return CameraFile(np.array(timestamps), np.array(intrinsics), np.stack(w2c), url, np.array(dist))


#: Timestamps are microseconds in a signed 64-bit integer.
_MAX_TIMESTAMP = 2**63 - 1


def _timestamp(token: str, source, lineno: int) -> int:
    """The integer microseconds of a timestamp token (``"33366"``, also ``"3.3366e4"``)."""
    try:
        ts = int(token)
    except ValueError:
        x = float(token)  # finite: checked by the caller
        if not x.is_integer():
            raise RealcamError(f"timestamp {token!r} is not an integer", source, lineno) from None
        ts = int(x)
    if not 0 <= ts <= _MAX_TIMESTAMP:
        raise RealcamError(f"timestamp {token!r} is out of range (0 to 2^63-1 microseconds)", source, lineno)
    return ts


def intrinsics_problem(k) -> str | None:
    """``None`` for usable normalised intrinsics ``fx fy cx cy``, else what is wrong: focal lengths
    must be positive and finite, the principal point finite."""
    fx, fy, cx, cy = (float(v) for v in k)
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)):
        return "intrinsics have non-finite entries"
    if fx <= 0 or fy <= 0:
        return f"focal lengths must be positive, got fx = {fx:g}, fy = {fy:g}"
    return None


def camera_file_problem(cams: "CameraFile") -> str | None:
    """``None`` when ``cams`` is what :func:`parse_re10k` accepts, else the first problem found
    (``frame i: ...``): increasing timestamps, usable intrinsics, proper rotations."""
    ts = np.asarray(cams.timestamps)
    if len(ts) == 0:
        return "no frames"
    if np.any(ts < 0):
        return f"frame {int(np.argmax(ts < 0))}: negative timestamp"
    steps = np.diff(ts)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0)) + 1
        what = "repeats" if steps[i - 1] == 0 else "is earlier than"
        return f"frame {i}: timestamp {int(ts[i])} {what} the previous frame's ({int(ts[i - 1])})"
    for i, k in enumerate(cams.intrinsics):
        problem = intrinsics_problem(k)
        if problem:
            return f"frame {i}: {problem}"
    if not np.all(np.isfinite(cams.w2c)):
        return "poses contain non-finite numbers"
    for i, m in enumerate(cams.w2c):
        problem = rotation_problem(m[:3, :3])
        if problem:
            return f"frame {i}: {problem}"
    return None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_re10k(path: str | Path) -> CameraFile:
    """Read and validate a RealEstate10K camera file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RealcamError("no such camera file", path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise RealcamError(f"cannot read camera file ({err.__class__.__name__})", path) from None
    return parse_re10k(text, path)


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------
def rotation_problem(r: np.ndarray, tol: float = ORTHONORMAL_TOL) -> str | None:
    """``None`` for a proper rotation, else a short description of what is wrong."""
    if not np.all(np.isfinite(r)):
        return "rotation has non-finite entries"
    err = float(np.abs(r @ r.T - np.eye(3)).max())
    if err > tol:
        return f"rotation is not orthonormal (|R R^T - I| = {err:.2e} > {tol:.0e})"
    det = float(np.linalg.det(r))
    if det < 0:
        return f"rotation is a reflection (det = {det:.4f}, must be +1)"
    return None


def check_poses(poses: np.ndarray, source: str | Path = "<poses>") -> np.ndarray:
    """Validate a stack of 4x4 rigid poses; returns them as float64 ``(N, 4, 4)``."""
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim == 2:
        p = p[None]
    if p.shape[-2:] != (4, 4):
        raise RealcamError(f"poses must be 4x4 matrices, got shape {p.shape}", source)
    if not np.all(np.isfinite(p)):
        raise RealcamError("poses contain non-finite numbers", source)
    if not np.allclose(p[:, 3, :], [0, 0, 0, 1], atol=1e-9):
        raise RealcamError("the last row of a pose must be 0 0 0 1", source)
    for i, m in enumerate(p):
        problem = rotation_problem(m[:3, :3])
        if problem:
            raise RealcamError(f"pose {i}: {problem}", source)
    return p


# ----------------------------------------------------------------------------------------------
# Pose algebra
# ----------------------------------------------------------------------------------------------
def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of ``(..., 4, 4)`` poses, bottom row kept exactly ``0 0 0 1``.

    A full matrix inverse rather than ``[R^T | -R^T t]``: rotations read from files are
    orthonormal only to ~1e-7, and ``pose @ invert_pose(pose)`` must still be the identity.
    """
    pose = np.asarray(pose, dtype=np.float64)
    out = np.linalg.inv(pose)
    out[..., 3, :] = (0.0, 0.0, 0.0, 1.0)
    return out


def w2c_to_c2w(w2c: np.ndarray) -> np.ndarray:
    return invert_pose(w2c)


def c2w_to_w2c(c2w: np.ndarray) -> np.ndarray:
    return invert_pose(c2w)


def relative_poses(c2w: np.ndarray, reference: int = 0) -> np.ndarray:
    """``inv(c2w_ref) @ c2w_i``: the reference frame becomes the identity."""
    c2w = np.asarray(c2w, dtype=np.float64)
    return invert_pose(c2w[reference])[None] @ c2w


def metric_poses(c2w: np.ndarray, alpha: float) -> np.ndarray:
    """``[[R, alpha * T], [0, 1]]``: translations to metres, rotations untouched."""
    out = np.array(c2w, dtype=np.float64, copy=True)
    out[..., :3, 3] *= float(alpha)
    return out


def scale_w2c(w2c: np.ndarray, alpha: float) -> np.ndarray:
    """Rescale the scene of world-to-camera poses (camera centres move by ``alpha`` too)."""
    return invert_pose(metric_poses(invert_pose(w2c), alpha))


# ----------------------------------------------------------------------------------------------
# Intrinsics
# ----------------------------------------------------------------------------------------------
def intrinsics_matrix(fx, fy, cx, cy) -> np.ndarray:
    """``(..., 3, 3)`` pixel matrices from arrays of focal lengths and principal points."""
    fx, fy, cx, cy = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (fx, fy, cx, cy)))
    k = np.zeros(fx.shape + (3, 3))
    k[..., 0, 0] = fx
    k[..., 1, 1] = fy
    k[..., 0, 2] = cx
    k[..., 1, 2] = cy
    k[..., 2, 2] = 1.0
    return k


def denormalize_intrinsics(norm: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised ``(..., 4)`` ``fx fy cx cy`` to pixel ``(..., 3, 3)`` matrices."""
    n = np.asarray(norm, dtype=np.float64)
    return intrinsics_matrix(n[..., 0] * width, n[..., 1] * height, n[..., 2] * width, n[..., 3] * height)


def normalize_intrinsics(k: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel ``(..., 3, 3)`` matrices to normalised ``(..., 4)`` ``fx/W fy/H cx/W cy/H``."""
    k = np.asarray(k, dtype=np.float64)
    return np.stack([k[..., 0, 0] / width, k[..., 1, 1] / height, k[..., 0, 2] / width, k[..., 1, 2] / height], axis=-1)


def resize_intrinsics(k: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Pixel intrinsics after resizing an image from ``(W, H)`` to ``(W', H')``."""
    (w, h), (w2, h2) = src_size, dst_size
    out = np.array(k, dtype=np.float64, copy=True)
    out[..., 0, :] *= w2 / w
    out[..., 1, :] *= h2 / h
    return out


def crop_intrinsics(k: np.ndarray, left: float, top: float) -> np.ndarray:
    """Pixel intrinsics after cropping at ``(left, top)``: the principal point moves."""
    out = np.array(k, dtype=np.float64, copy=True)
    out[..., 0, 2] -= left
    out[..., 1, 2] -= top
    return out


def resize_crop_geometry(src_size: tuple[int, int], dst_size: tuple[int, int]):
    """Resize keeping aspect so the image covers ``dst_size``, then centre crop.

    Returns ``(resized_size, (left, top))``; the crop box is ``left, top, left+W', top+H'``.
    """
    (w, h), (tw, th) = src_size, dst_size
    scale = max(tw / w, th / h)
    rw, rh = max(tw, round(w * scale)), max(th, round(h * scale))
    return (rw, rh), ((rw - tw) // 2, (rh - th) // 2)


def resize_crop_intrinsics(k: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Pixel intrinsics after :func:`resize_crop_geometry` (resize keeping aspect, centre crop)."""
    resized, (left, top) = resize_crop_geometry(src_size, dst_size)
    return crop_intrinsics(resize_intrinsics(k, src_size, resized), left, top)


def default_intrinsics(width: int, height: int, fov_deg: float | None = None) -> np.ndarray:
    """``fx = fy = 0.5 * max(H, W)`` (or from a field of view across the long side), centred."""
    long_side = max(width, height)
    f = 0.5 * long_side if fov_deg is None else 0.5 * long_side / math.tan(math.radians(fov_deg) / 2)
    return intrinsics_matrix(f, f, width / 2, height / 2)


def project(points_world: np.ndarray, w2c: np.ndarray, k: np.ndarray):
    """Project ``(N, 3)`` world points: returns pixel coordinates ``(N, 2)`` and depths ``(N,)``."""
    p = np.asarray(points_world, dtype=np.float64)
    cam = p @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    uv = (cam @ np.asarray(k).T)[:, :2] / z[:, None]
    return uv, z
