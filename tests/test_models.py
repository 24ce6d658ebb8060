"""Tests of stages.models on the tiny config (CPU, seconds) and meta-device counts of 256/512."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from stages.core.errors import RealcamError
from stages.models import (
    build_model,
    count_parameters,
    load_checkpoint,
    load_saved,
    save_checkpoint,
    set_trainable,
    trainable_report,
)
from stages.models.camera import epipolar_mask, pairwise_fundamental
from stages.models.checkpoint import SCHEDULE_BUFFERS, official_state_dict
from stages.models.trainable import is_camera_parameter


def _inputs(model, seed=0, translate=1.0):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    b, t = 1, cfg.frames
    h, w = cfg.latent_size
    x = torch.randn(b, 4, t, h, w, generator=g)
    concat = torch.randn(b, 4, 1, h, w, generator=g).expand(b, 4, t, h, w)
    ctx = torch.randn(b, 77 + t * cfg.unet.image_tokens_per_frame, cfg.unet.context_dim, generator=g)
    f = 0.5 * max(cfg.width, cfg.height)
    k = torch.tensor([[f, 0, cfg.width / 2], [0, f, cfg.height / 2], [0, 0, 1.0]]).expand(b, t, 3, 3)
    c2w = torch.eye(4).repeat(b, t, 1, 1)
    c2w[:, :, 0, 3] = torch.linspace(0, translate, t)
    c2w[:, :, 2, 3] = torch.linspace(0, 0.5 * translate, t)
    return x, torch.tensor([500]), ctx, concat, k, c2w


def _like_pretrained(model):
    """Give the base model's zero-initialised layers (output convs, ``proj_out``, ``fps_embedding``)
    small random values, as in trained weights; camera modules keep their zero initialisation."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not is_camera_parameter(name) and p.dim() > 0 and not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tiny models are far faster on one thread than on oversubscribed shared cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return _like_pretrained(build_model("tiny", camera="realcam")).eval()


def test_forward_backward_shapes_and_trainable_grads(tiny):
    x, ts, ctx, concat, k, c2w = _inputs(tiny)
    n_train = set_trainable(tiny)
    try:
        tiny.train()
        out = tiny(x, ts, ctx, concat, k=k, c2w=c2w)
        assert out.shape == x.shape
        out.square().mean().backward()
        cams = {n: p for n, p in tiny.named_parameters() if is_camera_parameter(n)}
        assert n_train == sum(p.numel() for p in cams.values()) > 0
        # zero-initialised output layers receive gradient, so training can move off the base model
        proj = [p for n, p in cams.items() if n.endswith("pluker_projection.weight")]
        epi = [p for n, p in cams.items() if n.endswith("epipolar_attn.to_out.0.weight")]
        assert proj and all(p.grad is not None and p.grad.abs().sum() > 0 for p in proj)
        assert epi and all(p.grad is not None and p.grad.abs().sum() > 0 for p in epi)
        assert all(p.grad is None for n, p in tiny.named_parameters() if not is_camera_parameter(n))
    finally:
        tiny.zero_grad(set_to_none=True)
        tiny.eval()


def test_zero_initialised_camera_equals_base_model_exactly(tiny):
    torch.manual_seed(5)
    base = _like_pretrained(build_model("tiny", camera="none")).eval()
    base_sd = base.state_dict()
    report = load_checkpoint_from_dict(tiny, base_sd)
    assert all(is_camera_parameter(k) or k.endswith(".pe") for k in report)  # only camera keys missing
    x, ts, ctx, concat, k, c2w = _inputs(tiny)
    with torch.no_grad():
        y_base = base(x, ts, ctx, concat)
        y_cam = tiny(x, ts, ctx, concat, k=k, c2w=c2w)
        assert torch.equal(y_base, y_cam)
        # with non-zero camera weights the camera path is really used: output changes with the trajectory
        for name, p in tiny.named_parameters():
            if name.endswith(("pluker_projection.weight", "epipolar_attn.to_out.0.weight")):
                p.add_(0.05 * torch.randn_like(p))
        y1 = tiny(x, ts, ctx, concat, k=k, c2w=c2w)
        y2 = tiny(x, ts, ctx, concat, k=k, c2w=_inputs(tiny, translate=-2.0)[5])
    assert not torch.equal(y1, y_base)
    assert (y1 - y2).abs().max() > 1e-6


