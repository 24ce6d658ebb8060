"""ReCamMaster on Wan2.1: the camera modules, frame conditioning, checkpoint names, flow-matching
sampling and ``realcam rerender`` end to end, on tiny random Wan parts the tests build and save."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner
from wan_fixtures import TRANSFORMER, save_tiny_base, tiny_transformer

from realcam_cli.app import app
from stages import flow_matching as fm
from stages.core.errors import RealcamError
from stages.core.video import read_video, write_video
from stages.models import recammaster as rm
from stages.rerender import pipeline as rp

runner = CliRunner()
DIM = TRANSFORMER["num_attention_heads"] * TRANSFORMER["attention_head_dim"]


def _inputs(seed=0, f=3, h=4, w=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, f, h, w, generator=g)
    src = torch.randn(1, 4, f, h, w, generator=g)
    text = torch.randn(1, 5, TRANSFORMER["text_dim"], generator=g)
    cam = torch.randn(1, f, 12, generator=g)
    return x, src, torch.tensor([700.0]), text, cam


def _randomise_camera(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.transformer.blocks:
            for layer in (block.cam_encoder, block.projector):
                layer.weight.add_(0.1 * torch.randn(layer.weight.shape, generator=g))
                layer.bias.add_(0.1 * torch.randn(layer.bias.shape, generator=g))
    return model


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
def test_initial_camera_modules_leave_the_base_model_exactly():
    x, src, t, text, cam = _inputs()
    base = tiny_transformer()
    with torch.no_grad():
        expected = base(torch.cat([x, src], 2), t, text, return_dict=False)[0][:, :, :3]
    model = rm.ReCamMaster(base)
    block = model.transformer.blocks[0]
    assert torch.equal(block.cam_encoder.weight, torch.zeros(DIM, 12))
    assert torch.equal(block.projector.weight, torch.eye(DIM))
    with torch.no_grad():
        out = model(x, src, t, text, cam)
    assert torch.equal(out, expected)


def _official_block(block, x, context, temb, rotary, cam, frames):
    """The ReCamMaster block written out from its equations (SPEC 11), the attention kernels
    called directly (no hooks): modulate, add the camera (tiled over source and target frames and
    broadcast over each frame's tokens), self-attention, projector, gated residual; then the
    unchanged cross-attention and FFN."""
    shift, scale, gate, c_shift, c_scale, c_gate = (block.scale_shift_table + temb.float()).chunk(6, dim=1)
    input_x = F.layer_norm(x, (DIM,), eps=1e-6) * (1 + scale) + shift
    emb = cam @ block.cam_encoder.weight.T + block.cam_encoder.bias  # (1, f, dim)
    emb = emb.repeat(1, 2, 1)  # target frames, then source frames
    tokens = x.shape[1] // (2 * frames)
    input_x = input_x + emb.repeat_interleave(tokens, dim=1)
    attn = block.attn1.processor(block.attn1, input_x, None, None, rotary)
    x = x + gate * (attn @ block.projector.weight.T + block.projector.bias)
    x = x + block.attn2.processor(block.attn2, block.norm2(x), context, None, None)
    y = F.layer_norm(x, (DIM,), eps=1e-6) * (1 + c_scale) + c_shift
    return x + c_gate * block.ffn(y)


def test_block_with_hooks_equals_the_block_equations():
    x, src, t, text, cam = _inputs(f=3)
    model = _randomise_camera(rm.ReCamMaster(tiny_transformer()))
    tr = model.transformer
    lat = torch.cat([x, src], 2)
    with torch.no_grad():
        rotary = tr.rope(lat)
        hidden = tr.patch_embedding(lat).flatten(2).transpose(1, 2).contiguous()
        _, temb, context, _ = tr.condition_embedder(t, text, None)
        temb = temb.unflatten(1, (6, -1))
        block = tr.blocks[0]
        model._camera = cam
        hooked = block(hidden, context, temb, rotary)
        direct = _official_block(block, hidden, context, temb, rotary, cam, frames=3)
    assert (hooked - direct).abs().max() < 1e-5
    # the camera really enters: another camera gives another output
    with torch.no_grad():
        model._camera = cam + 1
        assert (block(hidden, context, temb, rotary) - hooked).abs().max() > 1e-3


def test_target_half_depends_on_source_and_camera_and_only_the_target_is_returned():
    x, src, t, text, cam = _inputs()
    model = _randomise_camera(rm.ReCamMaster(tiny_transformer()))
    with torch.no_grad():
        a = model(x, src, t, text, cam)
        b = model(x, src + 1, t, text, cam)
        c = model(x, src, t, text, cam.flip(1))
    assert a.shape == x.shape
    assert (a - b).abs().max() > 1e-4 and (a - c).abs().max() > 1e-4
    with pytest.raises(RealcamError, match="camera must be"):
        model(x, src, t, text, cam[:, :2])


def test_trainable_parameters_are_camera_modules_and_self_attention():
    model = rm.ReCamMaster(tiny_transformer())
    names = rm.trainable_parameters(model)
    assert names and all(("attn1" in n) or ("cam_encoder" in n) or ("projector" in n) for n in names)
    assert {n.split(".", 2)[2].split(".")[0] for n in names} == {"attn1", "cam_encoder", "projector"}


# ----------------------------------------------------------------------------------------------
# Checkpoint names
# ----------------------------------------------------------------------------------------------
OFFICIAL_NAMES = [  # Wan2.1 wan/modules/model.py and ReCamMaster's additions
    "patch_embedding.weight",
    "text_embedding.0.weight",
    "text_embedding.2.bias",
    "time_embedding.0.weight",
    "time_projection.1.weight",
    "blocks.0.modulation",
    "blocks.0.self_attn.q.weight",
    "blocks.0.self_attn.o.bias",
    "blocks.0.self_attn.norm_k.weight",
    "blocks.0.cross_attn.v.weight",
    "blocks.0.norm3.weight",  # the cross-attention norm (diffusers' norm2)
    "blocks.0.ffn.0.weight",
    "blocks.0.ffn.2.bias",
    "blocks.1.cam_encoder.weight",
    "blocks.1.projector.bias",
    "head.head.weight",
    "head.modulation",
]


def test_names_round_trip_and_match_the_official_layout():
    model = rm.ReCamMaster(tiny_transformer())
    ours = model.transformer.state_dict()
    original = rm.diffusers_to_original(ours)
    assert set(OFFICIAL_NAMES) <= set(original)
    assert original["blocks.1.cam_encoder.weight"].shape == (DIM, 12)
    assert not any(k.startswith(("condition_embedder", "proj_out", "scale_shift")) or "attn1" in k for k in original)
    back = rm.original_to_diffusers(original)
    assert list(back) == list(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)


def _checkpoint(tmp_path, model, edit=None):
    state = rm.diffusers_to_original(model.transformer.state_dict())
    if edit:
        edit(state)
    path = tmp_path / "recam.ckpt"
    torch.save(state, path)
    return path


def test_checkpoint_loads_strictly_and_names_a_bad_key(tmp_path):
    from stages.models.wan import build_recammaster

    source = _randomise_camera(rm.ReCamMaster(tiny_transformer(seed=3)))
    path = _checkpoint(tmp_path, source)
    target = build_recammaster(dict(source.transformer.config), "meta")
    assert rm.load_transformer_weights(target, path) == len(source.transformer.state_dict())
    x, src, t, text, cam = _inputs()
    with torch.no_grad():
        assert torch.equal(target(x, src, t, text, cam), source(x, src, t, text, cam))
    extra = _checkpoint(tmp_path, source, lambda s: s.update({"blocks.0.extra.weight": torch.zeros(2)}))
    with pytest.raises(RealcamError, match=r"unexpected keys.*blocks\.0\.extra\.weight"):
        rm.load_transformer_weights(build_recammaster(dict(source.transformer.config), "meta"), extra)
    missing = _checkpoint(tmp_path, source, lambda s: s.pop("blocks.1.projector.weight"))
    with pytest.raises(RealcamError, match=r"missing keys: blocks\.1\.projector\.weight"):
        rm.load_transformer_weights(build_recammaster(dict(source.transformer.config), "meta"), missing)
    bad = _checkpoint(tmp_path, source, lambda s: s.update({"blocks.0.cam_encoder.weight": torch.zeros(DIM, 16)}))
    with pytest.raises(RealcamError, match=r"misshapen keys: blocks\.0\.cam_encoder\.weight \(24, 16\)"):
        rm.load_transformer_weights(build_recammaster(dict(source.transformer.config), "meta"), bad)


# ----------------------------------------------------------------------------------------------
# Flow matching
# ----------------------------------------------------------------------------------------------
def test_sigmas_follow_the_shifted_schedule_and_steps_are_euler():
    s = fm.make_scheduler(50, 5.0)
    u = np.linspace(1, 0, 51)[:-1]
    assert np.allclose(s.sigmas[:-1].numpy(), 5 * u / (1 + 4 * u), atol=1e-6)
    assert np.allclose(fm.shifted_sigmas(50, 5.0), 5 * u / (1 + 4 * u))
    assert float(s.sigmas[-1]) == 0.0 and np.allclose(s.timesteps.numpy(), 1000 * s.sigmas[:-1].numpy(), atol=1e-3)
    # an exact velocity field (x_0 = 0.5 everywhere): Euler reaches x_0 from any noise
    noise = torch.randn(1, 2, 3, 4)
    x0 = torch.full_like(noise, 0.5)
    out = fm.sample(lambda x, t: (x - x0) / (t.view(-1, 1, 1, 1) / 1000), noise, 10, 5.0)
    assert torch.allclose(out, x0, atol=1e-5)


def test_flow_shaping_noises_the_preview_to_the_current_level():
    z = torch.randn(1, 4, 3, 2, 2)
    mask = torch.zeros(1, 1, 3, 2, 2)
    mask[:, :, 0] = 1
    shaping = fm.FlowShaping(z, mask, sigma_min=0.9)
    x = torch.randn_like(z)
    out = shaping.shape(x, 0.95, torch.Generator().manual_seed(0))
    eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, :, 0], (0.05 * z + 0.95 * eps)[:, :, 0])
    assert torch.equal(out[:, :, 1:], x[:, :, 1:])
    assert shaping.active(0.95) and not shaping.active(0.85)


def test_latent_masks_keep_a_cell_only_where_all_four_frames_do():
    masks = np.ones((9, 2, 2), bool)
    masks[3, 0, 0] = False  # frames 1..4 -> latent frame 1
    masks[0, 1, 1] = False  # frame 0 -> latent frame 0
    out = rp.latent_masks(masks)
    assert out.shape == (3, 2, 2)
    assert not out[1, 0, 0] and out[2, 0, 0] and not out[0, 1, 1] and out[1, 1, 1]


# ----------------------------------------------------------------------------------------------
# The stage, end to end
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("recam")
    base = save_tiny_base(root / "base")
    model = _randomise_camera(rm.ReCamMaster(tiny_transformer()))
    weights = _checkpoint(root, model)
    rng = np.random.default_rng(0)
    frames = np.clip(rng.normal(128, 40, (12, 40, 72, 3)), 0, 255).astype(np.uint8)
    video = write_video(root / "source.mp4", frames, fps=15, lossless=True)
    depth = root / "depth.npy"
    np.save(depth, np.full((32, 64), 2.0, np.float32))
    return dict(root=root, base=base, weights=weights, video=video, depth=depth)


def _args(s, out, *extra):
    return [
        "rerender",
        str(s["video"]),
        *extra,
        "--out",
        str(out),
        "--weights",
        str(s["weights"]),
        "--base",
        str(s["base"]),
        "--size",
        "64x32",
        "--frames",
        "9",
        "--steps",
        "3",
        "--depth",
        str(s["depth"]),
        "--device",
        "cpu",
        "--prompt",
        "a room with people walking",
    ]


def test_rerender_writes_video_record_and_preview_and_regenerates(tiny_setup, tmp_path):
    s = tiny_setup
    out = tmp_path / "out.mp4"
    res = runner.invoke(app, _args(s, out, "recam-arc-left", "--noise-shaping", "0.9"))
    assert res.exit_code == 0, res.output
    assert str(out) in res.output
    frames = read_video(out)
    assert frames.shape == (9, 32, 64, 3)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["settings"]["noise_shaping"] == 0.9 and record["settings"]["frames"] == 9
    assert [f["sha256"] for f in record["model"]["files"]][0] == rp.sha256_file(s["weights"])
    assert np.allclose(record["target_c2w"][0], np.eye(4))
    preview = tmp_path / "out_preview"
    assert {"preview.mp4", "preview.npz", "source_frame0.png"} <= {p.name for p in preview.iterdir()}
    again = tmp_path / "again.mp4"
    res = runner.invoke(app, ["rerender", "--record", str(out.with_suffix(".json")), "--out", str(again)])
    assert res.exit_code == 0, res.output
    assert json.loads(again.with_suffix(".json").read_text())["video_frames_sha256"] == record["video_frames_sha256"]


def test_camera_path_changes_the_video_and_the_seed_reproduces_it(tiny_setup, tmp_path):
    s = tiny_setup
    common = dict(weights=s["weights"], base=s["base"], preview=False, device="cpu", size=(64, 32), frames=9, steps=2)
    a = rp.rerender(s["video"], "recam-pan-right", tmp_path / "a.mp4", **common)
    b = rp.rerender(s["video"], "recam-pan-left", tmp_path / "b.mp4", **common)
    c = rp.rerender(s["video"], "recam-pan-right", tmp_path / "c.mp4", **common)
    assert torch.equal(a.latents, c.latents)
    assert (a.latents - b.latents).abs().max() > 1e-4


@pytest.mark.parametrize(
    "case,expected",
    [
        ("short", "has 5 frames; re-rendering needs 9"),
        ("unreadable", "cannot open video"),
        ("one_pose", "needs at least 2"),
        ("frames", "--frames: must be 4k+1"),
    ],
)
def test_bad_inputs_give_one_line_and_status_2(tiny_setup, tmp_path, case, expected):
    s = dict(tiny_setup)
    trajectory = "recam-pan-right"
    extra = []
    if case == "short":
        s["video"] = write_video(tmp_path / "short.mp4", np.zeros((5, 32, 64, 3), np.uint8), fps=15)
    elif case == "unreadable":
        s["video"] = tmp_path / "broken.mp4"
        s["video"].write_bytes(b"not a video at all")
    elif case == "one_pose":
        trajectory = str(tmp_path / "one.txt")
        (tmp_path / "one.txt").write_text("https://x\n0 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n")
    out = tmp_path / "out.mp4"
    args = _args(s, out, trajectory, *extra)
    if case == "frames":
        args[args.index("--frames") + 1] = "8"
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], res.output
    assert "Traceback" not in res.output and not out.exists()


def test_batch_form_records_failures_and_skips_done_rows(tiny_setup, tmp_path):
    from stages.core.artifacts import read_table

    s = tiny_setup
    table = tmp_path / "jobs.csv"
    table.write_text(
        "id,video,trajectory,seed\n"
        f"good,{s['video']},recam-tilt-up,3\n"
        f"missing,{tmp_path / 'nowhere.mp4'},recam-tilt-up,\n"
    )
    out = tmp_path / "batch"
    args = ["rerender", "--batch", str(table), "--out", str(out), "--weights", str(s["weights"])]
    args += ["--base", str(s["base"]), "--size", "64x32", "--frames", "9", "--steps", "2", "--device", "cpu"]
    args += ["--no-preview"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    status = read_table(out / "rerender.parquet").set_index("item")
    assert status.loc["good", "status"] == "ok" and status.loc["good", "seed"] == 3
    assert status.loc["missing", "status"] == "failed" and "no such video" in status.loc["missing", "reason"]
    assert read_video(out / "good.mp4").shape == (9, 32, 64, 3)
    first = (out / "good.mp4").stat().st_mtime_ns
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "1 skipped as done earlier" in res.output, res.output
    assert (out / "good.mp4").stat().st_mtime_ns == first


def test_offline_base_and_weights_are_one_line_each(tiny_setup, tmp_path, monkeypatch):
    """Offline with nothing in the cache: one line naming the missing base (and the command that
    fetches it), or the missing release weights, before anything is loaded."""
    s = tiny_setup
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    out = tmp_path / "out.mp4"
    args = _args(s, out, "recam-pan-left", "--no-preview")
    base = args.index("--base") + 1
    res = runner.invoke(app, [*args[:base], "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", *args[base + 1 :]])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers is unavailable" in lines[0] and "hf download" in lines[0]
    weights = args.index("--weights")
    res = runner.invoke(app, args[:weights] + args[weights + 2 :])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "KwaiVGI/ReCamMaster-Wan2.1/step20000.ckpt" in lines[0] and "hf download" in lines[0]
    assert not out.exists()
