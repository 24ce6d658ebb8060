"""realcam train: the dataset (ground truth from synthetic clips) and the DeepSpeed loop (tiny)."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from stages.core import cameras as cam
from stages.core.artifacts import read_table, write_table
from stages.core.errors import RealcamError
from stages.filter import metric_camera_file
from stages.synth import synthesize
from stages.train.data import ClipDataset, RankBatches, load_clips, usable_strides

os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/realcam/torch_extensions"))


@pytest.fixture(scope="module")
def train_data(tmp_path_factory, pose_files, image_files):
    """A synthetic dataset and a filter-style output with metric cameras (alpha from the truth)."""
    root = tmp_path_factory.mktemp("train")
    ds, filtered = root / "ds", root / "filtered"
    truth = synthesize(pose_files[:3], ds, size=(96, 64), textures=image_files, seed=2, supersample=1)
    for clip_id, alpha in zip(truth["clip_id"], truth["alpha"]):
        cams = cam.read_re10k(ds / "cameras" / f"{clip_id}.txt")
        cam.write_re10k(filtered / "cameras" / f"{clip_id}.txt", metric_camera_file(cams, alpha))
    write_table(filtered / "keep.parquet", pd.DataFrame({"clip_id": truth["clip_id"], "scale": truth["alpha"]}))
    return ds, filtered, truth


def test_samples_follow_the_spec(train_data, pose_files):
    ds, filtered, truth = train_data
    clips, skipped = load_clips(filtered, ds)
    assert len(clips) == 3 and skipped == []
    data = ClipDataset(clips, frames=4, size=(64, 64), train=True, seed=5)
    alpha = dict(zip(truth["clip_id"], truth["alpha"]))
    for n in range(12):
        s = data[n]
        assert s["video"].shape == (3, 4, 64, 64)
        assert -1.0 <= s["video"].min() and s["video"].max() <= 1.0
        cond = s["cond_frame"]
        assert 0 <= cond < 4 and 1 <= s["stride"] <= usable_strides(16, 4)
        np.testing.assert_allclose(s["c2w"][cond].numpy(), np.eye(4), atol=1e-6)
        r = s["c2w"][:, :3, :3].double()
        assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(4, 3, 3), atol=1e-5)
        # Metric translations: the synthetic trajectory itself (the original file, in metres).
        original = cam.read_re10k(next(p for p in pose_files if p.stem == s["clip_id"])).c2w
        idx, cond2, stride = data.choose(n, data.clips[data.clip_index(n)])
        assert cond2 == cond and stride == s["stride"]
        expected = cam.relative_poses(original[idx], reference=cond)
        np.testing.assert_allclose(s["c2w"].numpy(), expected, atol=1e-5)
        # Intrinsics: 96x64 frames resized to 96x64 (cover) then centre-cropped to 64x64.
        k_src = cam.denormalize_intrinsics(data.clips[data.clip_index(n)].cameras.intrinsics[idx[0]], 96, 64)
        np.testing.assert_allclose(s["k"][0].numpy(), cam.crop_intrinsics(k_src, 16, 0), rtol=1e-6)
        assert alpha[s["clip_id"]] > 0
    # Deterministic: the same sample number gives the same sample.
    a, b = data[7], data[7]
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["c2w"], b["c2w"])
    # Each epoch visits every clip once.
    assert sorted(data.clip_index(n) for n in range(3)) == [0, 1, 2]


def test_relative_scale_ablation_and_validation(train_data):
    ds, filtered, truth = train_data
    metric, _ = load_clips(filtered, ds)
    relative, _ = load_clips(filtered, ds, relative_scale=True)
    m = ClipDataset(metric, frames=4, size=(64, 64), train=False)
    r = ClipDataset(relative, frames=4, size=(64, 64), train=False)
    sm, sr = m[0], r[0]
    assert sm["cond_frame"] == 0 and sm["stride"] == 5  # validation: first frame, fixed stride (<= 8)
    alpha = truth.set_index("clip_id").loc[sm["clip_id"], "alpha"]
    np.testing.assert_allclose(sm["c2w"][:, :3, 3].numpy(), alpha * sr["c2w"][:, :3, 3].numpy(), rtol=1e-4, atol=1e-6)


def test_rank_batches_are_disjoint_and_resumable():
    full = [i for b in RankBatches(0, 5, 2, 2, 0, 3) for i in b]
    other = [i for b in RankBatches(0, 5, 2, 2, 1, 3) for i in b]
    assert not set(full) & set(other)
    assert sorted(full + other) == list(range(5 * 2 * 2 * 3))
    resumed = [i for b in RankBatches(3, 5, 2, 2, 0, 3) for i in b]
    assert resumed == full[3 * 2 * 3 :]


def test_bad_inputs(tmp_path, train_data):
    ds, filtered, _ = train_data
    with pytest.raises(RealcamError, match="no such folder"):
        load_clips(tmp_path / "missing", ds)
    write_table(tmp_path / "keep.parquet", pd.DataFrame({"clip_id": pd.Series([], dtype=str)}))
    with pytest.raises(RealcamError, match="no kept clips"):
        load_clips(tmp_path, ds)
    clips, _ = load_clips(filtered, ds)
    with pytest.raises(RealcamError, match="at least 20 frames"):
        ClipDataset(clips, frames=20, size=(64, 64))
    # A clip whose camera file is broken is skipped with its reason.
    broken = tmp_path / "f2"
    (broken / "cameras").mkdir(parents=True)
    write_table(broken / "keep.parquet", pd.DataFrame({"clip_id": [c.clip_id for c in clips]}))
    for c in clips[1:]:
        cam.write_re10k(broken / "cameras" / f"{c.clip_id}.txt", c.cameras)
    (broken / "cameras" / f"{clips[0].clip_id}.txt").write_text("url\n1 2 3\n")
    kept, skipped = load_clips(broken, ds)
    assert len(kept) == 2 and skipped[0]["item"] == clips[0].clip_id
    assert "expected 19 numbers" in skipped[0]["reason"]


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "realcam_cli", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def _train_args(train_data, out, steps, *extra):
    ds, filtered, _ = train_data
    return (
        "train",
        "--data",
        str(filtered),
        "--frames",
        str(ds),
        "--res",
        "tiny",
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch",
        "1",
        "--lr",
        "1e-3",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--log-every",
        "10",
        "--train-unet",
        *extra,
    )


def test_tiny_training_reduces_loss_and_resumes_exactly(tmp_path, train_data):
    full = _cli(*_train_args(train_data, tmp_path / "full", 100, "--ckpt-every", "100"))
    assert full.returncode == 0, full.stderr[-3000:]
    assert str(tmp_path / "full") in full.stdout
    m = read_table(tmp_path / "full" / "metrics.parquet")
    assert list(m["step"]) == list(range(1, 101)) and np.isfinite(m["loss"]).all()
    first, last = m["loss"].head(20).mean(), m["loss"].tail(20).mean()
    assert last < 0.8 * first, (first, last)
    # The trained weights: camera modules and (with --train-unet) the UNet, nothing frozen.
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "full" / "weights" / "model.safetensors"))
    assert any(k.startswith("pose_encoder.") for k in saved)
    assert any(k.startswith("model.diffusion_model.") and ".pluker_projection." not in k for k in saved)
    assert not any(k.startswith(("first_stage_model.", "cond_stage_model.", "embedder.")) for k in saved)

    part = _cli(*_train_args(train_data, tmp_path / "part", 30, "--ckpt-every", "30"))
    assert part.returncode == 0, part.stderr[-3000:]
    resumed = _cli(*_train_args(train_data, tmp_path / "part", 40, "--ckpt-every", "30", "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    r = read_table(tmp_path / "part" / "metrics.parquet")
    assert list(r["step"]) == list(range(1, 41))
    np.testing.assert_allclose(r["loss"].to_numpy()[30:40], m["loss"].to_numpy()[30:40], rtol=1e-5)


def test_cli_errors(tmp_path, train_data):
    bad = _cli(
        "train",
        "--data",
        str(tmp_path / "nope"),
        "--frames",
        str(tmp_path),
        "--res",
        "tiny",
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in bad.stderr
    missing = _cli(*_train_args(train_data, tmp_path / "o2", 1, "--base-ckpt", str(tmp_path / "model.ckpt")))
    assert missing.returncode == 2 and "no such base checkpoint" in missing.stderr


def test_two_processes_agree_after_a_step(tmp_path, train_data):
    """World size 2 on localhost (gloo): both ranks hold the same camera weights after a step."""
    out = tmp_path / "ddp"
    args = _train_args(train_data, out, 1, "--ckpt-every", "1")
    args = [a if a != "1" or i != args.index("--batch") + 1 else "2" for i, a in enumerate(args)]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "realcam_cli",
            *args,
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    ckpt = out / "checkpoints"
    assert (ckpt / "latest").read_text().strip() == "step_0000001"
    files = sorted((ckpt / "step_0000001").glob("*model_states.pt"))
    assert files  # rank 0 writes the module; the optimiser shards come from both ranks
    shards = sorted((ckpt / "step_0000001").glob("*optim_states.pt"))
    assert len(shards) == 2
    state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt))
    from safetensors.torch import load_file

    saved = load_file(str(out / "weights" / "model.safetensors"))
    assert saved  # ZeRO shards of both ranks, gathered, equal what rank 0 holds after the step
    for key, value in saved.items():
        torch.testing.assert_close(state[f"model.{key}"].float(), value.float(), rtol=0, atol=1e-6)


def test_camera_only_training_updates_only_camera_modules(tmp_path, train_data):
    """Default mode: the base (from --base-ckpt) stays frozen, the camera modules move."""
    import json

    from safetensors.torch import load_file

    from stages.models.checkpoint import save_checkpoint
    from stages.models.model import build_model

    torch.manual_seed(0)
    base = build_model("tiny")
    with torch.no_grad():  # a non-degenerate stand-in for pretrained weights (zero layers filled)
        for name, p in base.named_parameters():
            if p.dim() > 1 and not p.any() and not name.startswith("pose_encoder"):
                p.normal_(0, 0.05)
    save_checkpoint(base, tmp_path / "base")
    args = [a for a in _train_args(train_data, tmp_path / "run", 3, "--ckpt-every", "3") if a != "--train-unet"]
    run = _cli(*args, "--base-ckpt", str(tmp_path / "base" / "model.safetensors"))
    assert run.returncode == 0, run.stderr[-3000:]
    report = {r["module"]: r for r in json.loads((tmp_path / "run" / "train_config.json").read_text())["trainable"]}
    assert report["unet"]["trainable"] == 0 and report["camera.pose_encoder"]["trainable"] > 0
    trained = load_file(str(tmp_path / "run" / "weights" / "model.safetensors"))
    initial = base.state_dict()
    moved = [k for k, v in trained.items() if not torch.equal(v, initial[k])]
    assert any(".pluker_projection." in k for k in moved) and any(k.startswith("pose_encoder.") for k in moved)


def test_training_target_is_the_official_one(train_data, monkeypatch):
    """One DiffusionTrainer step against the official trainer's arithmetic: z0 a posterior sample
    scaled by the dynamic-rescale factor scale(t) (a tiny config given the 512 schedule), v target
    of the scaled z0, the concat latent never dropped (only the CLIP image is), and the fps
    condition from the clip's timestamps floor-divided by the stride."""
    import dataclasses

    from stages import diffusion as dm
    from stages.models.configs import get_config
    from stages.models.model import CameraI2V
    from stages.train import loop

    ds, filtered, _ = train_data
    clips, _ = load_clips(filtered, ds)
    config = dataclasses.replace(
        get_config("tiny"),
        parameterization="v",
        zero_terminal_snr=True,
        use_dynamic_rescale=True,
        base_scale=0.7,
        fps_condition_type="fps",
    )
    torch.manual_seed(0)
    model = CameraI2V(config).eval()
    trainer = loop.DiffusionTrainer(model)
    data = ClipDataset(clips, frames=4, size=(64, 64), train=True, seed=1)
    batch = loop.collate([data[0], data[1]])
    assert batch["fps"].tolist() == pytest.approx(
        [cam.frame_rate(c.cameras.timestamps) for c in (data.clips[data.clip_index(0)], data.clips[data.clip_index(1)])]
    )
    seen = {}
    real_q_sample, real_forward = loop.q_sample, CameraI2V.forward

    def q_sample(schedule, z0, t, noise):
        seen.update(z0=z0.clone(), t=t.clone(), noise=noise.clone())
        return real_q_sample(schedule, z0, t, noise)

    def forward(self, x_noisy, timesteps, context, concat, fs=None, **kw):
        seen.update(concat=concat.clone(), fs=fs.clone())
        return real_forward(self, x_noisy, timesteps, context, concat, fs=fs, **kw)

    monkeypatch.setattr(loop, "q_sample", q_sample)
    monkeypatch.setattr(CameraI2V, "forward", forward)
    # a generator whose first draw drops the image for both samples (r in [0.05, 0.15))
    for seed in range(1000):
        r = torch.rand(2, generator=torch.Generator().manual_seed(seed))
        if ((r >= 0.05) & (r < 0.15)).all():
            break
    with torch.no_grad():
        trainer(batch, torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    torch.rand(2, generator=g)  # the dropout draw
    with torch.no_grad():
        z_sample = model.encode_video(batch["video"], sample=True, generator=g)
        z_mode = model.encode_video(batch["video"])
    assert not torch.allclose(z_sample, z_mode)  # a posterior sample, not the mode
    scale = torch.from_numpy(dm.Schedule.for_config(config).scale(seen["t"].numpy())).float()
    torch.testing.assert_close(seen["z0"], z_sample * scale.view(-1, 1, 1, 1, 1))
    cond = batch["cond_frame"]
    expected_concat = z_sample[torch.arange(2), :, cond][:, :, None].expand(-1, -1, 4, -1, -1)
    torch.testing.assert_close(seen["concat"], expected_concat)  # dropped image, concat kept
    expected_fs = torch.div(batch["fps"].double(), batch["stride"].double(), rounding_mode="floor").long()
    assert torch.equal(seen["fs"], expected_fs)
