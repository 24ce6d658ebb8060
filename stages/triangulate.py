"""``triangulate``: SfM points of each clip with its poses and intrinsics held fixed (pycolmap).

Per clip: a COLMAP database, SIFT features with the clip's intrinsics fixed (PINHOLE, pixels from
the normalised file intrinsics at the frames' size), sequential matching (``overlap`` neighbours),
a reconstruction holding the file's poses fixed, and point triangulation. Written per clip under
``OUT/<clip_id>/``: ``sparse/`` (the COLMAP model), ``points.parquet`` (point, x, y, z, error,
track_length), ``observations.parquet`` (point, frame, timestamp, u, v; pixel centres at +0.5, as
COLMAP), ``cameras.txt`` (the poses used, RealEstate10K text) and ``clip.json`` (frame size and
counts). ``OUT/status.parquet`` (``status.shard-I-of-N.parquet`` for a shard) has one row per clip;
it is updated (atomically) as each clip finishes, so an interrupted run keeps its finished clips.

Reproducible: every random choice of pycolmap is seeded (``seed``) and each clip runs on one thread
(parallelism comes from ``workers``, clips in parallel), so a clip gives the same points whatever
the run, the worker or the other clips. Scratch (the COLMAP database) lives inside the clip's
temporary folder ``OUT/.<clip_id>.XXXXXXXX.tmp``; the scratch a killed run left behind for this
run's clips is removed at start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .core import cameras as cam
from .core import checks
from .core.artifacts import FAILED, OK, atomic_dir, read_table, write_table
from .core.batch import BatchTask, run_batch
from .core.dataset import Clip, find_clips, frame_file, shard, shard_table
from .core.errors import RealcamError
from .settings import BatchSettings, TriangulateOptions

STATUS_COLUMNS = [
    "item",
    "status",
    "reason",
    "n_frames",
    "n_points",
    "n_observations",
    "mean_error",
    "width",
    "height",
    "seconds",
]
STATUS_TABLE = "status.parquet"
CLIP_OUTPUTS = ("points.parquet", "observations.parquet", "cameras.txt", "clip.json")


#: pycolmap takes these options as C ``int``.
_C_INT_MAX = 2**31 - 1


def read_clip_json(path: str | Path) -> dict:
    """A clip's ``clip.json`` (frame size and counts); anything wrong names the file."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise RealcamError("no such file (the clip was not triangulated)", path) from None
    except json.JSONDecodeError as err:
        raise RealcamError(f"invalid JSON: {err.msg}", path, err.lineno) from None
    except (OSError, UnicodeDecodeError) as err:
        raise RealcamError(f"cannot read ({err.__class__.__name__})", path) from None
    if not isinstance(meta, dict):
        raise RealcamError("expected a JSON object", path)
    for key in ("width", "height"):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise RealcamError(f"{key!r} must be a positive integer, got {v!r}", path)
    return meta


def _quiet_colmap() -> None:
    import pycolmap

    pycolmap.logging.minloglevel = 2  # warnings and errors only
    pycolmap.logging.logtostderr = False


def clip_frames(cams: cam.CameraFile, frames_dir: Path) -> tuple[list[str], tuple[int, int]]:
    """Frame file names in camera-file order and their common size ``(W, H)``; checks they exist."""
    from PIL import Image, UnidentifiedImageError

    names, sizes = [], set()
    for ts in cams.timestamps:
        path = frame_file(frames_dir, int(ts))
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


def clip_images(clip: Clip, cams: cam.CameraFile, scratch: Path) -> tuple[Path, list[str], tuple[int, int]]:
    """The clip's frames as image files for COLMAP: its frame folder, or its clip video decoded at
    the camera timestamps into ``scratch/images`` as lossless PNG (the same pixels either way).
    Returns the folder, the file names in camera-file order and the common size ``(W, H)``."""
    if clip.video is None:
        names, size = clip_frames(cams, clip.frames_dir)
        return clip.frames_dir, names, size
    from PIL import Image

    frames = clip.read_frames(cams.timestamps)
    sizes = {f.shape[1::-1] for f in frames}
    if len(sizes) != 1:
        raise RealcamError(f"frames differ in size: {sorted(sizes)}", clip.video)
    folder = scratch / "images"
    folder.mkdir()
    names = [f"{int(ts)}.png" for ts in cams.timestamps]
    for name, frame in zip(names, frames):
        Image.fromarray(frame).save(folder / name, compress_level=1)
    return folder, names, sizes.pop()


