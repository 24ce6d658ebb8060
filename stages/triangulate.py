"""``triangulate``: SfM points of each clip with its poses and intrinsics held fixed (pycolmap).

Per clip: a COLMAP database, SIFT features with the clip's intrinsics fixed (PINHOLE, pixels from
the normalised file intrinsics at the frames' size), sequential matching (``overlap`` neighbours),
a reconstruction holding the file's poses fixed, and point triangulation. Written per clip under
``OUT/<clip_id>/``: ``sparse/`` (the COLMAP model), ``points.parquet`` (point, x, y, z, error,
track_length), ``observations.parquet`` (point, frame, timestamp, u, v; pixel centres at +0.5, as
COLMAP), ``cameras.txt`` (the poses used, RealEstate10K text) and ``clip.json`` (frame size and
counts). ``OUT/status.parquet`` (``status.shard-I-of-N.parquet`` for a shard) has one row per clip.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .core import cameras as cam
from .core.artifacts import FAILED, OK, atomic_dir, merge_rows, read_table, write_table
from .core.dataset import Clip, find_clips, shard
from .core.errors import RealcamError

STATUS_COLUMNS = ["item", "status", "reason", "n_frames", "n_points", "n_observations", "mean_error",
                  "width", "height", "seconds"]
CLIP_OUTPUTS = ("points.parquet", "observations.parquet", "cameras.txt", "clip.json")


@dataclass
class TriangulateOptions:
    overlap: int = 10  # sequential matching: each frame with its next ``overlap`` frames
    max_num_features: int = 8192
    min_matches: int = 15  # verified matches needed over the whole clip
    min_points: int = 10  # triangulated points needed for a usable clip
    num_threads: int = -1


def status_name(shard_spec: str | None) -> str:
    if not shard_spec:
        return "status.parquet"
    i, n = shard_spec.split("/")
    return f"status.shard-{i}-of-{n}.parquet"


def _quiet_colmap() -> None:
    import pycolmap

    pycolmap.logging.minloglevel = 2  # warnings and errors only
    pycolmap.logging.logtostderr = False


def clip_frames(cams: cam.CameraFile, frames_dir: Path) -> tuple[list[str], tuple[int, int]]:
    """Frame file names in camera-file order and their common size ``(W, H)``; checks they exist."""
    from PIL import Image, UnidentifiedImageError

    if not frames_dir.is_dir():
        raise RealcamError("no frames folder", frames_dir)
    names, sizes = [], set()
    for ts in cams.timestamps:
        hits = [frames_dir / f"{ts}{ext}" for ext in (".png", ".jpg", ".jpeg")]
        path = next((h for h in hits if h.exists()), None)
        if path is None:
            raise RealcamError(f"missing frame {ts} (no {ts}.png or .jpg)", frames_dir)
        try:
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:
                sizes.add(im.size)
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise RealcamError(f"unreadable frame ({err.__class__.__name__})", path) from None
        names.append(path.name)
    if len(sizes) != 1:
        raise RealcamError(f"frames differ in size: {sorted(sizes)}", frames_dir)
    return names, sizes.pop()


def triangulate_fixed(cams: cam.CameraFile, image_dir: Path, names: list[str], size: tuple[int, int],
                      work: Path, opts: TriangulateOptions):
    """The bare pycolmap calls: features, matching, fixed-pose reconstruction, triangulation.

    Returns the triangulated ``pycolmap.Reconstruction`` (also written to ``work/sparse``) and the
    number of verified matches.
    """
    import pycolmap

    width, height = size
    db_path = work / "database.db"
    k = cam.denormalize_intrinsics(cams.intrinsics, width, height)  # (F, 3, 3)
    same = np.allclose(cams.intrinsics, cams.intrinsics[0], rtol=0, atol=1e-12)
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    reader.camera_params = ",".join(repr(float(v)) for v in (k[0, 0, 0], k[0, 1, 1], k[0, 0, 2], k[0, 1, 2]))
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = opts.num_threads
    extraction.sift.max_num_features = opts.max_num_features
    mode = pycolmap.CameraMode.SINGLE if same else pycolmap.CameraMode.PER_IMAGE
    pycolmap.extract_features(db_path, image_dir, image_names=names, camera_mode=mode,
                              reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = opts.num_threads
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = opts.overlap
    pairing.quadratic_overlap = False
    pycolmap.match_sequential(db_path, matching_options=matching, pairing_options=pairing,
                              device=pycolmap.Device.cpu)
    frame_of = {n: i for i, n in enumerate(names)}
    rec = pycolmap.Reconstruction()
    db = pycolmap.Database.open(db_path)
    try:
        n_matches = sum(int(tvg.inlier_matches.shape[0]) for _, tvg in zip(*db.read_two_view_geometries()))
        images = db.read_all_images()
        cameras = {c.camera_id: c for c in db.read_all_cameras()}
        if not same:  # one camera per image: its own intrinsics from the file
            for im in images:
                kk = k[frame_of[im.name]]
                c = cameras[im.camera_id]
                c.params = [kk[0, 0], kk[1, 1], kk[0, 2], kk[1, 2]]
                db.update_camera(c)
    finally:
        db.close()
    for c in cameras.values():
        rec.add_camera_with_trivial_rig(c)
    for im in images:
        w2c = cams.w2c[frame_of[im.name]]
        rec.add_image_with_trivial_frame(im, pycolmap.Rigid3d(pycolmap.Rotation3d(w2c[:3, :3]), w2c[:3, 3]))
    sparse = work / "sparse"
    sparse.mkdir(exist_ok=True)
    if n_matches == 0:
        return rec, 0
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = opts.num_threads
    rec = pycolmap.triangulate_points(rec, db_path, image_dir, sparse, clear_points=True, options=options,
                                      refine_intrinsics=False)
    return rec, n_matches


def reconstruction_tables(rec, names: list[str], timestamps: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``points`` and ``observations`` tables of a triangulated reconstruction."""
    frame_of = {n: i for i, n in enumerate(names)}
    img_frame = {iid: frame_of[im.name] for iid, im in rec.images.items()}
    pts, obs = [], []
    for pid, p in rec.points3D.items():
        x, y, z = (float(v) for v in p.xyz)
        pts.append((pid, x, y, z, float(p.error), p.track.length()))
        for el in p.track.elements:
            frame = img_frame[el.image_id]
            u, v = rec.image(el.image_id).points2D[el.point2D_idx].xy
            obs.append((pid, frame, int(timestamps[frame]), float(u), float(v)))
    points = pd.DataFrame(pts, columns=["point", "x", "y", "z", "error", "track_length"])
    observations = pd.DataFrame(obs, columns=["point", "frame", "timestamp", "u", "v"])
    points = points.astype({"point": np.int64, "track_length": np.int64})
    observations = observations.astype({"point": np.int64, "frame": np.int64, "timestamp": np.int64})
    return points.sort_values("point", ignore_index=True), observations.sort_values(
        ["point", "frame"], ignore_index=True)


