"""Shared fixtures: the bundled real inputs (copies of ../shared/data) and small synthetic scenes."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
POSE_FILES = sorted((DATA / "poses").glob("*.txt"))
IMAGE_FILES = sorted((DATA / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def pose_files() -> list[Path]:
    assert len(POSE_FILES) == 6
    return POSE_FILES


@pytest.fixture(scope="session")
def image_files() -> list[Path]:
    assert len(IMAGE_FILES) == 3
    return IMAGE_FILES


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory, pose_files, image_files) -> Path:
    """Two synthetic clips at 128x128 with known factors."""
    from stages.synth import synthesize

    out = tmp_path_factory.mktemp("synth")
    synthesize(pose_files[:2], out, random_scale=(0.1, 10.0), size=(128, 128),
               textures=image_files, seed=7)
    return out
