"""Tests of the synchronization metrics of ``evaluate`` (CLIP-V, Mat. Pix., FVD-V;
docs/method.md#synchronization-metrics): the formulas against independent computations, the matcher
on real textures, sources from a folder, a table or the rerender records, and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from realcam_cli.app import app
from stages.core.errors import RealcamError
from stages.core.video import read_video, write_video
from stages.evaluate import fvd as fvd_mod
from stages.evaluate import sync
from stages.evaluate.run import evaluate

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "examples" / "data" / "images"
POSES = ROOT / "examples" / "data" / "poses"
N, H, W = 5, 96, 128
FAST = sync.MatchSettings(size=0)  # the tiny test frames as they are
# the distributed FVD network is a TorchScript file; making a tiny one needs the deprecated scripter
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pan(image: str, n: int = N, dx: int = 0, dy: int = 0, y0: int = 200, x0: int = 100) -> np.ndarray:
    """``n`` frames of a camera panning 8 px a frame over a photograph, offset by (dx, dy)."""
    img = np.asarray(Image.open(IMAGES / f"{image}.jpg").convert("RGB"))
    return np.stack([img[y0 + dy : y0 + dy + H, x0 + 8 * k + dx : x0 + 8 * k + dx + W] for k in range(n)])


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Lossless videos: a pan over a forest road (``source``, and ``same`` its copy), the same pan
    seen 12 px right and 8 px down (``shifted``), an unrelated pan over a lake (``other``), noise,
    and the source pan 3 frames longer (``longer``)."""
    root = tmp_path_factory.mktemp("sync_videos")
    frames = {
        "source": _pan("snowy_forest_road"),
        "shifted": _pan("snowy_forest_road", dx=12, dy=8),
        "other": _pan("alpine_lake", y0=250, x0=60),
        "noise": np.random.default_rng(0).integers(0, 256, (N, H, W, 3), dtype=np.uint8),
        "longer": _pan("snowy_forest_road", n=N + 3),
    }
    paths = {name: write_video(root / f"{name}.mp4", f, lossless=True) for name, f in frames.items()}
    paths["same"] = Path(shutil.copyfile(paths["source"], root / "same.mp4"))
    return paths


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    """A tiny random CLIP (transformers format) saved with its image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    text = dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=64,
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    vision = dict(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()
    folder = tmp_path_factory.mktemp("clip")
    model.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_i3d(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = fvd_mod.InceptionI3d(width=1 / 16).eval()
    model.resolution = 64  # the network's own resize (StyleGAN-V variant); 224 in real checkpoints
    path = tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt"
    torch.jit.script(model).save(str(path))
    return path


# ----------------------------------------------------------------------------------------------
# CLIP-V
# ----------------------------------------------------------------------------------------------
def _frame_cosines_by_hand(folder: Path, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per frame, the cosine of the two frames' CLIP image embeddings, straight from transformers."""
    from transformers import CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPImageProcessor.from_pretrained(folder)
    out = []
    with torch.no_grad():
        for x, y in zip(a, b):
            ex = model.get_image_features(**processor(images=x, return_tensors="pt"))
            ey = model.get_image_features(**processor(images=y, return_tensors="pt"))
            ex = ex if torch.is_tensor(ex) else ex.pooler_output
            ey = ey if torch.is_tensor(ey) else ey.pooler_output
            out.append(torch.nn.functional.cosine_similarity(ex, ey).item())
    return np.array(out)


def test_clip_v_is_one_for_identical_videos_and_the_mean_of_frame_cosines(videos, tiny_clip):
    encoder = sync.load_clip(str(tiny_clip), "cpu")
    row, frames, note = sync.sync_video(videos["source"], videos["same"], encoder, FAST)
    assert row["clip_v"] == pytest.approx(1.0, abs=1e-6) and note == ""
    np.testing.assert_allclose(frames["clip_cos"], 1.0, atol=1e-6)
    src = read_video(videos["source"])
    for other in ("noise", "other"):
        row, frames, _ = sync.sync_video(videos["source"], videos[other], encoder, FAST)
        by_hand = _frame_cosines_by_hand(tiny_clip, src, read_video(videos[other]))
        assert by_hand.min() < 0.999  # a real difference, not a saturated similarity
        np.testing.assert_allclose(frames["clip_cos"], by_hand, atol=1e-5)
        assert row["clip_v"] == pytest.approx(by_hand.mean(), abs=1e-5)
        assert row["sync_frames"] == N and list(frames["frame"]) == list(range(N))


