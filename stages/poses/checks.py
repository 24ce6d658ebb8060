"""Trajectory checks, trajectory types and type balancing of the ``poses`` stage (CameraCtrl II's data
pipeline, docs/method.md#trajectory-checks-and-types). Pure numpy on OpenCV camera-to-world poses
(x right, y down, z forward), ``(F, 4, 4)`` float64.

- :func:`fragmentation`: SfM registered too few frames, or split the clip into several models;
- :func:`shakiness`: a frame jumps off the smooth path (a jerk of many typical steps);
- :func:`trajectory_type`: static, pan, tilt, roll, dolly, truck, pedestal, orbit or complex;
- :func:`balance`: a keep mask capping each type's share (or count), drawn from a seed.

The checks return a one-line reason (``None``: fine); bad input (shapes, non-finite or non-rigid
poses, out-of-range options) is a :class:`RealcamError`.
"""

from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from ..core import cameras as cam
from ..core import checks
from ..core.errors import RealcamError

#: The labels of :func:`trajectory_type`.
TYPES = ("static", "pan", "tilt", "roll", "dolly", "truck", "pedestal", "orbit", "complex")

#: :func:`shakiness`: a frame whose step changes by more than ``k`` times the clip's typical step is
#: a jump. The bundled RealEstate10K clips stay under 0.6 x in translation and 2.6 x in rotation
#: (also at half their frame rate); one frame displaced by 10 median steps (first, middle or last)
#: makes at least 6.1 x, an inner frame turned by 10 deg at least 5.5 x; a camera standing still
#: whose positions are pure noise makes over 5 x in 1-2 % of clips (8-48 frames).
SHAKE_K = 5.0
#: Rotation jerks are measured against ``max(median angular step, SHAKE_MIN_DEG)``: a clip that
#: hardly turns (median step 0.1 deg) may still speed its turn up smoothly by a degree or two per
#: step, and SfM's rotation noise (a few tenths of a degree) never counts.
SHAKE_MIN_DEG = 1.0

#: :func:`trajectory_type`: rotation (degrees) and translation (as the angle ``atan(|t| / depth)``)
#: both under this are ``static``.
STATIC_DEG = 2.0
#: Scene-centre depth (metres) used to weigh translation against rotation when ``centre_depth`` is
#: not given (metric poses assumed), the presets' default.
DEFAULT_DEPTH = 2.0
#: One motion (rotation or translation angle) this many times the other is the clip's motion alone.
DOMINANCE = 3.0
#: A rotation axis or translation direction within ``acos(AXIS_SHARE)`` (~26 deg) of a camera axis
#: is that axis' motion; anything more oblique is ``complex``.
AXIS_SHARE = 0.9
#: An orbit's distance to the point it keeps in view stays within this factor (start vs end).
ORBIT_DISTANCE_RATIO = 1.25
#: ... and its two viewing rays pass within this share of that distance of each other.
ORBIT_MISS = 0.1


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------
def _poses(c2w, source: str = "poses") -> np.ndarray:
    """``(F, 4, 4)`` rigid, finite camera-to-world poses (F >= 1) as float64, else RealcamError."""
    try:
        p = np.asarray(c2w, dtype=np.float64)
    except (TypeError, ValueError):
        raise RealcamError("poses must be an (F, 4, 4) array of numbers", source) from None
    if p.ndim != 3 or p.shape[1:] != (4, 4) or len(p) == 0:
        raise RealcamError(f"poses must be an (F, 4, 4) array with F >= 1, got shape {p.shape}", source)
    return cam.check_poses(p, source)


def _rotvecs(r: np.ndarray) -> np.ndarray:
    """Rotation vectors (axis x angle, radians) of ``(..., 3, 3)`` rotations."""
    shape = r.shape[:-2]
    return Rotation.from_matrix(r.reshape(-1, 3, 3)).as_rotvec().reshape(*shape, 3)


def _angles(r: np.ndarray) -> np.ndarray:
    """Angles (radians) of ``(..., 3, 3)`` rotations."""
    return np.linalg.norm(_rotvecs(r), axis=-1)


