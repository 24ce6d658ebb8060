"""Artifacts on disk: atomic writes, Parquet tables, NPZ arrays, per-item status rows.

Every output appears whole or not at all: it is written to a temporary name in the same folder,
flushed, then renamed over the final name (``os.replace`` is atomic on one file system).
Batch stages share one status record per item (``item``, ``status``, ``reason``) and the rule
"skip what is done unless ``--overwrite``".
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import RealcamError

OK = "ok"
FAILED = "failed"
STATUS_COLUMNS = ["item", "status", "reason"]


# ----------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------
def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it is racy)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _public(path: Path, folder: bool = False) -> None:
    """Give a temporary file (0600) or folder (0700) the mode a plain create would have had
    under the user's umask (0644 / 0755 under umask 022), so outputs stay readable by others."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the real suffix (".x.tmp.mp4"): writers that infer the format from
    # the extension (ffmpeg, imageio, PIL) then write the right one.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    _public(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _public(tmp, folder=True)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


# ----------------------------------------------------------------------------------------------
# Tables (Parquet) and arrays (NPZ)
# ----------------------------------------------------------------------------------------------
def write_table(path: str | Path, table: pd.DataFrame | pa.Table) -> Path:
    """Write a Parquet table atomically (pandas frames keep no index)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_table(path: str | Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a Parquet table; a missing file or missing columns is a ``RealcamError``."""
    path = Path(path)
    if not path.exists():
        raise RealcamError("no such table", path)
    try:
        df = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as err:
        raise RealcamError(f"not a readable Parquet table ({err})", path) from None
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise RealcamError(f"table lacks column(s) {', '.join(missing)}", path)
    return df


def write_arrays(path: str | Path, compress: bool = True, **arrays: np.ndarray) -> Path:
    """Write arrays to an NPZ file atomically."""
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def read_arrays(path: str | Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read every array of an NPZ file into memory; missing keys are a ``RealcamError``."""
    path = Path(path)
    if not path.exists():
        raise RealcamError("no such array file", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except Exception as err:  # numpy's text (about pickles, for any non-NPZ file) would mislead
        if isinstance(err, ValueError) and "Object arrays" in str(err):
            raise RealcamError(
                "holds arrays of Python objects, which are not read (numbers and strings only)", path
            ) from None
        what = (
            f"cannot read it: {err.strerror}"
            if isinstance(err, OSError) and err.strerror
            else "damaged, or not a NumPy .npz archive"
        )
        raise RealcamError(f"not a readable NPZ file ({what})", path) from None
    if keys is not None:
        missing = [k for k in keys if k not in out]
        if missing:
            raise RealcamError(f"array file lacks key(s) {', '.join(missing)}", path)
    return out


# ----------------------------------------------------------------------------------------------
# Per-item status and the skip rule
# ----------------------------------------------------------------------------------------------
@dataclass
class ItemStatus:
    """One row of a batch stage's status table."""

    item: str
    status: str = OK
    reason: str = ""

    @classmethod
    def failed(cls, item: str, reason: str) -> "ItemStatus":
        return cls(item, FAILED, reason)


def status_frame(rows: Iterable[ItemStatus | dict]) -> pd.DataFrame:
    rows = [asdict(r) if isinstance(r, ItemStatus) else dict(r) for r in rows]
    df = pd.DataFrame(rows)
    for col in STATUS_COLUMNS:
        if col not in df.columns:
            df[col] = pd.Series(dtype=str)
    return df


def merge_rows(
    old: pd.DataFrame | None, new: pd.DataFrame, key: str = "item", replace: Iterable[str] | None = None
) -> pd.DataFrame:
    """Rows of ``new`` replace rows of ``old`` with the same key; the rest of ``old`` is kept.

    ``replace``: the keys (as strings) whose old rows go, whether or not ``new`` has rows for them
    (an item redone without rows in this table, as a failed clip has no frame rows)."""
    if old is None or old.empty:
        return new.reset_index(drop=True)
    if replace is None:
        if new.empty:
            return old.reset_index(drop=True)
        kept = old[~old[key].isin(set(new[key]))]
    else:
        kept = old[~old[key].astype(str).isin(set(replace))]
        if kept.empty:
            return new.reset_index(drop=True)
    if new.empty:  # an empty frame's object columns would turn every column it meets into object
        return kept.reset_index(drop=True)
    return pd.concat([kept, new], ignore_index=True)


def done_items(table_path: str | Path, key: str = "item") -> set[str]:
    """Items recorded as ``ok`` in an existing status table (empty when there is none)."""
    path = Path(table_path)
    if not path.exists():
        return set()
    df = read_table(path)
    if key not in df.columns or "status" not in df.columns:
        return set()
    return set(df.loc[df["status"] == OK, key].astype(str))


def should_skip(item: str, done: set[str], outputs: Iterable[str | Path], overwrite: bool) -> bool:
    """Skip an item recorded as done whose outputs all exist, unless ``overwrite``."""
    return (not overwrite) and item in done and all(Path(p).exists() for p in outputs)


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_record(path: str | Path, fmt: str, what: str) -> dict:
    """A run record (JSON object with ``"format": fmt``) written by a stage named ``what``; else one
    line naming the file."""
    import json

    path = Path(path)
    if not path.is_file():
        raise RealcamError("no such record", path)
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RealcamError(f"invalid JSON: {err.msg}", path, err.lineno) from None
    if not isinstance(record, dict) or record.get("format") != fmt:
        raise RealcamError(f"not a {what} record (format {fmt})", path)
    return record


def path_spec(spec) -> str | None:
    """A path-or-id argument for a record: local paths absolute, Hub ids as given."""
    if spec is None:
        return None
    return str(Path(spec).resolve()) if Path(spec).exists() else str(spec)


def file_entries(paths) -> list[dict]:
    """``[{"path", "sha256"}]`` of files a record depends on (absolute paths)."""
    return [{"path": str(Path(p).resolve()), "sha256": sha256_file(p)} for p in paths]


def write_record(out: Path, record: dict) -> Path:
    """The record of a generated ``out`` as ``<out stem>.json``, atomically."""
    import json

    path = Path(out).with_suffix(".json")
    atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return path


def check_record_files(record_path, inputs: dict, files: list[dict]) -> None:
    """Before a record is run again: every input ``{path: sha256}`` that still exists is unchanged,
    every model file (:func:`file_entries`) exists and is unchanged; else one line naming it."""
    for p, sha in inputs.items():
        if sha and p and Path(p).is_file() and sha256_file(p) != sha:
            raise RealcamError(f"{p} changed since the record was written (sha256 differs)", record_path)
    for entry in files:
        p = Path(entry["path"])
        if not p.is_file() or sha256_file(p) != entry["sha256"]:
            raise RealcamError(f"model file {p} is missing or changed since the record", record_path)
