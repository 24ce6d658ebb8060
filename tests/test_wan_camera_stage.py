"""``train --model wan-camera`` and ``generate --model wan-camera`` on tiny random Wan parts and
synthetic metric clips: the loss, the data mix and the schedule against their definitions,
training that lowers the loss and resumes exactly, image-to-video keeping frame 0, continuation
keeping the given frames, the strongest noise shaping giving the preview, camera CFG's formula."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner
from wan_fixtures import save_tiny_base

from realcam_cli.app import app
from stages import flow_matching as fm
from stages import generate_wan as gw
from stages.core import cameras as cam
from stages.core.artifacts import read_arrays, read_table, write_table
from stages.core.image import fit_image
from stages.core.video import read_image, write_video
from stages.diffusion import camera_cfg_weight
from stages.filter import metric_camera_file
from stages.models import wan
from stages.models.checkpoint import read_state_dict
from stages.rerender.pipeline import latent_masks
from stages.settings import WanCameraTrainConfig, WanGenerateSettings
from stages.synth import synthesize
from stages.train import wan_camera as wt
from stages.train.data import ClipDataset, collate, load_clips

runner = CliRunner()
FRAMES, SIZE = 9, (48, 32)  # 3 latent frames of 6x4 cells


@pytest.fixture(scope="module")
def setup(tmp_path_factory, pose_files, image_files):
    root = tmp_path_factory.mktemp("wancam")
    base = save_tiny_base(root / "base")
    ds, filtered = root / "ds", root / "filtered"
    truth = synthesize(pose_files[:3], ds, size=(64, 48), textures=image_files, seed=2, supersample=1)
    for clip_id, alpha in zip(truth["clip_id"], truth["alpha"]):
        cams = cam.read_re10k(ds / "cameras" / f"{clip_id}.txt")
        cam.write_re10k(filtered / "cameras" / f"{clip_id}.txt", metric_camera_file(cams, alpha))
    write_table(filtered / "keep.parquet", pd.DataFrame({"clip_id": truth["clip_id"], "scale": truth["alpha"]}))
    # a model whose camera layer is not zero, so that the camera changes the output
    parts = wan.load_parts(None, base, "cpu", "fp32", from_base=True, kind="wan-camera")
    layer = parts.model.camera_patchify
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        layer.weight.copy_(0.05 * torch.randn(layer.weight.shape, generator=g))
        layer.bias.copy_(0.05 * torch.randn(layer.bias.shape, generator=g))
    weights = wt.save_weights(parts.model, root / "weights", 0)
    depth = root / "depth.npy"
    np.save(depth, np.linspace(1.5, 3.0, 32 * 48, dtype=np.float32).reshape(32, 48))
    return dict(root=root, base=base, ds=ds, filtered=filtered, weights=weights, depth=depth, image=image_files[0])


def _cfg(setup, **kw) -> WanCameraTrainConfig:
    args = dict(data=str(setup["filtered"]), frames_root=str(setup["ds"]), out=str(setup["root"] / "unused"))
    args.update(base=str(setup["base"]), size=SIZE, frames=FRAMES, precision="fp32", device="cpu")
    return WanCameraTrainConfig(**{**args, **kw})


# ----------------------------------------------------------------------------------------------
# Training: definitions
# ----------------------------------------------------------------------------------------------
def test_task_mix_and_labels_follow_the_ratios(setup):
    cfg = _cfg(setup, tasks=(0.5, 0.3, 0.2), unlabelled_ratio=0.2, text_dropout=0.1, frames=81)
    g = torch.Generator().manual_seed(0)
    labelled, task, clean, keep = wt.draw_tasks(20000, 21, cfg, g)
    shares = np.bincount(task.numpy(), minlength=3) / 20000
    assert np.allclose(shares, [0.5, 0.3, 0.2], atol=0.015)
    assert abs(float(labelled.float().mean()) - 0.8) < 0.015 and abs(float(keep.float().mean()) - 0.9) < 0.015
    assert set(clean[task == 0].tolist()) == {0} and set(clean[task == 1].tolist()) == {1}
    # an extension keeps 5..50 frames of the previous clip: 2..13 whole latent frames
    assert set(clean[task == 2].tolist()) == set(range(2, 14))
    assert wt.extension_range((5, 50), 21) == (2, 13) and wt.extension_range((5, 50), 3) == (2, 2)


def test_learning_rate_schedule_is_the_papers(setup):
    cfg = _cfg(setup, steps=10_000, warmup=500, lr=1e-4, lr_final=1e-5)
    lr = np.array([cfg.lr * wt.lr_factor(s, cfg) for s in range(cfg.steps)])
    assert lr[0] == pytest.approx(5e-5) and lr[250] == pytest.approx(7.5e-5) and lr[500] == pytest.approx(1e-4)
    assert lr[-1] == pytest.approx(1e-5) and np.all(np.diff(lr[500:]) <= 1e-18) and np.all(np.diff(lr[:501]) > 0)


def test_loss_is_the_weighted_mse_on_the_generated_latent_frames(setup):
    cfg = _cfg(setup, tasks=(0.34, 0.33, 0.33), unlabelled_ratio=0.5, text_dropout=0.3)
    parts = wan.load_parts(setup["weights"], setup["base"], "cpu", "fp32", kind="wan-camera")
    clips, _ = load_clips(setup["filtered"], setup["ds"])
    data = ClipDataset(clips, frames=FRAMES, size=SIZE, train=True, seed=3, random_condition=False)
    batch = collate([data[n] for n in range(4)])
    assert torch.allclose(batch["c2w"][:, 0], torch.eye(4).expand(4, 4, 4), atol=1e-6)  # frame 0 the reference
    trainer = wt.WanCameraTrainer(parts, cfg)
    with torch.no_grad():
        loss = float(trainer(batch, torch.Generator().manual_seed(11)))
        g = torch.Generator().manual_seed(11)
        z = wan.encode_video(parts, wt.to_uint8(batch["video"]).numpy())
        labelled, task, clean, keep = wt.draw_tasks(4, 3, cfg, g)
        idx = torch.randint(0, 1000, (4,), generator=g)
        noise = torch.randn(z.shape, generator=g)
        sigmas, timesteps, weights = wt.training_schedule(5.0)
        total = 0.0
        for b in range(4):
            s, c = float(sigmas[idx[b]]), int(clean[b])
            x = (1 - s) * z[b : b + 1] + s * noise[b : b + 1]
            x[:, :, :c] = z[b : b + 1, :, :c]  # the given frames enter clean
            c2w = np.linalg.inv(batch["c2w"][b, 0].double().numpy()) @ batch["c2w"][b].double().numpy()
            plucker = None
            if labelled[b]:
                plucker = parts.model.camera_input(batch["k"][b : b + 1], torch.from_numpy(c2w)[None].float(), 32, 48)
            text = wan.encode_prompt(parts, [batch["caption"][b] if keep[b] else ""])
            v = parts.model(x, torch.tensor([timesteps[idx[b]]], dtype=torch.float32), text, plucker)
            err = (v - (noise[b : b + 1] - z[b : b + 1]))[:, :, c:]
            total += float(weights[idx[b]]) * float((err**2).mean())
    assert loss == pytest.approx(total / 4, rel=1e-5)
    assert set(task.tolist()) == {0, 1, 2} and not bool(labelled.all())  # every path was taken


# ----------------------------------------------------------------------------------------------
# Training: the command
# ----------------------------------------------------------------------------------------------
def _train(setup, out, steps, *extra):
    args = ["train", "--model", "wan-camera", "--data", str(setup["filtered"]), "--frames", str(setup["ds"])]
    args += ["--out", str(out), "--base", str(setup["base"]), "--size", "48x32", "--num-frames", str(FRAMES)]
    args += ["--steps", str(steps), "--batch", "2", "--micro-batch", "2", "--lr", "3e-3", "--warmup", "50"]
    args += ["--device", "cpu", "--workers", "0", "--log-every", "10", "--tasks", "0.5,0.3,0.2", *extra]
    # a process per run, as the DeepSpeed launcher does (its process groups cannot be made twice in one)
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE")}
    res = subprocess.run([sys.executable, "-m", "realcam_cli", *args], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return read_table(out / "metrics.parquet")


def _held_out_loss(setup, weights=None, camera: bool = True, samples: int = 6, tasks=(0.5, 0.5, 0.0)) -> float:
    """The loss on fixed samples with fixed draws (by default I2V and T2V; with the true cameras, or
    none), before or after training."""
    parts = wan.load_parts(weights, setup["base"], "cpu", "fp32", from_base=weights is None, kind="wan-camera")
    cfg = _cfg(setup, tasks=tasks, unlabelled_ratio=0.0 if camera else 1.0, text_dropout=0.0)
    trainer = wt.WanCameraTrainer(parts, cfg)
    clips, _ = load_clips(setup["filtered"], setup["ds"])
    data = ClipDataset(clips, frames=FRAMES, size=SIZE, train=True, seed=123, random_condition=False)
    with torch.no_grad():
        losses = [float(trainer(collate([data[n]]), torch.Generator().manual_seed(n))) for n in range(samples)]
    return float(np.mean(losses))


def test_training_lowers_the_loss_and_resume_is_exact(setup, tmp_path):
    before = _held_out_loss(setup)
    run = tmp_path / "run"
    metrics = _train(setup, run, 100, "--ckpt-every", "50")
    weights = run / "weights" / wt.WEIGHTS_FILE
    after = _held_out_loss(setup, weights)
    assert after < 0.8 * before, (before, after)
    state = read_state_dict(weights)
    assert "camera_patchify.weight" in state and "blocks.0.attn1.to_q.weight" in state  # the whole DiT
    assert float(state["camera_patchify.weight"].abs().max()) > 0  # the zero-initialised layer learnt
    config = json.loads((run / "train_config.json").read_text())
    assert config["model"] == "wan-camera" and config["trainable_parameters"] == sum(v.numel() for v in state.values())
    assert metrics["lr"].iloc[-1] < metrics["lr"].max()  # the cosine decay
    # resume: 50 steps, then on to 100, equals one run of 100 (data, draws, optimiser and schedule;
    # the first 50 steps are the warm-up, the same whatever the total, so the cosine part runs after
    # the resume from the restored scheduler)
    short = tmp_path / "short"
    _train(setup, short, 50, "--ckpt-every", "50")
    resumed = _train(setup, short, 100, "--ckpt-every", "50", "--resume")
    assert np.array_equal(resumed["loss"].to_numpy(), metrics["loss"].to_numpy())
    assert np.array_equal(resumed["lr"].to_numpy(), metrics["lr"].to_numpy())


def test_the_camera_is_learnt_and_used(setup, tmp_path):
    """600 steps at lr 1e-3 (the camera layer at its default, fan-in-scaled rate): on held-out
    image-to-video samples the true cameras predict the clip better than no camera, and the camera
    tokens stay on the scale of the video tokens."""
    run = tmp_path / "run"
    # the options given again override _train's (click takes an option's last value)
    _train(setup, run, 600, "--lr", "1e-3", "--warmup", "20", "--tasks", "0.5,0.5,0", "--ckpt-every", "600")
    weights = run / "weights" / wt.WEIGHTS_FILE
    config = json.loads((run / "train_config.json").read_text())
    assert config["camera_lr"] == pytest.approx(1e-3 * 16 / 6144)  # the tiny DiT: 4 x 2 x 2 over 1536 x 2 x 2
    i2v = (0.0, 1.0, 0.0)
    with_camera = _held_out_loss(setup, weights, samples=48, tasks=i2v)
    without = _held_out_loss(setup, weights, camera=False, samples=48, tasks=i2v)
    assert with_camera < 0.95 * without, (with_camera, without)
    parts = wan.load_parts(weights, setup["base"], "cpu", "fp32", kind="wan-camera")
    clips, _ = load_clips(setup["filtered"], setup["ds"])
    batch = collate([ClipDataset(clips, frames=FRAMES, size=SIZE, train=True, seed=9, random_condition=False)[0]])
    with torch.no_grad():
        plucker = parts.model.camera_input(batch["k"], batch["c2w"], 32, 48)
        tokens = parts.model.camera_tokens(plucker)
        video = parts.model.transformer.patch_embedding(wan.encode_video(parts, wt.to_uint8(batch["video"]).numpy()))
    assert 0 < float(tokens.pow(2).mean().sqrt()) < float(video.pow(2).mean().sqrt())


def test_bad_training_options_are_one_line(setup, tmp_path):
    base = ["train", "--model", "wan-camera", "--data", str(setup["filtered"]), "--frames", str(setup["ds"])]
    base += ["--out", str(tmp_path / "o"), "--base", str(setup["base"]), "--size", "48x32", "--device", "cpu"]
    for extra, message in (
        (["--num-frames", "8"], "--num-frames: must be 4k+1"),
        (["--num-frames", "9", "--tasks", "0.5,0.5"], "three ratios"),
        (["--num-frames", "5", "--tasks", "0,0,1"], "extension needs"),
        (["--num-frames", "9", "--unlabelled-ratio", "1.5"], "--unlabelled-ratio"),
        (["--num-frames", "9", "--trainable", "some"], "--trainable"),
    ):
        res = runner.invoke(app, base + extra)
        assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parts(setup):
    return wan.load_parts(setup["weights"], setup["base"], "cpu", "fp32", kind="wan-camera")


def _settings(**kw) -> WanGenerateSettings:
    return WanGenerateSettings(**{"size": SIZE, "frames": FRAMES, "steps": 4, "dtype": "fp32", **kw})


def _gen(setup, parts, out, image=None, trajectory="dolly-in", **kw):
    s = _settings(**kw)
    return gw.generate(image, trajectory, out, settings=s, parts=parts, depth=setup["depth"], device="cpu")


def test_i2v_keeps_frame_0_and_the_camera_and_seed_decide_the_video(setup, parts, tmp_path):
    a = _gen(setup, parts, tmp_path / "a.mp4", setup["image"], noise_shaping=None)
    picture = fit_image(read_image(setup["image"]), None, SIZE)[0]
    assert torch.equal(a.latents[:, :, :1], wan.encode_video(parts, picture[None]))  # latent frame 0 = the image
    b = _gen(setup, parts, tmp_path / "b.mp4", setup["image"], trajectory="pan-left", noise_shaping=None)
    c = _gen(setup, parts, tmp_path / "c.mp4", setup["image"], noise_shaping=None)
    assert torch.equal(a.latents, c.latents) and (a.latents - b.latents).abs().max() > 1e-4
    # the camera input is the preview's: its intrinsics and poses (frame 0 the identity)
    npz = read_arrays(a.preview / "preview.npz")
    assert np.allclose(npz["c2w"][0], np.eye(4)) and npz["frames"].shape == (FRAMES, 32, 48, 3)


def test_t2v_has_no_preview_and_generates_every_latent_frame(setup, parts, tmp_path):
    out = tmp_path / "t.mp4"
    res = gw.generate(None, "orbit-right", out, settings=_settings(task="t2v", noise_shaping=None), parts=parts)
    assert res.preview is None and not (tmp_path / "t_preview").exists() and res.frames.shape == (FRAMES, 32, 48, 3)
    with pytest.raises(gw.RealcamError, match="noise shaping needs an image"):
        _settings(task="t2v").check()


def test_continuation_keeps_the_given_frames(setup, parts, tmp_path):
    rng = np.random.default_rng(1)
    earlier = np.clip(rng.normal(120, 40, (11, 32, 48, 3)), 0, 255).astype(np.uint8)
    video = write_video(tmp_path / "in.mp4", earlier, fps=16, lossless=True)
    res = _gen(setup, parts, tmp_path / "long.mp4", None, continue_video=str(video), context_frames=5)
    source = np.stack([fit_image(f, None, SIZE)[0] for f in read_video_frames(video)])
    # the long video: the input as it was, then the new frames
    assert res.frames.shape == (11 + FRAMES - 5, 32, 48, 3)
    assert np.array_equal(res.frames[:11], source)
    # the given 5 frames are 2 clean latent frames, equal to their own encoding
    assert torch.equal(res.latents[:, :, :2], wan.encode_video(parts, source[-5:]))
    # the causal VAE: the given frames' latents are the first latent frames of any clip starting with them
    longer = np.concatenate([source[-5:], source[:4]])
    assert torch.allclose(wan.encode_video(parts, longer)[:, :, :2], res.latents[:, :, :2], atol=1e-5)


def read_video_frames(path):
    from stages.core.video import read_video

    return read_video(path)


def test_strongest_noise_shaping_gives_the_preview_inside_the_mask(setup, parts, tmp_path):
    """t_NS = 0: every step restarts the masked latents from the preview's, noised to the step's
    level; the last step leaves them within its own noise level of the preview's latents."""
    shaped = _gen(setup, parts, tmp_path / "s.mp4", setup["image"], noise_shaping=0, shift=1.0, steps=12)
    free = _gen(setup, parts, tmp_path / "f.mp4", setup["image"], noise_shaping=None, shift=1.0, steps=12)
    npz = read_arrays(shaped.preview / "preview.npz")
    z_preview = wan.encode_video(parts, npz["frames"])
    z_preview[:, :, :1] = shaped.latents[:, :, :1]  # frame 0 is the image's latent, in both
    mask = torch.as_tensor(latent_masks(npz["latent_masks"].astype(bool)))[None, None].expand_as(z_preview)
    assert 0.2 < float(mask[:, :, 1:].float().mean()) < 1.0  # the preview has holes; and it has pixels
    inside = mask.clone()
    inside[:, :, 0] = False
    err_shaped = float((shaped.latents - z_preview)[inside].abs().mean())
    err_free = float((free.latents - z_preview)[inside].abs().mean())
    assert err_shaped < 0.35 * err_free, (err_shaped, err_free)
    # the last step starts at sigma = 1/12 from (1 - sigma) z_preview + sigma eps: at most that far
    assert err_shaped < 0.25


