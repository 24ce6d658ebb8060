"""Camera-control metrics (docs/method.md#camera-metrics), on relative c2w poses (frame 0 = identity).

With ground truth ``{R_i, T_i}`` and estimate ``{R~_i, T~_i}`` (rotations and camera positions of
the relative c2w poses), **summed over frames**:

- ``RotErr = sum_i arccos((tr(R~_i R_i^T) - 1) / 2)`` in radians (argument clamped to [-1, 1]);
- ``TransErr = sum_i ||T~_i / s~ - T_i / s||``; relative: ``s``, ``s~`` each trajectory's own scene
  scale (distance from the first camera to the farthest one); metric: both divided by the ground
  truth's ``s`` after the estimate was put in metric scale;
- ``CamMC = sum_i ||[R~_i | T~_i / s~] - [R_i | T_i / s]||_F`` over the 3x4 matrices;
- ATE-aligned (CameraCtrl II): similarity alignment (centre, optimal scale, SVD rotation,
  translation) of the estimate onto the ground truth; mean position error per frame (ground-truth
  units, metres for metric trajectories) and mean rotation error in degrees after the alignment
  rotation (see ``ate_aligned`` for how orientations keep the rotation determined).
"""

from __future__ import annotations

import numpy as np

#: a trajectory that never moves has scene scale 0; its translations are then left undivided
MIN_SCALE = 1e-12


def rotation_angles(r_est: np.ndarray, r_gt: np.ndarray) -> np.ndarray:
    """Per-frame angle (radians) between rotations ``(F, 3, 3)``.

    ``arccos((tr(R~ R^T) - 1) / 2)`` evaluated as ``atan2(sin, cos)`` of the relative rotation
    (``sin`` from its skew part): the same angle for rotations, but exact near 0 where ``arccos``
    loses half the digits (``arccos(1 - 1e-16)`` is 1.5e-8).
    """
    rel = np.asarray(r_est, np.float64) @ np.swapaxes(np.asarray(r_gt, np.float64), -1, -2)
    cos = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    skew = np.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], -1)
    sin = np.clip(np.linalg.norm(skew, axis=-1) / 2.0, 0.0, 1.0)
    return np.arctan2(sin, cos)


def rot_err(c2w_est: np.ndarray, c2w_gt: np.ndarray) -> float:
    """RotErr: summed geodesic angle (radians)."""
    return float(rotation_angles(c2w_est[:, :3, :3], c2w_gt[:, :3, :3]).sum())


def scene_scale(c2w: np.ndarray) -> float:
    """Distance from the first camera to the farthest one (1 for a trajectory that never moves)."""
    pos = np.asarray(c2w, np.float64)[:, :3, 3]
    s = float(np.linalg.norm(pos - pos[0], axis=-1).max())
    return s if s > MIN_SCALE else 1.0


def _scales(c2w_est, c2w_gt, mode: str) -> tuple[float, float]:
    if mode == "relative":
        return scene_scale(c2w_est), scene_scale(c2w_gt)
    if mode == "metric":
        s = scene_scale(c2w_gt)
        return s, s
    raise ValueError(f"mode must be 'relative' or 'metric', got {mode!r}")


def trans_err(c2w_est: np.ndarray, c2w_gt: np.ndarray, mode: str = "relative") -> float:
    """TransErr, summed over frames (``mode``: ``relative`` or ``metric``)."""
    s_est, s_gt = _scales(c2w_est, c2w_gt, mode)
    d = c2w_est[:, :3, 3] / s_est - c2w_gt[:, :3, 3] / s_gt
    return float(np.linalg.norm(d, axis=-1).sum())


def cammc(c2w_est: np.ndarray, c2w_gt: np.ndarray, mode: str = "relative") -> float:
    """CamMC: summed Frobenius norm of the 3x4 pose difference (translations scaled as TransErr)."""
    s_est, s_gt = _scales(c2w_est, c2w_gt, mode)
    a = np.array(c2w_est[:, :3, :], np.float64)
    b = np.array(c2w_gt[:, :3, :], np.float64)
    a[:, :, 3] /= s_est
    b[:, :, 3] /= s_gt
    return float(np.linalg.norm((a - b).reshape(len(a), -1), axis=-1).sum())


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity ``(s, R, t)`` minimising ``sum ||s R src_i + t - dst_i||^2`` (Umeyama 1991)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    r = u @ sign @ vt
    var_s = (xs**2).sum() / len(src)
    s = float(np.trace(np.diag(d) @ sign) / var_s) if with_scale and var_s > MIN_SCALE else 1.0
    t = mu_d - s * r @ mu_s
    return s, r, t