# ----------------------------------------------------------------------------------------------
# Fragmentation
# ----------------------------------------------------------------------------------------------
def fragmentation(registered, n_models: int, min_registered: float) -> str | None:
    """Why the reconstruction is fragmented, or ``None``.

    CameraCtrl II drops clips whose SfM trajectory is fragmented: no model, several models (the clip
    fell apart into pieces with unrelated frames and scales), or too small a share of the frames
    registered (``registered``: one bool per sampled frame; ``min_registered`` in ``[0, 1]``).
    Every reason that applies is given, joined by ``; ``.
    """
    reg = np.asarray(registered)
    if reg.ndim != 1 or reg.size == 0:
        raise RealcamError(f"registered must be a non-empty 1-D mask, got shape {reg.shape}", "registered")
    if reg.dtype != bool:
        if not (np.issubdtype(reg.dtype, np.number) and np.isin(reg, (0, 1)).all()):
            raise RealcamError("registered must hold booleans (or 0/1)", "registered")
        reg = reg.astype(bool)
    n_models = checks.integer(n_models, "n_models", minimum=0)
    min_registered = checks.number(min_registered, "min_registered", minimum=0, maximum=1)
    count, total = int(reg.sum()), reg.size
    if n_models == 0 or count == 0:
        return f"SfM failed: no model ({count} of {total} frames registered)"
    reasons = []
    if n_models > 1:
        reasons.append(f"fragmented: SfM split the clip into {n_models} models")
    if count / total < min_registered:
        reasons.append(f"fragmented: {count} of {total} frames registered ({count / total:.0%} < {min_registered:.0%})")
    return "; ".join(reasons) or None


# ----------------------------------------------------------------------------------------------
# Shakiness
# ----------------------------------------------------------------------------------------------
def step_jerks(c2w) -> dict[str, np.ndarray]:
    """Per-step motion and its change between consecutive frames of ``(F, 4, 4)`` poses.

    ``step_t`` ``(F-1,)``: camera-centre steps ``|p_{i+1} - p_i|``; ``step_r``: angles (degrees) of
    the camera-frame increments ``S_i = R_i^T R_{i+1}``; ``jerk_t`` ``(F-2,)``: the second
    difference ``|p_{i+1} - 2 p_i + p_{i-1}|``; ``jerk_r``: the angle of ``S_{i-1}^T S_i``
    (degrees). Steady motion of any speed has zero jerk; a frame displaced by ``D`` makes a jerk of
    ``2 D`` there and ``D`` at its neighbours (``D`` at the second frame when it is an end frame).
    """
    p = _poses(c2w)
    pos, rot = p[:, :3, 3], p[:, :3, :3]
    d = np.diff(pos, axis=0)
    inc = np.swapaxes(rot[:-1], -1, -2) @ rot[1:]
    return {
        "step_t": np.linalg.norm(d, axis=1),
        "step_r": np.degrees(_angles(inc)),
        "jerk_t": np.linalg.norm(np.diff(d, axis=0), axis=1),
        "jerk_r": np.degrees(_angles(np.swapaxes(inc[:-1], -1, -2) @ inc[1:])),
    }


def shakiness(
    c2w,
    k: float = SHAKE_K,
    *,
    min_rotation_deg: float = SHAKE_MIN_DEG,
) -> str | None:
    """Why the trajectory of the registered frames ``c2w`` ``(F, 4, 4)`` is shaky, or ``None``.

    CameraCtrl II drops SfM trajectories that shake in places. Per frame the step to the next
    frame is compared with the step from the previous one (:func:`step_jerks`): a jump is a jerk
    above ``k`` times the clip's typical step, in translation (the typical step: the larger of the
    median step and ``extent / (F - 1)``, the extent being the largest distance from the first
    camera, so that a clip standing still for most frames may start moving) or in rotation
    (``max(median angular step, min_rotation_deg)``). The jerk rather than the step itself: pans
    that speed up and walks that start from rest change step sizes smoothly and are not shaky,
    while a frame off the path jumps out and back. Translation is scale-free (ratios of lengths).
    A frame displaced by ``D`` is caught when ``2 D`` (``D`` for the first or last frame) exceeds
    the limit. Fewer than three frames: ``None``.
    """
    k = checks.number(k, "k (shake)", above=1)
    min_rotation_deg = checks.number(min_rotation_deg, "min_rotation_deg", minimum=0)
    p = _poses(c2w)
    if len(p) < 3:
        return None
    m = step_jerks(p)
    pos = p[:, :3, 3]
    extent = float(np.linalg.norm(pos - pos[0], axis=1).max())
    reasons = []
    # A trajectory that moves only by round-off (pure rotations) has no translation to judge.
    if extent > 1e-9 * max(1.0, float(np.abs(pos).max())):
        ref = max(float(np.median(m["step_t"])), extent / (len(p) - 1))
        bad = np.flatnonzero(m["jerk_t"] > k * ref)
        if bad.size:
            i = int(bad[np.argmax(m["jerk_t"][bad])])
            reasons.append(f"shaky: the camera jumps at frame {i + 1} ({m['jerk_t'][i] / ref:.1f} x its typical step)")
    ref_r = max(float(np.median(m["step_r"])), min_rotation_deg)
    bad = np.flatnonzero(m["jerk_r"] > k * ref_r)
    if bad.size:
        i = int(bad[np.argmax(m["jerk_r"][bad])])
        reasons.append(f"shaky: the camera turns {m['jerk_r'][i]:.1f} deg off its path at frame {i + 1}")
    return "; ".join(reasons) or None


