"""The RealEstate10K dataset layout, as ``realcam fetch`` and ``realcam synth`` write it and the
annotation stages read it.

``ROOT/cameras/<clip_id>.txt`` with the clip's frames either as files,
``ROOT/frames/<clip_id>/<timestamp_us>.png`` (or ``.jpg``), or as one clip video,
``ROOT/videos/<clip_id>.mp4`` (exactly the clip's frames in camera-row order, presentation times =
the camera timestamps from the first; decoded at those timestamps). One level of split nesting
(``cameras/<split>/`` with ``frames/<split>/`` or ``videos/<split>/``) is accepted too. Clip ids
are the camera files' stems and must be unique across splits. A clip with both uses its frame
files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import RealcamError


@dataclass(frozen=True)
class Clip:
    clip_id: str
    camera_path: Path
    frames_dir: Path
    split: str = ""
    video_path: Path | None = None  # the clip video, where the clip's frames may be stored instead

    @property
    def video(self) -> Path | None:
        """The clip video that holds the frames: ``None`` when a frame folder exists (it wins) or
        no clip video does."""
        if self.frames_dir.is_dir() or self.video_path is None or not self.video_path.is_file():
            return None
        return self.video_path

    def read_frames(self, timestamps, rows=None) -> list:
        """RGB ``uint8`` frames at the given camera timestamps (all, or ``rows`` of them): frame
        files ``<timestamp>.png``/``.jpg`` or the clip video decoded at the timestamps; a missing or
        unreadable frame is a ``RealcamError`` naming it."""
        import numpy as np

        from .video import read_clip_video, read_image

        if self.video is not None:
            return read_clip_video(self.video, timestamps, rows)
        ts = np.asarray(timestamps, dtype=np.int64)
        idx = np.arange(len(ts)) if rows is None else np.asarray(rows, dtype=np.int64)
        return [read_image(frame_file(self.frames_dir, int(ts[i]))) for i in idx]


def clip_layout(root: str | Path, clip_id: str, split: str = "") -> Clip:
    """Where a clip's files are (or go) in a dataset root: ``cameras/[<split>/]<clip>.txt``,
    ``frames/[<split>/]<clip>/`` and ``videos/[<split>/]<clip>.mp4``."""
    root = Path(root)
    return Clip(
        clip_id,
        root / "cameras" / split / f"{clip_id}.txt",
        root / "frames" / split / clip_id,
        split,
        root / "videos" / split / f"{clip_id}.mp4",
    )


def find_clips(root: str | Path) -> list[Clip]:
    """Every clip of a dataset root, sorted by clip id (the order every stage and shard uses)."""
    root = Path(root)
    if not root.is_dir():
        raise RealcamError("no such dataset folder", root)
    cam_root = root / "cameras"
    if not cam_root.is_dir():
        raise RealcamError("not a dataset: no cameras/ folder", root)
    clips: dict[str, Clip] = {}
    for split_dir in [cam_root] + sorted(p for p in cam_root.iterdir() if p.is_dir()):
        split = "" if split_dir == cam_root else split_dir.name
        for f in sorted(split_dir.glob("*.txt")):
            if f.stem in clips:
                raise RealcamError(f"clip id {f.stem} appears in two splits", f)
            clips[f.stem] = clip_layout(root, f.stem, split)
    return [clips[k] for k in sorted(clips)]


#: Frame file suffixes the dataset layout accepts, in the order they are looked for.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def frame_file(frames_dir: Path, timestamp: int) -> Path:
    """The frame file of one camera timestamp, ``<timestamp>.png`` (or ``.jpg``); a
    ``RealcamError`` when there is none."""
    for ext in FRAME_SUFFIXES:
        path = frames_dir / f"{timestamp}{ext}"
        if path.exists():
            return path
    if not frames_dir.is_dir():
        raise RealcamError("no frames folder", frames_dir)
    raise RealcamError(f"missing frame {timestamp} (no {timestamp}.png or .jpg)", frames_dir)


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"I/N"`` as ``(I, N)`` with ``0 <= I < N`` (``None`` for no shard); else a ``RealcamError``."""
    if not spec:
        return None
    try:
        i, n = (int(v) for v in str(spec).split("/"))
    except ValueError:
        raise RealcamError(f"expected I/N such as 0/4, got {spec!r}", "--shard") from None
    if n < 1 or not 0 <= i < n:
        raise RealcamError(f"shard index must satisfy 0 <= I < N, got {spec!r}", "--shard")
    return i, n


def shard_table(table: str, spec: str | None) -> str:
    """The table a run writes: ``name.parquet`` for the whole run, ``name.shard-I-of-N.parquet``
    for shard ``I/N`` (shards write side by side into one folder)."""
    parsed = parse_shard(spec)
    if parsed is None:
        return table
    stem, suffix = table.rsplit(".", 1)
    return f"{stem}.shard-{parsed[0]}-of-{parsed[1]}.{suffix}"


def shard_tables(folder: str | Path, table: str) -> list[Path]:
    """Every shard's copy of ``table`` in ``folder`` (``name.shard-*.parquet``), in name order."""
    stem, suffix = table.rsplit(".", 1)
    return sorted(Path(folder).glob(f"{stem}.shard-*.{suffix}"))


def shard(items: list, spec: str | None) -> list:
    """The ``I/N`` slice of ``items`` (``I`` counted from 0): every ``N``-th item from ``I``.

    The N slices are disjoint and together cover ``items``.
    """
    parsed = parse_shard(spec)
    if parsed is None:
        return list(items)
    i, n = parsed
    return list(items[i::n])
