"""Tests of the evaluate stage: metric formulas, SfM on synthetic videos, failures, FVD, CLI."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from realcam_cli.app import app
from stages import synth
from stages.core import cameras as cam
from stages.core.video import write_image, write_video
from stages.evaluate import fvd as fvd_mod
from stages.evaluate import metrics as M
from stages.evaluate.run import Sample, evaluate, evaluate_video

ROOT = Path(__file__).resolve().parents[1]
POSES = ROOT / "examples" / "data" / "poses"
CLIP_A, CLIP_B = "0bf152ef84195293", "0c11dbe781b1c11c"
SIZE = 192
# the distributed FVD network is a TorchScript file; making a tiny one needs the deprecated scripter
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The tiny I3D gains nothing from threads, and on a shared 2-core machine OpenMP's spinning
    threads make it 40x slower; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------
# Metric formulas on hand-made cases
# ----------------------------------------------------------------------------------------------
def _traj(n=5, seed=0):
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[1:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.2, (n - 1, 3))).as_matrix()
    c2w[1:, :3, 3] = rng.normal(0, 1, (n - 1, 3))
    return c2w


def test_identity_scores_zero():
    c2w = _traj()
    out = M.camera_metrics(c2w, c2w, metric_factor=1.0)
    for key in M.METRIC_COLUMNS:
        assert out[key] == pytest.approx(0.0, abs=1e-6), key


def test_known_rotation_on_one_frame_gives_theta():
    gt = _traj()
    est = gt.copy()
    theta = 0.3
    est[2, :3, :3] = Rotation.from_rotvec([0, 0, theta]).as_matrix() @ gt[2, :3, :3]
    assert M.rot_err(est, gt) == pytest.approx(theta, abs=1e-9)
    # CamMC of a pure rotation change is the Frobenius norm of R' - R: 2 sqrt(2) sin(theta / 2)
    assert M.cammc(est, gt) == pytest.approx(2 * np.sqrt(2) * np.sin(theta / 2), abs=1e-9)


def test_relative_variant_ignores_translation_scale_metric_does_not():
    gt = _traj(seed=1)
    est = gt.copy()
    est[:, :3, 3] *= 3.7
    assert M.trans_err(est, gt, "relative") == pytest.approx(0.0, abs=1e-12)
    assert M.cammc(est, gt, "relative") == pytest.approx(0.0, abs=1e-12)
    # metric: estimate brought to metric with the right factor scores 0, with a wrong one it does not
    right = M.camera_metrics(est, gt, metric_factor=1 / 3.7)
    wrong = M.camera_metrics(est, gt, metric_factor=1.0)
    assert right["trans_err_metric"] == pytest.approx(0.0, abs=1e-9)
    s = M.scene_scale(gt)
    hand = np.linalg.norm(2.7 * gt[:, :3, 3] / s, axis=1).sum()
    assert wrong["trans_err_metric"] == pytest.approx(hand, rel=1e-12)


def test_trans_err_hand_computed():
    gt = np.tile(np.eye(4), (3, 1, 1))
    gt[1, :3, 3] = [1, 0, 0]
    gt[2, :3, 3] = [2, 0, 0]  # scene scale 2
    est = gt.copy()
    est[2, :3, 3] = [2, 2, 0]  # scene scale sqrt(8)
    s = np.sqrt(8)
    hand = np.linalg.norm([1 / s - 0.5, 0, 0]) + np.linalg.norm([2 / s - 1, 2 / s, 0])
    assert M.trans_err(est, gt, "relative") == pytest.approx(hand, abs=1e-12)


def test_ate_recovers_similarity():
    gt = _traj(8, seed=2)
    r = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    est = gt.copy()
    est[:, :3, 3] = 0.4 * gt[:, :3, 3] @ r.T + np.array([1.0, 2.0, -3.0])
    est[:, :3, :3] = r @ gt[:, :3, :3]
    out = M.ate_aligned(est, gt)
    assert out["ate_trans"] == pytest.approx(0.0, abs=1e-9)
    assert out["ate_rot_deg"] == pytest.approx(0.0, abs=1e-6)
    assert out["ate_scale"] == pytest.approx(1 / 0.4, rel=1e-9)


# ----------------------------------------------------------------------------------------------
# Fréchet distance and I3D
# ----------------------------------------------------------------------------------------------
def test_frechet_distance_self_zero_and_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 16))
    b = rng.normal(0.3, 1.2, size=(150, 16)) @ rng.normal(size=(16, 16)) * 0.3
    assert fvd_mod.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert fvd_mod.frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)


@pytest.fixture(scope="session")
def tiny_i3d(tmp_path_factory):
    torch.manual_seed(0)
    model = fvd_mod.InceptionI3d(width=1 / 16).eval()
    model.resolution = 64  # the network's own resize (StyleGAN-V variant); 224 in real checkpoints
    folder = tmp_path_factory.mktemp("i3d")
    torch.jit.script(model).save(str(folder / "i3d_torchscript.pt"))
    torch.save(model.state_dict(), folder / "i3d_state.pt")
    return model, folder


def test_i3d_checkpoints_load_and_variants_differ(tiny_i3d):
    model, folder = tiny_i3d
    rng = np.random.default_rng(1)
    videos = [rng.integers(0, 256, (4, 48, 64, 3), dtype=np.uint8) for _ in range(3)]
    ref = fvd_mod.i3d_features(model, videos, "videogpt", resolution=64)
    assert ref.shape == (3, 400) and ref.dtype == np.float64
    for name in ("i3d_torchscript.pt", "i3d_state.pt"):
        loaded = fvd_mod.load_i3d(folder / name)
        np.testing.assert_allclose(fvd_mod.i3d_features(loaded, videos, "videogpt", resolution=64), ref, atol=1e-5)
    sg = fvd_mod.i3d_features(fvd_mod.load_i3d(folder / "i3d_torchscript.pt"), videos, "stylegan")
    assert sg.shape == (3, 400) and not np.allclose(sg, ref)
    # VideoGPT preprocessing: shorter side to 224, centre crop, range [-1, 1]
    x = fvd_mod.preprocess_videogpt(videos[0])
    assert x.shape == (3, 4, 224, 224) and x.min() >= -1 and x.max() <= 1
    assert fvd_mod.frechet_distance(ref, ref) == pytest.approx(0.0, abs=1e-6)


def test_load_i3d_rejects_other_files(tmp_path):
    from stages.core.errors import RealcamError

    bad = tmp_path / "bad.pt"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(RealcamError, match="not an I3D"):
        fvd_mod.load_i3d(bad)


# ----------------------------------------------------------------------------------------------
# SfM on synthetic videos (session fixture: two clips rendered once)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    samples, ref, depth, gtv = root / "samples", root / "ref", root / "depth", root / "gt_videos"
    for d in (samples, ref, depth, gtv):
        d.mkdir()
    tex = [synth.procedural_texture(np.random.default_rng([0, i])) for i in range(4)]
    out = {"root": root}
    for name, clip in (("a", CLIP_A), ("b", CLIP_B)):
        cams = cam.read_re10k(POSES / f"{clip}.txt")
        frames, dep, written = synth.synth_clip(cams, tex, 1.0, (SIZE, SIZE), synth.clip_rng(0, clip), supersample=1)
        cam.write_re10k(ref / f"{name}.txt", written)  # metric (alpha = 1)
        np.savez(depth / f"{name}.npz", depth=dep)
        out[name] = (frames, written)
    write_video(samples / "a.mp4", out["a"][0], lossless=True)
    (samples / "b").mkdir()
    for i, f in enumerate(out["b"][0]):
        write_image(samples / "b" / f"{i:03d}.png", f)
    # clip a's video paired with clip b's trajectory: the pipeline must tell
    shutil.copyfile(samples / "a.mp4", samples / "swapped.mp4")
    shutil.copyfile(ref / "b.txt", ref / "swapped.txt")
    # unreconstructable videos: blank frames, and only two frames
    write_video(samples / "blank.mp4", np.full((16, SIZE, SIZE, 3), 128, np.uint8), lossless=True)
    (samples / "two").mkdir()
    for i in range(2):
        write_image(samples / "two" / f"{i}.png", out["a"][0][i])
    shutil.copyfile(ref / "a.txt", ref / "blank.txt")
    shutil.copyfile(ref / "a.txt", ref / "two.txt")
    out.update(samples=samples, ref=ref, depth=depth)
    return out


def _fake_align_scale():
    """The align-scale stage's ``frame_scale`` (median of D(u, v) / z) if it is not installed here."""
    try:
        import stages.align_scale  # noqa: F401

        return
    except ImportError:
        pass
    mod = types.ModuleType("stages.align_scale")

    def frame_scale(depth, image_size, uv, z, max_depth=20.0, min_points=10):
        h, w = depth.shape
        col = np.clip((uv[:, 0] * w / image_size[0]).astype(int), 0, w - 1)
        row = np.clip((uv[:, 1] * h / image_size[1]).astype(int), 0, h - 1)
        d = depth[row, col]
        keep = (z > 0) & (d > 0) & (d < max_depth)
        if keep.sum() < min_points:
            return None, int(keep.sum())
        return float(np.median(d[keep] / z[keep])), int(keep.sum())

    mod.frame_scale = frame_scale
    sys.modules["stages.align_scale"] = mod