def load_checkpoint_from_dict(model, sd):
    missing = set(model.state_dict()) - set(sd)
    model.load_state_dict(sd, strict=False)
    # camera modules back to their zero initialisation
    for name, p in model.named_parameters():
        if name.endswith(
            (
                "pluker_projection.weight",
                "pluker_projection.bias",
                "epipolar_attn.to_out.0.weight",
                "epipolar_attn.to_out.0.bias",
            )
        ):
            with torch.no_grad():
                p.zero_()
    return missing


def test_epipolar_mask_sideways_translation_is_horizontal():
    H = W = 64
    d = 8
    k = torch.tensor([[40.0, 0, 32], [0, 40.0, 32], [0, 0, 1]]).expand(1, 2, 3, 3)
    c2w = torch.eye(4, dtype=torch.float64).repeat(1, 2, 1, 1)
    c2w[0, 1, 0, 3] = 0.7  # frame 1 moved sideways (x)
    fmat = pairwise_fundamental(k, c2w, generator=torch.Generator().manual_seed(0))
    mask = epipolar_mask(fmat, H // d, W // d, d)
    h = w = H // d
    n = h * w
    assert mask.shape == (1, 2 * n, 2 * n)
    m01 = mask[0, :n, n:].reshape(h, w, h, w)  # query in frame 0 -> keys in frame 1
    m10 = mask[0, n:, :n].reshape(h, w, h, w)
    rows = torch.arange(h)
    expected = (rows[:, None, None, None] == rows[None, None, :, None]).expand(h, w, h, w)
    assert torch.equal(m01, expected)
    assert torch.equal(m10, expected)
    # within a frame a pixel always may attend to itself (zero translation is perturbed)
    assert bool(mask[0, torch.arange(2 * n), torch.arange(2 * n)].all())


def test_parameter_counts_match_published_figures():
    for name in ("256", "512"):
        base = build_model(name, camera="none", device="meta")
        cam = build_model(name, camera="realcam", device="meta")
        unet = sum(p.numel() for n, p in base.named_parameters() if n.startswith("model.diffusion_model."))
        added = count_parameters(cam) - count_parameters(base)
        assert abs(unet - 1.4e9) / 1.4e9 < 0.03, unet  # DynamiCrafter: about 1.4 B
        assert abs(added - 261e6) / 261e6 < 0.01, added  # CamI2V adds about 261 M
        rep = trainable_report(cam).set_index("module")
        assert rep.loc["total", "parameters"] == count_parameters(cam)
        # OpenCLIP ViT-H-14 text tower (354.0 M) and the SD KL-f8 autoencoder (83.65 M)
        assert abs(rep.loc["text_encoder", "parameters"] - 354.0e6) / 354e6 < 0.005
        assert abs(rep.loc["autoencoder", "parameters"] - 83.65e6) / 83.65e6 < 0.001


def _official_files(model, tmp_path):
    sd = official_state_dict(model)
    assert any(k.startswith("first_stage_model.encoder.down.0.block.0.") for k in sd)
    base = {k: v for k, v in sd.items() if not is_camera_parameter(k)}
    camera = {k: v.contiguous() for k, v in sd.items() if is_camera_parameter(k)}
    schedule = {name: torch.zeros(1000) for name in ("betas", "alphas_cumprod")}
    base_path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {**base, **schedule, "scale_factor": torch.tensor(0.18215)}, "epoch": 0}, base_path)
    cam_path = tmp_path / "camera.safetensors"
    save_file(camera, str(cam_path))
    full_path = tmp_path / "full.pt"
    torch.save({"module": sd}, full_path)
    return base_path, cam_path, full_path


