"""Shared fixtures: the bundled real inputs (copies of ../shared/data) and small synthetic scenes."""

from __future__ import annotations

import os
from pathlib import Path

# Tiny models on 2 cores: one thread each is several times faster than two threads fighting,
# in this process and in the CLI subprocesses the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)

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
    synthesize(pose_files[:2], out, random_scale=(0.1, 10.0), size=(128, 128), textures=image_files, seed=7)
    return out


@pytest.fixture(scope="session")
def synth_video_dataset(tmp_path_factory, pose_files, image_files) -> Path:
    """The clips of ``synth_dataset`` stored as lossless clip videos (``videos/<clip>.mp4``)."""
    from stages.synth import synthesize

    out = tmp_path_factory.mktemp("synth_video")
    synthesize(
        pose_files[:2], out, random_scale=(0.1, 10.0), size=(128, 128), textures=image_files, seed=7, store="video"
    )
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory) -> Path:
    """A CLIP tokenizer folder with a toy vocabulary (unknown words become <|endoftext|>), so prompts
    and the official negative prompt tokenize offline; ids fit every model's vocabulary."""
    import json

    from transformers import CLIPTokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    vocab = {
        "<|startoftext|>": 0,
        "<|endoftext|>": 1,
        "a": 2,
        "b": 3,
        "a</w>": 4,
        "b</w>": 5,
        "ab</w>": 6,
        "blurry</w>": 7,
        "fast</w>": 8,
        ",</w>": 9,
        ".</w>": 10,
    }
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\na b</w>\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")
    tok.save_pretrained(folder)
    return folder
