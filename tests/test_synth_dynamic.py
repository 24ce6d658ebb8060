"""Moving boxes along RealEstate10K trajectories (``realcam synth --poses ... --dynamic``): the
masks, the share of the image they cover, boxes clear of the cameras, and static mode untouched."""

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from realcam_cli.app import app
from stages import synth
from stages.core import cameras as cam
from stages.core.artifacts import read_arrays, read_table
from stages.core.errors import RealcamError
from stages.core.video import list_images, read_image

SIZE = (48, 32)
FRAMES = 6
SEED = 4
runner = CliRunner()


def _short(pose_file, folder, n=FRAMES, repeat=None, name=None):
    """A copy of ``pose_file`` with its first ``n`` cameras; ``repeat=(i, j)`` also gives camera
    ``j`` camera ``i``'s pose (the timestamps kept), so one pose is seen at two times."""
    lines = pose_file.read_text().splitlines()
    cams = [line.split() for line in lines[1 : n + 1]]
    if repeat is not None:
        i, j = repeat
        cams[j] = cams[j][:1] + cams[i][1:]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name or pose_file.stem}.txt"
    out.write_text("\n".join([lines[0], *(" ".join(c) for c in cams)]) + "\n")
    return out


@pytest.fixture(scope="module")
def short_poses(tmp_path_factory, pose_files):
    folder = tmp_path_factory.mktemp("short_poses")
    return [_short(p, folder) for p in pose_files[:2]]


@pytest.fixture(scope="module")
def dyn_ds(tmp_path_factory, short_poses):
    out = tmp_path_factory.mktemp("dynamic")
    synth.synthesize(short_poses, out, size=SIZE, seed=SEED, dynamic=True)
    return out


def _masks(root, clip_id):
    files = list_images(root / "masks" / clip_id)
    return files, np.stack([np.asarray(iio.imread(f)) for f in files])


def _rerun(pose_file, **kw):
    """The clip rendered again as :func:`synth.synthesize` does (alpha drawn first)."""
    rng = synth.clip_rng(SEED, pose_file.stem)
    alpha = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    tex = [synth.procedural_texture(np.random.default_rng([SEED, i])) for i in range(4)]
    return synth.synth_dynamic_clip(cam.read_re10k(pose_file), tex, alpha, SIZE, rng, **kw)


def test_layout_masks_and_truth(dyn_ds, short_poses):
    truth = read_table(dyn_ds / "truth.parquet")
    assert list(truth.columns) == synth.TRUTH_COLUMNS + synth.DYNAMIC_COLUMNS
    assert sorted(truth["clip_id"]) == sorted(p.stem for p in short_poses)
    assert truth["dynamic"].all() and (truth["n_moving"] >= 1).all()
    assert (truth["moving_share_lo"] == 0.2).all() and (truth["moving_share_hi"] == 0.4).all()
    assert truth["moving_target"].between(0.2, 0.4).all()
    for clip_id, share in zip(truth["clip_id"], truth["moving_share"]):
        frames = list_images(dyn_ds / "frames" / clip_id)
        files, masks = _masks(dyn_ds, clip_id)
        assert [f.name for f in files] == [f.name for f in frames] and len(files) == FRAMES
        assert masks.dtype == np.uint8 and masks.shape == (FRAMES, SIZE[1], SIZE[0])
        assert set(np.unique(masks)) <= {0, 255}
        # the realised share is the masks' mean, and within the range asked for (tiny images: +-5 points)
        assert share == pytest.approx((masks == 255).mean(), abs=1e-12)
        assert 0.15 <= share <= 0.45
        arrays = read_arrays(dyn_ds / "depth_gt" / f"{clip_id}.npz")
        n = int(truth.set_index("clip_id").loc[clip_id, "n_moving"])
        assert arrays["object_pose"].shape == (n, FRAMES, 4, 4) and arrays["object_half"].shape == (n, 3)
    assert not list(dyn_ds.rglob(".*"))  # no temporary left