def _align_rotation(xs: np.ndarray, xd: np.ndarray, r_est: np.ndarray, r_gt: np.ndarray) -> np.ndarray:
    """Rotation maximising position agreement (normalised) plus orientation agreement."""
    norm = np.sqrt((xs**2).sum(1).mean() * (xd**2).sum(1).mean())
    h = xd.T @ xs / len(xs) / max(norm, MIN_SCALE) + (r_gt @ np.swapaxes(r_est, -1, -2)).mean(0)
    u, _, vt = np.linalg.svd(h)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    return u @ sign @ vt


def ate_aligned(c2w_est: np.ndarray, c2w_gt: np.ndarray, orientations: bool = True) -> dict[str, float]:
    """ATE after a similarity alignment: mean position error and mean rotation error (degrees).

    ``orientations=False`` is the CameraCtrl II procedure exactly (Umeyama on positions). Its SVD
    rotation is undetermined about the axis of a straight camera path (common in RealEstate10K),
    which turns a perfect estimate into degrees of rotation error; by default the camera
    orientations therefore join the SVD (positions normalised to unit RMS, plus
    ``mean_i R_i R~_i^T``), then the optimal scale and translation follow as in Umeyama.
    """
    p_est, p_gt = c2w_est[:, :3, 3], c2w_gt[:, :3, 3]
    if orientations:
        mu_s, mu_d = p_est.mean(0), p_gt.mean(0)
        xs, xd = p_est - mu_s, p_gt - mu_d
        r = _align_rotation(xs, xd, c2w_est[:, :3, :3], c2w_gt[:, :3, :3])
        var_s = (xs**2).sum()
        s = float(((xs @ r.T) * xd).sum() / var_s) if var_s > MIN_SCALE else 1.0
        t = mu_d - s * r @ mu_s
    else:
        s, r, t = umeyama(p_est, p_gt)
    pos = s * p_est @ r.T + t
    ate = float(np.linalg.norm(pos - p_gt, axis=-1).mean())
    rot = np.degrees(rotation_angles(r @ c2w_est[:, :3, :3], c2w_gt[:, :3, :3])).mean()
    return {"ate_trans": ate, "ate_rot_deg": float(rot), "ate_scale": s}


def camera_metrics(c2w_est: np.ndarray, c2w_gt: np.ndarray, metric_factor: float | None = None) -> dict[str, float]:
    """All camera metrics of one trial on the frames both trajectories have.

    ``c2w_est`` and ``c2w_gt`` are relative to frame 0; ``metric_factor`` puts the estimate in the
    ground truth's metric scale (``T~ * factor``); without one the metric variants are NaN.
    """
    out = {
        "rot_err": rot_err(c2w_est, c2w_gt),
        "trans_err_rel": trans_err(c2w_est, c2w_gt, "relative"),
        "cammc_rel": cammc(c2w_est, c2w_gt, "relative"),
    }
    if metric_factor is not None and np.isfinite(metric_factor) and metric_factor > 0:
        est = np.array(c2w_est, np.float64)
        est[:, :3, 3] *= metric_factor
        out["trans_err_metric"] = trans_err(est, c2w_gt, "metric")
        out["cammc_metric"] = cammc(est, c2w_gt, "metric")
    else:
        out["trans_err_metric"] = float("nan")
        out["cammc_metric"] = float("nan")
    out.update(ate_aligned(c2w_est, c2w_gt))
    return out


METRIC_COLUMNS = [
    "rot_err",
    "trans_err_rel",
    "cammc_rel",
    "trans_err_metric",
    "cammc_metric",
    "ate_trans",
    "ate_rot_deg",
]
