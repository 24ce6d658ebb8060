"""The generate stage with the tiny model: noise shaping, guidance, seeds, records, errors, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from realcam_cli.app import app
from stages import diffusion as dm
from stages import generate as g
from stages.core.video import read_image, read_video, write_image
from stages.models import build_model, save_checkpoint
from stages.preview import run_preview

ROOT = Path(__file__).resolve().parents[1]

FRAMES, SIZE = 4, 64


@pytest.fixture(scope="session")
def setup(tmp_path_factory, image_files, tiny_tokenizer):
    """A saved tiny model (zero-initialised layers given random weights, so that every
    condition — text, image, camera — changes the output), a 64x64 photo, a depth map and a
    preview folder at the model's size."""
    root = tmp_path_factory.mktemp("generate")
    torch.manual_seed(0)
    model = build_model("tiny", camera="realcam")
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() and p.abs().max() == 0:
                p.normal_(0, 0.05)
    save_checkpoint(model, root / "ckpt")
    from PIL import Image

    photo = read_image(image_files[0])
    image = np.asarray(Image.fromarray(photo).resize((SIZE, SIZE), Image.BICUBIC))
    write_image(root / "image.png", image)
    depth = np.full((SIZE, SIZE), 3.0, np.float32)
    depth[20:44, 20:44] = 1.5  # a box in front of the wall: occlusions and holes in the preview
    np.save(root / "depth.npy", depth)
    run_preview(
        root / "image.png",
        root / "preview",
        preset="pan-left",
        magnitude=15,
        frames=FRAMES,
        size=(SIZE, SIZE),
        depth_file=root / "depth.npy",
        device="cpu",
    )
    model, files = g.load_model("tiny", root / "ckpt", device="cpu")
    return {"root": root, "model": model, "files": files, "image": image, "tokenizer": str(tiny_tokenizer)}


def conditioning(setup, **settings):
    """Settings and conditioning; the official negative prompt (the default) through the toy tokenizer."""
    s = g.GenerateSettings(res="tiny", **{"tokenizer": setup["tokenizer"], **settings})
    preview = g.load_preview(setup["root"] / "preview", SIZE, SIZE, FRAMES)
    return s, g.build_conditioning(setup["model"], setup["image"], preview, s, "cpu", torch.float32)


def assert_posterior_sample(model, latent, picture):
    """``latent`` (1, 4, h, w) is a sample of the autoencoder's posterior of ``picture``: its
    noise ``(z / scale - mean) / std`` is standard normal (the official ``encode_first_stage``)."""
    with torch.no_grad():
        x = g.to_tensor_video(picture[None], "cpu", torch.float32)[:, :, 0]
        dist = model.first_stage_model.encode(x).latent_dist
    unit = (latent / model.config.autoencoder.scale_factor - dist.mean) / dist.std
    assert abs(float(unit.mean())) < 0.3 and abs(float(unit.std()) - 1) < 0.3


