"""The bad-input corpus (issue 22): every command attacked with bad input and faults.

Each case runs the command in-process (Typer's CliRunner, so a case costs milliseconds, not an
interpreter start) and asserts what the README promises: the exit status, exactly one
``error:`` line naming the file or option, no traceback, and no partial output. The cases are
grouped by stage in ``test_bad_*.py``; the runner and assertions are in ``corpus.py``, the shared
fixtures below.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def ds(tmp_path, synth_dataset) -> Path:
    """A private copy of the 2-clip synthetic dataset (128x128), free to corrupt."""
    out = tmp_path / "ds"
    shutil.copytree(synth_dataset, out)
    return out
