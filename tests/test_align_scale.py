"""align-scale: the per-frame ratio against hand-computed values, and the whole annotation pipeline
(depth -> triangulate -> align-scale -> filter) on synthetic clips with known factors."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from stages.align_scale import frame_scale, run_align_scale
from stages.core.artifacts import read_arrays, write_arrays
from stages.depth import run_depth, sample_bilinear
from stages.filter import run_filter
from stages.triangulate import run_triangulate


# ----------------------------------------------------------------------------------------------
# frame_scale: pure function
# ----------------------------------------------------------------------------------------------
def test_bilinear_sample_hand_computed():
    d = np.array([[1.0, 2.0], [3.0, 4.0]])
    # pixel centres at +0.5: (0.5, 0.5) is d[0, 0]; (1.0, 1.0) is the mean of all four
    got = sample_bilinear(d, np.array([0.5, 1.0, 1.5, 1.0]), np.array([0.5, 1.0, 0.5, 0.75]), max_depth=20)
    np.testing.assert_allclose(got, [1.0, 2.5, 2.0, 0.75 * 1.5 + 0.25 * 3.5])


def test_frame_scale_ratio_median_and_count():
    depth = np.full((10, 20), 6.0)
    uv = np.array([[1.5, 1.5], [5.5, 5.5], [10.0, 3.0], [15.0, 8.0], [3.0, 9.0]])
    z = np.array([2.0, 3.0, 1.5, 6.0, 4.0])  # ratios 3, 2, 4, 1, 1.5 -> median 2
    assert frame_scale(depth, (20, 10), uv, z, max_depth=20, min_points=5) == (2.0, 5)
    s, n = frame_scale(depth, (20, 10), uv, z, max_depth=20, min_points=6)
    assert math.isnan(s) and n == 5


def test_frame_scale_keypoints_scaled_to_depth_size():
    # depth map at half the image resolution, varying along x: D(x_d) = x_d (pixel centre coords)
    h, w = 4, 8
    depth = np.tile(np.arange(w) + 0.5, (h, 1))
    uv = np.array([[5.0, 3.0], [9.0, 4.0], [12.0, 2.0]])  # image 16x8 -> depth x = u / 2
    z = np.ones(3)
    s, n = frame_scale(depth, (16, 8), uv, z, max_depth=100, min_points=1)
    assert n == 3 and s == pytest.approx(4.5)  # ratios 2.5, 4.5, 6.0


def test_frame_scale_exclusions():
    depth = np.full((8, 8), 5.0)
    depth[0, 0] = 0.0  # invalid
    depth[7, 7] = 20.0  # saturated (>= max_depth)
    depth[4, 0] = np.nan
    uv = np.array([[0.5, 0.5], [7.5, 7.5], [0.5, 4.5], [4.0, 4.0], [4.0, 4.0], [2.0, 2.0]])
    z = np.array([1.0, 1.0, 1.0, -1.0, 0.0, 2.0])
    assert frame_scale(depth, (8, 8), uv, z, max_depth=20.0, min_points=1) == (2.5, 1)


# ----------------------------------------------------------------------------------------------
# The pipeline on synthetic clips
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory, pose_files, image_files):
    """Six synthetic clips (one per bundled trajectory, 128x128, factors in [0.1, 10]) plus broken ones."""
    from stages.synth import synthesize

    base = tmp_path_factory.mktemp("annotate")
    short = []  # the first 8 frames of each trajectory keep the module fast
    for p in pose_files:
        lines = p.read_text().splitlines()
        short.append(base / "poses" / p.name)
        short[-1].parent.mkdir(exist_ok=True)
        short[-1].write_text("\n".join(lines[:9]) + "\n")
    root = base / "ds"
    synthesize(short, root, random_scale=(0.1, 10.0), size=(128, 128), textures=image_files, seed=3)
    good = pose_files[0].stem
    text = (root / "cameras" / f"{good}.txt").read_text()
    # a clip without a frames folder
    (root / "cameras" / "nofolder.txt").write_text(text)
    # a malformed camera file
    (root / "cameras" / "badcam.txt").write_text("https://x\n1 2 3 not numbers\n")
    # a clip with one frame missing and one unreadable
    shutil.copytree(root / "frames" / good, root / "frames" / "holes")
    (root / "cameras" / "holes.txt").write_text(text)
    frames = sorted((root / "frames" / "holes").iterdir())
    frames[3].unlink()
    shutil.copytree(root / "frames" / good, root / "frames" / "corrupt")
    (root / "cameras" / "corrupt.txt").write_text(text)
    sorted((root / "frames" / "corrupt").iterdir())[2].write_bytes(b"not a png")
    # a clip of blank frames: no features, no matches
    shutil.copytree(root / "frames" / good, root / "frames" / "blank")
    (root / "cameras" / "blank.txt").write_text(text)
    for f in (root / "frames" / "blank").iterdir():
        from stages.core.video import write_image

        write_image(f, np.full((128, 128, 3), 127, np.uint8))
    # a clip that triangulates but has no depth
    shutil.copytree(root / "frames" / good, root / "frames" / "nodepth")
    (root / "cameras" / "nodepth.txt").write_text(text)
    return root


@pytest.fixture(scope="module")
def sfm(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("sfm")
    table, skipped = run_triangulate(dataset, out, workers=1)
    return out, table


def _accuracy(clips, dataset):
    truth = pd.read_parquet(dataset / "truth.parquet").set_index("clip_id")["alpha"]
    c = clips.set_index("clip_id").loc[truth.index]
    return (c["scale"] / truth - 1).abs()


def test_triangulate_status_rows(sfm):
    out, table = sfm
    st = table.set_index("item")
    assert len(st) == 12
    assert (st.loc[["nodepth"], "status"] == "ok").all()
    for clip, word in [
        ("nofolder", "no frames folder"),
        ("badcam", "badcam.txt:2"),
        ("holes", "missing frame"),
        ("corrupt", "unreadable frame"),
        ("blank", "too few matches"),
    ]:
        assert st.loc[clip, "status"] == "failed" and word in st.loc[clip, "reason"], (clip, st.loc[clip, "reason"])
    ok = st[st["status"] == "ok"]
    assert (ok["n_points"] > 100).all() and (ok["mean_error"] < 1.0).all()
    assert not (out / "blank").exists()  # nothing half-written


def test_observations_reproject(sfm, dataset):
    """Every observation is where its point projects with the fixed poses (pixel centres at +0.5)."""
    from stages.core import cameras as cam

    out, table = sfm
    clip = table[table["status"] == "ok"]["item"].iloc[0]
    pts = pd.read_parquet(out / clip / "points.parquet").set_index("point")
    obs = pd.read_parquet(out / clip / "observations.parquet")
    cams = cam.read_re10k(dataset / "cameras" / f"{clip}.txt")
    k = cam.denormalize_intrinsics(cams.intrinsics[0], 128, 128)
    errs = []
    for f, o in obs.groupby("frame"):
        uv, z = cam.project(pts.loc[o["point"], ["x", "y", "z"]].to_numpy(), cams.w2c[f], k)
        assert (z > 0).all()
        errs.append(np.linalg.norm(uv - o[["u", "v"]].to_numpy(), axis=1))
    assert np.median(np.concatenate(errs)) < 0.5
    assert (obs["timestamp"].to_numpy() == cams.timestamps[obs["frame"].to_numpy()]).all()


def test_pipeline_recovers_true_factor(sfm, dataset, tmp_path):
    out, _ = sfm
    depth, _ = run_depth([dataset], tmp_path / "depth", from_files=dataset / "depth_gt")
    failed = depth[depth["status"] == "failed"].set_index("item")["reason"]
    assert set(failed.index) == {"nofolder", "badcam", "holes", "corrupt", "blank", "nodepth"}
    assert "no depth" in failed["nodepth"]
    first = pd.read_parquet(dataset / "truth.parquet")["clip_id"][0]
    d = read_arrays(tmp_path / "depth" / f"{first}.npz")
    assert d["depth"].dtype == np.float16 and d["depth"].shape == (8, 128, 128)
    gt = read_arrays(dataset / "depth_gt" / f"{first}.npz")["depth"]
    np.testing.assert_allclose(d["depth"], gt, rtol=1e-3)
    np.testing.assert_array_equal(d["timestamps"], read_arrays(dataset / "depth_gt" / f"{first}.npz")["timestamps"])

    clips, _ = run_align_scale(tmp_path / "depth", out, tmp_path / "scales")
    err = _accuracy(clips, dataset)
    assert (err < 0.02).mean() >= 0.9, err
    st = clips.set_index("clip_id")
    assert st.loc["nodepth", "status"] == "failed" and "depth missing" in st.loc["nodepth", "reason"]
    assert st.loc["blank", "status"] == "failed" and "too few matches" in st.loc["blank", "reason"]
    frames = pd.read_parquet(tmp_path / "scales" / "frames.parquet")
    assert set(frames.columns) >= {"clip_id", "frame", "timestamp", "scale", "n_points"}
    assert (frames.groupby("clip_id").size() == 8).all()

    keep, dropped = run_filter(tmp_path / "scales", dataset, tmp_path / "filtered")
    assert len(keep) + len(dropped) == len(clips)
    assert set(dropped["clip_id"]) >= {"nofolder", "badcam", "holes", "corrupt", "blank", "nodepth"}


def test_depth_sampled_at_the_observations_gives_the_same_tables_in_less_space(sfm, dataset, tmp_path):
    """`depth --sample-at SFM` (what `annotate --sample-depth` runs) stores each clip's depth only at
    its SfM observations: align-scale gives bit-identical tables from it, in shards or not."""
    out, _ = sfm
    run_depth([dataset], tmp_path / "maps", from_files=dataset / "depth_gt")
    run_depth([dataset], tmp_path / "samples", from_files=dataset / "depth_gt", sample_at=out)
    maps, _ = run_align_scale(tmp_path / "maps", out, tmp_path / "scales_maps")
    sampled, _ = run_align_scale(tmp_path / "samples", out, tmp_path / "scales_samples")
    pd.testing.assert_frame_equal(maps.drop(columns="reason"), sampled.drop(columns="reason"))
    for name in ("frames.parquet", "clips.parquet"):
        a = pd.read_parquet(tmp_path / "scales_maps" / name)
        b = pd.read_parquet(tmp_path / "scales_samples" / name)
        pd.testing.assert_frame_equal(
            a.drop(columns=[c for c in ("reason",) if c in a]), b.drop(columns=[c for c in ("reason",) if c in b])
        )
    ok = maps.loc[maps["status"] == "ok", "clip_id"]
    full = sum((tmp_path / "maps" / f"{c}.npz").stat().st_size for c in ok)
    small = sum((tmp_path / "samples" / f"{c}.samples.npz").stat().st_size for c in ok)
    assert small < full / 4, (small, full)
    # align-scale in two shards; filter merges the shard tables into the same result
    for i in range(2):
        run_align_scale(tmp_path / "samples", out, tmp_path / "sharded", shard=f"{i}/2")
    assert not (tmp_path / "sharded" / "clips.parquet").exists()
    keep_whole, _ = run_filter(tmp_path / "scales_maps", dataset, tmp_path / "f1")
    keep_shards, _ = run_filter(tmp_path / "sharded", dataset, tmp_path / "f2")
    pd.testing.assert_frame_equal(keep_whole, keep_shards)


def test_pipeline_with_noisy_depth(sfm, dataset, tmp_path):
    """Ground-truth depth times per-pixel noise of 5 %: factors within 5 %."""
    out, _ = sfm
    rng = np.random.default_rng(0)
    noisy = tmp_path / "noisy"
    for f in (dataset / "depth_gt").glob("*.npz"):
        a = read_arrays(f)
        a["depth"] = (a["depth"] * (1 + 0.05 * rng.standard_normal(a["depth"].shape))).astype(np.float32)
        write_arrays(noisy / f.name, **a)
    run_depth([dataset], tmp_path / "depth", from_files=noisy)
    clips, _ = run_align_scale(tmp_path / "depth", out, tmp_path / "scales")
    err = _accuracy(clips, dataset)
    assert (err < 0.05).all(), err


def test_tiny_model_pipeline_via_cli(sfm, dataset, tmp_path, tiny_model):
    """The real model path: a random Depth Anything V2 metric model from a folder, through the CLI."""
    from realcam_cli.app import app

    out, _ = sfm
    runner = CliRunner()
    res = runner.invoke(
        app, ["depth", str(dataset), "--out", str(tmp_path / "depth"), "--model", str(tiny_model), "--batch-size", "8"]
    )
    assert res.exit_code == 0, res.output
    assert "3 failed" in res.output and "failed corrupt: " in res.output
    res = runner.invoke(
        app, ["align-scale", "--depth", str(tmp_path / "depth"), "--sfm", str(out), "--out", str(tmp_path / "scales")]
    )
    assert res.exit_code == 0, res.output
    clips = pd.read_parquet(tmp_path / "scales" / "clips.parquet")
    ok = clips[clips["status"] == "ok"]
    assert len(ok) == 7 and np.isfinite(ok[["scale", "scale_max", "scale_min"]].to_numpy()).all()
    assert (ok["scale"] > 0).all()
    res = runner.invoke(
        app, ["filter", str(tmp_path / "scales"), "--cameras", str(dataset), "--out", str(tmp_path / "filtered")]
    )
    assert res.exit_code == 0, res.output
    # re-running align-scale skips what is done
    res = runner.invoke(
        app, ["align-scale", "--depth", str(tmp_path / "depth"), "--sfm", str(out), "--out", str(tmp_path / "scales")]
    )
    assert "7 ok (7 skipped" in res.output


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tests_tiny_depth import save_tiny_depth_model

    return save_tiny_depth_model(tmp_path_factory.mktemp("tiny_dav2"))
