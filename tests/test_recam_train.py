"""``realcam train --model recammaster`` on tiny random Wan parts and synthetic multi-camera scenes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner
from wan_fixtures import save_tiny_base

from realcam_cli.app import app
from stages.core.artifacts import read_table
from stages.models import wan
from stages.models.checkpoint import read_state_dict
from stages.train import recammaster as rt

runner = CliRunner()
FRAMES, SIZE = 9, (32, 32)


def test_training_schedule_is_diffsynths():
    """DiffSynth's ``FlowMatchScheduler(shift=5, sigma_min=0, extra_one_step=True)`` after
    ``set_timesteps(1000, training=True)``, written out as that code computes it."""
    sigmas, timesteps, weights = rt.training_schedule(5.0)
    s = torch.linspace(1.0, 0.0, 1001, dtype=torch.float64)[:-1]
    s = 5 * s / (1 + 4 * s)
    x = s * 1000
    y = torch.exp(-2 * ((x - 1000 / 2) / 1000) ** 2)
    y = y - y.min()
    assert np.allclose(sigmas, s.numpy()) and np.allclose(timesteps, x.numpy())
    assert np.allclose(weights, (y * (1000 / y.sum())).numpy())
    assert sigmas[0] == 1.0 and abs(sigmas[500] - 2.5 / 3.0) < 1e-12 and abs(weights.mean() - 1) < 1e-12
    assert timesteps[np.argmax(weights)] == pytest.approx(500, abs=2)


@pytest.fixture(scope="module")
def multicam(tmp_path_factory):
    root = tmp_path_factory.mktemp("multicam")
    base = save_tiny_base(root / "base")
    data = root / "data"
    res = runner.invoke(
        app,
        ["synth", "--cameras", "4", "--dynamic", "--frames", str(FRAMES), "--size", "32x32", "--out", str(data)],
    )
    assert res.exit_code == 0, res.output
    return dict(root=root, base=base, data=data)


def test_loss_is_the_weighted_target_half_mse(multicam):
    parts = wan.load_parts(None, multicam["base"], "cpu", "fp32", from_base=True)
    dataset = rt.MultiCamDataset(multicam["data"], FRAMES, SIZE, seed=0)
    batch = rt._collate([dataset[0], dataset[1]])
    trainer = rt.ReCamMasterTrainer(parts, 5.0)
    with torch.no_grad():
        loss = trainer(batch, torch.Generator().manual_seed(7))
        # the same draws, in the same order, by hand
        g = torch.Generator().manual_seed(7)
        videos = np.stack([*[v.numpy() for v in batch["target"]], *[v.numpy() for v in batch["source"]]])
        z_target, z_source = wan.encode_video(parts, videos).split(2)
        text = wan.encode_prompt(parts, batch["caption"])
        idx = torch.randint(0, 1000, (2,), generator=g)
        noise = torch.randn(z_target.shape, generator=g)
        sigmas, timesteps, weights = rt.training_schedule(5.0)
        expected = 0.0
        for b in range(2):
            s = float(sigmas[idx[b]])
            noisy = (1 - s) * z_target[b : b + 1] + s * noise[b : b + 1]
            t = torch.tensor([timesteps[idx[b]]], dtype=torch.float32)
            v = parts.model(noisy, z_source[b : b + 1], t, text[b : b + 1], batch["camera"][b : b + 1])
            expected += float(weights[idx[b]]) * float(((v - (noise[b : b + 1] - z_target[b : b + 1])) ** 2).mean())
    assert float(loss) == pytest.approx(expected / 2, rel=1e-5)
    # the source camera is another camera of the scene, and the tokens are relative to its frame 0
    assert dataset.choose(0)[1] != dataset.choose(0)[2]


def _train(multicam, out, steps, *extra):
    args = ["train", "--model", "recammaster", "--data", str(multicam["data"]), "--out", str(out)]
    args += ["--base", str(multicam["base"]), "--size", "32x32", "--num-frames", str(FRAMES), "--steps", str(steps)]
    args += ["--batch", "1", "--lr", "2e-3", "--device", "cpu", "--workers", "0", "--log-every", "1", *extra]
    # a process per run, as the DeepSpeed launcher does (its process groups cannot be made twice in one)
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE")}
    res = subprocess.run([sys.executable, "-m", "realcam_cli", *args], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return read_table(out / "metrics.parquet")


def _held_out_loss(multicam, weights_file=None) -> float:
    """The loss on 8 fixed samples, fixed timesteps and noise (before or after training)."""
    parts = wan.load_parts(weights_file, multicam["base"], "cpu", "fp32", from_base=weights_file is None)
    trainer = rt.ReCamMasterTrainer(parts, 5.0)
    dataset = rt.MultiCamDataset(multicam["data"], FRAMES, SIZE, seed=123)
    with torch.no_grad():
        return float(
            np.mean([float(trainer(rt._collate([dataset[n]]), torch.Generator().manual_seed(n))) for n in range(8)])
        )


def test_training_lowers_the_loss_and_resume_is_exact(multicam, tmp_path):
    before = _held_out_loss(multicam)
    run = tmp_path / "run"
    metrics = _train(multicam, run, 60, "--ckpt-every", "30")
    weights = run / "weights" / "recammaster.safetensors"
    after = _held_out_loss(multicam, weights)
    assert after < 0.8 * before, (before, after)
    # the trained weights load strictly into rerender's model (original names, whole DiT)
    assert "blocks.0.cam_encoder.weight" in read_state_dict(weights)
    # resume: a run stopped at step 30 and resumed gives the same losses and weights as one run
    short = tmp_path / "short"
    _train(multicam, short, 30, "--ckpt-every", "30")
    resumed = _train(multicam, short, 60, "--ckpt-every", "30", "--resume")
    assert np.array_equal(resumed["loss"].to_numpy(), metrics["loss"].to_numpy())
    a, b = read_state_dict(weights), read_state_dict(short / "weights" / "recammaster.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