def test_masks_are_where_a_moving_box_is_seen(dyn_ds, short_poses):
    """The written masks, frames and depth are the clip rendered again; a mask pixel is exactly one
    whose ray hits a moving box before the still scene (cast with and without the movers), and its
    depth unprojects onto a moving box's surface at that frame's time (the stored object poses)."""
    for pose_file in short_poses:
        clip_id = pose_file.stem
        clip = _rerun(pose_file)
        frames = np.stack([read_image(f) for f in list_images(dyn_ds / "frames" / clip_id)])
        assert np.array_equal(frames, clip.frames)
        _, masks = _masks(dyn_ds, clip_id)
        assert np.array_equal(masks == 255, clip.masks)
        depth = read_arrays(dyn_ds / "depth_gt" / f"{clip_id}.npz")
        assert np.array_equal(depth["depth"], clip.depth)
        assert np.array_equal(depth["object_pose"], clip.object_pose)

        cams = cam.read_re10k(pose_file)
        ks = cam.denormalize_intrinsics(synth.square_pixel_intrinsics(cams.intrinsics, *SIZE), *SIZE)
        with_movers = synth.Scene(clip.placement.boxes, [np.zeros((2, 2, 3), np.float32)], clip.placement.movers)
        without = synth.Scene(clip.placement.boxes, with_movers.textures)
        for f, (k, c2w, ts) in enumerate(zip(ks, cams.c2w, cams.timestamps)):
            rays = synth.camera_rays(k, c2w, *SIZE)
            t_with, _ = synth.cast(with_movers, c2w[:3, 3], rays, shade=False, time=ts / 1e6)
            t_without, _ = synth.cast(without, c2w[:3, 3], rays, shade=False)
            expected = (t_with < t_without).reshape(SIZE[1], SIZE[0])
            assert np.array_equal(masks[f] == 255, expected)
            assert np.array_equal(depth["depth"][f] != t_without.reshape(expected.shape).astype(np.float32), expected)
            np.testing.assert_allclose(depth["depth"][f].ravel(), t_with, rtol=1e-6)
            # unprojected, mask pixels lie on a moving box's surface, the others on none
            points = c2w[:3, 3] + rays * depth["depth"][f].reshape(-1, 1).astype(np.float64)
            on_box = np.zeros(len(points), bool)
            for pose, half in zip(depth["object_pose"][:, f], depth["object_half"]):
                local = (points - pose[:3, 3]) @ pose[:3, :3]
                on_box |= np.abs(np.max(np.abs(local) / half, axis=1) - 1.0) < 1e-4
            assert np.array_equal(on_box.reshape(expected.shape), expected)


def test_boxes_keep_clear_of_the_cameras(dyn_ds, short_poses):
    """No camera position is within 0.3 m of a moving box at any frame's time (not only its own)."""
    for pose_file in short_poses:
        arrays = read_arrays(dyn_ds / "depth_gt" / f"{pose_file.stem}.npz")
        centres = cam.read_re10k(pose_file).c2w[:, :3, 3]
        for poses, half in zip(arrays["object_pose"], arrays["object_half"]):
            for pose in poses:
                local = np.abs((centres - pose[:3, 3]) @ pose[:3, :3])
                assert np.linalg.norm(np.maximum(local - half, 0), axis=1).min() >= synth.CAMERA_MARGIN - 1e-9
            # and they move: translate and turn between the first and last frames
            assert np.abs(poses[-1, :3, 3] - poses[0, :3, 3]).max() > 1e-3
            assert np.abs(poses[-1, :3, :3] - poses[0, :3, :3]).max() > 1e-3


def test_same_pose_at_two_times_differs_only_inside_the_masks(tmp_path, pose_files):
    pose_file = _short(pose_files[2], tmp_path / "poses", n=FRAMES, repeat=(1, 4), name="repeat")
    out = tmp_path / "ds"
    synth.synthesize([pose_file], out, size=SIZE, seed=SEED, dynamic=True, supersample=1)
    cams = cam.read_re10k(pose_file)
    np.testing.assert_array_equal(cams.c2w[1], cams.c2w[4])
    frames = [read_image(f).astype(int) for f in list_images(out / "frames" / "repeat")]
    _, masks = _masks(out, "repeat")
    depth = read_arrays(out / "depth_gt" / "repeat.npz")["depth"]
    moving = (masks[1] == 255) | (masks[4] == 255)
    changed = np.abs(frames[1] - frames[4]).max(axis=-1) > 0
    assert changed.any() and not np.array_equal(masks[1], masks[4])
    assert not changed[~moving].any()  # one ray per pixel: the colour is the centre ray's
    assert np.array_equal(depth[1][~moving], depth[4][~moving])
    assert (depth[1] != depth[4])[moving].mean() > 0.5


def test_without_movers_the_frames_are_the_static_ones(tmp_path, short_poses):
    """A zero share places no boxes: the same frames and depth as static mode (same draws), with
    empty masks; static mode writes no masks and no dynamic columns."""
    kw = dict(size=SIZE, seed=SEED, supersample=1)
    still = synth.synthesize(short_poses[:1], tmp_path / "still", **kw)
    none = synth.synthesize(short_poses[:1], tmp_path / "none", dynamic=True, moving_share=(0.0, 0.0), **kw)
    assert list(still.columns) == synth.TRUTH_COLUMNS
    assert not (tmp_path / "still" / "masks").exists()
    assert sorted(read_arrays(tmp_path / "still" / "depth_gt" / f"{short_poses[0].stem}.npz")) == [
        "depth",
        "timestamps",
    ]
    assert none["n_moving"].tolist() == [0] and none["moving_share"].tolist() == [0.0]
    pd.testing.assert_frame_equal(none[synth.TRUTH_COLUMNS], still)
    clip_id = short_poses[0].stem
    for a, b in zip(
        list_images(tmp_path / "still" / "frames" / clip_id), list_images(tmp_path / "none" / "frames" / clip_id)
    ):
        assert np.array_equal(read_image(a), read_image(b))
    d_still = read_arrays(tmp_path / "still" / "depth_gt" / f"{clip_id}.npz")["depth"]
    assert np.array_equal(read_arrays(tmp_path / "none" / "depth_gt" / f"{clip_id}.npz")["depth"], d_still)
    assert not _masks(tmp_path / "none", clip_id)[1].any()