def test_camera_cfg_is_the_spec_formula():
    x, t = torch.randn(1, 2, 3), torch.tensor([800.0])
    calls = []

    def branch(name, value):
        def v(x_, t_):
            calls.append(name)
            return torch.full_like(x_, value)

        return v

    v = fm.guided(branch("pos", 1.0), branch("neg", 0.2), 5.0, branch("free", 0.6), 3.0, "cosine")(x, t)
    w = camera_cfg_weight(3.0, 800.0, "cosine")
    assert 1.0 < w < 3.0
    assert torch.allclose(v, torch.full_like(x, 0.2 + 5.0 * (1.0 - 0.2) + (w - 1) * (1.0 - 0.6)))
    calls.clear()
    fm.guided(branch("pos", 1.0), branch("neg", 0.2), 5.0, branch("free", 0.6), 1.0)(x, t)
    assert calls == ["pos", "neg"]  # camera CFG off: two calls a step


def test_generate_command_record_and_errors(setup, tmp_path):
    common = ["--model", "wan-camera", "--weights", str(setup["weights"]), "--base", str(setup["base"])]
    common += ["--size", "48x32", "--frames", "9", "--steps", "3", "--device", "cpu", "--depth", str(setup["depth"])]
    out = tmp_path / "v.mp4"
    res = runner.invoke(app, ["generate", str(setup["image"]), "pan-right", "--out", str(out), *common])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output and "v_preview" in res.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["format"] == gw.RECORD_FORMAT and record["settings"]["noise_shaping"] == 900
    again = tmp_path / "again.mp4"
    res = runner.invoke(app, ["generate", "--record", str(out.with_suffix(".json")), "--out", str(again)])
    assert res.exit_code == 0, res.output
    assert json.loads(again.with_suffix(".json").read_text())["video_frames_sha256"] == record["video_frames_sha256"]
    for extra, message in (
        (["--ckpt", "x.ckpt"], "--ckpt"),
        (["--task", "t2v", "--noise-shaping", "900"], "noise shaping needs an image"),
        (["--frames", "8"], "4k+1"),
        (["--size", "40x32"], "multiples of 16"),
    ):
        bad = tmp_path / "bad.mp4"
        res = runner.invoke(app, ["generate", str(setup["image"]), "pan-right", "--out", str(bad), *common, *extra])
        assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output, (extra, res.output)
        assert not bad.exists()
    no_weights = [c for c in common if c not in ("--weights", str(setup["weights"]))]
    res = runner.invoke(
        app, ["generate", str(setup["image"]), "pan-right", "--out", str(tmp_path / "w.mp4"), *no_weights]
    )
    assert res.exit_code != 0 and "no released weights" in res.output and "--weights" in res.output
    assert not (tmp_path / "w.mp4").exists() and not (tmp_path / "w_preview").exists()  # nothing half-written


