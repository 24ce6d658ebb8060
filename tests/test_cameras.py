import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from stages.core import cameras as cam
from stages.core.errors import RealcamError


def test_round_trip_of_every_shared_file_is_exact(pose_files, tmp_path):
    for f in pose_files:
        text = f.read_text()
        cams = cam.read_re10k(f)
        assert len(cams) == 16
        assert cams.url.startswith("https://www.youtube.com/")
        assert cam.format_re10k(cams) == text  # same text, byte for byte
        out = cam.write_re10k(tmp_path / f.name, cams)
        again = cam.read_re10k(out)
        np.testing.assert_array_equal(again.timestamps, cams.timestamps)
        np.testing.assert_array_equal(again.intrinsics, cams.intrinsics)
        np.testing.assert_array_equal(again.w2c, cams.w2c)
        assert again.url == cams.url


def test_round_trip_keeps_numbers_with_more_digits(tmp_path):
    rng = np.random.default_rng(0)
    w2c = np.tile(np.eye(4), (3, 1, 1))
    w2c[:, :3, :3] = Rotation.random(3, random_state=1).as_matrix()
    w2c[:, :3, 3] = rng.normal(size=(3, 3))
    cams = cam.CameraFile([1, 2, 3], rng.random((3, 4)), w2c, "url")
    again = cam.read_re10k(cam.write_re10k(tmp_path / "x.txt", cams))
    np.testing.assert_array_equal(again.w2c, cams.w2c)
    np.testing.assert_array_equal(again.intrinsics, cams.intrinsics)


def test_rotations_of_real_files_are_proper(pose_files):
    for f in pose_files:
        r = cam.read_re10k(f).w2c[:, :3, :3]
        assert np.abs(r @ r.transpose(0, 2, 1) - np.eye(3)).max() < 1e-6
        assert np.allclose(np.linalg.det(r), 1.0, atol=1e-6)


def test_c2w_w2c_inverse(pose_files):
    w2c = cam.read_re10k(pose_files[0]).w2c
    c2w = cam.w2c_to_c2w(w2c)
    np.testing.assert_allclose(c2w @ w2c, np.tile(np.eye(4), (16, 1, 1)), atol=1e-12)
    np.testing.assert_allclose(cam.c2w_to_w2c(c2w), w2c, rtol=0, atol=1e-14)
    np.testing.assert_allclose(c2w, np.linalg.inv(w2c), atol=1e-9)


def test_relative_poses(pose_files):
    c2w = cam.read_re10k(pose_files[1]).c2w
    rel = cam.relative_poses(c2w)
    np.testing.assert_allclose(rel[0], np.eye(4), atol=1e-12)
    # Invariant to a change of world frame.
    g = np.eye(4)
    g[:3, :3] = Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix()
    g[:3, 3] = [1.0, -2.0, 3.0]
    np.testing.assert_allclose(cam.relative_poses(g @ c2w), rel, atol=1e-12)
    rel5 = cam.relative_poses(c2w, reference=5)
    np.testing.assert_allclose(rel5[5], np.eye(4), atol=1e-12)


def test_metric_poses_scale_translation_only(pose_files):
    c2w = cam.relative_poses(cam.read_re10k(pose_files[2]).c2w)
    m = cam.metric_poses(c2w, 2.5)
    np.testing.assert_array_equal(m[:, :3, :3], c2w[:, :3, :3])
    np.testing.assert_allclose(m[:, :3, 3], 2.5 * c2w[:, :3, 3], rtol=1e-15)
    w2c = cam.c2w_to_w2c(c2w)
    np.testing.assert_allclose(cam.invert_pose(cam.scale_w2c(w2c, 2.5))[:, :3, 3], m[:, :3, 3], atol=1e-12)


def test_intrinsics_normalise_round_trip():
    norm = np.array([0.474812461, 0.844111024, 0.5, 0.5])
    k = cam.denormalize_intrinsics(norm, 640, 360)
    assert k[0, 0] == pytest.approx(0.474812461 * 640)
    assert k[1, 2] == pytest.approx(180)
    np.testing.assert_allclose(cam.normalize_intrinsics(k, 640, 360), norm, rtol=1e-15)