def triangulate_fixed(
    cams: cam.CameraFile, image_dir: Path, names: list[str], size: tuple[int, int], work: Path, opts: TriangulateOptions
):
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
    pycolmap.set_random_seed(opts.seed)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = opts.num_threads
    extraction.use_gpu = False
    extraction.sift.max_num_features = opts.max_num_features
    mode = pycolmap.CameraMode.SINGLE if same else pycolmap.CameraMode.PER_IMAGE
    pycolmap.extract_features(
        db_path,
        image_dir,
        image_names=names,
        camera_mode=mode,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = opts.num_threads
    matching.use_gpu = False
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = opts.overlap
    pairing.quadratic_overlap = False
    pairing.num_threads = opts.num_threads
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = opts.seed
    pycolmap.set_random_seed(opts.seed)
    pycolmap.match_sequential(
        db_path,
        matching_options=matching,
        pairing_options=pairing,
        verification_options=verification,
        device=pycolmap.Device.cpu,
    )
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
    options.mapper.num_threads = opts.num_threads
    options.random_seed = options.mapper.random_seed = options.triangulation.random_seed = opts.seed
    options.ba_use_gpu = False
    pycolmap.set_random_seed(opts.seed)
    rec = pycolmap.triangulate_points(
        rec, db_path, image_dir, sparse, clear_points=True, options=options, refine_intrinsics=False
    )
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
        ["point", "frame"], ignore_index=True
    )


def _empty_row(clip_id: str) -> dict:
    return {
        "item": clip_id,
        "status": OK,
        "reason": "",
        "n_frames": 0,
        "n_points": 0,
        "n_observations": 0,
        "mean_error": float("nan"),
        "width": 0,
        "height": 0,
        "seconds": 0.0,
    }


def triangulate_clip(clip: Clip, out: str | Path, opts: TriangulateOptions | None = None) -> dict:
    """One clip end to end; returns its status row (never raises for a bad clip)."""
    opts = (opts or TriangulateOptions()).check()
    out = Path(out)
    t0 = time.perf_counter()
    row = _empty_row(clip.clip_id)
    try:
        _quiet_colmap()
        cams = cam.read_re10k(clip.camera_path)
        row["n_frames"] = len(cams)
        if len(cams) < 2:
            raise RealcamError("needs at least 2 frames", clip.camera_path)
        with atomic_dir(out / clip.clip_id) as tmp:
            scratch = tmp / ".colmap"  # inside the clip's temporary folder: it goes with it
            scratch.mkdir()
            image_dir, names, size = clip_images(clip, cams, scratch)
            row["width"], row["height"] = size
            if not np.isfinite(cam.denormalize_intrinsics(cams.intrinsics, *size)).all():
                raise RealcamError(f"intrinsics overflow at the frames' size {size[0]}x{size[1]}", clip.camera_path)
            rec, n_matches = triangulate_fixed(cams, image_dir, names, size, scratch, opts)
            if n_matches < opts.min_matches:
                raise RealcamError(f"too few matches ({n_matches} < {opts.min_matches})")
            if rec.num_points3D() < opts.min_points:
                raise RealcamError(
                    f"triangulation is empty or too small ({rec.num_points3D()} points < {opts.min_points})"
                )
            shutil.move(str(scratch / "sparse"), tmp / "sparse")
            shutil.rmtree(scratch)
            points, observations = reconstruction_tables(rec, names, cams.timestamps)
            write_table(tmp / "points.parquet", points)
            write_table(tmp / "observations.parquet", observations)
            cam.write_re10k(tmp / "cameras.txt", cams)
            row.update(
                n_points=len(points),
                n_observations=len(observations),
                mean_error=float(rec.compute_mean_reprojection_error()),
            )
            (tmp / "clip.json").write_text(
                json.dumps(
                    {
                        "clip_id": clip.clip_id,
                        "width": size[0],
                        "height": size[1],
                        "frames": names,
                        "n_matches": n_matches,
                    }
                )
            )
    except RealcamError as err:
        row.update(status=FAILED, reason=str(err))
    except OSError as err:  # disk full, read-only output: this clip fails, the batch goes on
        name = str(err.filename or "")
        if name and not name.startswith(str(out)):  # an input we could not read
            row.update(status=FAILED, reason=f"{name}: cannot read: {err.strerror or err}")
        else:
            row.update(status=FAILED, reason=f"{out / clip.clip_id}: {checks.os_error_message(err)}")
    except Exception as err:  # pycolmap raises bare RuntimeError/ValueError on broken inputs
        row.update(status=FAILED, reason=f"{err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    row["seconds"] = time.perf_counter() - t0
    return row


#: Names of our scratch: atomic_dir's ``.<name>.XXXXXXXX.tmp`` (mkdtemp's 8 random characters) and
#: ``.<name>.old``, atomic_path's ``.<stem>.XXXXXXXX.tmp<suffix>``, older versions' ``colmap.XXXXXXXX``.
_TMP_DIR = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")
_OLD_DIR = re.compile(r"\.(?P<name>.+)\.old")
_TMP_FILE = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\.[^.]+)")
_LEGACY = re.compile(r"colmap\.[a-z0-9_]{8}")


