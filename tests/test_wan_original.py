"""Wan2.1 bases in the original layout (``Wan-AI/Wan2.1-T2V-1.3B``): Wan's own key names for the
DiT, the UMT5 text encoder and the VAE, checked against the official code's names, and strict,
exact loading of tiny random parts written in those names (nothing is downloaded)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from wan_fixtures import TRANSFORMER, WORDS, tiny_text_encoder, tiny_tokenizer, tiny_transformer, tiny_vae

from stages.core.errors import RealcamError
from stages.models import wan_original as wo
from stages.models.recammaster import diffusers_to_original

#: ``config.json`` of ``Wan-AI/Wan2.1-T2V-1.3B`` as ``WanModel`` saves it (``wan/configs/wan_t2v_1_3B.py``:
#: dim 1536, ffn_dim 8960, freq_dim 256, num_heads 12, num_layers 30, eps 1e-6; ``patch_size``,
#: ``qk_norm``, ``cross_attn_norm``, ``text_dim``, ``window_size`` are in ``ignore_for_config``).
WAN_1_3B = {
    "_class_name": "WanModel",
    "_diffusers_version": "0.30.0",
    "dim": 1536,
    "eps": 1e-06,
    "ffn_dim": 8960,
    "freq_dim": 256,
    "in_dim": 16,
    "model_type": "t2v",
    "num_heads": 12,
    "num_layers": 30,
    "out_dim": 16,
    "text_len": 512,
}
#: The diffusers config of ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` (``transformer/config.json``).
DIFFUSERS_1_3B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    image_dim=None,
    added_kv_proj_dim=None,
    rope_max_seq_len=1024,
    pos_embed_seq_len=None,
)
#: Wan's own state-dict names and shapes (one ``"name (shape)"`` line each, sorted, SHA-256), read
#: off the official modules built on the meta device (Wan-Video/Wan2.1 9737cba): ``WanModel`` with
#: the 1.3B config (825 tensors), ``T5Encoder`` with ``umt5_xxl``'s arguments, encoder only,
#: ``shared_pos=False`` (242), ``WanVAE_`` with ``_video_vae``'s config and ``z_dim=16`` (194).
OFFICIAL = {
    "dit": (825, "f497a13f822fae023f3f8c1f22093b99d07a5d85ee74f9db6862945bfbee919a"),
    "t5": (242, "6be56588df8911137e2b6abd9599f670fcf50bf704b4c833c9ec671067a2ff0e"),
    "vae": (194, "3d5b088112ea6071d1e061acd5c7c8b2d05e0300a6348051d5f85e78cba6fb4a"),
}
#: Block 0 and the top level of Wan's T5 encoder (``wan/modules/t5.py``: ``T5Encoder``,
#: ``T5SelfAttention``, ``T5Attention``, ``T5FeedForward``, ``T5RelativeEmbedding``), in order.
T5_OFFICIAL_BLOCK0 = [
    "token_embedding.weight",
    "blocks.0.norm1.weight",
    "blocks.0.attn.q.weight",
    "blocks.0.attn.k.weight",
    "blocks.0.attn.v.weight",
    "blocks.0.attn.o.weight",
    "blocks.0.norm2.weight",
    "blocks.0.ffn.gate.0.weight",
    "blocks.0.ffn.fc1.weight",
    "blocks.0.ffn.fc2.weight",
    "blocks.0.pos_embedding.embedding.weight",
    "norm.weight",
]
TINY_T5 = dict(vocab_size=25, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)


def _digest(state: dict) -> tuple[int, str]:
    lines = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sorted(state.items()))
    return len(state), hashlib.sha256(lines.encode()).hexdigest()


def _tiny_vae_config(vae) -> dict:
    return {k: v for k, v in vae.config.items() if not k.startswith("_")}


# ----------------------------------------------------------------------------------------------
# Layout and DiT config
# ----------------------------------------------------------------------------------------------
def test_layout_recognised_and_missing_parts_named(tmp_path):
    assert not wo.is_original_layout(tmp_path)
    assert not wo.is_original_layout(tmp_path / "nothing")
    (tmp_path / "transformer").mkdir()  # a Diffusers layout is not the original one
    (tmp_path / "transformer" / "config.json").write_text(json.dumps({"num_layers": 30}))
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "WanTransformer3DModel"}))
    assert not wo.is_original_layout(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(WAN_1_3B))
    assert wo.is_original_layout(tmp_path)
    assert wo.missing_parts(tmp_path) == [wo.VAE, wo.T5, wo.TOKENIZER]
    assert wo.missing_parts(tmp_path, transformer_weights=True)[-1] == wo.DIT
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    for part in (wo.VAE, wo.T5):
        (tmp_path / part).write_bytes(b"")
    (tmp_path / wo.TOKENIZER).mkdir(parents=True)
    assert wo.missing_parts(tmp_path, transformer_weights=True) == []
    assert wo.base_files(tmp_path, True)[-1].name == "diffusion_pytorch_model.safetensors"
    assert "google/umt5-xxl/*" in wo.hub_patterns() and wo.DIT in wo.hub_patterns(True)


def test_transformer_config_of_the_1_3b_base(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(WAN_1_3B))
    cfg = wo.transformer_config(tmp_path)
    assert cfg == DIFFUSERS_1_3B
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        model = WanTransformer3DModel.from_config(cfg)
    # every tensor of Wan's WanModel, by name and shape, once mapped back to Wan's names
    assert _digest(diffusers_to_original(model.state_dict())) == OFFICIAL["dit"]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"model_type": "i2v"}, "only text-to-video"),
        ({"window_size": [256, 256]}, "global attention"),
        ({"num_heads": 7}, "head size"),
        ({"dim": None}, "no dim"),
    ],
)
def test_transformer_config_refuses_what_it_cannot_map(tmp_path, change, words):
    cfg = {k: v for k, v in {**WAN_1_3B, **change}.items() if v is not None}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RealcamError, match=words):
        wo.transformer_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RealcamError, match="not valid JSON"):
        wo.transformer_config(tmp_path)


def _tiny_original_dit(folder):
    model = tiny_transformer()
    t = TRANSFORMER
    config = dict(
        model_type="t2v",
        dim=t["num_attention_heads"] * t["attention_head_dim"],
        ffn_dim=t["ffn_dim"],
        freq_dim=t["freq_dim"],
        num_heads=t["num_attention_heads"],
        num_layers=t["num_layers"],
        in_dim=t["in_channels"],
        out_dim=t["out_channels"],
        text_dim=t["text_dim"],
        eps=t["eps"],
    )
    (folder / "config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in diffusers_to_original(model.state_dict()).items()}
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
    return model, state


def test_load_transformer_gives_the_same_model(tmp_path):
    model, _ = _tiny_original_dit(tmp_path)
    loaded = wo.load_transformer(tmp_path)
    own, new = model.state_dict(), loaded.state_dict()
    assert own.keys() == new.keys() and all(torch.equal(own[k], new[k]) for k in own)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 3, 4, 6, generator=g)
    text = torch.randn(1, 5, TRANSFORMER["text_dim"], generator=g)
    t = torch.tensor([700.0])
    with torch.no_grad():
        assert torch.equal(model(x, t, text, return_dict=False)[0], loaded(x, t, text, return_dict=False)[0])
    assert wo.load_transformer(tmp_path, torch.bfloat16).proj_out.weight.dtype == torch.bfloat16


def test_load_transformer_names_a_missing_key(tmp_path):
    _, state = _tiny_original_dit(tmp_path)
    del state["blocks.1.norm3.weight"]
    save_file(state, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(RealcamError, match=r"missing keys: blocks\.1\.norm3\.weight"):
        wo.load_transformer(tmp_path)


# ----------------------------------------------------------------------------------------------
# Text encoder
# ----------------------------------------------------------------------------------------------
def _save_original_t5(path, state=None):
    enc = tiny_text_encoder()
    original = wo.t5_transformers_to_original(enc.state_dict()) if state is None else state
    torch.save(original, path)
    return enc, original


def test_t5_names_are_wans():
    enc = tiny_text_encoder()
    names = list(wo.t5_transformers_to_original(enc.state_dict()))
    assert sorted(names) == sorted(T5_OFFICIAL_BLOCK0)
    assert wo.t5_original_to_transformers(dict.fromkeys(names, torch.zeros(1))).keys() == enc.state_dict().keys()
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.device("meta"):
        xxl = UMT5EncoderModel(UMT5Config(**wo.UMT5_XXL))
    # all 24 blocks of umt5-xxl, by name and shape, as Wan's T5Encoder holds them
    assert _digest(wo.t5_transformers_to_original(xxl.state_dict())) == OFFICIAL["t5"]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_load_text_encoder_gives_the_same_outputs(tmp_path, attn):
    path = tmp_path / wo.T5
    enc, _ = _save_original_t5(path)
    loaded = wo.load_text_encoder(path, torch.float32, config=TINY_T5, attn_implementation=attn)
    own, new = enc.state_dict(), loaded.state_dict()
    assert own.keys() == new.keys() and all(torch.equal(own[k], new[k]) for k in own)
    assert loaded.encoder.embed_tokens.weight is loaded.shared.weight
    ids = torch.tensor([[5, 9, 3, 12, 1, 0, 0], [7, 7, 4, 1, 0, 0, 0]])
    mask = (ids > 0).long()  # 0 is padding, 1 the end token
    with torch.no_grad():
        expected = enc(ids, mask).last_hidden_state
        out = loaded(ids, mask).last_hidden_state
    if attn == "sdpa":  # the fixture's own implementation
        assert torch.equal(out, expected)
    else:
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_load_text_encoder_dtypes(tmp_path):
    path = tmp_path / wo.T5
    _save_original_t5(path)
    bf16 = wo.load_text_encoder(path, torch.bfloat16, config=TINY_T5)
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    fp16 = wo.load_text_encoder(path, torch.float16, config=TINY_T5)  # as from_pretrained: wo in fp32
    assert fp16.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32
    assert fp16.shared.weight.dtype == torch.float16


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s: s.pop("blocks.0.ffn.fc1.weight"), r"missing keys: blocks\.0\.ffn\.fc1\.weight"),
        (lambda s: s.pop("token_embedding.weight"), r"missing keys: token_embedding\.weight$"),
        (lambda s: s.update({"blocks.0.ffn.gate.1.weight": torch.ones(2)}), r"unexpected .*blocks\.0\.ffn\.gate\.1"),
        (lambda s: s.update({"blocks.1.norm1.weight": torch.ones(16)}), r"unexpected .*blocks\.1\.norm1\.weight"),
        (
            lambda s: s.update({"norm.weight": torch.ones(15)}),
            r"misshapen keys: norm\.weight \(15,\) \(model \(16,\)\)",
        ),
    ],
)
def test_load_text_encoder_names_the_bad_key(tmp_path, edit, words):
    enc = tiny_text_encoder()
    state = wo.t5_transformers_to_original(enc.state_dict())
    edit(state)
    path = tmp_path / wo.T5
    torch.save(state, path)
    with pytest.raises(RealcamError, match=words):
        wo.load_text_encoder(path, torch.float32, config=TINY_T5)


def test_load_text_encoder_unreadable_file(tmp_path):
    path = tmp_path / wo.T5
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RealcamError, match="cannot read checkpoint"):
        wo.load_text_encoder(path, torch.float32, config=TINY_T5)
    with pytest.raises(RealcamError, match="not found"):
        wo.load_text_encoder(tmp_path / "absent.pth")


def test_load_tokenizer(tmp_path):
    tiny_tokenizer().save_pretrained(tmp_path / wo.TOKENIZER)
    tok = wo.load_tokenizer(tmp_path)
    assert tok("a video of the room").input_ids == tiny_tokenizer()("a video of the room").input_ids
    with pytest.raises(RealcamError, match="google/umt5-xxl"):
        wo.load_tokenizer(tmp_path / "elsewhere")


# ----------------------------------------------------------------------------------------------
# VAE
# ----------------------------------------------------------------------------------------------
def test_vae_names_are_wans_and_match_diffusers_converter():
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    with torch.device("meta"):
        defaults = AutoencoderKLWan()
        vae = AutoencoderKLWan.from_config(wo.VAE_CONFIG)
    assert {k: v for k, v in defaults.config.items() if k in wo.VAE_CONFIG} == wo.VAE_CONFIG  # the class defaults
    own = vae.state_dict()
    original = wo.vae_diffusers_to_original(own)
    assert _digest(original) == OFFICIAL["vae"]  # Wan's WanVAE_ by name and shape
    for name in ("decoder.upsamples.4.shortcut.weight", "decoder.upsamples.11.resample.1.weight", "conv2.bias"):
        assert name in original
    # diffusers' own converter (hard-wired to this structure) gives the same names
    assert convert_wan_vae_to_diffusers(dict(original)).keys() == own.keys()
    assert wo.vae_original_to_diffusers(original).keys() == own.keys()


def test_load_vae_gives_the_same_model(tmp_path):
    vae = tiny_vae()
    nrb = vae.config.num_res_blocks
    state = wo.vae_diffusers_to_original(vae.state_dict(), nrb)
    assert wo.vae_original_to_diffusers(state, nrb).keys() == vae.state_dict().keys()
    path = tmp_path / wo.VAE
    torch.save(state, path)
    loaded = wo.load_vae(path, config=_tiny_vae_config(vae))
    own, new = vae.state_dict(), loaded.state_dict()
    assert own.keys() == new.keys() and all(torch.equal(own[k], new[k]) for k in own)
    assert loaded.config.latents_std == vae.config.latents_std
    x = torch.rand(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        assert torch.equal(loaded.encode(x).latent_dist.mode(), z)
        assert torch.equal(loaded.decode(z).sample, vae.decode(z).sample)


def test_load_vae_names_the_bad_key(tmp_path):
    vae = tiny_vae()
    cfg = _tiny_vae_config(vae)
    state = wo.vae_diffusers_to_original(vae.state_dict(), cfg["num_res_blocks"])
    path = tmp_path / wo.VAE
    del state["decoder.upsamples.2.resample.1.bias"]
    torch.save(state, path)
    with pytest.raises(RealcamError, match=r"missing keys: decoder\.upsamples\.2\.resample\.1\.bias"):
        wo.load_vae(path, config=cfg)
    state["decoder.upsamples.2.resample.1.bias"] = torch.zeros(3)
    torch.save(state, path)
    with pytest.raises(RealcamError, match=r"misshapen keys: decoder\.upsamples\.2\.resample\.1\.bias \(3,\)"):
        wo.load_vae(path, config=cfg)
    with pytest.raises(RealcamError, match=r"unexpected keys \(not in the model\): decoder\.upsamples\."):
        wo.load_vae(path, config={**cfg, "num_res_blocks": 2})  # a wrong structure: names, not a crash


def test_both_layouts_load_the_same_parts(tmp_path, monkeypatch):
    """One set of tiny random parts saved in the Diffusers layout and in Wan's original layout:
    load_parts gives the same DiT (from the base and from a ReCamMaster checkpoint), the same
    prompt embeddings and the same video latents."""
    from wan_fixtures import save_tiny_base

    from stages.models import wan
    from stages.models.recammaster import ReCamMaster

    dif = save_tiny_base(tmp_path / "dif")
    org = tmp_path / "org"
    org.mkdir()
    (org / "config.json").write_text(
        json.dumps(
            dict(model_type="t2v", dim=24, ffn_dim=32, freq_dim=16, num_heads=2, num_layers=2, in_dim=4, out_dim=4)
            | dict(text_dim=16, eps=1e-6)
        )
    )
    state = diffusers_to_original(tiny_transformer().state_dict())
    save_file({k: v.contiguous() for k, v in state.items()}, str(org / "diffusion_pytorch_model.safetensors"))
    vae = tiny_vae()
    torch.save(wo.vae_diffusers_to_original(vae.state_dict(), 1), org / wo.VAE)
    torch.save(wo.t5_transformers_to_original(tiny_text_encoder().state_dict()), org / wo.T5)
    tiny_tokenizer().save_pretrained(org / wo.TOKENIZER)
    monkeypatch.setattr(wo, "VAE_CONFIG", {k: v for k, v in vae.config.items() if not k.startswith("_")})
    tiny_t5 = dict(vocab_size=len(WORDS) + 8, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    monkeypatch.setattr(wo, "UMT5_XXL", {**wo.UMT5_XXL, **tiny_t5})
    recam = ReCamMaster(tiny_transformer(seed=5))
    with torch.no_grad():
        for block in recam.transformer.blocks:
            block.cam_encoder.weight.normal_(0, 0.1)
    ckpt = tmp_path / "recam.safetensors"
    save_file({k: v.contiguous() for k, v in diffusers_to_original(recam.transformer.state_dict()).items()}, str(ckpt))
    frames = (np.random.default_rng(0).random((5, 16, 16, 3)) * 255).astype(np.uint8)
    for kw in (dict(weights=None, from_base=True), dict(weights=ckpt)):
        a = wan.load_parts(base=dif, device="cpu", dtype="fp32", **kw)
        b = wan.load_parts(base=org, device="cpu", dtype="fp32", **kw)
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        prompts = ["a video of the room", "camera moves slowly"]
        assert torch.equal(wan.encode_prompt(a, prompts, tokens=12), wan.encode_prompt(b, prompts, tokens=12))
        assert torch.equal(wan.encode_video(a, frames), wan.encode_video(b, frames))
        assert a.base == dif and b.base == org
    # the camera-patchify DiT (generate --model wan-camera) on either layout: the same weights
    from stages.train.wan_camera import save_weights

    start = wan.load_parts(base=dif, device="cpu", dtype="fp32", from_base=True, kind="wan-camera")
    with torch.no_grad():
        start.model.camera_patchify.weight.normal_(0, 0.1)
    trained = save_weights(start.model, tmp_path / "wancam", 0)
    for kw in (dict(weights=None, from_base=True), dict(weights=trained)):
        a = wan.load_parts(base=dif, device="cpu", dtype="fp32", kind="wan-camera", **kw)
        b = wan.load_parts(base=org, device="cpu", dtype="fp32", kind="wan-camera", **kw)
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert "transformer.camera_patchify.weight" in sa and a.kind == b.kind == "wan-camera"
    assert torch.equal(a.model.camera_patchify.weight, start.model.camera_patchify.weight)
    (org / wo.VAE).unlink()
    with pytest.raises(RealcamError, match="not a complete original-layout Wan2.1 base: no Wan2.1_VAE.pth"):
        wan.resolve_base(org)