def test_vision_only_clip_folder_gives_the_same_embeddings(tiny_clip, tmp_path):
    from transformers import CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    full = CLIPModel.from_pretrained(tiny_clip)
    cfg = CLIPVisionConfig(**{**full.config.vision_config.to_dict(), "projection_dim": full.config.projection_dim})
    vision = CLIPVisionModelWithProjection(cfg)
    missing = vision.load_state_dict(
        {k: v for k, v in full.state_dict().items() if k.startswith(("vision_model.", "visual_projection."))},
        strict=True,
    )
    assert not missing.missing_keys
    vision.save_pretrained(tmp_path / "vision")
    shutil.copyfile(tiny_clip / "preprocessor_config.json", tmp_path / "vision" / "preprocessor_config.json")
    frames = _pan("snowy_forest_road", n=2)
    a = sync.load_clip(str(tiny_clip), "cpu").embed(frames)
    b = sync.load_clip(str(tmp_path / "vision"), "cpu").embed(frames)
    assert a.shape == (2, 8)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_unusable_clip_models_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RealcamError, match="no config.json") as err:
        sync.check_clip(str(tmp_path / "empty"))
    assert str(tmp_path / "empty" / "config.json") in str(err.value)
    (tmp_path / "oc").mkdir()
    (tmp_path / "oc" / "open_clip_config.json").write_text("{}")
    with pytest.raises(RealcamError, match="open_clip"):
        sync.check_clip(str(tmp_path / "oc"))
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(RealcamError, match="no weights"):
        sync.check_clip(str(tmp_path / "noweights"))
    with pytest.raises(RealcamError, match="no such CLIP model folder"):
        sync.check_clip(str(tmp_path / "nothing"))


# ----------------------------------------------------------------------------------------------
# Mat. Pix.
# ----------------------------------------------------------------------------------------------
def test_matched_pixels_self_shifted_unrelated_and_noise(videos):
    counts = {}
    for target in ("same", "shifted", "other", "noise"):
        row, frames, _ = sync.sync_video(videos["source"], videos[target], None, FAST)
        assert np.isnan(row["clip_v"])  # no CLIP model given
        assert row["matched_pixels"] == pytest.approx(frames["matched_pixels"].mean())
        assert row["matched_pixels_sum"] == frames["matched_pixels"].sum()
        assert (frames["matched_pixels"] <= frames["tentative"]).all()
        counts[target] = row["matched_pixels"]
        if target == "same":  # every keypoint finds itself
            assert (frames["matched_pixels"] >= 0.97 * frames["keypoints_source"]).all()
    assert counts["same"] > 150
    assert 0.5 * counts["same"] < counts["shifted"] < counts["same"]
    assert counts["other"] == 0 and counts["noise"] == 0


def test_match_count_is_the_ransac_verified_mutual_ratio_matches():
    """Descriptors and positions made by hand: 50 true correspondences of a 3D scene seen by two
    cameras, 20 pairs whose descriptors match but whose positions break the epipolar geometry."""
    rng = np.random.default_rng(4)
    k = np.array([[300.0, 0, 256], [0, 300, 192], [0, 0, 1]])
    pts = np.c_[rng.uniform(-2, 2, (50, 2)), rng.uniform(4, 8, 50)]
    angle = 0.1
    r = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    t = np.array([0.5, 0.1, 0.05])

    def project(p):
        q = p @ k.T
        return q[:, :2] / q[:, 2:]

    x1, x2 = project(pts), project(pts @ r.T + t)
    # essential / fundamental matrix of the pair, to keep the outliers far from their epipolar lines
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    f = np.linalg.inv(k).T @ tx @ r @ np.linalg.inv(k)
    o1, o2 = [], []
    while len(o1) < 20:
        a, b = rng.uniform([0, 0], [512, 384]), rng.uniform([0, 0], [512, 384])
        line = f @ np.r_[a, 1]
        if abs(np.r_[b, 1] @ line) / np.hypot(*line[:2]) > 20:
            o1.append(a)
            o2.append(b)
    k1 = torch.from_numpy(np.r_[x1, np.array(o1)])
    k2 = torch.from_numpy(np.r_[x2, np.array(o2)])
    d1 = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(70, 128)).astype(np.float32)), dim=1)
    d2 = torch.nn.functional.normalize(
        d1 + 0.01 * torch.from_numpy(rng.normal(size=(70, 128)).astype(np.float32)), dim=1
    )
    row = sync.match_features((k1, d1), (k2, d2))
    assert row == {"keypoints_source": 70, "keypoints_target": 70, "tentative": 70, "matched_pixels": 50}
    # the ratio test: a second, almost as close candidate removes the match
    d2b = torch.cat([d2, d2[:1] + 1e-3])
    k2b = torch.cat([k2, k2[:1]])
    assert sync.match_features((k1, d1), (k2b, d2b))["tentative"] == 69
    # too few verified correspondences count as none
    few = sync.match_features((k1, d1), (k2, d2), sync.MatchSettings(min_inliers=51))
    assert few["tentative"] == 70 and few["matched_pixels"] == 0


