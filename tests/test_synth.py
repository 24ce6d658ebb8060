import numpy as np
import pandas as pd
import pytest

from stages import synth
from stages.core import cameras as cam
from stages.core.artifacts import read_arrays, read_table
from stages.core.video import list_images, read_image


def _bilinear(img, u, v):
    """Sample ``img`` at continuous pixel coordinates (centres at +0.5)."""
    x, y = u - 0.5, v - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    if img.ndim == 3:
        fx, fy = fx[:, None], fy[:, None]
    return (img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx) * (1 - fy) + (
        img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    ) * fy


def test_layout_and_truth(synth_dataset, pose_files):
    truth = read_table(synth_dataset / "truth.parquet")
    assert list(truth.columns[:2]) == ["clip_id", "alpha"]
    assert sorted(truth["clip_id"]) == sorted(p.stem for p in pose_files[:2])
    assert truth["alpha"].between(0.1, 10.0).all()
    for clip_id, alpha in zip(truth["clip_id"], truth["alpha"]):
        written = cam.read_re10k(synth_dataset / "cameras" / f"{clip_id}.txt")
        original = cam.read_re10k(next(p for p in pose_files if p.stem == clip_id))
        np.testing.assert_array_equal(written.timestamps, original.timestamps)
        # metric (the original, taken as metres) = alpha * written; rotations untouched.
        metric = cam.metric_poses(written.c2w, alpha)
        np.testing.assert_allclose(metric[:, :3, 3], original.c2w[:, :3, 3], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(written.c2w[:, :3, :3], original.c2w[:, :3, :3], atol=1e-12)
        # square pixels at 128x128, horizontal field of view kept
        np.testing.assert_allclose(written.intrinsics[:, 0], original.intrinsics[:, 0])
        np.testing.assert_allclose(written.intrinsics[:, 1], written.intrinsics[:, 0])
        frames = list_images(synth_dataset / "frames" / clip_id)
        assert [int(f.stem) for f in frames] == list(written.timestamps)
        assert read_image(frames[0]).shape == (128, 128, 3)
        depth = read_arrays(synth_dataset / "depth_gt" / f"{clip_id}.npz", keys=["depth", "timestamps"])
        assert depth["depth"].shape == (16, 128, 128) and depth["depth"].dtype == np.float32
        assert np.isfinite(depth["depth"]).all() and (depth["depth"] > 0).all()


@pytest.mark.parametrize("i,j", [(0, 3), (0, 8), (7, 12)])
def test_depth_is_consistent_across_views(synth_dataset, pose_files, i, j):
    """Frame i's depth unprojected and projected into frame j lands on j's surface and colour."""
    clip_id = pose_files[0].stem
    cams = cam.read_re10k(synth_dataset / "cameras" / f"{clip_id}.txt")
    alpha = float(read_table(synth_dataset / "truth.parquet").set_index("clip_id").loc[clip_id, "alpha"])
    c2w = cam.metric_poses(cams.c2w, alpha)
    ks = cam.denormalize_intrinsics(cams.intrinsics, 128, 128)
    depth = read_arrays(synth_dataset / "depth_gt" / f"{clip_id}.npz")["depth"].astype(np.float64)
    frames = [read_image(f).astype(np.float64) for f in list_images(synth_dataset / "frames" / clip_id)]
    v, u = np.mgrid[:128, :128] + 0.5
    pix = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3)
    pts_cam = (pix @ np.linalg.inv(ks[i]).T) * depth[i].reshape(-1, 1)
    pts_world = pts_cam @ c2w[i, :3, :3].T + c2w[i, :3, 3]
    uv, z = cam.project(pts_world, cam.invert_pose(c2w[j]), ks[j])
    inside = (z > 0) & (uv[:, 0] > 1) & (uv[:, 0] < 127) & (uv[:, 1] > 1) & (uv[:, 1] < 127)
    assert inside.mean() > 0.2
    # Inverse depth is affine in pixel coordinates on a plane, so bilinear sampling is exact there.
    inv_j = _bilinear(1.0 / depth[j], uv[inside, 0], uv[inside, 1])
    rel = np.abs(1.0 / inv_j - z[inside]) / z[inside]
    visible = rel < 1e-4
    assert np.median(rel) < 1e-5
    assert visible.mean() > 0.8  # the rest is occluded in frame j or on a depth edge
    colour_i = frames[i].reshape(-1, 3)[inside][visible]
    colour_j = _bilinear(frames[j], uv[inside, 0][visible], uv[inside, 1][visible])
    assert np.median(np.abs(colour_i - colour_j).mean(axis=1)) < 12.0


def test_seed_reproducible_and_rerun_skips(tmp_path, pose_files):
    kw = dict(random_scale=(0.5, 2.0), size=(32, 24), seed=3)
    a = synth.synthesize(pose_files[:1], tmp_path / "a", **kw)
    b = synth.synthesize(pose_files[:1], tmp_path / "b", **kw)
    pd.testing.assert_frame_equal(a, b)
    fa = list_images(tmp_path / "a" / "frames" / pose_files[0].stem)
    fb = list_images(tmp_path / "b" / "frames" / pose_files[0].stem)
    assert all(np.array_equal(read_image(x), read_image(y)) for x, y in zip(fa, fb))
    c = synth.synthesize(pose_files[:1], tmp_path / "c", **{**kw, "seed": 4})
    assert c["alpha"][0] != a["alpha"][0]

    npz = tmp_path / "a" / "depth_gt" / f"{pose_files[0].stem}.npz"
    before = npz.stat().st_mtime_ns
    again = synth.synthesize(pose_files[:2], tmp_path / "a", **kw)
    assert npz.stat().st_mtime_ns == before  # finished clip skipped
    assert len(again) == 2
    synth.synthesize(pose_files[:1], tmp_path / "a", overwrite=True, **kw)
    assert npz.stat().st_mtime_ns != before


def test_fixed_scale(tmp_path, pose_files):
    truth = synth.synthesize(pose_files[2:3], tmp_path, scale=3.0, size=(16, 16))
    assert truth["alpha"].tolist() == [3.0]
