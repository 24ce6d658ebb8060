"""`realcam annotate`: the four annotation stages as one pipeline give the tables of the four
separate commands: in one process, with depth sampled at the observations, and on Ray."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from realcam_cli.app import app


def invoke(*args) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def tables(work) -> dict:
    out = {name: pd.read_parquet(work / "scales" / f"{name}.parquet") for name in ("clips", "frames")}
    out["keep"] = pd.read_parquet(work / "filtered" / "keep.parquet")
    out["sfm"] = pd.read_parquet(work / "sfm" / "status.parquet").drop(columns="seconds")
    return out


def assert_same(a: dict, b: dict) -> None:
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


@pytest.fixture(scope="module")
def separate(synth_dataset, tmp_path_factory):
    """The four commands one after the other (the reference)."""
    work = tmp_path_factory.mktemp("separate")
    ds = synth_dataset
    invoke("depth", ds, "--out", work / "depth", "--from-files", ds / "depth_gt")
    invoke("triangulate", ds, "--out", work / "sfm")
    invoke("align-scale", "--depth", work / "depth", "--sfm", work / "sfm", "--out", work / "scales")
    invoke("filter", work / "scales", "--cameras", ds, "--out", work / "filtered", "--quantile", "0.0")
    return tables(work)


def test_annotate_equals_the_four_commands_and_resumes(synth_dataset, separate, tmp_path):
    ds, work = synth_dataset, tmp_path / "work"
    output = invoke("annotate", ds, "--out", work, "--from-files", ds / "depth_gt", "--quantile", "0.0")
    assert "filter kept 2" in output
    assert_same(separate, tables(work))
    again = invoke("annotate", ds, "--out", work, "--from-files", ds / "depth_gt", "--quantile", "0.0")
    assert "'depth': 2, 'triangulate': 2, 'align-scale': 2" in again  # everything skipped as done


def test_annotate_on_clip_videos_equals_frame_files(synth_dataset, synth_video_dataset, separate, tmp_path):
    """The same clips stored as lossless clip videos (no PNG anywhere) give the same tables."""
    ds, work = synth_video_dataset, tmp_path / "work"
    assert not (ds / "frames").exists() and len(list((ds / "videos").glob("*.mp4"))) == 2
    invoke("annotate", ds, "--out", work, "--from-files", synth_dataset / "depth_gt", "--quantile", "0.0")
    assert_same(separate, tables(work))


def test_annotate_with_sampled_depth_equals_whole_maps(synth_dataset, separate, tmp_path):
    ds, work = synth_dataset, tmp_path / "work"
    invoke("annotate", ds, "--out", work, "--from-files", ds / "depth_gt", "--quantile", "0.0", "--sample-depth")
    assert sorted(p.name for p in (work / "depth").glob("*.npz")) == sorted(
        f"{c}.samples.npz" for c in separate["clips"]["clip_id"]
    )
    assert_same(separate, tables(work))


def test_annotate_on_ray_equals_one_process(synth_dataset, separate, tmp_path):
    ray = pytest.importorskip("ray")
    ds, work = synth_dataset, tmp_path / "work"
    try:
        invoke(
            "annotate",
            ds,
            "--out",
            work,
            "--from-files",
            ds / "depth_gt",
            "--quantile",
            "0.0",
            "--ray",
            "local",
            "--workers",
            "2",
        )
    finally:
        ray.shutdown()
    assert_same(separate, tables(work))
    shutil.rmtree(work)


def test_annotate_in_two_shards_then_filter_equals_one_run(synth_dataset, separate, tmp_path):
    """A Slurm array without Ray: each shard runs depth, triangulate and align-scale on its clips
    into its own tables; one `filter` afterwards merges them."""
    ds, work = synth_dataset, tmp_path / "work"
    for i in range(2):
        out = invoke("annotate", ds, "--out", work, "--from-files", ds / "depth_gt", "--shard", f"{i}/2")
        assert "run `realcam filter`" in out
    assert sorted(p.name for p in (work / "scales").iterdir()) == [
        "clips.shard-0-of-2.parquet",
        "clips.shard-1-of-2.parquet",
        "frames.shard-0-of-2.parquet",
        "frames.shard-1-of-2.parquet",
    ]
    invoke("filter", work / "scales", "--cameras", ds, "--out", work / "filtered", "--quantile", "0.0")
    keep = pd.read_parquet(work / "filtered" / "keep.parquet")
    pd.testing.assert_frame_equal(separate["keep"], keep)
    depth = sorted(p.name for p in (work / "depth").glob("index*.parquet"))
    assert depth == ["index.shard-0-of-2.parquet", "index.shard-1-of-2.parquet"]