def test_source_is_fitted_to_the_target_and_cut_to_the_shorter():
    target = _pan("snowy_forest_road")
    big = np.stack(
        [
            np.asarray(Image.fromarray(f).resize((2 * W, 2 * H), Image.BICUBIC))
            for f in _pan("snowy_forest_road", n=N + 2)
        ]
    )
    src, tgt, note = sync.align_frames(big, target)
    assert src.shape == tgt.shape == (N, H, W, 3)
    assert note == f"source {N + 2} frames, target {N}: first {N} compared"
    assert np.abs(src.astype(float) - target).mean() < 6  # the same picture after down- and upsampling
    assert sync.working_size(480, 832, 512) == (295, 512) and sync.working_size(96, 128, 0) == (96, 128)


# ----------------------------------------------------------------------------------------------
# FVD-V
# ----------------------------------------------------------------------------------------------
def test_fvd_v_is_the_fvd_of_targets_against_sources(videos, tiny_i3d):
    same = sync.fvd_v([(videos["same"], videos["source"]), (videos["shifted"], videos["shifted"])], tiny_i3d, frames=4)
    assert set(same) == {"fvd_v_videogpt", "fvd_v_stylegan"}
    assert same["fvd_v_videogpt"] == pytest.approx(0.0, abs=1e-4)
    assert same["fvd_v_stylegan"] == pytest.approx(0.0, abs=1e-4)
    pairs = [(videos["noise"], videos["source"]), (videos["other"], videos["shifted"])]
    got = sync.fvd_v(pairs, tiny_i3d, frames=4)
    model = fvd_mod.load_i3d(tiny_i3d)
    targets = [read_video(t)[:4] for t, _ in pairs]
    sources = [read_video(s)[:4] for _, s in pairs]
    for variant in fvd_mod.VARIANTS:
        assert got[f"fvd_v_{variant}"] == pytest.approx(fvd_mod.fvd(model, targets, sources, variant), rel=1e-6)
        assert got[f"fvd_v_{variant}"] > 0
    with pytest.raises(RealcamError, match="at least 2"):
        sync.fvd_v(pairs[:1], tiny_i3d)


# ----------------------------------------------------------------------------------------------
# The stage and the CLI
# ----------------------------------------------------------------------------------------------
def _estimated(root: Path, targets: dict[str, Path]) -> tuple[Path, Path]:
    """SAMPLES (estimated trajectories, each beside its re-rendered video) and REFERENCE."""
    samples, ref = root / "samples", root / "ref"
    samples.mkdir()
    ref.mkdir()
    pose = sorted(POSES.glob("*.txt"))[0]
    for name, video in targets.items():
        shutil.copyfile(pose, ref / f"{name}.txt")
        shutil.copyfile(pose, samples / f"{name}.txt")
        shutil.copyfile(video, samples / f"{name}.mp4")
    return samples, ref


def _record(samples: Path, name: str, video_in: Path) -> None:
    (samples / f"{name}.json").write_text(json.dumps({"format": "realcam-rerender/1", "video_in": str(video_in)}))


def _run(*args) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["evaluate", *map(str, args)])
    return res.exit_code, res.output