# ----------------------------------------------------------------------------------------------
# Trajectory types
# ----------------------------------------------------------------------------------------------
def _axis(v: np.ndarray, share: float) -> int | None:
    """The camera axis (0 x, 1 y, 2 z) the unit vector ``v`` lies along, or ``None``."""
    i = int(np.argmax(np.abs(v)))
    return i if abs(v[i]) >= share else None


def _keeps_point_in_view(t: np.ndarray, forward: np.ndarray, miss: float, ratio: float) -> bool:
    """Whether the first camera's optical axis ``s e_z`` and the last one's ``t + u forward`` meet
    (within ``miss`` of the distance) in front of both at similar distances (within ``ratio``)."""
    e = np.array([0.0, 0.0, 1.0])
    # Closest points of the two rays: s e_z - (t + u f) perpendicular to both directions.
    a = np.array([[1.0, -float(e @ forward)], [float(e @ forward), -1.0]])
    b = np.array([float(e @ t), float(forward @ t)])
    if abs(np.linalg.det(a)) < 1e-9:
        return False  # parallel axes: nothing is kept in view by turning
    s, u = np.linalg.solve(a, b)
    if s <= 0 or u <= 0 or not 1.0 / ratio <= u / s <= ratio:
        return False
    gap = float(np.linalg.norm(s * e - (t + u * forward)))
    return gap <= miss * min(s, u)


def trajectory_type(
    c2w,
    centre_depth: float | None = None,
    *,
    static_deg: float = STATIC_DEG,
    dominance: float = DOMINANCE,
    axis_share: float = AXIS_SHARE,
) -> str:
    """The type of the camera motion of ``c2w`` ``(F, 4, 4)``: one of :data:`TYPES`.

    The motion is read in the first camera's frame at the frame farthest from the start (largest
    rotation angle plus translation angle, so out-and-back paths count their outward leg):

    - rotation angle ``theta`` (degrees) and axis; translation as the angle it shifts the scene
      centre, ``tau = atan(|t| / depth)`` with ``depth = centre_depth`` (the poses' units: the
      label is then scale-free) or :data:`DEFAULT_DEPTH` metres for metric poses;
    - ``static``: ``theta`` and ``tau`` both under ``static_deg`` (either one under it counts as
      no such motion below);
    - rotation alone (``theta >= dominance * tau``): ``pan`` (axis y), ``tilt`` (x), ``roll`` (z);
    - translation alone (``tau >= dominance * theta``): ``dolly`` (along z), ``truck`` (x),
      ``pedestal`` (y);
    - both: ``orbit`` when the camera turns about its x or y axis, moves across that axis, and
      the turn keeps a point ahead in view (the first and last optical axes meet, within
      :data:`ORBIT_MISS` of the distance, in front of both cameras at distances within
      :data:`ORBIT_DISTANCE_RATIO`), else ``complex``;
    - an axis or direction more than ``acos(axis_share)`` off every camera axis: ``complex``.

    Combinations of two presets (``pan-left+dolly-in``) are ``complex``, except: a part under a
    ``dominance``-th of the other is ignored (``pan-left+pedestal-up`` at the default magnitudes is a
    pan); a truck or pedestal against a pan or tilt turning back towards the start's view
    (``pan-left+truck-right``) is the orbit it makes; parts that cancel leave what remains.
    """
    static_deg = checks.number(static_deg, "static_deg", above=0)
    dominance = checks.number(dominance, "dominance", minimum=1)
    axis_share = checks.number(axis_share, "axis_share", above=1 / math.sqrt(3), maximum=1)
    depth = DEFAULT_DEPTH if centre_depth is None else checks.number(centre_depth, "centre_depth", above=0)
    rel = cam.relative_poses(_poses(c2w))
    rotvec = _rotvecs(rel[:, :3, :3])
    theta = np.degrees(np.linalg.norm(rotvec, axis=1))
    dist = np.linalg.norm(rel[:, :3, 3], axis=1)
    tau = np.degrees(np.arctan(dist / depth))
    j = int(np.argmax(theta + tau))
    theta_j, tau_j = float(theta[j]), float(tau[j])
    turns, moves = theta_j >= static_deg, tau_j >= static_deg
    if not (turns or moves):
        return "static"
    if turns and (not moves or theta_j >= dominance * tau_j):
        return {0: "tilt", 1: "pan", 2: "roll"}.get(_axis(rotvec[j] / np.linalg.norm(rotvec[j]), axis_share), "complex")
    t = rel[j, :3, 3]
    if not turns or tau_j >= dominance * theta_j:
        return {0: "truck", 1: "pedestal", 2: "dolly"}.get(_axis(t / dist[j], axis_share), "complex")
    axis = rotvec[j] / np.linalg.norm(rotvec[j])
    across = _axis(axis, axis_share) in (0, 1) and abs(float(axis @ t)) <= math.sqrt(1 - axis_share**2) * dist[j]
    if across and _keeps_point_in_view(t, rel[j, :3, 2], ORBIT_MISS, ORBIT_DISTANCE_RATIO):
        return "orbit"
    return "complex"