@pytest.fixture(scope="session")
def evaluated(data):
    _fake_align_scale()
    out = data["root"] / "out"
    tables = evaluate(data["samples"], data["ref"], out, trials=2, mapper="global", depth_dir=data["depth"], plot=True)
    return out, tables


def test_scoring_again_gives_identical_tables_in_one_process_or_two(evaluated, data, tmp_path):
    """Same seed, same videos: the same SfM trials to the last bit, whether the videos run one
    after the other or in two worker processes (one SfM thread per video)."""
    out, _ = evaluated
    again = evaluate(
        data["samples"], data["ref"], tmp_path / "again", trials=2, mapper="global", depth_dir=data["depth"], workers=2
    )
    first = pd.read_parquet(out / "per_trial.parquet").drop(columns="seconds")
    pd.testing.assert_frame_equal(
        first, again["per_trial"].drop(columns="seconds").reset_index(drop=True), check_dtype=False
    )


def test_estimated_trajectories_score_near_zero(evaluated):
    out, tables = evaluated
    pv = tables["per_video"].set_index("video")
    for name in ("a", "b"):
        row = pv.loc[name]
        assert row["status"] == "ok" and row["n_success"] == 2 and row["n_trials"] == 2
        assert row["rot_err"] < 0.05, row["rot_err"]
        assert row["trans_err_rel"] < 0.3, row["trans_err_rel"]
        assert row["ate_rot_deg"] < 1.0
    # metric variant with the factor from the (true metric) depth of frame 0
    assert pv.loc["a", "trans_err_metric"] < 0.3
    trials = tables["per_trial"]
    ok = trials[(trials["video"] == "a") & (trials["status"] == "ok")]
    assert np.isfinite(ok["metric_factor"]).all() and (ok["n_registered"] == 16).all()
    assert (out / "plots" / "a.png").exists()


