"""ReCamMaster cameras: MultiCamVideo (Unreal) camera files, the 12-number camera tokens and the
ten official target trajectories (docs/method.md#recammaster-cameras).

Everything returned here follows the project's convention: OpenCV camera-to-world matrices
(x right, y down, z forward), 4x4 float64, metres.

* **Unreal camera strings.** MultiCamVideo's ``cameras/camera_extrinsics.json`` maps ``frame0``,
  ``frame1``, ... to camera names (``cam01`` ... ``cam10``) and each to an Unreal transform written
  in row-vector form, ``"[Xx Xy Xz 0] [Yx Yy Yz 0] [Zx Zy Zz 0] [tx ty tz 1]"``: the rows are the
  camera's local axes (X forward, Y right, Z up) in Unreal's world and its position in
  centimetres. Transposing gives column form; reordering the columns to (Y, Z, X, t) and negating
  the second gives camera axes (right, down, forward) = OpenCV; translations are divided by 100.
  The world stays Unreal's left-handed one, so absolute matrices have det -1, while relative
  poses ``inv(c2w_a) @ c2w_b`` are proper rotations (this is the conversion of ReCamMaster's
  ``inference_recammaster.py`` and ``train_recammaster.py``).
* **Camera tokens.** ReCamMaster conditions each latent frame on one pose: frames 0, 4, 8, ...
  (``4k + 1`` frames give ``k + 1`` latent frames, 81 -> 21), each relative to a reference camera
  (``inv(c2w_ref) @ c2w_i``), its top 3x4 flattened row-major into
  ``[r00 r01 r02 t0 r10 r11 r12 t1 r20 r21 r22 t2]``. The reference is the target trajectory's own
  frame 0 at inference (so the first token is the identity) and the *source* camera's frame 0 in
  training. Intrinsics are not used.
* **Official trajectories.** The ten target cameras of ReCamMaster's
  ``example_test_data/cameras/camera_extrinsics.json`` (``--cam_type 1`` ... ``10``), re-created as
  dense :class:`~stages.core.trajectory.Trajectory` objects: pans and tilts turn at a constant
  angular rate, dollies move at constant speed, and the translate/arc presets move at constant
  speed along a straight line while turning to keep the point 4 m in front of the first camera in
  view (the file agrees with these laws to 0.0005 deg and 0.09 mm over all 81 frames).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..core import cameras as cam
from ..core import checks
from ..core import trajectory as tr
from ..core.constants import RECAM_FRAMES
from ..core.constants import WAN_TEMPORAL_STRIDE as LATENT_STRIDE
from ..core.errors import RealcamError
from ..core.trajectory import Trajectory

#: Unreal positions are in centimetres.
UNREAL_CM_PER_M = 100.0
#: Unreal rotations are written with 6 significant digits; a matrix further than this from
#: orthonormal is not a rotation (scale in the transform, a typo).
_UNREAL_ORTHO_TOL = 1e-4
_GROUP = re.compile(r"\[([^\[\]]*)\]")
_FRAME_KEY = re.compile(r"frame(0|[1-9][0-9]*)")

# ----------------------------------------------------------------------------------------------
# Unreal (MultiCamVideo) camera files
# ----------------------------------------------------------------------------------------------


def _parse_numbers(group: str, source: str) -> list[float]:
    try:
        values = [float(v) for v in group.split()]
    except ValueError:
        raise RealcamError(f"not a number in [{group.strip()}]", source) from None
    if not all(math.isfinite(v) for v in values):
        raise RealcamError(f"non-finite number in [{group.strip()}]", source)
    return values


def _unreal_matrix(text: str, source: str) -> np.ndarray:
    """The 4x4 row-vector Unreal matrix of one transform string (rotation rows may omit the 0)."""
    if not isinstance(text, str):
        raise RealcamError(f"expected a transform string, got {type(text).__name__}", source)
    groups = _GROUP.findall(text)
    if len(groups) != 4 or _GROUP.sub("", text).strip():
        raise RealcamError(f"expected '[r r r 0] [r r r 0] [r r r 0] [tx ty tz 1]', got {text.strip()!r}", source)
    rows = [_parse_numbers(g, source) for g in groups]
    m = np.zeros((4, 4))
    for i, row in enumerate(rows):
        last = 1.0 if i == 3 else 0.0
        if len(row) == 3:
            row = row + [last]
        if len(row) != 4 or abs(row[3] - last) > 1e-6:
            raise RealcamError(
                f"row {i + 1} must be 3 numbers or 4 ending in {last:g}, got [{groups[i].strip()}]", source
            )
        m[i, :3] = row[:3]
    m[3, 3] = 1.0
    err = float(np.abs(m[:3, :3] @ m[:3, :3].T - np.eye(3)).max())
    if err > _UNREAL_ORTHO_TOL or np.linalg.det(m[:3, :3]) < 0:
        raise RealcamError(f"the first three rows are not a rotation (|R R^T - I| = {err:.1e})", source)
    return m


def unreal_to_c2w(text: str, source: str = "<unreal transform>") -> np.ndarray:
    """One Unreal transform string -> OpenCV-axes c2w (4x4 float64, metres, det -1).

    Transpose the row-vector matrix, take the columns in the order (Y right, Z up, X forward, t),
    negate the second (up -> down) and convert centimetres to metres. The world frame is Unreal's
    (left-handed), so use the result through relative poses (:func:`camera_tokens`).
    """
    m = _unreal_matrix(text, source).T
    c2w = m[:, [1, 2, 0, 3]].copy()
    c2w[:3, 1] *= -1.0
    c2w[:3, 3] /= UNREAL_CM_PER_M
    return c2w


def c2w_to_unreal(c2w, source: str = "<c2w>") -> str:
    """The exact inverse of :func:`unreal_to_c2w`: an OpenCV-axes c2w in Unreal's world -> string.

    ``c2w`` is 4x4 (metres) whose rotation has **det -1**, as :func:`unreal_to_c2w` returns: the
    camera's OpenCV axes (right, down, forward) written in Unreal's left-handed world. The columns
    are taken back in the order (forward, right, -down, t), the translation is converted to
    centimetres (rounded to 1e-9 cm), and the transpose is written in row-vector form, the rotation
    at full precision (``repr``), so ``unreal_to_c2w(c2w_to_unreal(T))`` equals ``T`` to 1e-11.

    A c2w in a right-handed world (a proper rotation, det +1, as every other stage uses) must first
    be expressed in a left-handed world by one fixed reflection ``W`` applied on the left,
    ``W @ c2w``; relative poses are then unchanged, ``inv(W A) @ (W B) = inv(A) @ B``, which is all
    ReCamMaster reads (:func:`camera_tokens`). The synthetic multi-camera scenes use
    ``stages.synth.UNREAL_WORLD``, which maps the OpenCV world axes (x right, y down, z forward) onto
    Unreal's (X forward = z, Y right = x, Z up = -y), so heights come out as Unreal ``Z``. A proper
    rotation is refused here (a ``RealcamError``) rather than silently reflected.
    """
    try:
        m = np.array(c2w, dtype=np.float64)
    except (TypeError, ValueError):
        raise RealcamError("a pose must be a 4x4 matrix of numbers", source) from None
    if m.shape != (4, 4):
        raise RealcamError(f"a pose must have shape (4, 4), got {m.shape}", source)
    if not np.all(np.isfinite(m)):
        raise RealcamError("the pose contains non-finite numbers", source)
    if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-9):
        raise RealcamError("the last row of a pose must be 0 0 0 1", source)
    r = m[:3, :3]
    err = float(np.abs(r @ r.T - np.eye(3)).max())
    if err > _UNREAL_ORTHO_TOL:
        raise RealcamError(f"the rotation is not orthonormal (|R R^T - I| = {err:.1e})", source)
    if np.linalg.det(r) > 0:
        raise RealcamError(
            "the rotation is proper (det +1, a right-handed world); express the pose in Unreal's "
            "left-handed world first (W @ c2w with a fixed reflection W, e.g. stages.synth.UNREAL_WORLD)",
            source,
        )
    column = np.empty((4, 4))
    column[:, 0] = m[:, 2]  # X forward
    column[:, 1] = m[:, 0]  # Y right
    column[:, 2] = -m[:, 1]  # Z up = -down
    column[:, 3] = m[:, 3]
    column[:3, 3] *= UNREAL_CM_PER_M
    rows = column.T
    rows[:3, 3] = 0.0
    rows[3, :3] = np.round(rows[3, :3], 9)  # 1e-11 m: no 123.50000000000001 from 1.235 m
    rows[3, 3] = 1.0
    return " ".join("[" + " ".join(repr(float(v) + 0.0) for v in row) + "]" for row in rows)


def _frame_numbers(data: dict, source: str) -> list[int]:
    """The frame numbers of the document's keys: ``frame0`` ... ``frame{F-1}``, none missing."""
    numbers = []
    for key in data:
        match = _FRAME_KEY.fullmatch(str(key))
        if not match:
            raise RealcamError(f"unexpected key {key!r} (keys are frame0, frame1, ...)", source)
        numbers.append(int(match.group(1)))
    if not numbers:
        raise RealcamError("no frames (keys frame0, frame1, ...)", source)
    numbers.sort()
    missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
    if missing:
        raise RealcamError(f"frame{missing[0]} is missing (frames must run frame0..frame{numbers[-1]})", source)
    return numbers