def test_official_layout_checkpoint_loads_strictly(tmp_path):
    torch.manual_seed(1)
    src = build_model("tiny", camera="realcam")
    for name, p in src.named_parameters():  # non-trivial camera weights
        if is_camera_parameter(name):
            torch.nn.init.normal_(p, std=0.02)
    base_path, cam_path, full_path = _official_files(src, tmp_path)
    for files in [(base_path, cam_path), (full_path,)]:
        torch.manual_seed(2)
        dst = build_model("tiny", camera="realcam")
        report = load_checkpoint(dst, *files, require_all=True)
        assert report.missing == []
        dst_sd = dst.state_dict()
        for key, value in src.state_dict().items():
            assert torch.equal(dst_sd[key], value), key
    assert set(report.ignored) <= SCHEDULE_BUFFERS
    # the base model alone loads, with exactly the camera keys reported missing
    dst = build_model("tiny", camera="realcam")
    report = load_checkpoint(dst, base_path)
    assert report.missing and all(is_camera_parameter(k) or k.endswith(".pe") for k in report.missing)


def test_renamed_camera_key_fails_naming_it(tmp_path):
    torch.manual_seed(1)
    src = build_model("tiny", camera="realcam")
    sd = {k: v.contiguous() for k, v in official_state_dict(src).items() if is_camera_parameter(k)}
    old = next(k for k in sd if k.endswith("pluker_projection.weight"))
    new = old.replace("pluker_projection", "plucker_projection")
    sd[new] = sd.pop(old)
    bad = tmp_path / "renamed.safetensors"
    save_file(sd, str(bad))
    dst = build_model("tiny", camera="realcam")
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(RealcamError) as err:
        load_checkpoint(dst, bad)
    assert new in str(err.value) and str(bad) in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())  # nothing half-loaded
    # the base model refuses camera weights instead of dropping them
    with pytest.raises(RealcamError, match="unexpected key.*pluker_projection"):
        load_checkpoint(build_model("tiny", camera="none"), _official_files(src, tmp_path)[2])


def test_shape_mismatch_and_garbage_files_fail(tmp_path):
    model = build_model("tiny", camera="none")
    key = "model.diffusion_model.out.2.weight"
    path = tmp_path / "shape.safetensors"
    save_file({key: torch.zeros(1, 2, 3)}, str(path))
    with pytest.raises(RealcamError, match="shape mismatch"):
        load_checkpoint(model, path)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RealcamError, match="cannot read checkpoint"):
        load_checkpoint(model, junk)


def test_save_and_load_round_trip(tmp_path, tiny):
    out = save_checkpoint(tiny, tmp_path / "ours")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    again = load_saved(out)
    assert again.camera_mode == tiny.camera_mode and again.config == tiny.config
    again_sd = again.state_dict()
    for key, value in tiny.state_dict().items():
        assert torch.equal(again_sd[key], value), key


def test_trainable_report_and_scale_flag(tiny):
    n_cam = set_trainable(tiny)
    rep = trainable_report(tiny).set_index("module")
    assert rep.loc["total", "trainable"] == n_cam
    assert rep.loc["unet", "trainable"] == 0 and rep.loc["camera.epipolar", "trainable"] > 0
    n_all = set_trainable(tiny, image_cross_attention_scale=True)
    n_alpha = rep.loc["unet.image_cross_attention_scale", "parameters"]
    assert n_alpha > 0 and n_all == n_cam + n_alpha
    set_trainable(tiny, camera=False)


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(3)
    model = _like_pretrained(build_model("tiny", camera="realcam")).eval()  # eval: no dropout
    set_trainable(model)
    x, ts, ctx, concat, k, c2w = _inputs(model)
    grads = []
    for enabled in (False, True):
        model.set_gradient_checkpointing(enabled)
        model.zero_grad(set_to_none=True)
        cam = model.camera_inputs(k, c2w, generator=torch.Generator().manual_seed(0))
        model(x, ts, ctx, concat, camera=cam).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-7)