def test_wrong_trajectory_scores_far_worse(evaluated):
    _, tables = evaluated
    pv = tables["per_video"].set_index("video")
    assert pv.loc["swapped", "status"] == "ok"
    assert pv.loc["swapped", "rot_err"] > 10 * pv.loc["a", "rot_err"]
    assert pv.loc["swapped", "trans_err_rel"] > 3 * max(pv.loc["a", "trans_err_rel"], 0.1)


def test_unreconstructable_videos_are_failed_trials_with_reasons(evaluated):
    out, tables = evaluated
    pv = tables["per_video"].set_index("video")
    trials = tables["per_trial"]
    for name in ("blank", "two"):
        assert pv.loc[name, "status"] == "failed" and pv.loc[name, "n_success"] == 0
        assert pv.loc[name, "reason"].startswith("all trials failed")
        t = trials[trials["video"] == name]
        assert len(t) == 2 and (t["status"] == "failed").all() and (t["reason"].str.len() > 0).all()
    assert "too few matches" in pv.loc["blank", "reason"]
    assert "only 2 frame(s)" in pv.loc["two", "reason"]
    summary = pd.read_parquet(out / "summary.parquet").set_index("metric")
    assert summary.loc["video_failure_rate", "mean"] == pytest.approx(2 / 5)
    assert summary.loc["trial_failure_rate", "mean"] == pytest.approx(4 / 10)
    ok = pv[pv["status"] == "ok"]
    assert summary.loc["rot_err", "mean"] == pytest.approx(ok["rot_err"].mean())
    assert summary.loc["rot_err", "median"] == pytest.approx(ok["rot_err"].median())


def test_rerun_skips_done_videos(data, evaluated):
    out, tables = evaluated
    before = pd.read_parquet(out / "per_video.parquet")
    again = evaluate(data["samples"], data["ref"], out, trials=2, mapper="global")
    pd.testing.assert_frame_equal(
        again["per_video"].set_index("video").loc[["a", "b"]], before.set_index("video").loc[["a", "b"]]
    )


def test_incremental_mapper(data):
    s = Sample("b", data["samples"] / "b", data["ref"] / "b.txt")
    rows, video, _ = evaluate_video(s, trials=1, mapper="incremental")
    assert video["status"] == "ok" and video["rot_err"] < 0.05 and video["trans_err_rel"] < 0.3


