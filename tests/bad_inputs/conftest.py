"""The bad-input corpus (issue 22): every command attacked with bad input and faults.

Each case runs the command in-process (Typer's CliRunner, so a case costs milliseconds, not an
interpreter start) and asserts what the README promises: the exit status, exactly one
``error:`` line naming the file or option, no traceback, and no partial output. The cases are
grouped by stage in ``test_bad_*.py``; the fixtures below are shared.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from realcam_cli.app import app


class Failure(AssertionError):
    pass


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


@pytest.fixture
def ds(tmp_path, synth_dataset) -> Path:
    """A private copy of the 2-clip synthetic dataset (128x128), free to corrupt."""
    out = tmp_path / "ds"
    shutil.copytree(synth_dataset, out)
    return out
