"""The RealEstate10K dataset layout, as ``realcam synth`` writes it and the annotation stages read it.

``ROOT/cameras/<clip_id>.txt`` with ``ROOT/frames/<clip_id>/<timestamp_us>.png``; one level of
split nesting (``cameras/<split>/`` with ``frames/<split>/``) is accepted too. Clip ids are the
camera files' stems and must be unique across splits.
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
            frames = root / "frames" / split / f.stem if split else root / "frames" / f.stem
            clips[f.stem] = Clip(f.stem, f, frames, split)
    return [clips[k] for k in sorted(clips)]


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