# ----------------------------------------------------------------------------------------------
# CLI: --estimated with table factors, FVD, errors
# ----------------------------------------------------------------------------------------------
def test_cli_estimated_with_table_factor_and_fvd(data, tiny_i3d, tmp_path):
    _, folder = tiny_i3d
    est = tmp_path / "est"
    est.mkdir()
    rows = []
    for name, alpha in (("a", 2.5), ("b", 0.5)):
        written = data[name][1]
        cam.write_re10k(est / f"{name}.txt", written.with_c2w(cam.metric_poses(written.c2w, 1 / alpha)))
        video = str(data["samples"] / ("a.mp4" if name == "a" else "b"))
        rows.append({"video": f"est/{name}.txt", "metric_factor": alpha, "gt_video": video, "generated_video": video})
    pd.DataFrame(rows).to_csv(tmp_path / "samples.csv", index=False)
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "samples.csv"),
            "--reference",
            str(data["ref"]),
            "--out",
            str(tmp_path / "out"),
            "--estimated",
            "--workers",
            "2",
            "--fvd",
            "--fvd-frames",
            "4",
            "--i3d",
            str(folder / "i3d_torchscript.pt"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "per_video.parquet" in res.output
    pv = pd.read_parquet(tmp_path / "out" / "per_video.parquet")
    for col in ("rot_err", "trans_err_rel", "cammc_rel", "trans_err_metric", "cammc_metric", "ate_trans"):
        assert np.allclose(pv[col], 0.0, atol=1e-6), col
    summary = pd.read_parquet(tmp_path / "out" / "summary.parquet").set_index("metric")
    # generated videos equal to their ground truth: FVD 0 in both variants
    assert summary.loc["fvd_videogpt", "mean"] == pytest.approx(0.0, abs=1e-4)
    assert summary.loc["fvd_stylegan", "mean"] == pytest.approx(0.0, abs=1e-4)


def test_cli_bad_input_is_one_line(data, tmp_path):
    res = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "nothing"), "--reference", str(data["ref"]), "--out", str(tmp_path / "out")]
    )
    assert res.exit_code == 2
    assert "samples must be a folder" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(data["samples"]),
            "--reference",
            str(data["ref"]),
            "--out",
            str(tmp_path / "out"),
            "--sfm",
            "magic",
        ],
    )
    assert res.exit_code == 2 and "--sfm" in res.output


def test_ate_straight_path_rotation_is_determined():
    # a straight path: positions alone leave the rotation about the path free
    gt = np.tile(np.eye(4), (6, 1, 1))
    gt[:, 2, 3] = np.linspace(0, 1, 6)
    gt[:, :3, :3] = Rotation.from_rotvec(np.outer(np.linspace(0, 0.3, 6), [0, 1, 0])).as_matrix()
    r = Rotation.from_rotvec([0.2, 0.4, -0.1]).as_matrix()
    est = gt.copy()
    est[:, :3, 3] = 2.0 * gt[:, :3, 3] @ r.T
    est[:, :3, :3] = r @ gt[:, :3, :3]
    out = M.ate_aligned(est, gt)
    assert out["ate_trans"] == pytest.approx(0.0, abs=1e-9)
    assert out["ate_rot_deg"] == pytest.approx(0.0, abs=1e-6)
    assert out["ate_scale"] == pytest.approx(0.5, rel=1e-9)


class _TinyImageNet(torch.nn.Module):
    """A stand-in image feature network with the StyleGAN Inception calling convention."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 5, stride=4)

    def forward(self, x: torch.Tensor, return_features: bool = True) -> torch.Tensor:
        y = torch.relu(self.conv(x.float() / 255.0))
        return torch.cat([y.mean(dim=(2, 3)), y.amax(dim=(2, 3))], 1)


def test_fid_per_frame_matches_own_frechet(tmp_path):
    torch.manual_seed(0)
    net = _TinyImageNet().eval()
    torch.jit.script(net).save(str(tmp_path / "inception.pt"))
    loaded = fvd_mod.load_feature_net(tmp_path / "inception.pt")
    rng = np.random.default_rng(3)
    gen = [rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8) for _ in range(3)]
    ref = [np.clip(v.astype(int) + 40, 0, 255).astype(np.uint8) for v in gen]
    got = fvd_mod.fid_per_frame(loaded, gen, ref, batch_size=4)

    def feats(videos):
        x = torch.from_numpy(np.concatenate(videos)).permute(0, 3, 1, 2)
        return net(x).double().detach().numpy()

    assert got == pytest.approx(fvd_mod.frechet_distance(feats(gen), feats(ref)), rel=1e-6)
    assert fvd_mod.fid_per_frame(loaded, gen, gen) == pytest.approx(0.0, abs=1e-6)