def test_preview_latent_has_the_condition_image_as_frame_0(setup):
    s, cond = conditioning(setup)
    concat = cond.inputs["concat"]
    assert torch.equal(cond.z_preview[:, :, 0], concat[:, :, 0])
    assert all(torch.equal(concat[:, :, i], concat[:, :, 0]) for i in range(FRAMES))
    m = cond.mask
    assert m.shape == (1, 1, FRAMES, SIZE // 8, SIZE // 8)
    assert 0 < float(m.mean()) < 1  # the pan leaves holes: a partial mask


def test_condition_latent_is_a_seeded_posterior_sample(setup):
    """As the official code encodes (``DiagonalGaussianDistribution.sample``): mean + std * noise,
    the noise drawn from the run's seed."""
    z = conditioning(setup, seed=3)[1].inputs["concat"][:, :, 0]
    again = conditioning(setup, seed=3)[1].inputs["concat"][:, :, 0]
    other = conditioning(setup, seed=4)[1].inputs["concat"][:, :, 0]
    assert torch.equal(z, again) and not torch.equal(z, other)
    assert_posterior_sample(setup["model"], z, setup["image"])


def test_shaping_at_1000_is_bit_identical_to_no_shaping(setup):
    s, cond = conditioning(setup, steps=4, seed=3, noise_shaping=1000)
    shaped = g.run_sampling(cond, s)
    off = g.run_sampling(cond, replace(s, noise_shaping=None))
    assert torch.equal(shaped, off)
    assert not torch.equal(g.run_sampling(cond, replace(s, noise_shaping=900)), off)  # active at t = 999 > 900


def test_pixels_outside_the_mask_are_never_overwritten(setup):
    s, cond = conditioning(setup, steps=5, seed=1, noise_shaping=0, cfg=1.0)
    inputs, after = [], []
    predict = cond.predict

    def recording(z, t, variant):
        inputs.append(z.clone())
        return predict(z, t, variant)

    cond.predict = recording
    g.run_sampling(cond, s, on_step=lambda i, t, z: after.append(z.clone()))
    outside = (cond.mask == 0).expand_as(inputs[0])
    first = torch.randn(cond.shape, generator=torch.Generator().manual_seed(1))
    previous = [first] + after[:-1]  # the latents each step starts from
    assert len(inputs) == s.steps
    for z_in, z_prev in zip(inputs, previous):
        assert torch.equal(z_in[outside], z_prev[outside])  # untouched outside the mask
        assert not torch.equal(z_in[~outside], z_prev[~outside])  # shaped inside


def test_shaping_everywhere_at_t0_gives_the_preview(setup):
    s, cond = conditioning(setup, steps=25, seed=2, noise_shaping=0, cfg=1.0)
    cond.mask = torch.ones_like(cond.mask)
    last = {}
    predict = cond.predict

    def recording(z, t, variant):
        out = predict(z, t, variant)
        last.update(z=z.clone(), t=t, out=out.clone())
        return out

    cond.predict = recording
    z_final = g.run_sampling(cond, s)
    schedule = cond.schedule
    a, sig = dm.alpha_sigma(schedule, last["t"], z_final)
    zp = cond.z_preview
    eps = (last["z"] - a * zp) / sig  # the last step's shaping noise
    assert abs(float(eps.std()) - 1) < 0.15 and abs(float(eps.mean())) < 0.15
    # The last step goes to alpha_bar[0] (not 1) and adds eta noise, as the official sampler:
    # what remains after the deterministic part is sigma times standard normal noise.
    sqrt_a_prev, direction, sigma = dm.ddim_coefficients(schedule, last["t"], None, s.eta)
    assert sqrt_a_prev == pytest.approx((1 - 0.00085) ** 0.5, rel=1e-6) and sigma > 0
    z0 = (last["z"] - sig * last["out"]) / a
    rest = (z_final - sqrt_a_prev * z0 - direction * last["out"]) / sigma
    assert abs(float(rest.std()) - 1) < 0.15 and abs(float(rest.mean())) < 0.15
    free = g.run_sampling(cond, replace(s, noise_shaping=None))
    err_shaped = float((z_final - zp).abs().mean())
    assert err_shaped < 0.5 * float((free - zp).abs().mean())


def test_cfg_and_camera_cfg_equal_the_hand_formula(setup):
    s, cond = conditioning(setup)
    model = setup["model"]
    z = torch.randn(cond.shape, generator=torch.Generator().manual_seed(5))
    t = 500
    c, u, n = (cond.predict(z, t, v) for v in ("cond", "uncond", "no_camera"))
    assert not torch.allclose(c, u) and not torch.allclose(c, n)  # text/image and camera matter
    # The unconditional pass by hand: the negative prompt (the official demo's), zero image, the
    # concat latent kept, the camera kept.
    img = g.to_tensor_video(setup["image"][None], "cpu", torch.float32)
    tokens = g.prompt_tokens(model, g.OFFICIAL_NEGATIVE_PROMPT, setup["tokenizer"])
    assert not torch.equal(tokens, g.prompt_tokens(model, ""))
    with torch.no_grad():
        ctx = torch.cat([model.encode_text(tokens), model.encode_image(torch.zeros_like(img[:, :, 0]))], dim=1)
        u_hand = model(
            z, torch.tensor([t]), ctx, cond.inputs["concat"], fs=torch.tensor([8]), camera=cond.inputs["camera"]
        )
    assert torch.allclose(u, u_hand, atol=1e-6)
    for w_cfg, rescale, w_cam in ((7.5, 0.7, 1.0), (7.5, 0.0, 2.5), (3.0, 0.7, 1.8)):
        out = dm.guided_output(
            cond.predict, z, t, dm.SamplerConfig(cfg=w_cfg, guidance_rescale=rescale, camera_cfg=w_cam)
        )
        # official order: CFG, camera CFG inside it, then the rescale against the conditional output
        guided = u + w_cfg * (c - u) + (w_cam - 1) * (c - n)
        std = lambda x: x.flatten().std()
        hand = rescale * guided * std(c) / std(guided) + (1 - rescale) * guided
        assert torch.allclose(out, hand, atol=1e-5, rtol=1e-5)
    with pytest.raises(g.RealcamError, match="inside text-image CFG"):
        g.GenerateSettings(cfg=1.0, camera_cfg=2.0).check()


def test_same_seed_same_video_record_round_trip(setup, tmp_path):
    kw = dict(
        ckpt=setup["root"] / "ckpt",
        preview_dir=setup["root"] / "preview",
        device="cpu",
        steps=3,
        noise_shaping=900,
        tokenizer=setup["tokenizer"],
    )
    a = g.generate(setup["root"] / "image.png", None, tmp_path / "a.mp4", seed=7, **kw)
    b = g.generate(setup["root"] / "image.png", None, tmp_path / "b.mp4", seed=7, **kw)
    c = g.generate(setup["root"] / "image.png", None, tmp_path / "c.mp4", seed=8, **kw)
    assert np.array_equal(a.frames, b.frames) and torch.equal(a.latents, b.latents)
    assert not np.array_equal(a.frames, c.frames)
    record = json.loads(a.record.read_text())
    assert record["settings"]["seed"] == 7 and record["settings"]["steps"] == 3
    hashes = {Path(f["path"]).name: f["sha256"] for f in record["model"]["files"]}
    assert hashes["model.safetensors"] == g.sha256_file(setup["root"] / "ckpt" / "model.safetensors")
    again = g.regenerate(a.record, tmp_path / "again.mp4")
    assert np.array_equal(again.frames, a.frames)
    assert read_video(tmp_path / "again.mp4").shape == (FRAMES, SIZE, SIZE, 3)


def test_offline_without_weights_names_each_file(setup, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "realcam_cli",
            "generate",
            str(setup["root"] / "image.png"),
            "pan-left",
            "--out",
            str(tmp_path / "x.mp4"),
            "--res",
            "512",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "Doubiiu/DynamiCrafter_512/model.ckpt" in lines[0]
    assert "MuteApo/CamI2V/512_realcam-i2v_50k.safetensors" in lines[0]
    assert str(tmp_path / "hf") in lines[0]  # where to put them
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x_preview").exists()


def test_cli_preset_and_bad_inputs(setup, tmp_path):
    runner = CliRunner()
    root = setup["root"]
    out = tmp_path / "v.mp4"
    result = runner.invoke(
        app,
        [
            "generate",
            str(root / "image.png"),
            "dolly-in",
            "--out",
            str(out),
            "--ckpt",
            str(root / "ckpt"),
            "--depth",
            str(root / "depth.npy"),
            "--steps",
            "2",
            "--magnitude",
            "0.3",
            "--device",
            "cpu",
            "--tokenizer",
            setup["tokenizer"],
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and (tmp_path / "v.json").exists() and (tmp_path / "v_preview" / "preview.npz").exists()
    assert str(out) in result.stdout
    bad = runner.invoke(
        app,
        [
            "generate",
            str(tmp_path / "none.png"),
            "pan-left",
            "--out",
            str(tmp_path / "n.mp4"),
            "--ckpt",
            str(root / "ckpt"),
        ],
    )
    assert bad.exit_code == 2 and "no such image" in bad.output
    bad = runner.invoke(
        app,
        [
            "generate",
            str(root / "image.png"),
            "--preview",
            str(root / "preview"),
            "--out",
            str(tmp_path / "n.mp4"),
            "--ckpt",
            str(root / "ckpt"),
            "--noise-shaping",
            "1200",
        ],
    )
    assert bad.exit_code == 2 and "--noise-shaping" in bad.output
    assert not (tmp_path / "n.mp4").exists()


def test_interpolation_keeps_the_last_frame_and_loop_ends_where_it_starts(setup, tmp_path):
    root, model = setup["root"], setup["model"]
    end = np.ascontiguousarray(setup["image"][::-1])  # a different end image
    write_image(tmp_path / "end.png", end)
    kw = dict(
        model=model,
        model_files=setup["files"],
        depth=root / "depth.npy",
        device="cpu",
        steps=3,
        magnitude=[15.0],
        negative_prompt="",
    )
    interp = g.generate(
        root / "image.png", "pan-left", tmp_path / "i.mp4", mode="interp", end_image=str(tmp_path / "end.png"), **kw
    )
    for latent, picture in ((interp.latents[:, :, -1], end), (interp.latents[:, :, 0], setup["image"])):
        assert_posterior_sample(model, latent, picture)
    decoded_end = g.decode_frames(model, interp.latents[:, :, -1:])[0].astype(int)
    assert np.abs(interp.frames[-1].astype(int) - decoded_end).max() <= 1
    loop = g.generate(root / "image.png", "pan-left", tmp_path / "l.mp4", mode="loop", **kw)
    assert np.array_equal(loop.frames[0], loop.frames[-1])
    c2w = g.load_preview(loop.preview, SIZE, SIZE, FRAMES).c2w
    assert np.allclose(c2w[-1], c2w[0], atol=1e-9) and not np.allclose(c2w[1], c2w[0])


def test_continuation_starts_from_the_last_frames_of_a_video(setup, tmp_path):
    root = setup["root"]
    first = g.generate(
        root / "image.png",
        None,
        tmp_path / "a.mp4",
        ckpt=root / "ckpt",
        steps=2,
        preview_dir=root / "preview",
        device="cpu",
        seed=1,
        negative_prompt="",
    )
    video = read_video(first.video)
    runner = CliRunner()
    out = tmp_path / "b.mp4"
    result = runner.invoke(
        app,
        [
            "generate",
            "pan-left",
            "--continue",
            str(first.video),
            "--context-frames",
            "2",
            "--out",
            str(out),
            "--ckpt",
            str(root / "ckpt"),
            "--depth",
            str(root / "depth.npy"),
            "--steps",
            "2",
            "--device",
            "cpu",
            "--negative-prompt",
            "",
        ],
    )
    assert result.exit_code == 0, result.output
    long = read_video(out)
    assert len(long) == len(video) - 2 + FRAMES
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["settings"]["mode"] == "continue"
    # The generated clip's first two latents are the context frames' clean latents (posterior samples).
    again = g.regenerate(tmp_path / "b.json", tmp_path / "c.mp4")
    for i in range(2):
        assert_posterior_sample(setup["model"], again.latents[:, :, i], video[-2 + i])
    import hashlib

    assert hashlib.sha256(again.frames.tobytes()).hexdigest() == record["video_frames_sha256"]


def test_batch_records_failures_and_resumes(setup, tmp_path):
    import pandas as pd

    from stages.core.artifacts import read_table

    root = setup["root"]
    (tmp_path / "image.png").write_bytes((root / "image.png").read_bytes())
    np.save(tmp_path / "depth.npy", np.load(root / "depth.npy"))
    pd.DataFrame(
        {
            "image": ["image.png", "missing.png", "image.png"],
            "trajectory": ["pan-left", "pan-left", "dolly-in"],
            "prompt": ["", "", ""],
            "seed": ["4", "", "5"],
            "depth": ["depth.npy", "depth.npy", "depth.npy"],
        }
    ).to_csv(tmp_path / "jobs.csv", index=False)
    out = tmp_path / "out"
    args = [
        "generate",
        "--batch",
        str(tmp_path / "jobs.csv"),
        "--out",
        str(out),
        "--ckpt",
        str(root / "ckpt"),
        "--steps",
        "2",
        "--device",
        "cpu",
        "--negative-prompt",
        "",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = read_table(out / g.BATCH_TABLE).set_index("item")
    assert list(table["status"]) == ["ok", "failed", "ok"]
    assert "no such image" in table.loc["00001_missing", "reason"]
    assert table.loc["00002_image", "seed"] == 5
    first = out / "00000_image.mp4"
    assert first.exists() and json.loads(first.with_suffix(".json").read_text())["settings"]["seed"] == 4
    stamp = first.stat().st_mtime_ns
    result = CliRunner().invoke(app, args)  # resumes: done rows are skipped
    assert result.exit_code == 0 and first.stat().st_mtime_ns == stamp
    assert "2 of 3 rows done (2 skipped as done earlier), 1 failed" in result.stdout


def test_z0_variant_pulls_towards_the_preview_and_bad_settings_fail(setup):
    s, cond = conditioning(setup, steps=6, seed=2, noise_shaping=None, cfg=1.0)
    free = g.run_sampling(cond, s)
    pasted = g.run_sampling(cond, replace(s, noise_shaping=0, noise_shaping_variant="z0"))
    inside = (cond.mask > 0).expand_as(free)
    zp = cond.z_preview
    assert float((pasted - zp)[inside].abs().mean()) < 0.5 * float((free - zp)[inside].abs().mean())
    with pytest.raises(g.RealcamError, match="variant"):
        g.GenerateSettings(noise_shaping_variant="x").check()
    with pytest.raises(g.RealcamError, match="no released RealCam-I2V weights for resolution '1024'"):
        g.resolve_released("1024")


def test_trained_weights_alone_are_not_a_model(tmp_path, setup):
    """A folder of trained camera weights (what `realcam train` writes) needs its base model."""
    from stages.core.errors import RealcamError
    from stages.models.trainable import set_trainable

    model = build_model("tiny", camera="realcam")
    set_trainable(model)
    save_checkpoint(model, tmp_path / "weights", only_trainable=True)
    with pytest.raises(RealcamError, match="only trained weights"):
        g.load_model("tiny", ckpt=tmp_path / "weights")


def test_small_model_previews_on_its_own_latent_grid(tmp_path, image_files):
    """The ``small`` model's autoencoder has f = 4: the preview generate makes must carry latent
    masks on that 32x32 grid (not the f = 8 default), and the video has the model's 16 frames."""
    from PIL import Image

    torch.manual_seed(0)
    model = build_model("small", camera="realcam").eval()
    photo = np.asarray(Image.fromarray(read_image(image_files[0])).resize((128, 128), Image.BICUBIC))
    write_image(tmp_path / "image.png", photo)
    np.save(tmp_path / "depth.npy", np.full((128, 128), 3.0, np.float32))
    result = g.generate(
        tmp_path / "image.png",
        "pan-left",
        tmp_path / "v.mp4",
        model=model,
        depth=tmp_path / "depth.npy",
        device="cpu",
        steps=1,
        cfg=1.0,
        magnitude=[10],
        negative_prompt="",
    )
    masks = np.load(tmp_path / "v_preview" / "preview.npz")["latent_masks"]
    assert masks.shape == (16, 32, 32) and 0 < masks.mean() < 1  # the pan leaves a strip uncovered
    assert result.frames.shape == (16, 128, 128, 3)
    assert read_video(tmp_path / "v.mp4").shape == (16, 128, 128, 3)
    assert json.loads(result.record.read_text())["settings"]["res"] == "small"
