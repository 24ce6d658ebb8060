"""Shared runner and assertions of the bad-input corpus (imported by the test files as
``from corpus import run, assert_fails, assert_ok``; a module of its own name, since ``conftest``
is ambiguous between test folders)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from realcam_cli.app import app


def run(*args, input: str | None = None):
    """Run ``realcam ARGS`` in-process; returns click's Result (output = stdout + stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def assert_fails(result, *names, code: int = 2, absent=()) -> str:
    """The command failed cleanly: exit ``code``, no traceback, one ``error:`` line that contains
    every one of ``names`` (file names or options), and none of the paths in ``absent`` exists.
    Returns the error line."""
    out = result.output
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{out}\n{result.exception!r}"
    assert "Traceback" not in out, out
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}\n{out}")
    lines = error_lines(result)
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{out}"
    for name in names:
        assert str(name) in lines[0], f"{name!r} not named in: {lines[0]}"
    for path in absent:
        assert not Path(path).exists(), f"partial output left behind: {path}"
    return lines[0]


def assert_ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