def test_encoders_and_autoencoder_shapes(tiny):
    cfg = tiny.config
    with torch.no_grad():
        tokens = torch.zeros(2, 77, dtype=torch.long)
        tokens[:, 0], tokens[:, 3] = 49406, 49407
        text = tiny.encode_text(tokens)
        assert text.shape == (2, 77, cfg.text.width)
        img = tiny.encode_image(torch.rand(2, 3, 40, 48) * 2 - 1)
        assert img.shape == (2, cfg.frames * cfg.resampler.num_queries, cfg.resampler.output_dim)
        video = torch.rand(1, 3, cfg.frames, cfg.height, cfg.width) * 2 - 1
        z = tiny.encode_video(video)
        assert z.shape == (1, 4, cfg.frames, *cfg.latent_size)
        tiny.config.perframe_ae = True
        z_pf = tiny.encode_video(video)
        tiny.config.perframe_ae = False
        torch.testing.assert_close(z, z_pf, rtol=1e-4, atol=1e-5)
        assert tiny.decode_latents(z).shape == video.shape
    # a full condition runs through the UNet with per-frame image tokens
    ctx = torch.cat([text[:1, :, : cfg.unet.context_dim], img[:1]], dim=1)
    x, ts, _, concat, k, c2w = _inputs(tiny)
    with torch.no_grad():
        assert tiny(x, ts, ctx, concat, k=k, c2w=c2w).shape == x.shape
    assert math.isfinite(float(text.abs().sum()))


def test_resolve_checkpoint_and_load_pretrained_from_local_files(tmp_path):
    from stages.models import load_pretrained, resolve_checkpoint

    torch.manual_seed(1)
    src = build_model("tiny", camera="realcam")
    base_path, cam_path, _ = _official_files(src, tmp_path)
    folder = tmp_path / "dc"
    folder.mkdir()
    base_path.rename(folder / "model.ckpt")
    assert resolve_checkpoint(folder) == folder / "model.ckpt"
    model, report = load_pretrained("tiny", base=folder, camera_weights=cam_path)
    assert report.missing == []
    model_sd = model.state_dict()
    assert all(torch.equal(model_sd[k], v) for k, v in src.state_dict().items())
    with pytest.raises(RealcamError, match="camera_weights"):
        load_pretrained("tiny", base=folder)
    with pytest.raises(RealcamError, match="not found"):
        resolve_checkpoint(tmp_path / "nowhere.ckpt")
    # a camera file without its camera weights is refused rather than giving a camera-blind model
    save_file(
        {"model.diffusion_model.out.2.bias": src.state_dict()["model.diffusion_model.out.2.bias"]},
        str(tmp_path / "empty_cam.safetensors"),
    )
    with pytest.raises(RealcamError, match="camera weight"):
        load_pretrained("tiny", base=folder, camera_weights=tmp_path / "empty_cam.safetensors")


def test_tokenize_matches_open_clip_layout(tmp_path):
    import json

    from transformers import CLIPTokenizer

    from stages.models.encoders import tokenize

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 2, "b": 3, "a</w>": 4, "b</w>": 5, "ab</w>": 6}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b</w>\n")
    tok = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), pad_token="<|endoftext|>")
    out = tokenize(["ab a", "b " * 100], tok, context_length=8)
    # <start> tokens <end>, then zeros (open_clip pads with 0); too long: truncated, ends with <end>
    assert out.tolist() == [[0, 6, 4, 1, 0, 0, 0, 0], [0, 5, 5, 5, 5, 5, 5, 1]]


