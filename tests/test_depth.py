"""depth: the transformers predictor (tiny random Depth Anything V2 metric model) and depth from files."""

from __future__ import annotations

import numpy as np
import pytest
from tests_tiny_depth import save_tiny_depth_model
from typer.testing import CliRunner

from stages.core.artifacts import read_arrays, write_arrays
from stages.core.device import resolve_dtype
from stages.core.errors import RealcamError
from stages.core.video import write_image
from stages.depth import depth_from_files, load_model, predict_depth, run_depth


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_depth_model(tmp_path_factory.mktemp("tiny_dav2"))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(3)] + [
        rng.integers(0, 256, (70, 50, 3), dtype=np.uint8)
    ]


def test_predict_matches_transformers_pipeline(tiny_model, images):
    """Batched prediction equals the reference per-image path of transformers, at each image's size."""
    from PIL import Image
    from transformers import pipeline

    ours = predict_depth(images, str(tiny_model), device="cpu", batch_size=3)
    ref = pipeline("depth-estimation", model=str(tiny_model), device="cpu")
    for img, d in zip(images, ours):
        assert d.dtype == np.float32 and d.shape == img.shape[:2]
        expected = ref(Image.fromarray(img))["predicted_depth"].numpy()
        np.testing.assert_allclose(d, np.clip(expected, 0, 20), rtol=1e-4, atol=1e-4)
    assert all(np.isfinite(d).all() and d.min() >= 0 and d.max() <= 20 for d in ours)
    assert ours[0].std() > 1e-3  # the random model does vary over the image


def test_batch_size_does_not_change_results(tiny_model, images):
    one = predict_depth(images, str(tiny_model), batch_size=1)
    many = predict_depth(images, str(tiny_model), batch_size=8)
    for a, b in zip(one, many):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_model_cache_and_max_depth(tiny_model, images):
    assert load_model(str(tiny_model))[1] is load_model(str(tiny_model))[1]
    base = predict_depth(images[:1], str(tiny_model))[0]
    doubled = predict_depth(images[:1], str(tiny_model), max_depth=40.0)[0]  # head: sigmoid * max_depth
    np.testing.assert_allclose(doubled, 2 * base, rtol=1e-4, atol=1e-4)
    assert load_model(str(tiny_model), max_depth=40.0)[3] == 40.0
    assert load_model(str(tiny_model))[3] == 20.0


def test_bad_model_and_dtype(tmp_path):
    with pytest.raises(RealcamError, match="cannot load depth model"):
        load_model(str(tmp_path))
    with pytest.raises(RealcamError, match="fp16 needs a CUDA"):
        resolve_dtype("fp16", "cpu")


def test_depth_from_npz_and_png(tmp_path):
    depth = np.random.default_rng(1).uniform(0.5, 9.0, (3, 6, 8)).astype(np.float32)
    write_arrays(tmp_path / "a.npz", depth=depth, timestamps=np.array([10, 20, 30]))
    got = depth_from_files(tmp_path, "a", ["30", "10"])
    np.testing.assert_array_equal(got[0], depth[2])
    np.testing.assert_array_equal(got[1], depth[0])
    with pytest.raises(RealcamError, match="no depth for frame"):
        depth_from_files(tmp_path, "a", ["40"])
    import imageio.v3 as iio

    (tmp_path / "b").mkdir()
    mm = np.array([[0, 1000, 2500], [65535, 12, 7]], dtype=np.uint16)
    iio.imwrite(tmp_path / "b" / "f0.png", mm)
    np.testing.assert_allclose(depth_from_files(tmp_path, "b", ["f0"])[0], mm / 1000.0, rtol=1e-7)
    with pytest.raises(RealcamError, match="no depth for c"):
        depth_from_files(tmp_path, "c", ["f0"])


def test_run_depth_status_skip_and_overwrite(tmp_path, tiny_model, images):
    good, bad = tmp_path / "good", tmp_path / "bad"
    for i, img in enumerate(images[:3]):
        write_image(good / f"{i}.png", img)
    write_image(bad / "0.png", images[0])
    (bad / "1.png").write_bytes(b"broken")
    index, skipped = run_depth([good, bad], tmp_path / "out", model=str(tiny_model))
    assert skipped == 0
    ok = index[index["item"] == "good"]
    assert list(ok["frame"]) == [0, 1, 2] and (ok["status"] == "ok").all()
    assert (ok[["height", "width"]].to_numpy() == [96, 128]).all()
    assert (ok["min"] <= ok["median"]).all() and (ok["median"] <= ok["max"]).all()
    row = index[index["item"] == "bad"].iloc[0]
    assert row["status"] == "failed" and "cannot decode image" in row["reason"]
    assert not (tmp_path / "out" / "bad.npz").exists()
    saved = read_arrays(tmp_path / "out" / "good.npz")
    assert saved["depth"].dtype == np.float16 and saved["depth"].shape == (3, 96, 128)
    assert float(saved["max_depth"]) == 20.0
    np.testing.assert_allclose(saved["depth"][1], predict_depth([images[1]], str(tiny_model))[0], rtol=1e-3, atol=1e-2)
    _, skipped = run_depth([good, bad], tmp_path / "out", model=str(tiny_model))
    assert skipped == 1
    _, skipped = run_depth([good], tmp_path / "out", model=str(tiny_model), overwrite=True)
    assert skipped == 0


def test_cli_depth_bad_input_one_line(tmp_path):
    from realcam_cli.app import app

    res = CliRunner().invoke(app, ["depth", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "no such file or folder" in res.output and "Traceback" not in res.output


def test_run_depth_images_of_different_sizes(tmp_path, tiny_model, images):
    from stages.depth import read_depth_file

    write_image(tmp_path / "in" / "a.png", images[0])
    write_image(tmp_path / "in" / "b.png", images[3])
    index, _ = run_depth(
        [tmp_path / "in" / "a.png", tmp_path / "in" / "b.png"], tmp_path / "out", model=str(tiny_model)
    )
    assert (index["status"] == "ok").all() and len(index) == 2
    maps, data = read_depth_file(tmp_path / "out" / "in.npz")
    assert [m.shape for m in maps] == [(96, 128), (70, 50)] and list(data["frames"]) == ["a", "b"]