def test_share_range_is_followed(tmp_path, short_poses):
    truth = synth.synthesize(short_poses, tmp_path, size=SIZE, seed=1, dynamic=True, moving_share=(0.05, 0.1))
    assert truth["moving_target"].between(0.05, 0.1).all()
    assert truth["moving_share"].between(0.0, 0.15).all() and (truth["moving_share"] > 0).all()


def test_reproducible_rerun_and_settings(tmp_path, dyn_ds, short_poses):
    a = tmp_path / "a"
    truth = synth.synthesize(short_poses, a, size=SIZE, seed=SEED, dynamic=True)
    pd.testing.assert_frame_equal(truth, read_table(dyn_ds / "truth.parquet"))
    clip_id = short_poses[0].stem
    assert np.array_equal(_masks(a, clip_id)[1], _masks(dyn_ds, clip_id)[1])
    other = synth.synthesize(short_poses[:1], tmp_path / "b", size=SIZE, seed=SEED + 1, dynamic=True)
    assert other["moving_share"][0] != truth.set_index("clip_id").loc[clip_id, "moving_share"]

    mask_dir = a / "masks" / clip_id
    before = mask_dir.stat().st_mtime_ns
    again = synth.synthesize(short_poses, a, size=SIZE, seed=SEED, dynamic=True)
    assert sorted(again.attrs["skipped"]) == sorted(p.stem for p in short_poses)
    assert mask_dir.stat().st_mtime_ns == before
    with pytest.raises(RealcamError, match="other settings"):
        synth.synthesize(short_poses, a, size=SIZE, seed=SEED, dynamic=True, moving_share=(0.1, 0.2))
    with pytest.raises(RealcamError, match="other settings"):
        synth.synthesize(short_poses, a, size=SIZE, seed=SEED)
    # a clip redone without movers loses its masks; the table keeps both kinds of rows
    mixed = synth.synthesize(short_poses[:1], a, size=SIZE, seed=SEED, overwrite=True)
    assert not mask_dir.exists() and (a / "masks" / short_poses[1].stem).is_dir()
    rows = mixed.set_index("clip_id")
    assert not rows.loc[clip_id, "dynamic"] and rows.loc[clip_id, "moving_share"] == 0.0
    assert rows.loc[short_poses[1].stem, "dynamic"] and rows.loc[short_poses[1].stem, "n_moving"] >= 1
    assert mixed["dynamic"].dtype == bool and mixed["n_moving"].dtype == np.int64
    assert sorted(read_arrays(a / "depth_gt" / f"{clip_id}.npz")) == ["depth", "timestamps"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(dynamic=True, moving_share=(0.5, 0.2)),
        dict(dynamic=True, moving_share=(0.2, 0.95)),
        dict(dynamic=True, moving_share=(-0.1, 0.2)),
        dict(dynamic=True, moving_share=(0.2,)),
        dict(dynamic=True, moving_share=(0.2, float("nan"))),
        dict(moving_share=(0.1, 0.2)),
    ],
)
def test_bad_options(tmp_path, short_poses, kwargs):
    with pytest.raises(RealcamError) as err:
        synth.synthesize(short_poses[:1], tmp_path / "x", size=SIZE, **kwargs)
    assert str(err.value).startswith("--moving-share")
    assert not (tmp_path / "x").exists()


def test_cli(tmp_path, short_poses):
    out = tmp_path / "cli"
    args = ["synth", "--poses", str(short_poses[0]), "--dynamic", "--moving-share", "0.1", "0.3", "--size", "48x32"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "masks/" in result.stdout and "moving boxes cover" in result.stdout
    truth = read_table(out / "truth.parquet")
    assert truth["moving_share_lo"].tolist() == [0.1] and truth["moving_target"].between(0.1, 0.3).all()
    assert len(list_images(out / "masks" / short_poses[0].stem)) == FRAMES


@pytest.mark.parametrize(
    "args,option",
    [
        (["--dynamic", "--moving-share", "0.5", "0.2"], "--moving-share"),
        (["--dynamic", "--moving-share", "0.2", "0.91"], "--moving-share"),
        (["--dynamic", "--moving-share", "-1", "0.2"], "--moving-share"),
        (["--moving-share", "0.1", "0.2"], "--moving-share"),
    ],
)
def test_cli_bad_options(tmp_path, short_poses, args, option):
    out = tmp_path / "out"
    result = runner.invoke(app, ["synth", "--poses", str(short_poses[0]), *args, "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}"), result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "args,option",
    [
        (["--dynamic"], "--dynamic"),
        (["--cameras", "3", "--dynamic", "--moving-share", "0.1", "0.2"], "--moving-share"),
    ],
)
def test_cli_dynamic_needs_cameras(tmp_path, args, option):
    result = runner.invoke(app, ["synth", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}"), result.stderr
