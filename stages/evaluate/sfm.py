"""Camera poses of a video by SfM (docs/method.md#sfm-poses-for-evaluation): pycolmap SIFT with
the known intrinsics, sequential matching, the global (GLOMAP) or incremental mapper with the
intrinsics held fixed.

Features are extracted once per video (SIFT is deterministic); each trial copies that database,
matches (RANSAC verification) and maps with its own seed, so trials differ only where SfM is random.
The largest model wins; its poses are made relative to frame 0. Failures (nothing to match, no
model, frame 0 not registered, too few frames) come back as a reason, never as an exception.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stages.core import cameras as cam
from stages.core.video import write_image

MAPPERS = ("global", "incremental")
#: the fewest registered frames a trial needs to count as a success
MIN_REGISTERED = 3


@dataclass
class SfmTrial:
    """One SfM trial of a video: poses relative to frame 0 (NaN where a frame was not registered)."""

    seed: int
    ok: bool
    reason: str = ""
    c2w: np.ndarray | None = None  # (F, 4, 4) relative to frame 0, NaN rows for unregistered frames
    registered: np.ndarray | None = None  # (F,) bool
    n_points: int = 0
    seconds: float = 0.0  # wall time of matching + mapping
    cpu_seconds: float = 0.0  # CPU time of this process over the same span (all threads)
    # frame-0 observations of the model's 3D points (for the metric factor): pixel uv and SfM depth z
    uv0: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    z0: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def unregistered(self) -> list[int]:
        return [] if self.registered is None else [int(i) for i in np.flatnonzero(~self.registered)]


def _pycolmap():
    import pycolmap

    if pycolmap.logging.minloglevel < 2:  # COLMAP's INFO/WARNING lines would drown the progress bar
        pycolmap.logging.minloglevel = 2
    return pycolmap


def prepare_images(frames: np.ndarray, folder: Path) -> list[str]:
    """Write frames as numbered PNGs (the names keep their order for sequential matching)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i:05d}.png" for i in range(len(frames))]
    for name, frame in zip(names, frames):
        write_image(folder / name, frame)
    return names


def extract(image_dir: Path, database: Path, k: np.ndarray | None = None, num_threads: int = 1, *, reader=None) -> None:
    """SIFT features of every image with one shared camera: a PINHOLE camera of pixel intrinsics
    ``k`` (3x3), or as ``reader`` (``pycolmap.ImageReaderOptions``: camera model, masks) says."""
    pycolmap = _pycolmap()
    if reader is None:
        params = ",".join(repr(float(v)) for v in (k[0, 0], k[1, 1], k[0, 2], k[1, 2]))
        reader = pycolmap.ImageReaderOptions(camera_model="PINHOLE", camera_params=params)
    opts = pycolmap.FeatureExtractionOptions()
    opts.num_threads = num_threads
    pycolmap.extract_features(
        database,
        image_dir,
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader,
        extraction_options=opts,
        device=pycolmap.Device.cpu,
    )


def match(database: Path, seed: int, num_threads: int = 1) -> None:
    """Sequential matching with RANSAC verification seeded by ``seed``."""
    pycolmap = _pycolmap()
    match_opts = pycolmap.FeatureMatchingOptions()
    match_opts.num_threads = num_threads
    verify = pycolmap.TwoViewGeometryOptions()
    verify.ransac.random_seed = seed
    pycolmap.match_sequential(
        database, matching_options=match_opts, verification_options=verify, device=pycolmap.Device.cpu
    )


def _mapper_options(mapper: str, seed: int, num_threads: int):
    pycolmap = _pycolmap()
    if mapper == "global":
        opts = pycolmap.GlobalPipelineOptions()
        opts.random_seed = seed
        opts.num_threads = num_threads
        opts.mapper.random_seed = seed
        opts.mapper.num_threads = num_threads
        opts.mapper.rotation_averaging.random_seed = seed
        opts.mapper.global_positioning.random_seed = seed
        opts.mapper.global_positioning.use_gpu = False
        ba = opts.mapper.bundle_adjustment
        ba.refine_focal_length = False
        ba.refine_principal_point = False
        ba.refine_extra_params = False
        ba.ceres.use_gpu = False
        return opts
    opts = pycolmap.IncrementalPipelineOptions()
    opts.random_seed = seed
    opts.num_threads = num_threads
    opts.ba_refine_focal_length = False
    opts.ba_refine_principal_point = False
    opts.ba_refine_extra_params = False
    return opts