def test_autoencoder_name_map_agrees_with_diffusers_converter(tiny):
    """Our LDM <-> diffusers map for ``first_stage_model`` gives what diffusers' own single-file
    converter makes of the same LDM-named tensors."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    ldm = {k: v for k, v in official_state_dict(tiny).items() if k.startswith("first_stage_model.")}
    assert any(".mid.attn_1.q.weight" in k for k in ldm)  # LDM layout, 1x1 convolutions
    theirs = convert_ldm_vae_checkpoint(ldm, dict(tiny.first_stage_model.config))
    ours = tiny.first_stage_model.state_dict()
    assert set(theirs) == set(ours)
    for key, value in ours.items():
        assert torch.equal(theirs[key].reshape(value.shape), value), key


def test_low_precision_weights_and_autocast_run():
    """bf16 weights (the CPU stand-in for fp16 inference) and bf16 autocast training both run and
    stay finite; the camera geometry is computed in float32 either way."""
    torch.manual_seed(4)
    model = build_model("tiny", camera="realcam")
    x, ts, ctx, concat, k, c2w = _inputs(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x, ts, ctx, concat, k=k, c2w=c2w)
    y.float().square().mean().backward()
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    model = model.eval().to(torch.bfloat16)
    with torch.no_grad():
        y = model(x.bfloat16(), ts, ctx.bfloat16(), concat.bfloat16(), k=k, c2w=c2w)
        video = torch.rand(1, 3, model.config.frames, model.config.height, model.config.width) * 2 - 1
        z = model.encode_video(video.bfloat16())
        img = model.encode_image(video[:, :, 0].bfloat16())
    assert y.shape == x.shape and torch.isfinite(y).all() and z.dtype == img.dtype == torch.bfloat16


def test_small_config_is_a_16_frame_128px_model_with_an_f4_autoencoder():
    from stages.diffusion import Schedule
    from stages.models.configs import get_config

    torch.manual_seed(0)
    model = _like_pretrained(build_model("small", camera="realcam")).eval()
    cfg = model.config
    assert (cfg.frames, cfg.height, cfg.width, cfg.latent_size) == (16, 128, 128, (32, 32))
    assert cfg.camera.downscale_factor == 4 and get_config("tiny").latent_size == (8, 8)  # tiny unchanged
    assert Schedule.for_resolution("small").prediction_type == "epsilon" and cfg.parameterization == "eps"
    x, ts, ctx, concat, k, c2w = _inputs(model)
    with torch.no_grad():
        video = torch.rand(1, 3, cfg.frames, 128, 128) * 2 - 1
        z = model.encode_video(video)
        assert z.shape == (1, 4, 16, 32, 32)  # two downsamplings: f = 4
        assert model.decode_latents(z).shape == video.shape
        still = model(x, ts, ctx, concat, k=k, c2w=c2w * 0 + torch.eye(4))
        moving = model(x, ts, ctx, concat, k=k, c2w=c2w)
        features = model.camera_inputs(k, c2w)["features"]
    assert moving.shape == x.shape and torch.isfinite(moving).all()
    # one pose-encoder level per UNet level, at the latent strides 1, 2, 4
    assert [f.shape[-1] for f in features] == [32, 16, 8]
    # camera modules are zero-initialised: the camera does not change the output yet
    torch.testing.assert_close(still, moving)


def test_fit_autoencoder_learns_and_calibrates_the_latent_scale():
    import numpy as np

    from stages.models.autoencoder import build_autoencoder, calibrate_latent_scale, decode, encode, fit_autoencoder
    from stages.models.configs import AutoencoderConfig

    torch.manual_seed(0)
    vae = build_autoencoder(AutoencoderConfig(ch=16, ch_mult=(1, 2), num_res_blocks=1, norm_groups=8))
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    rng = np.random.default_rng(0)
    images = np.stack(
        [
            np.stack([np.sin(2 * np.pi * (a * xx + b * yy) + c) for a, b, c in rng.uniform(0, 2, (3, 3))], -1)
            for _ in range(8)
        ]
    )
    images = ((images + 1) * 127.5).astype(np.uint8)
    losses = fit_autoencoder(vae, images, 60, batch=4, crop=32, lr=2e-3, scale_factor=0.5, seed=0)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    x = torch.from_numpy(images).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        z = encode(vae, x, 0.5)
        assert abs(float(z.std()) - 1.0) < 1e-3  # calibrated: scale_factor * z has unit std
        before = decode(vae, z, 0.5)
        c = calibrate_latent_scale(vae, images, scale_factor=0.25)  # a new scale: latents double
        assert abs(c - 2.0) < 1e-3
        z2 = encode(vae, x, 0.25)
        torch.testing.assert_close(z2, z, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(decode(vae, z2, 0.25), before, rtol=1e-4, atol=1e-4)  # same images


# ----------------------------------------------------------------------------------------------
# Fidelity to the official code (docs/fidelity.md)
# ----------------------------------------------------------------------------------------------
def _forward_motion(cx: float, cy: float):
    """Two frames 12x12 px, frame 1 moved 1 m forward: in frame 1 the epipolar line of a pixel q of
    frame 0 is the line through the epipole (cx, cy) and q."""
    k = torch.tensor([[10.0, 0, cx], [0, 10.0, cy], [0, 0, 1]], dtype=torch.float64).expand(1, 2, 3, 3)
    c2w = torch.eye(4, dtype=torch.float64).repeat(1, 2, 1, 1)
    c2w[0, 1, 2, 3] = 1.0
    return k, c2w


@pytest.mark.parametrize("form,centres", [("official", [1.5, 5.5, 9.5]), ("exact", [2.0, 6.0, 10.0])])
def test_epipolar_mask_by_hand_with_the_official_cell_centres(form, centres):
    """A 3x3 grid of d = 4 cells: cell centres ``i*d + d/2 - 0.5`` (official ``pix2coord``) or
    ``(i + 0.5) * d``; key q is kept iff its distance to the line through the epipole and the query
    centre is below ``d * sqrt(2) / 2``. Built by hand from that rule, not from F."""
    from stages.models.camera import cell_centres

    d, e = 4, (5.3, 4.6)  # an epipole off the symmetric spots (no distance exactly at the threshold)
    assert cell_centres(3, d, form).tolist() == centres
    k, c2w = _forward_motion(*e)
    mask = epipolar_mask(
        pairwise_fundamental(k, c2w, generator=torch.Generator().manual_seed(0), form=form), 3, 3, d, form
    )
    pts = [(x, y) for y in centres for x in centres]  # row-major cells
    hand = torch.zeros(9, 9, dtype=torch.bool)
    for i, (qx, qy) in enumerate(pts):
        nx, ny = qy - e[1], -(qx - e[0])  # normal of the line through e and q
        norm = math.hypot(nx, ny)
        for j, (px, py) in enumerate(pts):
            hand[i, j] = abs(nx * (px - e[0]) + ny * (py - e[1])) / norm < d * math.sqrt(2) / 2
    assert torch.equal(mask[0, :9, 9:], hand)  # queries of frame 0, keys of frame 1
    # the grid matters: the two forms disagree on some pairs of this scene
    other = "exact" if form == "official" else "official"
    mask2 = epipolar_mask(
        pairwise_fundamental(k, c2w, generator=torch.Generator().manual_seed(0), form=other), 3, 3, d, other
    )
    assert not torch.equal(mask, mask2)


def test_fundamental_matrix_forms_with_changing_intrinsics():
    """``exact``: ``x_j^T F x_i = 0`` for a 3D point seen by two cameras with different focal
    lengths; ``official`` puts ``K_j`` on both sides (CamI2V ``get_fundamental_matrix``), equal to
    ``exact`` when the intrinsics are the same."""
    k = torch.tensor(
        [[[[300.0, 0, 128], [0, 300, 96], [0, 0, 1]], [[450.0, 0, 120], [0, 440, 100], [0, 0, 1]]]], dtype=torch.float64
    )
    c2w = torch.eye(4, dtype=torch.float64).repeat(1, 2, 1, 1)
    c2w[0, 1, :3, 3] = torch.tensor([0.4, -0.1, 0.3], dtype=torch.float64)
    angle = 0.2
    c2w[0, 1, :3, :3] = torch.tensor(
        [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]], dtype=torch.float64
    )
    point = torch.tensor([0.3, 0.2, 4.0, 1.0], dtype=torch.float64)

    def project(i):
        cam = torch.linalg.inv(c2w[0, i]) @ point
        x = k[0, i] @ cam[:3]
        return x / x[2]

    x0, x1 = project(0), project(1)
    exact = pairwise_fundamental(k, c2w, perturb=0, form="exact")[0, 0, 1]
    official = pairwise_fundamental(k, c2w, perturb=0, form="official")[0, 0, 1]
    assert abs(float(x1 @ exact @ x0)) < 1e-9 * float(exact.abs().max()) * 1e4
    assert abs(float(x1 @ official @ x0)) > 1e-3 * float(official.abs().max())
    k_same = k[:, :1].expand(1, 2, 3, 3)
    torch.testing.assert_close(
        pairwise_fundamental(k_same, c2w, perturb=0, form="official"),
        pairwise_fundamental(k_same, c2w, perturb=0, form="exact"),
    )


def test_epipolar_forms_of_the_configs_and_saved_weights(tmp_path):
    """Released configs use the official form; our own models the exact one; weights trained here
    carry their form in the config.json beside them (the released files have none)."""
    from stages.models.checkpoint import camera_form, save_checkpoint
    from stages.models.configs import get_config

    assert {get_config(n).camera.epipolar_form for n in ("256", "512", "1024")} == {"official"}
    assert {get_config(n).camera.epipolar_form for n in ("tiny", "small")} == {"exact"}
    model = build_model("tiny")
    model.config.camera.epipolar_form = "official"
    folder = save_checkpoint(model, tmp_path / "w", only_trainable=True)
    assert camera_form(folder / "model.safetensors", "exact") == "official"
    save_file({"x": torch.zeros(1)}, str(tmp_path / "released.safetensors"))
    assert camera_form(tmp_path / "released.safetensors") == "official"


def test_fps_condition_values_of_the_official_code():
    """512/1024 (``fps`` type): ``29.97 // stride`` (official inference; training uses the video's
    own rate the same way); 256 (``fs`` type): the stride itself."""
    fps_model = build_model("512", camera="none", encoders=False, device="meta")
    strides = torch.arange(1, 11)
    assert fps_model.fs_condition(strides).tolist() == [29, 14, 9, 7, 5, 4, 4, 3, 3, 2]
    assert fps_model.fs_condition(torch.tensor([8]), 30.0).tolist() == [3]
    assert fps_model.fs_condition(torch.tensor([3]), torch.tensor([25.0])).tolist() == [8]
    fs_model = build_model("256", camera="none", encoders=False, device="meta")
    assert fs_model.fs_condition(strides).tolist() == list(range(1, 11))
    from stages.core.cameras import frame_rate

    ntsc = (torch.arange(20) * 33366.7).round().long().numpy()  # RealEstate10K timestamps, microseconds
    assert frame_rate(ntsc) == pytest.approx(29.97, abs=0.01)
    assert frame_rate(ntsc[:1]) == 29.97


def test_released_key_sets_have_no_extra_learnable_scales():
    """The official 512 and 1024 configs have no learnable image cross-attention scale (256 has it:
    16 ``attn2.alpha`` keys), so the released 512 key set loads with nothing missing."""

    def alphas(name):
        keys = build_model(name, camera="realcam", device="meta").state_dict()
        return [k for k in keys if k.endswith("attn2.alpha")]

    assert len(alphas("256")) == 16
    assert alphas("512") == [] and alphas("1024") == []


def test_clip_image_preprocessing_is_kornias():
    """The official ``FrozenOpenCLIPImageEmbedderV2.preprocess``: kornia bicubic resize with
    align_corners and antialias, then CLIP normalisation."""
    import kornia

    from stages.models.encoders import CLIP_MEAN, CLIP_STD

    emb = build_model("tiny").embedder
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 60, 90, generator=g) * 2 - 1
    size = emb.cfg.image_size
    ref = kornia.geometry.resize(x, (size, size), interpolation="bicubic", align_corners=True, antialias=True)
    ref = ((ref + 1) / 2 - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(emb.preprocess(x), ref)
    flat = emb.preprocess(torch.full((1, 3, 40, 40), 0.2))  # a constant image stays constant
    expected = (0.6 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(flat[0, :, 5, 5], expected)
