"""Input validation shared by every stage: option values, input paths, output paths, OS errors.

Each check raises :class:`RealcamError` naming the option or file and what is wrong, so that the
CLI prints one line and exits 2 **before** any work is done or anything is written. Stages call
these at the top of their entry points (the library API is checked too, not only the CLI).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from pathlib import Path
from typing import Iterable, Iterator

from .errors import RealcamError


# ----------------------------------------------------------------------------------------------
# Numbers
# ----------------------------------------------------------------------------------------------
def number(
    value,
    option: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> float:
    """A finite number within bounds (``minimum``/``maximum`` inclusive, ``above``/``below``
    exclusive); returns it as a float."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise RealcamError(f"must be a number, got {value!r}", option) from None
    if not math.isfinite(x):
        raise RealcamError(f"must be a finite number, got {value}", option)
    if minimum is not None and x < minimum:
        raise RealcamError(f"must be at least {minimum:g}, got {value}", option)
    if maximum is not None and x > maximum:
        raise RealcamError(f"must be at most {maximum:g}, got {value}", option)
    if above is not None and x <= above:
        raise RealcamError(f"must be greater than {above:g}, got {value}", option)
    if below is not None and x >= below:
        raise RealcamError(f"must be less than {below:g}, got {value}", option)
    return x


def integer(value, option: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number within inclusive bounds."""
    if isinstance(value, bool):
        raise RealcamError(f"must be an integer, got {value!r}", option)
    try:
        x = int(value)
    except (TypeError, ValueError, OverflowError):
        raise RealcamError(f"must be an integer, got {value!r}", option) from None
    if isinstance(value, float) and value != x:
        raise RealcamError(f"must be an integer, got {value!r}", option)
    if minimum is not None and x < minimum:
        raise RealcamError(f"must be at least {minimum}, got {value}", option)
    if maximum is not None and x > maximum:
        raise RealcamError(f"must be at most {maximum}, got {value}", option)
    return x


def choice(value, option: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise RealcamError(f"must be one of {', '.join(choices)}, got {value!r}", option)
    return value


# ----------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------
def input_file(path, what: str = "file") -> Path:
    """An existing, readable regular file."""
    if path is None:
        raise RealcamError(f"no {what} given")
    p = Path(path)
    if not p.exists():
        raise RealcamError(f"no such {what}", p)
    if p.is_dir():
        raise RealcamError(f"is a folder, expected a {what}", p)
    if not os.access(p, os.R_OK):
        raise RealcamError(f"cannot read the {what} (permission denied)", p)
    return p


def input_dir(path, what: str = "folder") -> Path:
    """An existing folder."""
    if path is None:
        raise RealcamError(f"no {what} given")
    p = Path(path)
    if not p.exists():
        raise RealcamError(f"no such {what}", p)
    if not p.is_dir():
        raise RealcamError(f"is a file, expected a {what}", p)
    return p


def _probe(folder: Path, p: Path) -> None:
    """Create and remove a file in ``folder``: permission bits do not stop root, a read-only mount
    or a full disk does, and only trying tells."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=".realcam-probe.", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise RealcamError(f"cannot write in {folder}: {err.strerror or err}", p) from None


def _writable_parent(p: Path) -> None:
    """The nearest existing ancestor of ``p`` must be a folder we may create entries in."""
    parent = p.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise RealcamError(f"cannot create it: {parent} is a file, not a folder", p)
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise RealcamError(f"cannot write in {parent} (permission denied)", p)
    if parent.exists() and parent == p.parent:
        _probe(parent, p)


def output_file(path, option: str = "--out", suffixes: Iterable[str] | None = None) -> Path:
    """A file we may write: not an existing folder, its folder creatable and writable; with
    ``suffixes``, one of those extensions."""
    if path is None:
        raise RealcamError("no output file given", option)
    p = Path(path)
    if p.is_dir():
        raise RealcamError("is a folder; the output is a file", p)
    if suffixes is not None:
        suffixes = tuple(s.lower() for s in suffixes)
        if p.suffix.lower() not in suffixes:
            raise RealcamError(f"the output must be a {' or '.join(suffixes)} file", p)
    _writable_parent(p)
    return p


def output_dir(path, option: str = "--out") -> Path:
    """A folder we may write into: not an existing file, creatable and writable."""
    if path is None:
        raise RealcamError("no output folder given", option)
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise RealcamError("exists and is a file; the output is a folder", p)
    if p.exists():
        if not os.access(p, os.W_OK | os.X_OK):
            raise RealcamError("cannot write in the output folder (permission denied)", p)
        _probe(p, p)
    else:
        _writable_parent(p)
    return p


# ----------------------------------------------------------------------------------------------
# OS errors while writing
# ----------------------------------------------------------------------------------------------
def os_error_message(err: OSError) -> str:
    """``strerror`` of an OSError, with a hint for the usual causes."""
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        reason += " (the disk is full)"
    elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason += " (the output location is not writable)"
    return f"cannot write: {reason}"


@contextlib.contextmanager
def writing(path=None) -> Iterator[None]:
    """Turn an OSError raised while writing into a RealcamError naming the file."""
    try:
        yield
    except OSError as err:
        raise RealcamError(os_error_message(err), err.filename or path) from None