def map_trial(
    image_dir: Path,
    features_db: Path,
    n_frames: int,
    work: Path,
    *,
    mapper: str = "global",
    seed: int = 0,
    num_threads: int = 1,
) -> SfmTrial:
    """Match and map one trial from a database holding the features; never raises for SfM failures."""
    import time

    pycolmap = _pycolmap()
    t0, c0 = time.perf_counter(), time.process_time()
    if mapper not in MAPPERS:
        raise ValueError(f"mapper must be one of {MAPPERS}, got {mapper!r}")
    work.mkdir(parents=True, exist_ok=True)
    database = work / "database.db"
    shutil.copyfile(features_db, database)
    pycolmap.set_random_seed(seed)

    def failed(reason: str) -> SfmTrial:
        return SfmTrial(seed, False, reason, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)

    try:
        match(database, seed, num_threads)
        opts = _mapper_options(mapper, seed, num_threads)
        out = work / "sparse"
        out.mkdir(exist_ok=True)
        if mapper == "global":
            models = pycolmap.global_mapping(database, image_dir, out, options=opts)
        else:
            models = pycolmap.incremental_mapping(database, image_dir, out, options=opts)
    except Exception as err:  # pycolmap raises RuntimeError/ValueError on degenerate input
        return failed(f"SfM error: {err}".splitlines()[0][:200])
    if not models:
        return failed("SfM built no model (too few matches)")
    rec = max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))
    w2c = np.full((n_frames, 4, 4), np.nan)
    registered = np.zeros(n_frames, dtype=bool)
    frame0 = None
    for image in rec.images.values():
        if not image.has_pose:
            continue
        i = int(Path(image.name).stem)
        w2c[i] = np.eye(4)
        w2c[i, :3, :] = image.cam_from_world().matrix()
        registered[i] = True
        if i == 0:
            frame0 = image
    n_reg = int(registered.sum())
    if frame0 is None:
        return failed(f"frame 0 not registered ({n_reg}/{n_frames} frames registered)")
    if n_reg < MIN_REGISTERED:
        return failed(f"only {n_reg}/{n_frames} frames registered")
    c2w = np.full_like(w2c, np.nan)
    c2w[registered] = cam.relative_poses(
        cam.w2c_to_c2w(w2c[registered]), reference=int(np.flatnonzero(np.flatnonzero(registered) == 0)[0])
    )
    # frame-0 observations: keypoint and depth of its 3D point in camera 0 (relative = SfM scale)
    uv, z = [], []
    for p2d in frame0.points2D:
        if p2d.has_point3D():
            xyz = rec.points3D[p2d.point3D_id].xyz
            zc = (w2c[0, :3, :3] @ xyz + w2c[0, :3, 3])[2]
            uv.append(np.asarray(p2d.xy, dtype=np.float64))
            z.append(zc)
    return SfmTrial(
        seed,
        True,
        "" if n_reg == n_frames else f"{n_frames - n_reg} frame(s) not registered",
        c2w,
        registered,
        int(rec.num_points3D()),
        time.perf_counter() - t0,
        time.process_time() - c0,
        np.asarray(uv).reshape(-1, 2),
        np.asarray(z, dtype=np.float64),
    )


def estimate_poses(
    frames: np.ndarray,
    k: np.ndarray,
    *,
    trials: int = 5,
    mapper: str = "global",
    seed: int = 0,
    num_threads: int = 1,
    work_dir: str | Path | None = None,
) -> list[SfmTrial]:
    """Run ``trials`` SfM trials on ``frames`` ``(F, H, W, 3)`` uint8 with pixel intrinsics ``k``.

    Trial ``t`` uses seed ``seed + t``. Every trial comes back (failed ones with a reason).
    """
    frames = np.asarray(frames)
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 3:
        k = k[0]
    n = len(frames)
    if n < MIN_REGISTERED:
        return [
            SfmTrial(seed + t, False, f"only {n} frame(s); SfM needs at least {MIN_REGISTERED}") for t in range(trials)
        ]
    with tempfile.TemporaryDirectory(prefix="realcam-sfm-", dir=work_dir) as tmp:
        tmp = Path(tmp)
        image_dir = tmp / "images"
        prepare_images(frames, image_dir)
        features = tmp / "features.db"
        try:
            extract(image_dir, features, k, num_threads)
        except Exception as err:
            reason = f"feature extraction failed: {err}".splitlines()[0][:200]
            return [SfmTrial(seed + t, False, reason) for t in range(trials)]
        return [
            map_trial(image_dir, features, n, tmp / f"trial{t}", mapper=mapper, seed=seed + t, num_threads=num_threads)
            for t in range(trials)
        ]