def test_settings_reject_a_continuation_that_is_not_whole_latent_frames():
    with pytest.raises(gw.RealcamError, match="4k\\+1"):
        replace(_settings(), continue_video="v.mp4", context_frames=4).check()
    with pytest.raises(gw.RealcamError, match="image-to-video"):
        replace(_settings(noise_shaping=None), task="t2v", continue_video="v.mp4").check()


def test_a_reused_preview_gives_the_same_video(setup, parts, tmp_path):
    first = _gen(setup, parts, tmp_path / "a.mp4", setup["image"], trajectory="orbit-left")
    s = _settings()
    again = gw.generate(setup["image"], None, tmp_path / "b.mp4", settings=s, parts=parts, preview_dir=first.preview)
    assert torch.equal(first.latents, again.latents) and again.preview == first.preview
    assert not (tmp_path / "b_preview").exists()
    record = json.loads(again.record.read_text())
    assert record["preview_given"] and record["preview"] == str(first.preview.resolve())
    with pytest.raises(gw.RealcamError, match="preview has 9 frames of 48x32"):
        gw.generate(
            setup["image"],
            None,
            tmp_path / "c.mp4",
            settings=replace(s, frames=13),
            parts=parts,
            preview_dir=first.preview,
        )


def test_batch_form_records_each_row_and_resumes(setup, tmp_path):
    table = tmp_path / "jobs.csv"
    rows = [f"{setup['image']},pan-left,a room,3,good,{setup['depth']}", f"{tmp_path / 'none.jpg'},pan-left,,,bad,"]
    table.write_text("image,trajectory,prompt,seed,id,depth\n" + "\n".join(rows) + "\n")
    args = ["generate", "--batch", str(table), "--out", str(tmp_path / "out"), "--model", "wan-camera"]
    args += ["--weights", str(setup["weights"]), "--base", str(setup["base"]), "--size", "48x32", "--frames", "9"]
    args += ["--steps", "2", "--device", "cpu"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    status = read_table(tmp_path / "out" / "generate.parquet").set_index("item")
    assert status.loc["good", "status"] == "ok" and status.loc["good", "seed"] == 3
    assert status.loc["bad", "status"] == "failed" and "no such image" in status.loc["bad", "reason"]
    record = json.loads((tmp_path / "out" / "good.json").read_text())
    assert record["settings"]["prompt"] == "a room" and record["settings"]["seed"] == 3
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "1 skipped as done" in res.output, res.output


def test_weights_load_strictly_and_a_bad_key_is_named(setup, tmp_path):
    from safetensors.torch import save_file

    state = read_state_dict(setup["weights"])
    missing = {k: v for k, v in state.items() if k != "camera_patchify.bias"}
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(gw.RealcamError, match="missing keys: camera_patchify.bias"):
        wan.load_parts(tmp_path / "missing.safetensors", setup["base"], "cpu", "fp32", kind="wan-camera")
    extra = {**state, "blocks.0.cam_encoder.weight": torch.zeros(24, 12)}  # a ReCamMaster key
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(gw.RealcamError, match="unexpected keys .*blocks.0.cam_encoder.weight"):
        wan.load_parts(tmp_path / "extra.safetensors", setup["base"], "cpu", "fp32", kind="wan-camera")
    shaped = {**state, "camera_patchify.weight": state["camera_patchify.weight"][:, :6].contiguous()}
    save_file(shaped, str(tmp_path / "shaped.safetensors"))
    with pytest.raises(gw.RealcamError, match="misshapen keys: camera_patchify.weight"):
        wan.load_parts(tmp_path / "shaped.safetensors", setup["base"], "cpu", "fp32", kind="wan-camera")
