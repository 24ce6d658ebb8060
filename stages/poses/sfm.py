"""Camera poses of an unposed video by SfM with motion masks (docs/method.md#poses-of-dynamic-videos).

pycolmap SIFT with COLMAP's mask images (features only where the mask is not a moving object),
sequential matching, the global (GLOMAP) mapper; one shared camera whose focal length is estimated
(``SIMPLE_PINHOLE`` starting from COLMAP's prior, ``1.2 * max(W, H)``, or from a given field of
view) unless the intrinsics are given (``PINHOLE``, held fixed).

:func:`motion_masks` is the built-in geometric motion segmentation that needs no weights: a first
SfM pass without masks gives the camera motion; every raw SIFT match between nearby frames is then
scored by its Sampson distance to the epipolar geometry of that motion; matches that violate it
(and keypoints that only ever violate it) are moving. Their density, against the density of the
static keypoints, grows them into regions, which are dilated.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core import cameras as cam
from ..core.video import write_image
from ..evaluate.sfm import _mapper_options, _pycolmap, extract, match, prepare_images

#: COLMAP's focal length prior: ``default_focal_length_factor * max(W, H)``.
FOCAL_PRIOR_FACTOR = 1.2
#: A raw match is inconsistent with the camera motion beyond this Sampson distance (pixels, at 512
#: pixels across the long side; scaled with the image).
MOVING_SAMPSON_PX = 3.0
#: Starting fields of view (degrees, long side) when the focal length is unknown: bundle
#: adjustment only refines it locally (from COLMAP's 1.2 max(W, H), i.e. 45 degrees, a 92-degree
#: RealEstate10K camera converged to 18 % too long), so SfM runs from each and the model with the
#: most registered frames, then the lowest mean reprojection error, wins.
FOV_CANDIDATES = (45.0, 65.0, 90.0)
#: Frames ahead of each frame whose matches are scored (sequential neighbours).
MOTION_NEIGHBOURS = 2
#: Region growing: the Gaussian of each keypoint, in a fraction of the long side.
REGION_SIGMA = 0.04


@dataclass
class PoseFit:
    """One clip's SfM: poses relative to the first registered frame, NaN where unregistered."""

    ok: bool
    reason: str = ""
    c2w: np.ndarray | None = None  # (F, 4, 4), SfM scale
    registered: np.ndarray | None = None  # (F,) bool
    n_models: int = 0
    k: np.ndarray | None = None  # (3, 3) pixel intrinsics (estimated unless given)
    n_points: int = 0
    #: per frame: keypoints with a 3D point (pixel uv) and their depth z in that camera (SfM scale)
    observations: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    database: Path | None = None  # the matched database (kept for the motion masks)
    image_ids: dict[int, int] = field(default_factory=dict)  # frame -> COLMAP image id
    reprojection_error: float = math.inf  # mean, pixels
    fov_start: float | None = None  # the starting field of view of the winning run