def stale_scratch(out: Path, clip_ids, status_file: str | None = None, all_clip_ids=()) -> list[Path]:
    """Scratch a killed run left in ``out`` for ``clip_ids``: their temporary folders
    (``.<clip>.XXXXXXXX.tmp``) and replaced folders (``.<clip>.old``), temporary copies of
    ``status_file``, and COLMAP folders of older versions (``colmap.XXXXXXXX``, unless a clip of
    the dataset has that name). Only our own naming patterns, only in ``out``: another shard's
    clips, running at the same time in the same folder, are left alone."""
    if not out.is_dir():
        return []
    ours = set(clip_ids)
    names = ours | set(all_clip_ids)
    status = Path(status_file) if status_file else None
    stale = []
    for p in out.iterdir():
        if p.name in names:
            continue
        m = _TMP_DIR.fullmatch(p.name) or _OLD_DIR.fullmatch(p.name)
        if m and m["name"] in ours and p.is_dir():
            stale.append(p)
            continue
        m = _TMP_FILE.fullmatch(p.name)
        if m and status and m["name"] == status.stem and m["suffix"] == status.suffix and p.is_file():
            stale.append(p)
            continue
        if _LEGACY.fullmatch(p.name) and p.is_dir():
            stale.append(p)
    return sorted(stale)


def _remove_scratch(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                p.unlink()
            except OSError:
                pass


@dataclass
class TriangulateTask(BatchTask):
    """``triangulate`` in the batch engine: one clip in, its status row out."""

    out: Path
    opts: TriangulateOptions
    tables = {"status": STATUS_COLUMNS}
    key = "item"

    def key_of(self, clip: Clip) -> str:
        return clip.clip_id

    def outputs(self, clip: Clip) -> list[Path]:
        return [self.out / clip.clip_id / f for f in CLIP_OUTPUTS]

    def run(self, clip: Clip) -> dict[str, list[dict]]:
        return {"status": [triangulate_clip(clip, self.out, self.opts)]}

    def failed(self, clip: Clip, reason: str) -> dict[str, list[dict]]:
        return {"status": [{**_empty_row(clip.clip_id), "status": FAILED, "reason": reason}]}

    def after_death(self, clip: Clip) -> None:
        _remove_scratch(stale_scratch(self.out, [clip.clip_id]))  # what the dead worker left


def run_triangulate(
    dataset: str | Path,
    out: str | Path,
    *,
    batch: BatchSettings | None = None,
    opts: TriangulateOptions | None = None,
    progress: Callable[[str], None] | None = None,
    **overrides,
) -> tuple[pd.DataFrame, int]:
    """Every clip of ``dataset`` (or of one shard): returns the status table and the number skipped.

    ``batch``: where and how the clips run (:class:`~stages.settings.BatchSettings`; ``overrides``
    are its fields: ``workers``, ``shard``, ``overwrite``, ``ray``, ...). Options, shard, dataset
    and output folder are checked before any work. Each clip's row is recorded as soon as the clip
    is done (an interrupted run keeps them); a clip whose worker process dies is retried, then a
    failed row.
    """
    opts = (opts or TriangulateOptions()).check()
    batch = replace(batch or BatchSettings(), **overrides).check()
    all_clips = find_clips(dataset)
    if not all_clips:
        raise RealcamError("no clips: the cameras/ folder holds no <clip_id>.txt files", Path(dataset) / "cameras")
    clips = shard(all_clips, batch.shard)
    out = checks.output_dir(out, "--out")
    status_path = out / shard_table(STATUS_TABLE, batch.shard)
    with checks.writing(out):  # an output that cannot be created fails now, before any clip
        out.mkdir(parents=True, exist_ok=True)
    _remove_scratch(stale_scratch(out, [c.clip_id for c in clips], status_path.name, [c.clip_id for c in all_clips]))
    if opts.num_threads == -1 and batch.workers > 1:  # "all cores": shared among the workers
        opts = replace(opts, num_threads=max(1, (os.cpu_count() or 1) // batch.workers))
    result = run_batch(TriangulateTask(out, opts), clips, {"status": status_path}, batch, progress)
    return result.tables["status"], result.skipped


def read_status_tables(sfm_dir: str | Path) -> pd.DataFrame:
    """All status tables of a triangulation folder (shards included), one row per clip."""
    frames = [read_table(p, ["item", "status", "reason"]) for p in sorted(Path(sfm_dir).glob("status*.parquet"))]
    if not frames:
        return pd.DataFrame(columns=STATUS_COLUMNS)
    return pd.concat(frames, ignore_index=True).drop_duplicates("item", keep="last")
