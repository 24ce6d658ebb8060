"""triangulate: dataset layout, shards, parallel workers, skip on re-run."""

from __future__ import annotations

import pandas as pd
import pytest

from stages.core.dataset import find_clips, shard
from stages.core.errors import RealcamError
from stages.triangulate import read_status_tables, run_triangulate


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory, pose_files, image_files):
    """Two 6-frame clips at 128x128, under a split folder (cameras/train/, frames/train/)."""
    from stages.synth import synthesize

    base = tmp_path_factory.mktemp("tri")
    short = []
    for p in pose_files[2:4]:
        short.append(base / "poses" / p.name)
        short[-1].parent.mkdir(exist_ok=True)
        short[-1].write_text("\n".join(p.read_text().splitlines()[:7]) + "\n")
    flat = base / "flat"
    synthesize(short, flat, scale=2.0, size=(128, 128), textures=image_files, seed=5)
    root = base / "ds"
    for sub in ("cameras", "frames"):
        (root / sub).mkdir(parents=True)
        (flat / sub).rename(root / sub / "train")
    return root


def test_shard_is_a_partition():
    items = list(range(11))
    parts = [shard(items, f"{i}/3") for i in range(3)]
    assert sorted(sum(parts, [])) == items
    assert not set(parts[0]) & set(parts[1])
    assert shard(items, None) == items
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(RealcamError):
            shard(items, bad)


def test_find_clips_with_splits(small_dataset):
    clips = find_clips(small_dataset)
    assert [c.split for c in clips] == ["train", "train"]
    assert all(c.frames_dir.is_dir() and c.camera_path.exists() for c in clips)
    with pytest.raises(RealcamError, match="no cameras/ folder"):
        find_clips(small_dataset / "frames")


def test_shards_workers_and_skip(small_dataset, tmp_path):
    out = tmp_path / "sfm"
    t0, _ = run_triangulate(small_dataset, out, shard_spec="0/2")
    t1, _ = run_triangulate(small_dataset, out, shard_spec="1/2")
    assert len(t0) == len(t1) == 1 and set(t0["item"]) != set(t1["item"])
    assert (out / "status.shard-0-of-2.parquet").exists() and (out / "status.shard-1-of-2.parquet").exists()
    both = read_status_tables(out)
    assert len(both) == 2 and (both["status"] == "ok").all()

    par, skipped = run_triangulate(small_dataset, tmp_path / "par", workers=2)
    assert skipped == 0 and (par["status"] == "ok").all()
    for clip in par["item"]:  # about the same points in a shard or a worker (RANSAC is random)
        a = pd.read_parquet(out / clip / "points.parquet")
        b = pd.read_parquet(tmp_path / "par" / clip / "points.parquet")
        assert min(len(a), len(b)) > 50 and abs(len(a) - len(b)) <= 0.2 * len(a)
        assert (b["track_length"] >= 2).all() and (b["error"] < 4).all()
    again, skipped = run_triangulate(small_dataset, tmp_path / "par", workers=2)
    assert skipped == 2 and len(again) == 2


def test_cli_triangulate_and_filter_errors(tmp_path, small_dataset):
    from typer.testing import CliRunner

    from realcam_cli.app import app

    runner = CliRunner()
    res = runner.invoke(app, ["triangulate", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no such dataset folder" in res.output
    res = runner.invoke(app, ["triangulate", str(small_dataset), "--out", str(tmp_path / "o"), "--shard", "5/2"])
    assert res.exit_code == 2 and "--shard" in res.output
    res = runner.invoke(app, ["filter", str(tmp_path), "--cameras", str(small_dataset), "--out", str(tmp_path / "f")])
    assert res.exit_code == 2 and "clips.parquet: no such table" in res.output
    res = runner.invoke(app, ["align-scale", "--depth", str(tmp_path), "--sfm", str(tmp_path), "--out",
                              str(tmp_path / "s")])
    assert res.exit_code == 2 and "no triangulated clips" in res.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()