def write_masks(masks: np.ndarray, names: list[str], folder: Path) -> None:
    """COLMAP mask images ``<image name>.png``: 0 (no features) on moving objects, 255 elsewhere."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, m in zip(names, masks):
        write_image(folder / f"{name}.png", np.where(m, 0, 255).astype(np.uint8))


def focal_prior(width: int, height: int, fov_deg: float | None) -> float:
    if fov_deg is None:
        return FOCAL_PRIOR_FACTOR * max(width, height)
    return 0.5 * max(width, height) / np.tan(np.radians(fov_deg) / 2)


def fit_poses(
    frames: np.ndarray,
    masks: np.ndarray | None = None,
    *,
    k: np.ndarray | None = None,
    fov_deg: float | None = None,
    seed: int = 0,
    num_threads: int = 1,
    work: Path | None = None,
    keep_database: bool = False,
) -> PoseFit:
    """SfM of ``frames`` ``(F, H, W, 3)`` with ``masks`` ``(F, H, W)`` bool (True: moving, no
    features); ``k`` fixes the intrinsics, else the focal length is estimated from ``fov_deg``, or
    from each of :data:`FOV_CANDIDATES` (the best model wins). Never raises for SfM failures (the
    reason comes back)."""
    pycolmap = _pycolmap()
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="realcam-poses-")) if own else Path(work)
    try:
        starts = [None] if k is not None else ([fov_deg] if fov_deg is not None else list(FOV_CANDIDATES))
        image_dir = work / "images"
        if not image_dir.is_dir():
            prepare_images(frames, image_dir)
        best = None
        for i, fov in enumerate(starts):
            run = work if len(starts) == 1 else work / f"fov{i}"
            fit = _fit(pycolmap, frames, masks, k, fov, seed, num_threads, run, image_dir, keep_database)
            fit.fov_start = fov
            if best is None or _better(fit, best):
                best = fit
        return best
    finally:
        if own and not keep_database:
            shutil.rmtree(work, ignore_errors=True)


def _better(a: PoseFit, b: PoseFit) -> bool:
    """``a`` is the better model: registered, more frames, then a lower reprojection error."""
    ka = (a.ok, 0 if a.registered is None else int(a.registered.sum()), -a.reprojection_error)
    kb = (b.ok, 0 if b.registered is None else int(b.registered.sum()), -b.reprojection_error)
    return ka > kb


def _fit(
    pycolmap, frames, masks, k, fov_deg, seed, num_threads, work: Path, image_dir: Path, keep_database: bool
) -> PoseFit:
    n, h, w = frames.shape[:3]
    work.mkdir(parents=True, exist_ok=True)
    mask_dir, database = work / "masks", work / "database.db"
    for p in (mask_dir, database):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    names = [f"{i:05d}.png" for i in range(n)]
    if k is not None:
        params = ",".join(repr(float(v)) for v in (k[0, 0], k[1, 1], k[0, 2], k[1, 2]))
        reader = pycolmap.ImageReaderOptions(camera_model="PINHOLE", camera_params=params)
    else:
        f0 = focal_prior(w, h, fov_deg)
        reader = pycolmap.ImageReaderOptions(camera_model="SIMPLE_PINHOLE", camera_params=f"{f0},{w / 2},{h / 2}")
    if masks is not None:
        write_masks(masks, names, mask_dir)
        reader.mask_path = str(mask_dir)
    pycolmap.set_random_seed(seed)
    try:
        extract(image_dir, database, num_threads=num_threads, reader=reader)
        match(database, seed, num_threads)
        opts = _mapper_options("global", seed, num_threads)  # evaluate's, intrinsics held fixed
        opts.mapper.bundle_adjustment.refine_focal_length = k is None
        out = work / "sparse"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir()
        models = pycolmap.global_mapping(database, image_dir, out, options=opts)
    except Exception as err:  # pycolmap raises RuntimeError/ValueError on degenerate input
        return PoseFit(False, f"SfM error: {err}".splitlines()[0][:200])
    if not models:
        return PoseFit(False, "SfM built no model (too few matches)")
    rec = max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))
    w2c = np.full((n, 4, 4), np.nan)
    registered = np.zeros(n, dtype=bool)
    image_ids: dict[int, int] = {}
    for image in rec.images.values():
        i = int(Path(image.name).stem)
        image_ids[i] = int(image.image_id)
        if image.has_pose:
            w2c[i] = np.eye(4)
            w2c[i, :3, :] = image.cam_from_world().matrix()
            registered[i] = True
    if not registered.any():
        return PoseFit(False, "no frame registered", n_models=len(models))
    camera = next(iter(rec.cameras.values()))
    kk = camera.calibration_matrix()
    c2w = np.full_like(w2c, np.nan)
    c2w[registered] = cam.relative_poses(cam.w2c_to_c2w(w2c[registered]), reference=0)
    # each observation's depth in its camera (the same in any world frame)
    observations = []
    for i in range(n):
        if not registered[i]:
            observations.append((np.zeros((0, 2)), np.zeros(0)))
            continue
        image = rec.images[image_ids[i]]
        uv, z = [], []
        for p2d in image.points2D:
            if p2d.has_point3D():
                xyz = rec.points3D[p2d.point3D_id].xyz
                uv.append(np.asarray(p2d.xy, dtype=np.float64))
                z.append(float(w2c[i, 2, :3] @ xyz + w2c[i, 2, 3]))
        observations.append((np.asarray(uv).reshape(-1, 2), np.asarray(z)))
    return PoseFit(
        True,
        "",
        c2w,
        registered,
        len(models),
        np.asarray(kk, dtype=np.float64),
        int(rec.num_points3D()),
        observations,
        database if keep_database else None,
        image_ids,
        float(rec.compute_mean_reprojection_error()),
    )


# ----------------------------------------------------------------------------------------------
# Geometric motion masks
# ----------------------------------------------------------------------------------------------
def sampson(x1: np.ndarray, x2: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Sampson distances (pixels) of correspondences ``x1 -> x2`` ``(N, 2)`` under ``F``."""
    a = np.c_[x1, np.ones(len(x1))]
    b = np.c_[x2, np.ones(len(x2))]
    fa, ftb = a @ f.T, b @ f
    num = np.einsum("ij,ij->i", b, fa) ** 2
    den = fa[:, 0] ** 2 + fa[:, 1] ** 2 + ftb[:, 0] ** 2 + ftb[:, 1] ** 2
    return np.sqrt(num / np.maximum(den, 1e-12))


