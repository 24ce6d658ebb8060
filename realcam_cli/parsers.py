"""Parsers of option values shared by several commands (a bad value is one line naming the option)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from stages.core.errors import RealcamError


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> ``(W, H)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except (ValueError, OverflowError):
        raise RealcamError(f"expected WIDTHxHEIGHT such as 256x256, got {text!r}", "--size") from None
    return w, h


def parse_magnitude(text: Optional[str]) -> Optional[list[float]]:
    """``20`` or ``20,0.5`` (one value per preset part) -> floats."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise RealcamError(f"expected a number or two separated by a comma, got {text!r}", "--magnitude") from None


def expand_paths(paths: list[Path], suffixes: set[str], option: str) -> list[Path]:
    """Files as given, folders expanded to their files with one of ``suffixes``."""
    out = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in suffixes)
            if not found:
                raise RealcamError(f"folder holds no {'/'.join(sorted(suffixes))} files", p)
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise RealcamError(f"no such file or folder (given to {option})", p)
    return out