def test_cli_sync_from_records_and_source_folder(videos, tiny_clip, tiny_i3d, tmp_path):
    samples, ref = _estimated(tmp_path, {"a": videos["same"], "b": videos["source"], "c": videos["noise"]})
    _record(samples, "a", videos["source"])  # a's source from its rerender record
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copyfile(videos["longer"], sources / "b.mp4")  # 3 frames longer than its target
    shutil.copyfile(videos["source"], sources / "c.mp4")
    out = tmp_path / "out"
    code, output = _run(
        samples, "--reference", ref, "--out", out, "--estimated", "--source", sources, "--clip", tiny_clip,
        "--i3d", tiny_i3d, "--fvd-frames", 4, "--match-size", 0,
    )  # fmt: skip
    assert code == 0, output
    assert "sync/" in output and "FVD-V skipped" not in output
    pv = pd.read_parquet(out / "per_video.parquet").set_index("video")
    assert list(pv.index) == ["a", "b", "c"] and (pv["status"] == "ok").all()
    assert pv.loc["a", "clip_v"] == pytest.approx(1.0, abs=1e-6)
    assert pv.loc["b", "clip_v"] == pytest.approx(1.0, abs=1e-6)  # the first N frames of a longer source
    assert (
        pv.loc["b", "sync_frames"] == N
        and f"source {N + 3} frames, target {N}: first {N} compared" in pv.loc["b", "reason"]
    )
    assert pv.loc["a", "matched_pixels"] > 150 and pv.loc["c", "matched_pixels"] == 0
    per_frame = pd.read_parquet(out / "sync" / "a.parquet")
    assert list(per_frame.columns) == sync.FRAME_COLUMNS and len(per_frame) == N
    assert pv.loc["a", "matched_pixels"] == pytest.approx(per_frame["matched_pixels"].mean())
    summary = pd.read_parquet(out / "summary.parquet").set_index("metric")
    for col in ("clip_v", "matched_pixels", "matched_pixels_sum"):
        assert summary.loc[col, "mean"] == pytest.approx(pv[col].mean()) and summary.loc[col, "n_videos"] == 3
    assert summary.loc["fvd_v_videogpt", "mean"] > 0 and summary.loc["fvd_v_stylegan", "mean"] > 0  # c is noise


def test_table_sources_skip_and_rerun_with_sync(videos, tmp_path):
    samples, ref = _estimated(tmp_path, {"a": videos["same"], "b": videos["shifted"]})
    first = evaluate(samples, ref, tmp_path / "out", estimated=True)
    assert "clip_v" not in first["per_video"] and first["notes"] == []
    table = tmp_path / "samples.csv"
    pd.DataFrame(
        [
            {"video": "samples/a.txt", "generated_video": "samples/a.mp4", "source_video": str(videos["source"])},
            {"video": "samples/b.txt", "generated_video": "samples/b.mp4", "source_video": str(videos["source"])},
        ]
    ).to_csv(table, index=False)
    # scored before without the synchronization metrics: scored again, not skipped
    again = evaluate(table, ref, tmp_path / "out", estimated=True, sync=True, match_size=0)
    assert again["skipped"] == []
    pv = again["per_video"].set_index("video")
    assert pv["matched_pixels"].notna().all() and pv["clip_v"].isna().all()
    assert pv.loc["a", "matched_pixels"] > pv.loc["b", "matched_pixels"] > 0
    assert again["notes"] == ["FVD-V skipped: no I3D network (--i3d)", "CLIP-V skipped: no CLIP model (--clip)"]
    third = evaluate(table, ref, tmp_path / "out", estimated=True, sync=True, match_size=0)
    assert sorted(third["skipped"]) == ["a", "b"]
    pd.testing.assert_frame_equal(third["per_video"], again["per_video"])


def test_cli_bad_sync_inputs(videos, tiny_clip, tmp_path):
    samples, ref = _estimated(tmp_path, {"a": videos["same"], "b": videos["shifted"]})
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copyfile(videos["source"], sources / "a.mp4")
    out = tmp_path / "out"
    # b has no source in the folder and no record: one line naming the file looked for, nothing written
    code, output = _run(samples, "--reference", ref, "--out", out, "--estimated", "--source", sources)
    assert code == 2 and "Traceback" not in output
    assert "no source video for b" in output and str(sources / "b.mp4") in output.replace("\n", "")
    assert not out.exists()
    # a record naming a video that is gone
    _record(samples, "a", videos["source"])
    _record(samples, "b", tmp_path / "gone.mp4")
    code, output = _run(samples, "--reference", ref, "--out", out, "--estimated", "--sync")
    assert code == 2 and "named by the record does not exist" in output and "b.json" in output
    # an unreadable CLIP folder
    (tmp_path / "clip").mkdir()
    code, output = _run(
        samples, "--reference", ref, "--out", out, "--estimated", "--source", sources, "--clip", tmp_path / "clip"
    )
    assert code == 2 and "config.json" in output and "Traceback" not in output
    # a damaged source video: that video fails with the reason, the others are scored
    (sources / "b.mp4").write_bytes(b"not a video")
    code, output = _run(
        samples, "--reference", ref, "--out", out, "--estimated", "--source", sources, "--match-size", 0
    )
    assert code == 0, output
    pv = pd.read_parquet(out / "per_video.parquet").set_index("video")
    assert pv.loc["a", "status"] == "ok" and pv.loc["b", "status"] == "failed"
    assert pv.loc["b", "reason"].startswith("synchronization: ") and "b.mp4" in pv.loc["b", "reason"]
    assert "FVD-V skipped" in output and "CLIP-V skipped" in output