def read_multicam_cameras(path: str | Path) -> dict[str, np.ndarray]:
    """A MultiCamVideo ``camera_extrinsics.json``: camera name -> (F, 4, 4) c2w in metres.

    Frames come in the order frame0, frame1, ...; cameras in the order of ``frame0``. Every frame
    must hold every camera. Matrices are absolute (Unreal world, det -1); see :func:`unreal_to_c2w`.
    """
    p = checks.input_file(path, "camera file")
    src = str(p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RealcamError(f"invalid JSON: {err.msg}", src, err.lineno) from None
    except (OSError, UnicodeDecodeError) as err:
        raise RealcamError(f"cannot read the camera file ({err.__class__.__name__})", src) from None
    if not isinstance(data, dict):
        raise RealcamError("expected a JSON object with keys frame0, frame1, ...", src)
    frames = _frame_numbers(data, src)
    first = data["frame0"]
    if not isinstance(first, dict) or not first:
        raise RealcamError("frame0: expected an object of camera name -> transform string", src)
    names = list(first)
    out = {name: np.empty((len(frames), 4, 4)) for name in names}
    for f in frames:
        entry = data[f"frame{f}"]
        if not isinstance(entry, dict):
            raise RealcamError(f"frame{f}: expected an object of camera name -> transform string", src)
        missing = [n for n in names if n not in entry]
        if missing:
            raise RealcamError(f"frame{f}: camera {missing[0]!r} is missing", src)
        extra = [n for n in entry if n not in out]
        if extra:
            raise RealcamError(f"frame{f}: camera {extra[0]!r} is not in frame0", src)
        for name in names:
            try:
                out[name][f] = unreal_to_c2w(entry[name], src)
            except RealcamError as err:
                raise RealcamError(f"frame{f} {name}: {err.message}", src) from None
    return out


# ----------------------------------------------------------------------------------------------
# Camera tokens
# ----------------------------------------------------------------------------------------------


def latent_frame_count(frames: int, stride: int = LATENT_STRIDE, source: str = "frames") -> int:
    """Latent frames of a ``stride * k + 1``-frame clip (``k + 1``; 81 -> 21); else an error."""
    stride = checks.integer(stride, "stride", minimum=1)
    frames = checks.integer(frames, source, minimum=1)
    if (frames - 1) % stride:
        raise RealcamError(f"the frame count must be {stride}k+1 (e.g. {4 * stride + 1}), got {frames}", source)
    return (frames - 1) // stride + 1


def _pose_stack(c2w, source: str) -> np.ndarray:
    """``(F, 4, 4)`` finite rigid-looking matrices (either handedness: Unreal files give det -1)."""
    try:
        p = np.asarray(c2w, dtype=np.float64)
    except (TypeError, ValueError):
        raise RealcamError("poses must be an array of 4x4 matrices", source) from None
    if p.ndim != 3 or p.shape[1:] != (4, 4) or len(p) == 0:
        raise RealcamError(f"poses must have shape (F, 4, 4), got {p.shape}", source)
    if not np.all(np.isfinite(p)):
        raise RealcamError("poses contain non-finite numbers", source)
    if not np.allclose(p[:, 3], [0, 0, 0, 1], atol=1e-9):
        raise RealcamError("the last row of a pose must be 0 0 0 1", source)
    return p


def camera_tokens(
    c2w: np.ndarray,
    frames: int | None = None,
    reference: np.ndarray | None = None,
    stride: int = LATENT_STRIDE,
    source: str = "camera poses",
) -> np.ndarray:
    """ReCamMaster's camera input: float32 ``(n_latent, 12)``.

    ``c2w``: the target camera's dense poses ``(F, 4, 4)`` (any common world; OpenCV axes).
    ``frames``: the clip length (default ``F``), ``stride * k + 1``; frames ``0, stride, ...``
    are used. ``reference``: the camera the poses are expressed in (default ``c2w[0]``, as at
    inference; in training the *source* video's camera at frame 0). Row ``j`` is the top 3x4 of
    ``inv(reference) @ c2w[stride * j]`` flattened row-major.
    """
    poses = _pose_stack(c2w, source)
    n_frames = len(poses) if frames is None else frames
    n_latent = latent_frame_count(n_frames, stride, "frames")
    if n_frames > len(poses):
        raise RealcamError(f"too few poses: {n_frames} frames need {n_frames} poses, got {len(poses)}", source)
    ref = poses[0] if reference is None else _pose_stack(np.asarray(reference)[None], "reference camera")[0]
    rel = cam.invert_pose(ref)[None] @ poses[:n_frames:stride]
    for j, m in enumerate(rel):
        if np.linalg.det(m[:3, :3]) < 0:
            raise RealcamError(
                f"frame {j * stride}: the pose relative to the reference is a reflection "
                "(the poses and the reference camera use worlds of different handedness)",
                source,
            )
    if reference is None:
        rel[0] = np.eye(4)  # exactly, not inv(A) @ A
    return rel[:, :3, :].reshape(n_latent, 12).astype(np.float32)


def multicam_tokens(
    cameras: Mapping[str, np.ndarray],
    target: str,
    condition: str | None = None,
    frames: int | None = None,
    stride: int = LATENT_STRIDE,
) -> np.ndarray:
    """Tokens of camera ``target`` of a MultiCamVideo scene (:func:`read_multicam_cameras`),
    relative to camera ``condition``'s frame 0 (the training pairing), or to its own frame 0."""
    for name in (target, condition):
        if name is not None and name not in cameras:
            raise RealcamError(f"unknown camera {name!r} (have {', '.join(cameras)})", "camera")
    reference = None if condition is None else np.asarray(cameras[condition])[0]
    return camera_tokens(cameras[target], frames, reference, stride, f"camera {target}")


# ----------------------------------------------------------------------------------------------
# The ten official target trajectories
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecamPreset:
    """One official target trajectory: where the camera is at the last frame, and how it turns.

    All relative to the first camera (OpenCV, metres). The position moves linearly in the frame
    index from 0 to ``position``; the rotation is ``axis_rotation(axis, s * angle_deg)`` at
    progress ``s``, or, with ``look_at``, the rotation that keeps that point in view (no roll).
    """

    index: int  # ``--cam_type`` / ``camNN`` of the official file
    name: str
    description: str
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    axis: str | None = None
    angle_deg: float = 0.0
    look_at: tuple[float, float, float] | None = None

    def pose(self, s: float) -> np.ndarray:
        """The c2w at progress ``s`` in ``[0, 1]`` (0: the identity, 1: the end pose)."""
        p = np.asarray(self.position, dtype=np.float64) * s
        if self.look_at is not None:
            return tr.look_at(p, self.look_at, (0.0, -1.0, 0.0), self.name)
        rotation = tr.axis_rotation(self.axis, s * self.angle_deg) if self.axis else None
        return tr.pose(rotation, p)


# Numbers read from the official camera_extrinsics.json (81 frames; Unreal, 6 significant digits):
# pan end row (0.940432, +-0.339982, 0) -> 19.8758 deg; tilt end row (0.984995, 0, +-0.17258) ->
# 9.9379 deg; dolly 198.76 cm; pedestal 99.379 cm; arc (+53.26, -+198.76) cm; the translate and
# arc cameras aim at the point 400 cm ahead of the start (to 0.07 mm).
_PAN_DEG = 19.8758
_TILT_DEG = 9.9379
_DOLLY_M = 1.9876
_PEDESTAL_M = 0.99379
_ARC_SIDE_M = 1.9876
_ARC_FORWARD_M = 0.5326
_AIM = (0.0, 0.0, 4.0)

RECAM_PRESETS: dict[str, RecamPreset] = {
    p.name: p
    for p in (
        RecamPreset(1, "recam-pan-right", "pan right 19.88 deg (yaw, constant rate)", axis="y", angle_deg=_PAN_DEG),
        RecamPreset(2, "recam-pan-left", "pan left 19.88 deg (yaw, constant rate)", axis="y", angle_deg=-_PAN_DEG),
        RecamPreset(3, "recam-tilt-up", "tilt up 9.94 deg (pitch, constant rate)", axis="x", angle_deg=_TILT_DEG),
        RecamPreset(4, "recam-tilt-down", "tilt down 9.94 deg (pitch, constant rate)", axis="x", angle_deg=-_TILT_DEG),
        RecamPreset(5, "recam-zoom-in", "dolly forward 1.988 m (the official 'zoom in')", (0.0, 0.0, _DOLLY_M)),
        RecamPreset(6, "recam-zoom-out", "dolly back 1.988 m (the official 'zoom out')", (0.0, 0.0, -_DOLLY_M)),
        RecamPreset(
            7,
            "recam-translate-up",
            "rise 0.994 m, tilting down 13.95 deg to keep the point 4 m ahead in view",
            (0.0, -_PEDESTAL_M, 0.0),
            look_at=_AIM,
        ),
        RecamPreset(
            8,
            "recam-translate-down",
            "sink 0.994 m, tilting up 13.95 deg to keep the point 4 m ahead in view",
            (0.0, _PEDESTAL_M, 0.0),
            look_at=_AIM,
        ),
        RecamPreset(
            9,
            "recam-arc-left",
            "arc left around the point 4 m ahead: straight to (-1.988, 0, 0.533) m, yaw 29.82 deg",
            (-_ARC_SIDE_M, 0.0, _ARC_FORWARD_M),
            look_at=_AIM,
        ),
        RecamPreset(
            10,
            "recam-arc-right",
            "arc right around the point 4 m ahead: straight to (1.988, 0, 0.533) m, yaw -29.82 deg",
            (_ARC_SIDE_M, 0.0, _ARC_FORWARD_M),
            look_at=_AIM,
        ),
    )
}
#: ``recam-1`` ... ``recam-10``: the official ``--cam_type`` numbering.
RECAM_ALIASES: dict[str, str] = {f"recam-{p.index}": p.name for p in RECAM_PRESETS.values()}


def resolve_recam_name(name: str, source: str = "--preset") -> str:
    """The canonical preset name of ``name`` (a name or ``recam-1`` ... ``recam-10``)."""
    key = str(name).strip().lower()
    key = RECAM_ALIASES.get(key, key)
    if key not in RECAM_PRESETS:
        raise RealcamError(
            f"unknown ReCamMaster trajectory {name!r} (known: {', '.join(RECAM_PRESETS)}, "
            "or recam-1..recam-10 in that order)",
            source,
        )
    return key


def is_recam_preset(name: str) -> bool:
    """Whether ``name`` names one of the ten official trajectories."""
    key = str(name).strip().lower()
    return key in RECAM_PRESETS or key in RECAM_ALIASES


def recam_preset(name: str, frames: int = RECAM_FRAMES, source: str = "--preset") -> Trajectory:
    """The dense official trajectory ``name`` over ``frames`` frames (relative to frame 0, metres).

    With 81 frames it reproduces ``camera_extrinsics.json``; other lengths cover the same motion.
    """
    preset = RECAM_PRESETS[resolve_recam_name(name, source)]
    n = tr.check_frames(frames, "frames")
    s = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    c2w = np.stack([preset.pose(si) for si in s])
    c2w[0] = np.eye(4)  # the reference camera by definition
    return Trajectory(c2w, s.copy(), frames=n)
