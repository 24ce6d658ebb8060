"""The library's error type: what the CLI turns into one red line and exit status 2."""

from __future__ import annotations

from pathlib import Path


class RealcamError(Exception):
    """A problem with the user's input (a bad file, a bad value), not a bug.

    ``source`` names the input (a file, optionally with a line number, or an option name);
    ``str(err)`` is the one line shown to the user: ``"<source>: <message>"``.
    """

    def __init__(self, message: str, source: str | Path | None = None, line: int | None = None):
        self.message = message
        self.source = None if source is None else str(source)
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = self.source or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}" if where else self.message