def triangulate_clip(clip: Clip, out: str | Path, opts: TriangulateOptions | None = None) -> dict:
    """One clip end to end; returns its status row (never raises for a bad clip)."""
    opts = opts or TriangulateOptions()
    out = Path(out)
    t0 = time.perf_counter()
    row = {"item": clip.clip_id, "status": OK, "reason": "", "n_frames": 0, "n_points": 0,
           "n_observations": 0, "mean_error": float("nan"), "width": 0, "height": 0, "seconds": 0.0}
    try:
        _quiet_colmap()
        cams = cam.read_re10k(clip.camera_path)
        row["n_frames"] = len(cams)
        if len(cams) < 2:
            raise RealcamError("needs at least 2 frames", clip.camera_path)
        names, size = clip_frames(cams, clip.frames_dir)
        row["width"], row["height"] = size
        with atomic_dir(out / clip.clip_id) as tmp:
            scratch = Path(tempfile.mkdtemp(prefix="colmap.", dir=tmp.parent))
            try:
                rec, n_matches = triangulate_fixed(cams, clip.frames_dir, names, size, scratch, opts)
                if n_matches < opts.min_matches:
                    raise RealcamError(f"too few matches ({n_matches} < {opts.min_matches})")
                if rec.num_points3D() < opts.min_points:
                    raise RealcamError(f"triangulation is empty or too small ({rec.num_points3D()} points "
                                       f"< {opts.min_points})")
                shutil.move(str(scratch / "sparse"), tmp / "sparse")
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            points, observations = reconstruction_tables(rec, names, cams.timestamps)
            write_table(tmp / "points.parquet", points)
            write_table(tmp / "observations.parquet", observations)
            cam.write_re10k(tmp / "cameras.txt", cams)
            row.update(n_points=len(points), n_observations=len(observations),
                       mean_error=float(rec.compute_mean_reprojection_error()))
            (tmp / "clip.json").write_text(json.dumps({"clip_id": clip.clip_id, "width": size[0],
                                                       "height": size[1], "frames": names,
                                                       "n_matches": n_matches}))
    except RealcamError as err:
        row.update(status=FAILED, reason=str(err))
    except Exception as err:  # pycolmap raises bare RuntimeError/ValueError on broken inputs
        row.update(status=FAILED, reason=f"{err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    row["seconds"] = time.perf_counter() - t0
    return row


def _worker(args):
    clip, out, opts = args
    return triangulate_clip(clip, out, opts)


def run_triangulate(dataset: str | Path, out: str | Path, *, workers: int = 1, shard_spec: str | None = None,
                    overwrite: bool = False, opts: TriangulateOptions | None = None,
                    progress: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, int]:
    """Every clip of ``dataset`` (or of one shard): returns the status table and the number skipped."""
    opts = opts or TriangulateOptions()
    out = Path(out)
    if workers < 1:
        raise RealcamError(f"workers must be >= 1, got {workers}", "--workers")
    clips = shard(find_clips(dataset), shard_spec)
    status_path = out / status_name(shard_spec)
    old = read_table(status_path) if status_path.exists() else None
    done = set() if old is None else set(old.loc[old["status"] == OK, "item"].astype(str))
    todo, skipped = [], 0
    for c in clips:
        if not overwrite and c.clip_id in done and all((out / c.clip_id / f).exists() for f in CLIP_OUTPUTS):
            skipped += 1
            if progress:
                progress(f"{c.clip_id} (done)")
        else:
            todo.append(c)
    rows = []
    if workers == 1 or len(todo) <= 1:
        for c in todo:
            rows.append(triangulate_clip(c, out, opts))
            if progress:
                progress(c.clip_id)
    else:
        threads = opts.num_threads if opts.num_threads > 0 else max(1, (os.cpu_count() or 1) // workers)
        wopts = TriangulateOptions(**{**opts.__dict__, "num_threads": threads})
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_worker, (c, out, wopts)): c for c in todo}
            for fut in as_completed(futures):
                rows.append(fut.result())
                if progress:
                    progress(futures[fut].clip_id)
    new = pd.DataFrame(rows, columns=STATUS_COLUMNS)
    table = merge_rows(old, new, key="item").sort_values("item", ignore_index=True)
    write_table(status_path, table)
    return table, skipped


def read_status_tables(sfm_dir: str | Path) -> pd.DataFrame:
    """All status tables of a triangulation folder (shards included), one row per clip."""
    frames = [read_table(p) for p in sorted(Path(sfm_dir).glob("status*.parquet"))]
    if not frames:
        return pd.DataFrame(columns=STATUS_COLUMNS)
    return pd.concat(frames, ignore_index=True).drop_duplicates("item", keep="last")
