"""Multi-camera synthetic scenes with moving boxes (``realcam synth --cameras N --dynamic``) in
ReCamMaster's MultiCamVideo layout, and the Unreal camera strings they are written with."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from realcam_cli.app import app
from stages import synth
from stages.core import cameras as cam
from stages.core.artifacts import read_arrays, read_table
from stages.core.errors import RealcamError
from stages.core.video import read_video
from stages.rerender.cameras import c2w_to_unreal, multicam_tokens, read_multicam_cameras, unreal_to_c2w

SIZE = (48, 32)
FRAMES = 9
MOTIONS = ["static", "arc", "dolly", "pan"]
NAMES = ["cam01", "cam02", "cam03", "cam04"]
KW = dict(n_frames=FRAMES, size=SIZE, seed=5, motions=MOTIONS, n_moving=2, fps=15)
runner = CliRunner()


@pytest.fixture(scope="module")
def dynamic_ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("multicam")
    synth.synthesize_multicam(out, 4, dynamic=True, **KW)
    return out


@pytest.fixture(scope="module")
def still_ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("multicam_still")
    synth.synthesize_multicam(out, 4, dynamic=False, **KW)
    return out


def _random_pose(rng) -> np.ndarray:
    p = np.eye(4)
    p[:3, :3] = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
    p[:3, 3] = rng.uniform(-5, 5, size=3)
    return p


# ----------------------------------------------------------------------------------------------
# Unreal strings
# ----------------------------------------------------------------------------------------------
def test_c2w_to_unreal_is_the_inverse_of_unreal_to_c2w():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = _random_pose(rng), _random_pose(rng)
        ua, ub = synth.UNREAL_WORLD @ a, synth.UNREAL_WORLD @ b  # det -1: Unreal's left-handed world
        assert np.linalg.det(ua[:3, :3]) < 0
        back_a, back_b = unreal_to_c2w(c2w_to_unreal(ua)), unreal_to_c2w(c2w_to_unreal(ub))
        np.testing.assert_allclose(back_a, ua, rtol=0, atol=1e-9)
        np.testing.assert_allclose(back_b, ub, rtol=0, atol=1e-9)
        # relative poses survive the world change and the round trip, and are proper rotations
        rel = cam.invert_pose(back_a) @ back_b
        np.testing.assert_allclose(rel, cam.invert_pose(a) @ b, rtol=0, atol=1e-9)
        assert np.linalg.det(rel[:3, :3]) == pytest.approx(1.0)
    # an Unreal string (6 significant digits, cm) goes through c2w and back to the same matrix
    text = "[0.940432 0.339982 0 0] [-0.339982 0.940432 0 0] [0 0 1 0] [123.5 -40 150 1]"
    c2w = unreal_to_c2w(text)
    assert unreal_to_c2w(c2w_to_unreal(c2w)) == pytest.approx(c2w, abs=1e-12)
    assert "[123.5 -40.0 150.0 1.0]" in c2w_to_unreal(c2w)


def test_c2w_to_unreal_refuses_bad_matrices():
    with pytest.raises(RealcamError, match="proper"):
        c2w_to_unreal(np.eye(4))  # a right-handed world: express it in Unreal's first
    with pytest.raises(RealcamError, match="shape"):
        c2w_to_unreal(np.eye(3))
    bad = synth.UNREAL_WORLD.copy()
    bad[0, 0] = 0.5
    with pytest.raises(RealcamError, match="orthonormal"):
        c2w_to_unreal(bad)
    bad = synth.UNREAL_WORLD.copy()
    bad[1, 3] = np.nan
    with pytest.raises(RealcamError, match="non-finite"):
        c2w_to_unreal(bad)


# ----------------------------------------------------------------------------------------------
# Moving boxes in the ray caster
# ----------------------------------------------------------------------------------------------
def test_moving_box_pose_and_render():
    rng = np.random.default_rng(1)
    tex = [synth.procedural_texture(rng, 64)]
    room = synth.Box(np.array([-4.0, -3.0, -4.0]), np.array([4.0, 0.0, 4.0]), inside=True)
    half, centre = np.array([0.3, 0.4, 0.2]), np.array([0.2, -0.4, 0.5])
    mover = synth.MovingBox(
        synth.Box(-half, half), centre, np.array([0.5, 0.0, 0.0]), np.zeros(3), 2.0, 0.0, np.array([0, -1.0, 0]), 0, 0
    )
    np.testing.assert_allclose(mover.pose(0.0)[:3, 3], centre)
    np.testing.assert_allclose(mover.pose(np.pi / 4)[:3, 3], centre + [0.5, 0, 0])
    # a mover that neither turns nor moves renders as the same box standing still
    still = synth.Scene([room, synth.Box(centre - half, centre + half)], tex)
    moving = synth.Scene([room], tex, [mover])
    k = cam.default_intrinsics(*SIZE, 60.0)
    c2w = synth._look_at(np.array([0.0, -1.2, -3.0]), centre)
    _, d_still = synth.render_view(still, k, c2w, *SIZE)
    _, d_moving = synth.render_view(moving, k, c2w, *SIZE, time=0.0)
    np.testing.assert_allclose(d_moving, d_still, rtol=1e-6)
    # later it has moved: the depth changes where the box was or is
    _, d_later = synth.render_view(moving, k, c2w, *SIZE, time=np.pi / 4)
    changed = np.abs(d_later - d_still) > 1e-3
    assert 0.01 < changed.mean() < 0.5


# ----------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------
def test_layout(dynamic_ds):
    scene = dynamic_ds / "scene1"
    for name in NAMES:
        assert (scene / "videos" / f"{name}.mp4").is_file()
        assert (scene / "truth" / "depth" / f"{name}.npz").is_file()
    assert (scene / "cameras" / "camera_extrinsics.json").is_file()
    meta = pd.read_csv(dynamic_ds / "metadata.csv")
    assert list(meta.columns) == ["file_name", "text"]
    assert list(meta["file_name"]) == [f"scene1/videos/{n}.mp4" for n in NAMES]
    assert meta["text"].str.len().min() > 20
    table = read_table(dynamic_ds / "scenes.parquet")
    assert table["scene"].tolist() == ["scene1"] and table["n_cameras"].tolist() == [4]
    assert table["n_moving"].tolist() == [2]
    assert not [p for p in dynamic_ds.iterdir() if p.name.startswith(".")]  # no temporary left


def test_cameras_read_back_are_the_true_poses(dynamic_ds):
    truth = read_arrays(dynamic_ds / "scene1" / "truth" / "cameras.npz")
    c2w = truth["c2w"]
    assert c2w.shape == (4, FRAMES, 4, 4) and list(truth["names"]) == NAMES
    np.testing.assert_allclose(np.linalg.det(c2w[..., :3, :3]), 1.0, atol=1e-9)
    read = read_multicam_cameras(dynamic_ds / "scene1" / "cameras" / "camera_extrinsics.json")
    assert list(read) == NAMES
    for n, name in enumerate(NAMES):
        np.testing.assert_allclose(read[name], synth.UNREAL_WORLD @ c2w[n], rtol=0, atol=1e-6)
    for a in range(4):
        for b in range(4):
            rel = cam.invert_pose(read[NAMES[a]][0])[None] @ read[NAMES[b]]
            np.testing.assert_allclose(rel, cam.invert_pose(c2w[a, 0])[None] @ c2w[b], rtol=0, atol=1e-6)
            np.testing.assert_allclose(np.linalg.det(rel[:, :3, :3]), 1.0, atol=1e-6)
    tokens = multicam_tokens(read, "cam02", condition="cam01")  # ReCamMaster's training pairing
    assert tokens.shape == (3, 12)


def test_trajectories(dynamic_ds):
    c2w = read_arrays(dynamic_ds / "scene1" / "truth" / "cameras.npz")["c2w"]
    pos = c2w[:, :, :3, 3]
    assert np.all(c2w[0] == c2w[0, 0])  # the static camera
    for n in range(1, 4):  # the others move smoothly: translation or rotation, no jumps
        moved = np.abs(c2w[n, -1] - c2w[n, 0]).max()
        assert moved > 0.05
        steps = np.abs(np.diff(c2w[n], axis=0)).max(axis=(1, 2))
        assert steps.max() < 0.5 * moved + 1e-9
    # metric, a few metres from the centre, above the floor (y = 0, up is -y), all starts apart
    horizontal = np.linalg.norm(pos[..., [0, 2]], axis=-1)
    assert horizontal.min() > 2.4 and horizontal.max() < 5.3
    assert np.all((-pos[..., 1] > 0.3) & (-pos[..., 1] < 3.0))
    starts = pos[:, 0]
    assert min(np.linalg.norm(starts[i] - starts[j]) for i in range(4) for j in range(i)) > 0.5
    # each starts looking at the scene's centre (its optical axis passes near it), with no roll
    centre = np.array([0.0, -0.55, 0.0])
    for n in range(4):
        p, z = c2w[n, 0, :3, 3], c2w[n, 0, :3, 2]
        assert np.linalg.norm(np.cross(centre - p, z)) < 0.6
        assert abs(c2w[n, 0, 1, 0]) < 1e-9  # the x axis stays horizontal


def test_videos(dynamic_ds):
    import av

    depth = read_arrays(dynamic_ds / "scene1" / "truth" / "depth" / "cam02.npz")["depth"]
    assert depth.shape == (FRAMES, SIZE[1], SIZE[0]) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth > 0).all()
    for name in NAMES:
        video = read_video(dynamic_ds / "scene1" / "videos" / f"{name}.mp4")
        assert video.shape == (FRAMES, SIZE[1], SIZE[0], 3) and video.dtype == np.uint8
    with av.open(str(dynamic_ds / "scene1" / "videos" / "cam01.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.guessed_rate == 15
        times = [frame.time for frame in container.decode(stream)]
        np.testing.assert_allclose(times, np.arange(FRAMES) / 15, atol=1e-6)
    # lossless: the decoded frames are the rendered ones
    ms = synth.build_multicam_scene(
        synth.clip_rng(5, "scene1"),
        [synth.procedural_texture(np.random.default_rng([5, synth.zlib.crc32(b"scene1"), j])) for j in range(6)],
        4,
        FRAMES,
        SIZE,
        motions=MOTIONS,
        n_moving=2,
    )
    frames, rendered_depth = ms.render(2, *SIZE)
    assert np.array_equal(read_video(dynamic_ds / "scene1" / "videos" / "cam03.mp4"), frames)
    stored = read_arrays(dynamic_ds / "scene1" / "truth" / "depth" / "cam03.npz")["depth"]
    assert np.array_equal(stored, rendered_depth)


def test_dynamic_and_still(dynamic_ds, still_ds):
    """A camera that does not move sees the boxes move (only there), or nothing change when still."""
    video = read_video(dynamic_ds / "scene1" / "videos" / "cam01.mp4").astype(int)
    depth = read_arrays(dynamic_ds / "scene1" / "truth" / "depth" / "cam01.npz")["depth"]
    changed = np.abs(depth[-1] - depth[0]) > 1e-4
    assert 0.005 < changed.mean() < 0.5  # the boxes moved; the room did not
    assert np.abs(video[-1] - video[0]).max(axis=-1)[changed].mean() > 5
    assert np.array_equal(video[-1][~changed], video[0][~changed]) or np.abs(video[-1] - video[0])[~changed].mean() < 1
    still = read_video(still_ds / "scene1" / "videos" / "cam01.mp4")
    assert all(np.array_equal(f, still[0]) for f in still)
    # the same layout: the still scene is the dynamic one at time 0
    assert np.array_equal(still[0], video[0])
    objects = read_arrays(dynamic_ds / "scene1" / "truth" / "objects.npz")
    assert objects["pose"].shape == (2, FRAMES, 4, 4) and objects["half"].shape == (2, 3)
    still_objects = read_arrays(still_ds / "scene1" / "truth" / "objects.npz")["pose"]
    assert np.array_equal(still_objects, np.repeat(objects["pose"][:, :1], FRAMES, axis=1))


def _face_checks(c2w, k, depth, pose, half):
    """For each face of a moving box facing the camera whose centre projects into the image, what
    the rendered depth at that pixel shows: ``"match"`` (it unprojects onto the box's surface within
    the pixel's footprint of the face centre), ``"occluded"`` (something nearer) or ``"wrong"``."""
    w2c = cam.invert_pose(c2w)
    out = []
    for axis in range(3):
        for side in (-1.0, 1.0):
            local = np.zeros(3)
            local[axis] = side * half[axis]
            point = pose[:3, :3] @ local + pose[:3, 3]
            view = c2w[:3, 3] - point
            cos = (pose[:3, axis] * side) @ view / np.linalg.norm(view)
            if cos < 0.25:
                continue  # facing away or grazing (the face is a pixel wide or less)
            uv, z = cam.project(point[None], w2c, k)
            u, v = uv[0]
            if z[0] <= 0 or not (1 <= u < SIZE[0] - 1 and 1 <= v < SIZE[1] - 1):
                continue
            i, j = int(v), int(u)
            d = float(depth[i, j])
            hit = c2w[:3, :3] @ (np.linalg.inv(k) @ [j + 0.5, i + 0.5, 1.0] * d) + c2w[:3, 3]
            hit_local = pose[:3, :3].T @ (hit - pose[:3, 3])
            on_box = abs(np.max(np.abs(hit_local) / half) - 1.0) < 1e-4
            footprint = d / k[0, 0] / cos  # a pixel's extent on the face
            if on_box and np.linalg.norm(hit - point) < 1.5 * footprint:
                out.append("match")
            elif d < z[0] - 0.02:
                out.append("occluded")
            else:
                out.append("wrong")
    return out


def test_cameras_see_the_boxes_where_they_are_at_that_time(dynamic_ds):
    """Synchronized: at every frame, each camera's depth puts the moving boxes' visible face centres
    where the truth says they are at that frame (and not where they are at another frame)."""
    truth = read_arrays(dynamic_ds / "scene1" / "truth" / "cameras.npz")
    objects = read_arrays(dynamic_ds / "scene1" / "truth" / "objects.npz")
    depth = [read_arrays(dynamic_ds / "scene1" / "truth" / "depth" / f"{n}.npz")["depth"] for n in NAMES]
    right, wrong = [], []
    for f in range(FRAMES):
        seen_by = set()
        for n in range(4):
            for m in range(2):
                checks = _face_checks(
                    truth["c2w"][n, f], truth["k"], depth[n][f], objects["pose"][m, f], objects["half"][m]
                )
                right += checks
                if m == 0 and "match" in checks:
                    seen_by.add(n)
                other = objects["pose"][m, (f + 4) % FRAMES]  # the box at another time
                wrong += _face_checks(truth["c2w"][n, f], truth["k"], depth[n][f], other, objects["half"][m])
        assert len(seen_by) >= 2, f"frame {f}: the first moving box is seen by cameras {sorted(seen_by)}"
    assert len(right) > 40 and "wrong" not in right
    assert right.count("match") > 0.6 * len(right)  # the rest: hidden behind the other box
    assert wrong.count("wrong") > 0.25 * len(wrong)


def test_reproducible_and_rerun(tmp_path, dynamic_ds):
    a = tmp_path / "a"
    synth.synthesize_multicam(a, 4, dynamic=True, **KW)
    for rel in ["scene1/cameras/camera_extrinsics.json"]:
        assert (a / rel).read_text() == (dynamic_ds / rel).read_text()
    for rel in ["truth/cameras.npz", "truth/objects.npz", "truth/depth/cam04.npz"]:
        x, y = read_arrays(a / "scene1" / rel), read_arrays(dynamic_ds / "scene1" / rel)
        assert all(np.array_equal(x[key], y[key]) for key in x)
    assert np.array_equal(read_video(a / "scene1/videos/cam04.mp4"), read_video(dynamic_ds / "scene1/videos/cam04.mp4"))
    b = tmp_path / "b"
    synth.synthesize_multicam(b, 4, dynamic=True, **{**KW, "seed": 6})
    assert not np.allclose(
        read_arrays(a / "scene1/truth/cameras.npz")["c2w"], read_arrays(b / "scene1/truth/cameras.npz")["c2w"]
    )

    # re-running skips the finished scene, adds the new one (its own draw), and --overwrite redoes
    json_path = a / "scene1" / "cameras" / "camera_extrinsics.json"
    before = json_path.stat().st_mtime_ns
    table = synth.synthesize_multicam(a, 4, dynamic=True, scenes=2, **KW)
    assert json_path.stat().st_mtime_ns == before and table.attrs["skipped"] == ["scene1"]
    assert sorted(table["scene"]) == ["scene1", "scene2"]
    assert len(pd.read_csv(a / "metadata.csv")) == 8
    two = [read_arrays(a / f"scene{i}/truth/cameras.npz")["c2w"] for i in (1, 2)]
    assert not np.allclose(two[0], two[1])
    with pytest.raises(RealcamError, match="other settings"):
        synth.synthesize_multicam(a, 4, dynamic=False, **KW)
    synth.synthesize_multicam(a, 4, dynamic=True, overwrite=True, **KW)
    assert json_path.stat().st_mtime_ns != before
    assert json.loads(json_path.read_text())["frame8"]["cam04"].endswith("1.0]")


@pytest.mark.parametrize(
    "kwargs,option",
    [
        (dict(n_cameras=1), "--cameras"),
        (dict(n_cameras=100), "--cameras"),
        (dict(n_frames=0), "--frames"),
        (dict(scenes=0), "--scenes"),
        (dict(fps=0), "--fps"),
        (dict(size=(4, 32)), "--size"),
        (dict(seed=-1), "--seed"),
        (dict(motions=["arc"] * 3), "motions"),
        (dict(motions=["arc", "spin", "arc", "arc"]), "motions"),
        (dict(n_moving=99), "n_moving"),
    ],
)
def test_bad_options(tmp_path, kwargs, option):
    args = {**KW, "n_cameras": 4, **kwargs}
    n = args.pop("n_cameras")
    with pytest.raises(RealcamError) as err:
        synth.synthesize_multicam(tmp_path / "x", n, **args)
    assert str(err.value).startswith(option)
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------
def test_cli_multicam(tmp_path):
    out = tmp_path / "mc"
    args = ["synth", "--cameras", "3", "--dynamic", "--frames", "5", "--size", "32x24", "--seed", "2"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout and "1 scenes written" in result.stdout
    read = read_multicam_cameras(out / "scene1" / "cameras" / "camera_extrinsics.json")
    assert list(read) == ["cam01", "cam02", "cam03"] and read["cam01"].shape == (5, 4, 4)
    assert read_video(out / "scene1" / "videos" / "cam03.mp4").shape == (5, 24, 32, 3)
    again = runner.invoke(app, [*args, "--out", str(out)])
    assert again.exit_code == 0 and "1 skipped" in again.stdout


def test_cli_single_trajectory_mode_unchanged(tmp_path, pose_files):
    out = tmp_path / "re10k"
    result = runner.invoke(app, ["synth", "--poses", str(pose_files[0]), "--out", str(out), "--size", "16x16"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("synth: 1 written (0 skipped as already done), 1 clips")
    assert (out / "cameras" / f"{pose_files[0].stem}.txt").is_file() and (out / "truth.parquet").is_file()


@pytest.mark.parametrize(
    "args,option",
    [
        (["--cameras", "1"], "--cameras"),
        (["--cameras", "3", "--frames", "0"], "--frames"),
        (["--cameras", "3", "--scenes", "0"], "--scenes"),
        (["--cameras", "3", "--fps", "-2"], "--fps"),
        (["--cameras", "3", "--size", "big"], "--size"),
        (["--cameras", "3", "--scale", "2"], "--scale"),
        (["--cameras", "3", "--poses", "x.txt"], "--poses"),
        (["--dynamic"], "--dynamic"),
        (["--frames", "9"], "--frames"),
        ([], "--poses"),
    ],
)
def test_cli_bad_options(tmp_path, args, option):
    out = tmp_path / "out"
    result = runner.invoke(app, ["synth", *args, "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}"), result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()
