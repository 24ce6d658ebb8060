"""ReCamMaster cameras (stages/rerender/cameras.py): Unreal camera strings, camera tokens and the
ten official target trajectories.

Where the facts come from (github.com/KwaiVGI/ReCamMaster, commit 39c0dc2):

* the Unreal string parsing and the conversion (transpose, columns [1, 2, 0, 3], negate column 1,
  cm -> m), 21 poses at frames 0, 4, ..., 80, ``inv(c2w_ref) @ c2w_i`` flattened row-major from the
  top 3x4: ``inference_recammaster.py`` (``TextVideoCameraDataset.parse_matrix`` / ``__getitem__``);
* the training reference (the condition camera's frame 0): ``train_recammaster.py``
  (``TensorDataset.__getitem__``);
* the ten trajectories: ``example_test_data/cameras/camera_extrinsics.json`` (``cam01`` .. ``cam10``);
  the strings in ``OFFICIAL`` below are copied from it verbatim.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from stages.core import trajectory as tr
from stages.core.errors import RealcamError
from stages.rerender import cameras as rc

NAMES = [
    "recam-pan-right",
    "recam-pan-left",
    "recam-tilt-up",
    "recam-tilt-down",
    "recam-zoom-in",
    "recam-zoom-out",
    "recam-translate-up",
    "recam-translate-down",
    "recam-arc-left",
    "recam-arc-right",
]

#: End pose at frame 80 relative to frame 0, as published: (yaw deg, pitch deg, position m).
#: Yaw > 0 turns the view towards +x (right), pitch > 0 towards -y (up).
PUBLISHED = {
    "recam-pan-right": (19.9, 0.0, (0, 0, 0)),
    "recam-pan-left": (-19.9, 0.0, (0, 0, 0)),
    "recam-tilt-up": (0.0, 10.0, (0, 0, 0)),
    "recam-tilt-down": (0.0, -10.0, (0, 0, 0)),
    "recam-zoom-in": (0.0, 0.0, (0, 0, 1.988)),
    "recam-zoom-out": (0.0, 0.0, (0, 0, -1.988)),
    "recam-translate-up": (0.0, -14.0, (0, -0.994, 0)),  # rises, looks down at the scene
    "recam-translate-down": (0.0, 14.0, (0, 0.994, 0)),
    "recam-arc-left": (29.8, 0.0, (-1.988, 0, 0.533)),
    "recam-arc-right": (-29.8, 0.0, (1.988, 0, 0.533)),
}

#: Verbatim from camera_extrinsics.json: frame0 (the same for all ten cameras), then cam01..cam10
#: at frames 40 and 80.
OFFICIAL_FRAME0 = "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1] "
OFFICIAL = {
    40: [
        "[0.984995 0.17258 0 0] [-0.17258 0.984995 0 0] [0 -0 1 0] [3390 1380 240 1] ",
        "[0.984995 -0.17258 0 0] [0.17258 0.984995 -0 0] [0 0 1 0] [3390 1380 240 1] ",
        "[0.996242 0 0.0866158 0] [6.69781e-35 1 -7.70372e-34 0] [-0.0866158 7.73278e-34 0.996242 0] "
        "[3390 1380 240 1] ",
        "[0.996242 0 -0.0866158 0] [-0 1 0 0] [0.0866158 0 0.996242 0] [3390 1380 240 1] ",
        "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3489.38 1380 240 1] ",
        "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3290.62 1380 240 1] ",
        "[0.992372 0 -0.123276 0] [-0 1 0 0] [0.123276 0 0.992372 0] [3390 1380 289.689 1] ",
        "[0.992372 0 0.123276 0] [-0 1 0 0] [-0.123276 -0 0.992372 0] [3390 1380 190.311 1] ",
        "[0.966355 0.257211 0 0] [-0.257211 0.966355 0 0] [0 -0 1 0] [3416.63 1280.62 240 1] ",
        "[0.966355 -0.257211 0 0] [0.257211 0.966355 -0 0] [0 0 1 0] [3416.63 1479.38 240 1] ",
    ],
    80: [
        "[0.940432 0.339982 0 0] [-0.339982 0.940432 0 0] [0 -0 1 0] [3390 1380 240 1] ",
        "[0.940432 -0.339982 0 0] [0.339982 0.940432 -0 0] [0 0 1 0] [3390 1380 240 1] ",
        "[0.984995 -2.13821e-50 0.17258 0] [2.69953e-34 1 -1.54074e-33 0] [-0.17258 1.56421e-33 0.984995 0] "
        "[3390 1380 240 1] ",
        "[0.984995 0 -0.17258 0] [-0 1 0 0] [0.17258 0 0.984995 0] [3390 1380 240 1] ",
        "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3588.76 1380 240 1] ",
        "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3191.24 1380 240 1] ",
        "[0.970496 0 -0.241117 0] [-0 1 0 0] [0.241117 0 0.970496 0] [3390 1380 339.379 1] ",
        "[0.970496 0 0.241117 0] [-0 1 0 0] [-0.241117 -0 0.970496 0] [3390 1380 140.621 1] ",
        "[0.867575 0.497306 0 0] [-0.497306 0.867575 0 0] [0 -0 1 0] [3443.26 1181.24 240 1] ",
        "[0.867575 -0.497306 0 0] [0.497306 0.867575 -0 0] [0 0 1 0] [3443.26 1578.76 240 1] ",
    ],
}


def yaw_pitch(c2w: np.ndarray) -> tuple[float, float]:
    """Yaw (towards +x) and pitch (towards -y, up) of the viewing direction, in degrees."""
    f = c2w[:3, 2]
    return math.degrees(math.atan2(f[0], f[2])), math.degrees(math.atan2(-f[1], math.hypot(f[0], f[2])))


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(Rotation.from_matrix(a[:3, :3].T @ b[:3, :3]).magnitude()))


def unreal_string(rotation_rows: np.ndarray, position_cm) -> str:
    """An Unreal row-vector transform string: rows = local X (forward), Y (right), Z (up)."""
    rows = [" ".join(f"{v:.9g}" for v in r) + " 0" for r in rotation_rows]
    return " ".join(f"[{r}]" for r in rows) + f" [{' '.join(f'{v:.9g}' for v in position_cm)} 1] "


def unreal_yaw(deg: float) -> np.ndarray:
    """Unreal rotation turning forward (X) towards right (Y) by ``deg`` (Unreal's yaw)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def write_cameras(path: Path, cams: dict[str, list[str]]) -> Path:
    n = len(next(iter(cams.values())))
    doc = {f"frame{i}": {name: strings[i] for name, strings in cams.items()} for i in range(n)}
    path.write_text(json.dumps(doc))
    return path


# ----------------------------------------------------------------------------------------------
# The ten official trajectories
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_preset_end_pose_matches_published(name):
    traj = rc.recam_preset(name)
    assert traj.c2w.shape == (81, 4, 4) and traj.frames == 81
    end = traj.c2w[80]
    yaw, pitch, position = PUBLISHED[name]
    got_yaw, got_pitch = yaw_pitch(end)
    assert got_yaw == pytest.approx(yaw, abs=0.1)
    assert got_pitch == pytest.approx(pitch, abs=0.1)
    assert np.abs(end[:3, 3] - position).max() < 1e-3  # 1 mm
    assert abs(end[1, 0]) < 1e-12  # no roll: the camera's x axis stays horizontal
    r = traj.c2w[:, :3, :3]
    assert np.abs(r @ np.swapaxes(r, 1, 2) - np.eye(3)).max() < 1e-12
    assert np.allclose(np.linalg.det(r), 1.0)


@pytest.mark.parametrize("index", range(1, 11))
def test_preset_reproduces_official_file(index):
    """Frames 40 and 80 of camNN, converted and made relative to frame 0, are the preset's."""
    traj = rc.recam_preset(f"recam-{index}")
    start = rc.unreal_to_c2w(OFFICIAL_FRAME0)
    for frame, strings in OFFICIAL.items():
        rel = np.linalg.inv(start) @ rc.unreal_to_c2w(strings[index - 1])
        assert angle_deg(rel, traj.c2w[frame]) < 1e-3
        assert np.abs(rel[:3, 3] - traj.c2w[frame][:3, 3]).max() < 1e-4  # 0.1 mm


def test_official_end_values_are_not_round_numbers():
    """19.9 deg, 10 deg, 1.988 m are roundings: the file says 19.8758, 9.9379, 1.9876."""
    assert yaw_pitch(rc.recam_preset("recam-pan-right").c2w[80])[0] == pytest.approx(19.8758, abs=1e-4)
    assert yaw_pitch(rc.recam_preset("recam-tilt-up").c2w[80])[1] == pytest.approx(9.9379, abs=1e-4)
    assert rc.recam_preset("recam-zoom-in").c2w[80][2, 3] == pytest.approx(1.9876, abs=1e-9)
    assert yaw_pitch(rc.recam_preset("recam-arc-left").c2w[80])[0] == pytest.approx(29.8219, abs=1e-3)
    assert yaw_pitch(rc.recam_preset("recam-translate-up").c2w[80])[1] == pytest.approx(-13.9525, abs=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_preset_frame0_identity_and_aliases(name):
    traj = rc.recam_preset(name)
    assert np.array_equal(traj.c2w[0], np.eye(4))
    alias = f"recam-{NAMES.index(name) + 1}"
    assert np.array_equal(rc.recam_preset(alias).c2w, traj.c2w)
    assert rc.RECAM_PRESETS[name].index == NAMES.index(name) + 1
    assert rc.is_recam_preset(alias) and rc.is_recam_preset(name.upper())


def test_intermediate_law():
    i = np.arange(81)
    # Pans and tilts turn at a constant rate; dollies move at a constant speed.
    pan = rc.recam_preset("recam-pan-right").c2w
    assert np.allclose([yaw_pitch(m)[0] for m in pan], 19.8758 * i / 80, atol=1e-9)
    tilt = rc.recam_preset("recam-tilt-down").c2w
    assert np.allclose([yaw_pitch(m)[1] for m in tilt], -9.9379 * i / 80, atol=1e-9)
    dolly = rc.recam_preset("recam-zoom-out").c2w
    assert np.allclose(dolly[:, 2, 3], -1.9876 * i / 80, atol=1e-12)
    assert np.allclose(dolly[:, :3, :3], np.eye(3))
    # Translate and arc: position on the straight line at constant speed, aiming at (0, 0, 4 m):
    # the angle is NOT linear in time (13.95 / 2 = 6.98 deg, but 7.08 deg at the midpoint).
    up = rc.recam_preset("recam-translate-up").c2w
    assert np.allclose(up[:, 1, 3], -0.99379 * i / 80, atol=1e-12)
    assert yaw_pitch(up[40])[1] == pytest.approx(-math.degrees(math.atan(0.99379 / 2 / 4)), abs=1e-9)
    assert abs(yaw_pitch(up[40])[1] - yaw_pitch(up[80])[1] / 2) > 0.09
    arc = rc.recam_preset("recam-arc-right").c2w
    assert np.allclose(arc[40, :3, 3], [0.9938, 0, 0.2663], atol=1e-9)
    for m in arc[1:]:  # the optical axis passes through the aim point
        to_aim = np.array([0, 0, 4.0]) - m[:3, 3]
        assert np.allclose(m[:3, 2], to_aim / np.linalg.norm(to_aim), atol=1e-12)


def test_preset_other_lengths_cover_the_same_motion():
    short = rc.recam_preset("recam-arc-left", frames=21)
    assert short.c2w.shape == (21, 4, 4)
    assert np.allclose(short.c2w[-1], rc.recam_preset("recam-arc-left").c2w[-1])
    assert np.allclose(short.c2w[10], rc.recam_preset("recam-arc-left").c2w[40])


def test_unknown_preset_lists_known_names():
    with pytest.raises(RealcamError) as err:
        rc.recam_preset("recam-dolly-zoom")
    msg = str(err.value)
    assert "recam-dolly-zoom" in msg and all(n in msg for n in NAMES) and "recam-1..recam-10" in msg
    with pytest.raises(RealcamError):
        rc.recam_preset("recam-11")
    with pytest.raises(RealcamError):
        rc.recam_preset("recam-pan-left", frames=0)
    assert not rc.is_recam_preset("pan-left")


# ----------------------------------------------------------------------------------------------
# Unreal camera strings and files
# ----------------------------------------------------------------------------------------------
def test_unreal_axis_mapping_and_units(tmp_path):
    """Unreal X (forward) -> OpenCV +z, Y (right) -> +x, Z (up) -> -y; 100 cm -> 1 m."""
    eye = np.eye(3)
    start = (3390.0, 1380.0, 240.0)
    moves = {"fwd": (100, 0, 0), "right": (0, 100, 0), "up": (0, 0, 100)}
    cams = {k: [unreal_string(eye, start), unreal_string(eye, np.add(start, d))] for k, d in moves.items()}
    # A camera already yawed 90 deg in the world: moving along ITS forward (world +Y) is still +z.
    cams["turned"] = [unreal_string(unreal_yaw(90), start), unreal_string(unreal_yaw(90), np.add(start, (0, 250, 0)))]
    # Unreal yaw +20 deg (forward turns towards right) is a pan right.
    cams["yaw"] = [unreal_string(eye, start), unreal_string(unreal_yaw(20), start)]
    poses = rc.read_multicam_cameras(write_cameras(tmp_path / "camera_extrinsics.json", cams))
    assert list(poses) == ["fwd", "right", "up", "turned", "yaw"]
    rel = {k: np.linalg.inv(v[0]) @ v[1] for k, v in poses.items()}
    assert np.allclose(rel["fwd"][:3, 3], [0, 0, 1])
    assert np.allclose(rel["right"][:3, 3], [1, 0, 0])
    assert np.allclose(rel["up"][:3, 3], [0, -1, 0])
    assert np.allclose(rel["turned"][:3, 3], [0, 0, 2.5])
    assert yaw_pitch(rel["yaw"]) == pytest.approx((20.0, 0.0), abs=1e-6)
    # Absolute matrices stay in Unreal's world (positions are its X, Y, Z in metres); only the
    # camera's own axes are remapped, to (right, down, forward) = Unreal (Y, -Z, X).
    assert np.allclose(poses["fwd"][0][:3, 3], [33.90, 13.80, 2.40])
    assert np.allclose(poses["fwd"][0][:3, :3], [[0, 0, 1], [1, 0, 0], [0, -1, 0]])
    for v in poses.values():  # absolute: Unreal's left-handed world; relative: proper rotations
        assert np.allclose(np.linalg.det(v[:, :3, :3]), -1.0)
    for m in rel.values():
        assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0)
        assert np.array_equal(m[3], [0, 0, 0, 1])


def test_unreal_to_c2w_official_string_and_short_rows():
    c2w = rc.unreal_to_c2w(OFFICIAL[80][0])
    assert c2w.dtype == np.float64 and c2w.shape == (4, 4)
    assert np.allclose(c2w[:3, 3], [33.90, 13.80, 2.40])
    # vis_cam.py also reads rotation rows written without the trailing 0.
    short = "[0.940432 0.339982 0] [-0.339982 0.940432 0] [0 -0 1] [3390 1380 240 1]"
    assert np.array_equal(rc.unreal_to_c2w(short), c2w)
    rel = np.linalg.inv(rc.unreal_to_c2w(OFFICIAL_FRAME0)) @ c2w
    assert np.linalg.det(rel[:3, :3]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "text",
    [
        "[1 0 0 0] [0 1 0 0] [0 0 1 0]",  # three rows
        "[1 0 0 0] [0 1 0 0] [0 0 1 0] [1 2 3 1] [0 0 0 1]",  # five rows
        "[1 0 0 0] [0 1 0 0] [0 0 1 0] [1 2 x 1]",  # not a number
        "[1 0 0 0] [0 1 0 0] [0 0 1 0] [1 2 3 0]",  # bad homogeneous row
        "[1 0 0 0] [0 1 0 0] [0 0 1 5] [1 2 3 1]",
        "[2 0 0 0] [0 1 0 0] [0 0 1 0] [1 2 3 1]",  # scaled: not a rotation
        "[1 0 0 0] [0 1 0 0] [0 0 -1 0] [1 2 3 1]",  # reflection
        "[1 0 0 0] [0 1 0 0] [0 0 1 0] [1 2 nan 1]",
        "junk [1 0 0 0] [0 1 0 0] [0 0 1 0] [1 2 3 1]",
    ],
)
def test_unreal_to_c2w_rejects_bad_strings(text):
    with pytest.raises(RealcamError) as err:
        rc.unreal_to_c2w(text, "scene/cameras.json")
    assert str(err.value).startswith("scene/cameras.json: ")


GOOD = "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"


@pytest.mark.parametrize(
    "content, expect",
    [
        (None, "no such camera file"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ("{}", "no frames"),
        (json.dumps({"frame0": {"cam01": GOOD}, "frame2": {"cam01": GOOD}}), "frame1 is missing"),
        (json.dumps({"frame1": {"cam01": GOOD}}), "frame0 is missing"),
        (json.dumps({"frame0": {"cam01": GOOD}, "frame01": {"cam01": GOOD}}), "unexpected key 'frame01'"),
        (json.dumps({"frame0": {"cam01": GOOD}, "meta": 1}), "unexpected key 'meta'"),
        (json.dumps({"frame0": {"cam01": GOOD, "cam02": GOOD}, "frame1": {"cam01": GOOD}}), "'cam02' is missing"),
        (json.dumps({"frame0": {"cam01": GOOD}, "frame1": {"cam01": GOOD, "cam09": GOOD}}), "'cam09' is not in"),
        (json.dumps({"frame0": {"cam01": GOOD}, "frame1": {"cam01": 3}}), "frame1 cam01: expected a transform"),
        (json.dumps({"frame0": {"cam01": GOOD}, "frame1": {"cam01": "[1 0 0 0]"}}), "frame1 cam01: expected '["),
        (json.dumps({"frame0": {}}), "frame0: expected an object"),
        (json.dumps({"frame0": {"cam01": GOOD}, "frame1": []}), "frame1: expected an object"),
    ],
)
def test_read_multicam_cameras_bad_files(tmp_path, content, expect):
    path = tmp_path / "camera_extrinsics.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RealcamError) as err:
        rc.read_multicam_cameras(path)
    assert str(path) in str(err.value) and expect in str(err.value)


# ----------------------------------------------------------------------------------------------
# Camera tokens
# ----------------------------------------------------------------------------------------------
def test_tokens_shape_identity_first_and_row_major():
    c2w = rc.recam_preset("recam-arc-left").c2w.copy()
    known = tr.pose(tr.axis_rotation("y", 30.0) @ tr.axis_rotation("x", 10.0), (1.0, 2.0, 3.0))
    c2w[4] = known
    tokens = rc.camera_tokens(c2w)
    assert tokens.shape == (21, 12) and tokens.dtype == np.float32
    assert np.array_equal(tokens[0], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    r = known[:3, :3]
    expected = [r[0, 0], r[0, 1], r[0, 2], 1.0, r[1, 0], r[1, 1], r[1, 2], 2.0, r[2, 0], r[2, 1], r[2, 2], 3.0]
    assert np.allclose(tokens[1], expected, atol=1e-7)
    assert np.allclose(tokens[20].reshape(3, 4), c2w[80][:3], atol=1e-7)
    # Only frames 0, 4, 8, ... are read.
    noisy = c2w.copy()
    noisy[1::4] = tr.pose(tr.axis_rotation("z", 45.0), (9, 9, 9))
    assert np.array_equal(rc.camera_tokens(noisy), tokens)


def test_tokens_relative_to_first_pose_by_default():
    world = tr.pose(tr.axis_rotation("y", 70.0) @ tr.axis_rotation("x", -20.0), (5.0, -1.0, 2.0))
    traj = rc.recam_preset("recam-pan-left").c2w
    assert np.allclose(rc.camera_tokens(world[None] @ traj), rc.camera_tokens(traj), atol=1e-6)


def test_tokens_frames_and_stride():
    traj = rc.recam_preset("recam-zoom-in").c2w
    assert rc.camera_tokens(traj, frames=9).shape == (3, 12)
    assert np.allclose(rc.camera_tokens(traj, frames=9)[2, 11], 1.9876 * 8 / 80)
    assert rc.camera_tokens(traj, stride=8).shape == (11, 12)
    assert rc.latent_frame_count(81) == 21 and rc.latent_frame_count(1) == 1


def test_training_tokens_relative_to_source_camera(tmp_path):
    """Training: target poses relative to the *source* camera's frame 0 (train_recammaster.py)."""
    eye = np.eye(3)
    start = np.array([3390.0, 1380.0, 240.0])
    target = [unreal_string(unreal_yaw(-30), start + (0, 100 + 2 * i, 0)) for i in range(9)]
    source = [unreal_string(eye, start + (5 * i, 0, 0)) for i in range(9)]
    cams = rc.read_multicam_cameras(write_cameras(tmp_path / "cams.json", {"src": source, "tgt": target}))
    tokens = rc.camera_tokens(cams["tgt"], reference=cams["src"][0])
    assert tokens.shape == (3, 12)
    first = tokens[0].reshape(3, 4)
    assert np.allclose(first[:, 3], [1.0, 0.0, 0.0], atol=1e-6)  # 100 cm to the source's right
    assert yaw_pitch(np.vstack([first, [0, 0, 0, 1]]))[0] == pytest.approx(-30.0, abs=1e-4)
    assert np.allclose(tokens[2].reshape(3, 4)[:, 3], [1.16, 0, 0], atol=1e-6)
    assert np.allclose(rc.multicam_tokens(cams, "tgt", "src"), tokens)
    own = rc.multicam_tokens(cams, "tgt")
    assert np.array_equal(own[0], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    with pytest.raises(RealcamError, match="unknown camera 'cam03'"):
        rc.multicam_tokens(cams, "tgt", "cam03")


def test_tokens_bad_inputs():
    traj = rc.recam_preset("recam-pan-right").c2w
    with pytest.raises(RealcamError, match="4k\\+1"):
        rc.camera_tokens(traj[:80])
    with pytest.raises(RealcamError, match="4k\\+1"):
        rc.camera_tokens(traj, frames=80)
    with pytest.raises(RealcamError, match="too few poses"):
        rc.camera_tokens(traj, frames=85)
    with pytest.raises(RealcamError, match="shape"):
        rc.camera_tokens(traj[:, :3])
    with pytest.raises(RealcamError, match="reference camera"):
        rc.camera_tokens(traj, reference=np.eye(3))
    flipped = np.diag([1.0, -1.0, 1.0, 1.0])  # a det -1 (Unreal-world) reference for OpenCV poses
    with pytest.raises(RealcamError, match="reflection"):
        rc.camera_tokens(traj, reference=flipped)