@pytest.mark.parametrize("src,dst", [((640, 360), (256, 256)), ((300, 500), (320, 512)), ((512, 320), (256, 160))])
def test_resize_crop_intrinsics_match_resized_image(src, dst):
    """A dot drawn where K projects a 3D point lands where K' projects it after resize + crop."""
    from PIL import Image

    w, h = src
    k = cam.intrinsics_matrix(0.6 * w, 0.6 * w, 0.47 * w, 0.52 * h)
    point = np.array([[0.31, -0.17, 2.0]])
    uv, _ = cam.project(point, np.eye(4), k)
    u, v = uv[0]
    yy, xx = np.mgrid[:h, :w] + 0.5  # pixel centres
    img = np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 6.0**2))
    resized_size, (left, top) = cam.resize_crop_geometry(src, dst)
    pil = Image.fromarray(img.astype(np.float32), mode="F").resize(resized_size, Image.BILINEAR)
    out = np.asarray(pil)[top : top + dst[1], left : left + dst[0]]
    assert out.shape == (dst[1], dst[0])
    yy, xx = np.mgrid[: dst[1], : dst[0]] + 0.5
    wts = out / out.sum()
    centroid = np.array([(wts * xx).sum(), (wts * yy).sum()])
    k2 = cam.resize_crop_intrinsics(k, src, dst)
    expected, _ = cam.project(point, np.eye(4), k2)
    np.testing.assert_allclose(centroid, expected[0], atol=0.05)


def test_default_intrinsics():
    k = cam.default_intrinsics(512, 320)
    assert k[0, 0] == k[1, 1] == 256
    assert (k[0, 2], k[1, 2]) == (256, 160)
    k90 = cam.default_intrinsics(512, 320, fov_deg=90)
    assert k90[0, 0] == pytest.approx(256)


LINE = "100 0.5 0.9 0.5 0.5 0 0 1 0 0 0.1 0 1 0 0.2 0 0 1 0.3"


@pytest.mark.parametrize(
    "body,lineno,words",
    [
        ("", None, "empty camera file"),
        ("https://example.com\n", None, "no camera lines"),
        (f"https://x\n{LINE}\n{LINE.replace('0.2', 'nan')}\n", 3, "non-finite"),
        (f"https://x\n{LINE}\n{LINE} 7\n", 3, "expected 19 numbers"),
        (f"https://x\n{' '.join(LINE.split()[:18])}\n", 2, "found 18"),
        (f"https://x\n{LINE.replace('1 0 0 0.1', '1.1 0 0 0.1')}\n", 2, "not orthonormal"),
        (f"https://x\n{LINE.replace('0 0 1 0.3', '0 0 -1 0.3')}\n", 2, "reflection"),
        (f"https://x\n{LINE.replace('0.9', 'abc')}\n", 2, "not a number"),
        (f"https://x\n{LINE}\n{LINE}\n", 3, "timestamp 100 repeats the one on line 2"),
        (f"https://x\n{LINE}\n\n{LINE.replace('100', '99', 1)}\n", 4, "earlier than 100 on line 2"),
        (f"https://x\n{LINE.replace('0.5 0.9', '0 0')}\n", 2, "focal lengths must be positive"),
        (f"https://x\n{LINE.replace('0.5 0.9', '0.5 -0.9')}\n", 2, "focal lengths must be positive"),
        (f"https://x\n{LINE.replace('100', '100.5', 1)}\n", 2, "not an integer"),
        (f"https://x\n{LINE.replace('100', '-1', 1)}\n", 2, "out of range"),
    ],
)
def test_malformed_camera_files_name_file_and_line(tmp_path, body, lineno, words):
    f = tmp_path / "bad.txt"
    f.write_text(body)
    with pytest.raises(RealcamError) as info:
        cam.read_re10k(f)
    msg = str(info.value)
    assert "\n" not in msg
    assert words in msg
    prefix = f"{f}:{lineno}:" if lineno else f"{f}:"
    assert msg.startswith(prefix)


def test_check_poses_rejects_bad_poses():
    good = np.tile(np.eye(4), (2, 1, 1))
    assert cam.check_poses(good).shape == (2, 4, 4)
    bad = good.copy()
    bad[1, :3, :3] *= 1.01
    with pytest.raises(RealcamError, match="pose 1: rotation is not orthonormal"):
        cam.check_poses(bad, "traj.json")
    with pytest.raises(RealcamError, match="non-finite"):
        cam.check_poses(np.full((4, 4), np.nan))


def test_writer_refuses_cameras_the_reader_would_reject(tmp_path):
    good = cam.parse_re10k(f"https://x\n{LINE}\n{LINE.replace('100', '200', 1)}\n")
    assert cam.camera_file_problem(good) is None
    bad = cam.CameraFile([100, 100], good.intrinsics, good.w2c, "u")
    with pytest.raises(RealcamError, match="repeats"):
        cam.write_re10k(tmp_path / "x.txt", bad)
    zero = cam.CameraFile(good.timestamps, np.zeros((2, 4)), good.w2c, "u")
    with pytest.raises(RealcamError, match="frame 0: focal lengths must be positive"):
        cam.write_re10k(tmp_path / "x.txt", zero)
    assert not (tmp_path / "x.txt").exists()
