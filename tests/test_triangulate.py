"""triangulate: dataset layout, shards, parallel workers, skip on re-run, kill -9 and resume."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    t0, _ = run_triangulate(small_dataset, out, shard="0/2")
    t1, _ = run_triangulate(small_dataset, out, shard="1/2")
    assert len(t0) == len(t1) == 1 and set(t0["item"]) != set(t1["item"])
    assert (out / "status.shard-0-of-2.parquet").exists() and (out / "status.shard-1-of-2.parquet").exists()
    both = read_status_tables(out)
    assert len(both) == 2 and (both["status"] == "ok").all()

    par, skipped = run_triangulate(small_dataset, tmp_path / "par", workers=2)
    assert skipped == 0 and (par["status"] == "ok").all()
    for clip in par["item"]:  # the same points in a shard or a worker (seeded, one thread per clip)
        for table in ("points", "observations"):
            a = pd.read_parquet(out / clip / f"{table}.parquet")
            b = pd.read_parquet(tmp_path / "par" / clip / f"{table}.parquet")
            pd.testing.assert_frame_equal(a, b)
        assert len(b := pd.read_parquet(out / clip / "points.parquet")) > 50
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
    res = runner.invoke(
        app, ["align-scale", "--depth", str(tmp_path), "--sfm", str(tmp_path), "--out", str(tmp_path / "s")]
    )
    assert res.exit_code == 2 and "no triangulated clips" in res.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def _status(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).drop(columns="seconds").sort_values("item", ignore_index=True)


def test_kill_9_mid_batch_then_rerun_resumes_exactly(synth_dataset, tmp_path):
    """Issue 22, defects 12 and 13: `triangulate` killed (SIGKILL) after its first clip, while the
    next one is in progress, keeps the finished clips; the re-run skips them, removes the killed
    run's scratch and ends with the same tables as an uninterrupted run, to the last bit. Clips c
    and d are copies of a and b: identical clips give identical points."""
    from typer.testing import CliRunner

    from realcam_cli.app import app

    ds = tmp_path / "ds"
    (ds / "cameras").mkdir(parents=True)
    sources = sorted(p.stem for p in (synth_dataset / "cameras").glob("*.txt"))
    for name, src in zip("abcd", sources * 2):
        lines = (synth_dataset / "cameras" / f"{src}.txt").read_text().splitlines()[:9]  # 8 frames
        (ds / "cameras" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        shutil.copytree(synth_dataset / "frames" / src, ds / "frames" / name)
    reference, _ = run_triangulate(ds, tmp_path / "reference")
    assert (reference["status"] == "ok").all()

    out = tmp_path / "sfm"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "realcam_cli", "triangulate", str(ds), "--out", str(out)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    scratch_at_kill = []
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                rows = len(pd.read_parquet(out / "status.parquet"))
            except (OSError, ValueError):
                rows = 0
            scratch_at_kill = [p.name for p in out.iterdir() if p.name.endswith(".tmp")] if out.is_dir() else []
            if rows >= 1 and scratch_at_kill:  # one clip recorded, the next one under way
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "triangulate ended before it could be killed"
    finished = pd.read_parquet(out / "status.parquet")
    assert 1 <= len(finished) < 4 and (finished["status"] == "ok").all()
    assert scratch_at_kill, "the kill did not land inside a clip"

    res = CliRunner().invoke(app, ["triangulate", str(ds), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"4 ok ({len(finished)} skipped as already done), 0 failed" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c", "d", "status.parquet"]  # no scratch
    pd.testing.assert_frame_equal(_status(out / "status.parquet"), _status(tmp_path / "reference" / "status.parquet"))
    for clip in "abcd":
        for table in ("points", "observations"):
            pd.testing.assert_frame_equal(
                pd.read_parquet(out / clip / f"{table}.parquet"),
                pd.read_parquet(tmp_path / "reference" / clip / f"{table}.parquet"),
            )
        for name in ("cameras.txt", "clip.json"):
            assert (out / clip / name).read_bytes() == (tmp_path / "reference" / clip / name).read_bytes()
    for a, b in (("a", "c"), ("b", "d")):
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / a / "points.parquet"), pd.read_parquet(out / b / "points.parquet")
        )