def fundamental(k: np.ndarray, c2w_i: np.ndarray, c2w_j: np.ndarray) -> np.ndarray:
    """``F`` with ``x_j^T F x_i = 0`` for pixels of camera ``i`` and ``j``."""
    rel = cam.invert_pose(c2w_j) @ c2w_i  # camera i -> camera j
    r, t = rel[:3, :3], rel[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    kinv = np.linalg.inv(k)
    return kinv.T @ tx @ r @ kinv


def keypoint_motion(fit: PoseFit, n_frames: int, image_size: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame: ``(moving, static)`` keypoint positions from the raw matches of the first pass."""
    pycolmap = _pycolmap()
    w, h = image_size
    thr = MOVING_SAMPSON_PX * max(w, h) / 512.0
    votes: list[dict[int, list[bool]]] = [{} for _ in range(n_frames)]
    keypoints: dict[int, np.ndarray] = {}
    with pycolmap.Database.open(str(fit.database)) as db:
        for i in range(n_frames):
            if i in fit.image_ids:
                keypoints[i] = np.asarray(db.read_keypoints(fit.image_ids[i]))[:, :2]
        for i in range(n_frames):
            for j in range(i + 1, min(n_frames, i + 1 + MOTION_NEIGHBOURS)):
                if not (fit.registered[i] and fit.registered[j]) or i not in keypoints or j not in keypoints:
                    continue
                pair = (fit.image_ids[i], fit.image_ids[j])
                if not db.exists_matches(*pair):
                    continue
                m = np.asarray(db.read_matches(*pair))
                if not len(m):
                    continue
                d = sampson(keypoints[i][m[:, 0]], keypoints[j][m[:, 1]], fundamental(fit.k, fit.c2w[i], fit.c2w[j]))
                for (a, b), moving in zip(m, d > thr):
                    votes[i].setdefault(int(a), []).append(bool(moving))
                    votes[j].setdefault(int(b), []).append(bool(moving))
    out = []
    for i in range(n_frames):
        kp = keypoints.get(i, np.zeros((0, 2)))
        moving = [kp[a] for a, v in votes[i].items() if all(v)]
        static = [kp[a] for a, v in votes[i].items() if not any(v)]
        out.append((np.asarray(moving).reshape(-1, 2), np.asarray(static).reshape(-1, 2)))
    return out


def grow_regions(moving: np.ndarray, static: np.ndarray, size: tuple[int, int], dilate: int) -> np.ndarray:
    """A mask ``(H, W)`` where the Gaussian density of moving keypoints exceeds that of the static
    ones (and two moving keypoints' worth), dilated by ``dilate`` pixels."""
    from scipy import ndimage

    w, h = size
    sigma = REGION_SIGMA * max(w, h)

    def density(points: np.ndarray) -> np.ndarray:
        grid = np.zeros((h, w))
        if len(points):
            x = np.clip(points[:, 0].astype(int), 0, w - 1)
            y = np.clip(points[:, 1].astype(int), 0, h - 1)
            np.add.at(grid, (y, x), 1.0)
        return ndimage.gaussian_filter(grid, sigma, mode="constant")

    dm = density(moving)
    peak = 1.0 / (2 * np.pi * sigma**2)  # one keypoint's density at its centre
    mask = (dm > density(static)) & (dm > 0.5 * peak)
    if dilate > 0:
        mask = ndimage.binary_dilation(mask, iterations=int(dilate))
    return mask


def motion_masks(
    frames: np.ndarray,
    *,
    k: np.ndarray | None = None,
    fov_deg: float | None = None,
    dilate: int = 5,
    seed: int = 0,
    num_threads: int = 1,
    work: Path | None = None,
) -> tuple[np.ndarray, PoseFit]:
    """The geometric motion masks ``(F, H, W)`` bool of a clip and the first (unmasked) SfM pass."""
    n, h, w = frames.shape[:3]
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="realcam-masks-")) if own else Path(work)
    try:
        first = fit_poses(
            frames, None, k=k, fov_deg=fov_deg, seed=seed, num_threads=num_threads, work=work, keep_database=True
        )
        masks = np.zeros((n, h, w), dtype=bool)
        if not first.ok:
            return masks, first
        for i, (moving, static) in enumerate(keypoint_motion(first, n, (w, h))):
            masks[i] = grow_regions(moving, static, (w, h), dilate)
        return masks, first
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
