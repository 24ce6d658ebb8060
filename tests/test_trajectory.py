"""Trajectory JSON, presets and SE(3) interpolation (stages/core/trajectory.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from stages.core import cameras as cam
from stages.core import trajectory as tr
from stages.core.errors import RealcamError

POSES = Path(__file__).resolve().parents[1] / "examples" / "data" / "poses"


def random_keyframes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.repeat(np.eye(4)[None], n, axis=0)
    out[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    out[:, :3, 3] = rng.normal(size=(n, 3))
    out[0] = np.eye(4)
    return out


def assert_proper(c2w: np.ndarray) -> None:
    r = c2w[:, :3, :3]
    assert np.abs(r @ np.swapaxes(r, 1, 2) - np.eye(3)).max() < 1e-9
    assert np.allclose(np.linalg.det(r), 1.0, atol=1e-9)
    assert np.array_equal(c2w[:, 3], np.tile([0, 0, 0, 1.0], (len(c2w), 1)))


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    return float(Rotation.from_matrix(a.T @ b).magnitude())


@pytest.mark.parametrize("spline", [False, True])
def test_keyframes_reproduced_exactly_and_rotations_proper(spline):
    keys = random_keyframes(4)
    traj = tr.Trajectory(keys, np.linspace(0, 1, 4), spline=spline)
    dense = tr.densify(traj, 16)  # keyframe times 0, 1/3, 2/3, 1 are frames 0, 5, 10, 15
    assert dense.c2w.shape == (16, 4, 4)
    for i, j in enumerate([0, 5, 10, 15]):
        assert np.array_equal(dense.c2w[j], keys[i])
    assert_proper(dense.c2w)


def test_uneven_keyframe_times_are_hit():
    keys = random_keyframes(3, seed=1)
    traj = tr.Trajectory(keys, np.array([0.0, 2.0, 8.0]))  # 9 frames: times 0, 1, ..., 8
    dense = tr.densify(traj, 9)
    assert np.array_equal(dense.c2w[2], keys[1])
    assert np.array_equal(dense.c2w[8], keys[2])
    # Between keyframes 0 and 1 the position moves linearly in time.
    assert np.allclose(dense.c2w[1, :3, 3], 0.5 * (keys[0, :3, 3] + keys[1, :3, 3]))


def test_two_keyframe_rotation_has_constant_angular_speed():
    end = tr.pose(Rotation.from_rotvec([0.3, -1.1, 0.4]).as_matrix())
    dense = tr.densify(tr.Trajectory(np.stack([np.eye(4), end]), np.array([0.0, 1.0])), 16)
    steps = [angle_between(dense.c2w[i, :3, :3], dense.c2w[i + 1, :3, :3]) for i in range(15)]
    total = Rotation.from_matrix(end[:3, :3]).magnitude()
    assert np.allclose(steps, total / 15, atol=1e-12)
    assert np.allclose(dense.c2w[:, :3, 3], 0.0)
    # The rotation axis stays the same: a geodesic, not element-wise lerp.
    axes = Rotation.from_matrix(dense.c2w[1:, :3, :3]).as_rotvec()
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    assert np.allclose(axes, axes[0], atol=1e-9)
    assert_proper(dense.c2w)


def test_loop_ends_where_it_starts():
    keys = random_keyframes(3, seed=2)
    dense = tr.densify(tr.Trajectory(keys, np.linspace(0, 1, 3), loop=True), 17)
    assert np.array_equal(dense.c2w[0], keys[0])
    assert np.array_equal(dense.c2w[-1], keys[0])
    assert np.array_equal(dense.c2w[8], keys[-1])  # odd count: the far end is a frame
    assert np.allclose(dense.c2w[3], dense.c2w[13])  # out and back along the same path
    assert_proper(dense.c2w)


def test_easing_keeps_end_points_and_slows_the_ends():
    keys = np.stack([np.eye(4), tr.pose(position=(1.0, 0, 0))])
    lin = tr.densify(tr.Trajectory(keys, np.array([0.0, 1.0])), 11)
    eased = tr.densify(tr.Trajectory(keys, np.array([0.0, 1.0]), easing="ease-in-out"), 11)
    x_lin, x_eased = lin.c2w[:, 0, 3], eased.c2w[:, 0, 3]
    assert np.allclose(x_lin, np.linspace(0, 1, 11))
    assert x_eased[0] == 0 and x_eased[-1] == 1 and np.all(np.diff(x_eased) > 0)
    assert x_eased[1] < x_lin[1] and np.isclose(x_eased[5], 0.5)
    with pytest.raises(RealcamError, match="easing"):
        tr.ease(np.zeros(2), "bounce")


def test_spline_is_smooth_through_keyframes():
    keys = np.repeat(np.eye(4)[None], 4, axis=0)
    keys[:, :3, 3] = [[0, 0, 0], [1, 1, 0], [2, 0, 0], [3, 1, 0]]  # a zig-zag
    lin = tr.densify(tr.Trajectory(keys, np.linspace(0, 1, 4)), 31).c2w[:, :3, 3]
    spl = tr.densify(tr.Trajectory(keys, np.linspace(0, 1, 4), spline=True), 31).c2w[:, :3, 3]

    # Linear paths have a kink at the middle keyframes; the spline's direction changes gently.
    def max_turn(p):
        d = np.diff(p, axis=0)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return np.degrees(np.arccos(np.clip((d[1:] * d[:-1]).sum(1), -1, 1))).max()

    assert max_turn(lin) > 80
    assert max_turn(spl) < 30
    assert np.array_equal(spl[10], keys[1, :3, 3]) and np.array_equal(spl[20], keys[2, :3, 3])


# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------
def final(spec, magnitude, depth=2.0, n=16):
    traj = tr.preset_trajectory(spec, magnitude, n, centre_depth=depth)
    assert traj.c2w.shape == (n, 4, 4)
    assert np.array_equal(traj.c2w[0], np.eye(4))
    assert_proper(traj.c2w)
    return traj.c2w[-1]


@pytest.mark.parametrize(
    "name, vector",
    [
        ("dolly-in", [0, 0, 0.7]),
        ("dolly-out", [0, 0, -0.7]),
        ("zoom-in", [0, 0, 0.7]),
        ("truck-right", [0.7, 0, 0]),
        ("truck-left", [-0.7, 0, 0]),
        ("pedestal-up", [0, -0.7, 0]),
        ("pedestal-down", [0, 0.7, 0]),
    ],
)
def test_translation_presets_move_by_the_metric_amount(name, vector):
    end = final(name, 0.7)
    assert np.allclose(end[:3, 3], vector, atol=1e-12)
    assert np.allclose(end[:3, :3], np.eye(3), atol=1e-12)


@pytest.mark.parametrize(
    "name, forward",
    [
        ("pan-right", [np.sin(np.radians(25)), 0, np.cos(np.radians(25))]),
        ("pan-left", [-np.sin(np.radians(25)), 0, np.cos(np.radians(25))]),
        ("tilt-up", [0, -np.sin(np.radians(25)), np.cos(np.radians(25))]),
        ("tilt-down", [0, np.sin(np.radians(25)), np.cos(np.radians(25))]),
        ("roll-cw", [0, 0, 1]),
    ],
)
def test_rotation_presets_turn_by_the_requested_angle(name, forward):
    end = final(name, 25)
    assert np.isclose(np.degrees(Rotation.from_matrix(end[:3, :3]).magnitude()), 25)
    assert np.allclose(end[:3, 2], forward, atol=1e-12)
    assert np.allclose(end[:3, 3], 0)


def test_roll_turns_about_the_forward_axis():
    end = final("roll-cw", 10)
    assert np.allclose(end[:3, 0], [np.cos(np.radians(10)), np.sin(np.radians(10)), 0])


@pytest.mark.parametrize(
    "name, sign_axis",
    [("orbit-right", (0, +1)), ("orbit-left", (0, -1)), ("orbit-up", (1, -1)), ("orbit-down", (1, +1))],
)
def test_orbit_keeps_the_centre_in_view_at_constant_distance(name, sign_axis):
    depth = 3.0
    traj = tr.preset_trajectory(name, 30, 16, centre_depth=depth)
    pivot = np.array([0, 0, depth])
    centres = traj.c2w[:, :3, 3]
    assert np.allclose(np.linalg.norm(centres - pivot, axis=1), depth, atol=1e-12)
    # The pivot stays on the optical axis of every frame.
    k = cam.default_intrinsics(64, 48)
    for c2w in traj.c2w:
        uv, z = cam.project(pivot[None], cam.invert_pose(c2w), k)
        assert np.allclose(uv[0], [32, 24]) and np.isclose(z[0], depth)
    # The swing angle is 30 degrees and goes the named way.
    axis, sign = sign_axis
    end = centres[-1]
    assert np.isclose(np.degrees(np.arccos(np.dot(-pivot, end - pivot) / depth**2)), 30)
    assert np.sign(end[axis]) == sign


def test_combined_presets_compose_and_stationary_stays():
    end = final("pan-right+dolly-in", [20, 0.5])
    fwd = end[:3, 2]
    assert np.isclose(np.degrees(np.arctan2(fwd[0], fwd[2])), 20)
    assert np.allclose(end[:3, 3], 0.5 * fwd)  # moved 0.5 m along its own (turned) view
    assert np.array_equal(final("stationary", None), np.eye(4))
    steps = np.diff(tr.preset_trajectory("truck-right", 1.5, 16).c2w[:, 0, 3])
    assert np.allclose(steps, 0.1)  # constant speed
    for bad, match in (("pan-sideways", "unknown preset"), ("pan-left+tilt-up+roll-cw", r"NAME\+NAME")):
        with pytest.raises(RealcamError, match=match):
            tr.preset_trajectory(bad, 10)
    with pytest.raises(RealcamError, match="magnitudes"):
        tr.preset_trajectory("pan-left+tilt-up", [1, 2, 3])


def test_look_at_keyframes():
    c2w = tr.look_at([1.0, -0.5, 0.0], [0.0, 0.0, 4.0])
    assert_proper(c2w[None])
    fwd = np.array([-1.0, 0.5, 4.0]) / np.linalg.norm([-1.0, 0.5, 4.0])
    assert np.allclose(c2w[:3, 2], fwd)
    assert abs(c2w[1, 0]) < 1e-12  # camera x stays horizontal with up = -y
    assert np.allclose(tr.look_at([0, 0, 0], [0, 0, 1]), np.eye(4))


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def test_json_round_trip(tmp_path):
    traj = tr.densify(
        tr.Trajectory(random_keyframes(3), np.linspace(0, 1, 3), intrinsics=np.array([0.5, 0.8, 0.5, 0.5])), 7
    )
    tr.write_trajectory_json(tmp_path / "t.json", traj)
    back = tr.load_trajectory(tmp_path / "t.json")
    assert np.array_equal(back.c2w, traj.c2w) and np.array_equal(back.times, traj.times)
    assert np.array_equal(back.intrinsics, traj.intrinsics) and back.frames == 7


def test_json_schema_with_look_at_and_options(tmp_path):
    doc = {
        "version": 1,
        "frames": 9,
        "fov_deg": 60,
        "interpolation": "spline",
        "loop": True,
        "keyframes": [
            {"c2w": np.eye(4).tolist(), "time": 0},
            {"position": [0.2, 0, 0.5], "look_at": [0, 0, 3], "time": 1},
            {"position": [0.4, 0, 1.0], "look_at": [0, 0, 3], "up": [0, -1, 0], "time": 3},
        ],
    }
    (tmp_path / "t.json").write_text(json.dumps(doc))
    dense = tr.resolve_trajectory(tmp_path / "t.json")
    assert dense.c2w.shape == (9, 4, 4) and np.array_equal(dense.c2w[-1], np.eye(4))
    assert_proper(dense.c2w)
    k = dense.pixel_intrinsics(200, 100)
    assert np.isclose(k[0, 0], 100 / np.tan(np.radians(30)))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("version"), "key 'version'"),
        (lambda d: d.update(frames=0), "key 'frames'"),
        (lambda d: d.update(colour=1), "unknown key 'colour'"),
        (
            lambda d: d["keyframes"][1].update(c2w=np.diag([1, 1, -1, 1.0]).tolist()),
            "keyframe 1: key 'c2w': rotation is a reflection",
        ),
        (lambda d: d["keyframes"][1].update(c2w=[[1, 2], [3, 4]]), "keyframe 1: key 'c2w' must be a 4x4"),
        (lambda d: d["keyframes"][2].update(time=0.5), "keyframe 2: key 'time' must increase"),
        (lambda d: d["keyframes"][1].pop("time"), "keyframe 1: key 'time' is missing"),
        (lambda d: d["keyframes"][2].update(position=[0, 0]), "keyframe 2: key 'position' must be 3"),
        (lambda d: d["keyframes"][2].update(look_at=[0.5, 0, 1.5]), "keyframe 2: look_at equals position"),
        (lambda d: d["keyframes"][0].pop("c2w"), "keyframe 0: needs key 'c2w'"),
        (lambda d: d.update(intrinsics=[0.5, 0.5]), "key 'intrinsics'"),
    ],
)
def test_json_errors_name_the_key_and_keyframe(tmp_path, mutate, message):
    doc = {
        "version": 1,
        "keyframes": [
            {"c2w": np.eye(4).tolist(), "time": 0.0},
            {"c2w": tr.pose(position=(0, 0, 0.5)).tolist(), "time": 1.0},
            {"position": [0.5, 0, 1.5], "look_at": [0, 0, 3], "time": 2.0},
        ],
    }
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(RealcamError) as err:
        tr.load_trajectory(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"version": 1,\n "keyframes": [,]}\n')
    with pytest.raises(RealcamError, match=r"bad.json:2: invalid JSON"):
        tr.load_trajectory(path)


def test_re10k_used_as_is_or_resampled(tmp_path):
    src = POSES / "0f47577ab3441480.txt"
    cams = cam.read_re10k(src)
    dense = tr.resolve_trajectory(src)
    assert len(dense.c2w) == 16
    assert np.array_equal(dense.c2w[0], np.eye(4))
    assert np.allclose(dense.c2w, cam.relative_poses(cams.c2w), atol=1e-7)
    assert_proper(dense.c2w)
    assert np.array_equal(dense.intrinsics, cams.intrinsics[0])
    eight = tr.resolve_trajectory(src, frames=8)
    assert len(eight.c2w) == 8 and np.array_equal(eight.c2w[-1], dense.c2w[-1])
    assert_proper(eight.c2w)
    # Written back as RealEstate10K text, the dense path reads back the same.
    k = dense.pixel_intrinsics(64, 48)
    cam.write_re10k(tmp_path / "t.txt", tr.to_re10k(dense, 64, 48, k=k))
    back = cam.read_re10k(tmp_path / "t.txt")
    assert np.allclose(back.c2w, dense.c2w, atol=1e-12)
    assert np.allclose(back.intrinsics[0], cams.intrinsics[0])