# ----------------------------------------------------------------------------------------------
# Balancing
# ----------------------------------------------------------------------------------------------
def _count_cap(counts: np.ndarray, cap) -> int:
    """The most clips a type may keep: ``cap`` itself for a count; for a share, the largest ``c``
    with ``c <= cap * sum(min(n_t, c))`` (every type's share of the kept clips at most ``cap``)."""
    if isinstance(cap, bool):
        raise RealcamError(f"must be a share in (0, 1] or a count >= 1, got {cap!r}", "balance cap")
    value = checks.number(cap, "balance cap", above=0)
    if isinstance(cap, (int, np.integer)) or value > 1:
        return checks.integer(cap, "balance cap (a count above 1 must be whole)", minimum=1)
    if value * len(counts) < 1 - 1e-9:
        # No kept set can hold every type under the cap: the fairest one keeps them equal.
        return int(counts.min())
    # cap * sum(min(n_t, c)) - c is concave in c and >= 0 at c = 1: bisect its last c >= 0.
    lo, hi = 1, int(counts.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mid <= value * np.minimum(counts, mid).sum() + 1e-9:
            lo = mid
        else:
            hi = mid - 1
    return lo


def balance(types: Sequence[str], cap: float | int, seed: int) -> np.ndarray:
    """A keep mask ``(N,)`` bool capping each trajectory type's share (or count) of the kept clips.

    ``cap``: an int (or a whole number above 1) is the most clips one type keeps; a float in
    ``(0, 1]`` is the most share of the *kept* clips one type may have (so the over-represented
    types are cut to a common count ``c``, the largest with ``c <= cap * kept``; when even equal
    counts exceed the cap, i.e. fewer than ``1 / cap`` types, every type keeps as many as the rarest).
    Types at or under the count are all kept; each over-represented type keeps a uniform random
    subset drawn from ``seed`` and the type's name alone (so the draw of one type does not depend on
    the others or on the order of the types).
    """
    seed = checks.integer(seed, "seed", minimum=0)
    labels = list(types)
    if not all(isinstance(x, str) for x in labels):
        raise RealcamError("types must be strings", "types")
    keep = np.ones(len(labels), dtype=bool)
    if not labels:
        return keep
    arr = np.asarray(labels, dtype=object)
    names = sorted(set(labels))
    counts = np.array([np.count_nonzero(arr == n) for n in names])
    c = _count_cap(counts, cap)
    for name, n in zip(names, counts):
        if n <= c:
            continue
        idx = np.flatnonzero(arr == name)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        chosen = rng.choice(n, size=c, replace=False)
        drop = np.setdiff1d(np.arange(n), chosen)
        keep[idx[drop]] = False
    return keep
