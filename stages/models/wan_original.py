"""Wan2.1 bases in the original layout (``Wan-AI/Wan2.1-T2V-1.3B``), loaded into the diffusers and
transformers classes that :mod:`stages.models.wan` uses for the Diffusers layout.

The original folder holds::

    config.json                           Wan's own DiT config (dim, ffn_dim, num_heads, ...)
    diffusion_pytorch_model.safetensors   the DiT in Wan's key names (sharded for 14B)
    models_t5_umt5-xxl-enc-bf16.pth       Wan's own UMT5-XXL encoder implementation
    Wan2.1_VAE.pth                        Wan's own VAE implementation
    google/umt5-xxl/                      the tokenizer

Facts read from the official code (Wan-Video/Wan2.1 at 9737cba): ``wan/modules/model.py``
``WanModel`` (its ``config.json`` leaves out ``patch_size``, ``cross_attn_norm``, ``qk_norm``,
``text_dim`` and ``window_size``: ``ignore_for_config``, so their constructor defaults apply),
``wan/configs/wan_t2v_1_3B.py``, ``wan/modules/t5.py`` (``umt5_xxl``, ``T5Encoder``),
``wan/modules/vae.py`` (``_video_vae``, ``WanVAE``).

Every load is strict: a missing, unexpected or misshapen tensor stops it with the tensor's name in
the file's own (original) naming.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..core.errors import RealcamError
from .recammaster import check_state_keys, name_list

CONFIG = "config.json"
DIT = "diffusion_pytorch_model*.safetensors"
T5 = "models_t5_umt5-xxl-enc-bf16.pth"
VAE = "Wan2.1_VAE.pth"
TOKENIZER = "google/umt5-xxl"
#: What the original layout needs besides the DiT weights (``config.json`` gives the DiT's shape).
PARTS = (CONFIG, VAE, T5, TOKENIZER)


# ----------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------
def _wan_config(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "dim" in data and "num_heads" in data else None


def is_original_layout(folder: str | Path) -> bool:
    """A folder of Wan's original layout (complete or not): Wan's own ``config.json`` (``dim``,
    ``num_heads``) or one of its ``.pth`` parts at the top."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    return _wan_config(folder / CONFIG) is not None or (folder / VAE).is_file() or (folder / T5).is_file()


def dit_files(folder: str | Path) -> list[Path]:
    """The DiT's safetensors file(s) (one for 1.3B, shards for 14B)."""
    return sorted(Path(folder).glob(DIT))


def missing_parts(folder: str | Path, transformer_weights: bool = False) -> list[str]:
    """The parts of the original layout the folder lacks."""
    folder = Path(folder)
    missing = [p for p in PARTS if not (folder / p).exists()]
    if transformer_weights and not dit_files(folder):
        missing.append(DIT)
    return missing


def hub_patterns(transformer_weights: bool = False) -> list[str]:
    """``allow_patterns`` for ``snapshot_download`` of an original-layout repository."""
    return [CONFIG, VAE, T5, f"{TOKENIZER}/*"] + ([DIT, "diffusion_pytorch_model*.json"] if transformer_weights else [])


def base_files(folder: str | Path, transformer_weights: bool = False) -> list[Path]:
    """The weight files a run used (for provenance): config, VAE, T5 (and the DiT's)."""
    folder = Path(folder)
    return [folder / CONFIG, folder / VAE, folder / T5] + (dit_files(folder) if transformer_weights else [])


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------
def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``.pth`` (memory-mapped where the file allows) or ``.safetensors`` state dict."""
    path = Path(path)
    if not path.is_file():
        raise RealcamError("weights file not found", path)
    if path.suffix != ".safetensors":
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
                return data
        except Exception:  # legacy format, corrupt: the reader below names the problem
            pass
    from .checkpoint import read_state_dict

    return read_state_dict(path)


def _strict_load(model: torch.nn.Module, state: dict, path: Path, to_original, dtype_of) -> None:
    """Load ``state`` (model names) into ``model`` (on ``meta``) by assignment; a problem names the
    key as the file spells it (``to_original``). ``dtype_of(name)`` is each tensor's dtype."""
    check_state_keys(state, model.state_dict(), path, to_original)
    state = {k: v.to(dtype_of(k)) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:  # a buffer the constructor computes was left on meta: a bug here, not in the file
        raise RuntimeError(f"not materialised after loading: {name_list(left)}")


# ----------------------------------------------------------------------------------------------
# DiT
# ----------------------------------------------------------------------------------------------
#: ``WanModel``'s constructor defaults for what its saved ``config.json`` leaves out.
_WAN_DEFAULTS = dict(
    model_type="t2v",
    patch_size=(1, 2, 2),
    in_dim=16,
    out_dim=16,
    text_dim=4096,
    freq_dim=256,
    window_size=(-1, -1),
    qk_norm=True,
    cross_attn_norm=True,
    eps=1e-6,
)
#: Wan's RoPE tables: ``rope_params(1024, ...)`` in ``WanModel.__init__``.
_ROPE_MAX_SEQ_LEN = 1024
#: Wan2.1-T2V-1.3B's DiT in diffusers' terms (``wan/configs/wan_t2v_1_3B.py``: dim 1536, 12 heads,
#: 30 layers, ffn 8960; the Diffusers repository's ``transformer/config.json``): the benchmarks
#: build it with random weights.
DIT_1_3B = dict(
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
)


def read_config(folder: str | Path) -> dict:
    """Wan's own ``config.json`` with ``WanModel``'s defaults filled in."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise RealcamError("no config.json (Wan's DiT config)", Path(folder))
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise RealcamError(f"not valid JSON ({exc})", path) from None
    if not isinstance(data, dict):
        raise RealcamError("not a Wan2.1 config (a JSON object with dim, num_heads, ...)", path)
    lacking = [k for k in ("dim", "ffn_dim", "num_heads", "num_layers") if k not in data]
    if lacking:
        raise RealcamError(f"not a Wan2.1 DiT config: no {', '.join(lacking)}", path)
    return {**_WAN_DEFAULTS, **data}


def transformer_config(folder: str | Path) -> dict:
    """The diffusers ``WanTransformer3DModel`` config of an original-layout base (text-to-video)."""
    cfg = read_config(folder)
    path = Path(folder) / CONFIG
    if cfg["model_type"] != "t2v":
        raise RealcamError(
            f"model_type {cfg['model_type']!r}: only text-to-video (t2v) Wan2.1 bases are supported", path
        )
    if tuple(cfg["window_size"]) != (-1, -1):
        raise RealcamError(f"window_size {cfg['window_size']}: diffusers' Wan supports global attention only", path)
    dim, heads = int(cfg["dim"]), int(cfg["num_heads"])
    if dim % heads or (dim // heads) % 2:
        raise RealcamError(f"dim {dim} is not num_heads {heads} x an even head size", path)
    return dict(
        patch_size=tuple(int(p) for p in cfg["patch_size"]),
        num_attention_heads=heads,
        attention_head_dim=dim // heads,
        in_channels=int(cfg["in_dim"]),
        out_channels=int(cfg["out_dim"]),
        text_dim=int(cfg["text_dim"]),
        freq_dim=int(cfg["freq_dim"]),
        ffn_dim=int(cfg["ffn_dim"]),
        num_layers=int(cfg["num_layers"]),
        cross_attn_norm=bool(cfg["cross_attn_norm"]),
        # Wan's qk norm is an RMSNorm over the whole dim (all heads together)
        qk_norm="rms_norm_across_heads" if cfg["qk_norm"] else None,
        eps=float(cfg["eps"]),
        image_dim=None,
        added_kv_proj_dim=None,
        rope_max_seq_len=_ROPE_MAX_SEQ_LEN,
        pos_embed_seq_len=None,
    )


def load_transformer(folder: str | Path, dtype: torch.dtype = torch.float32):
    """The base DiT (``WanTransformer3DModel``) of an original-layout folder, loaded strictly from
    ``diffusion_pytorch_model*.safetensors`` (Wan's names, converted by diffusers' converter)."""
    from diffusers import WanTransformer3DModel

    from .recammaster import original_name, original_to_diffusers

    folder = Path(folder)
    files = dit_files(folder)
    if not files:
        raise RealcamError(f"no {DIT} (the base DiT weights)", folder)
    with torch.device("meta"):
        model = WanTransformer3DModel.from_config(transformer_config(folder))
    rope = model.rope  # RoPE tables are computed, not loaded: build them for real
    model.rope = type(rope)(rope.attention_head_dim, rope.patch_size, rope.max_seq_len)
    state = {}
    for path in files:
        state.update(read_weights(path))
    state = original_to_diffusers(state)
    _strict_load(model, state, files[0] if len(files) == 1 else folder, original_name, lambda _: dtype)
    return model.eval()


# ----------------------------------------------------------------------------------------------
# VAE
# ----------------------------------------------------------------------------------------------
# fmt: off
_LATENTS_MEAN = [
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
]
_LATENTS_STD = [
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
]
# fmt: on
#: ``AutoencoderKLWan`` config of ``Wan2.1_VAE.pth`` (= the class defaults): ``_video_vae`` builds
#: ``dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
#: temperal_downsample=[False, True, True], dropout=0.0``; the latent mean/std are ``WanVAE``'s.
VAE_CONFIG = dict(
    base_dim=96,
    z_dim=16,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_scales=[],
    temperal_downsample=[False, True, True],
    dropout=0.0,
    latents_mean=_LATENTS_MEAN,
    latents_std=_LATENTS_STD,
)

#: A residual block's layers: Wan's ``residual`` Sequential (RMS_norm, SiLU, conv, RMS_norm, SiLU,
#: Dropout, conv) and ``shortcut`` <-> diffusers' ``WanResidualBlock``.
_RES = (
    ("residual.0.", "norm1."),
    ("residual.2.", "conv1."),
    ("residual.3.", "norm2."),
    ("residual.6.", "conv2."),
    ("shortcut.", "conv_shortcut."),
)
_VAE_TOP = (("conv1.", "quant_conv."), ("conv2.", "post_quant_conv."))
_VAE_PART = (
    ("conv1.", "conv_in."),
    ("head.0.", "norm_out."),
    ("head.2.", "conv_out."),
    ("middle.0.", "mid_block.resnets.0."),
    ("middle.1.", "mid_block.attentions.0."),
    ("middle.2.", "mid_block.resnets.1."),
)


def _swap(tail: str, pairs, forward: bool) -> str:
    for a, b in pairs:
        src, dst = (a, b) if forward else (b, a)
        if tail.startswith(src):
            return dst + tail[len(src) :]
    return tail


def vae_key_to_diffusers(key: str, num_res_blocks: int = 2) -> str:
    """One ``Wan2.1_VAE.pth`` key -> ``AutoencoderKLWan``'s. The decoder's flat ``upsamples``
    list holds, per stage, ``num_res_blocks + 1`` residual blocks then one ``Resample``."""
    part, _, rest = key.partition(".")
    if part not in ("encoder", "decoder"):
        return _swap(key, _VAE_TOP, True)
    if m := re.match(r"downsamples\.(\d+)\.(.*)", rest):
        return f"{part}.down_blocks.{m[1]}.{_swap(m[2], _RES, True)}"
    if m := re.match(r"upsamples\.(\d+)\.(.*)", rest):
        stage, j = divmod(int(m[1]), num_res_blocks + 2)
        if j <= num_res_blocks:
            return f"{part}.up_blocks.{stage}.resnets.{j}.{_swap(m[2], _RES, True)}"
        return f"{part}.up_blocks.{stage}.upsamplers.0.{m[2]}"
    new = _swap(rest, _VAE_PART, True)
    if new.startswith("mid_block.resnets."):
        head, tail = new[: len("mid_block.resnets.0.")], new[len("mid_block.resnets.0.") :]
        new = head + _swap(tail, _RES, True)
    return f"{part}.{new}"


def vae_key_to_original(key: str, num_res_blocks: int = 2) -> str:
    """One ``AutoencoderKLWan`` key -> Wan's (the inverse of :func:`vae_key_to_diffusers`)."""
    part, _, rest = key.partition(".")
    if part not in ("encoder", "decoder"):
        return _swap(key, _VAE_TOP, False)
    if m := re.match(r"down_blocks\.(\d+)\.(.*)", rest):
        return f"{part}.downsamples.{m[1]}.{_swap(m[2], _RES, False)}"
    if m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
        return f"{part}.upsamples.{int(m[1]) * (num_res_blocks + 2) + int(m[2])}.{_swap(m[3], _RES, False)}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", rest):
        return f"{part}.upsamples.{int(m[1]) * (num_res_blocks + 2) + num_res_blocks + 1}.{m[2]}"
    if m := re.match(r"(mid_block\.resnets\.\d+\.)(.*)", rest):
        rest = m[1] + _swap(m[2], _RES, False)
    return f"{part}.{_swap(rest, _VAE_PART, False)}"


def vae_original_to_diffusers(state: dict, num_res_blocks: int = 2) -> dict:
    """``Wan2.1_VAE.pth`` names -> ``AutoencoderKLWan``'s (for the 1.3B structure the same names as
    diffusers' ``convert_wan_vae_to_diffusers``, which is hard-wired to ``num_res_blocks=2``)."""
    return {vae_key_to_diffusers(k, num_res_blocks): v for k, v in state.items()}


def vae_diffusers_to_original(state: dict, num_res_blocks: int = 2) -> dict:
    """``AutoencoderKLWan`` names -> Wan's ``Wan2.1_VAE.pth`` names."""
    return {vae_key_to_original(k, num_res_blocks): v for k, v in state.items()}


def load_vae(path: str | Path, dtype: torch.dtype = torch.float32, config: dict | None = None):
    """``Wan2.1_VAE.pth`` -> diffusers ``AutoencoderKLWan`` (built from ``config``, by default
    :data:`VAE_CONFIG`; nothing is fetched), loaded strictly."""
    from diffusers import AutoencoderKLWan

    path = Path(path)
    cfg = {**VAE_CONFIG, **(config or {})}
    if cfg.get("attn_scales"):
        raise RealcamError("attn_scales must be empty (the Wan2.1 VAE and diffusers' decoder have none)", path)
    nrb = int(cfg["num_res_blocks"])
    state = vae_original_to_diffusers(read_weights(path), nrb)
    with torch.device("meta"):
        vae = AutoencoderKLWan.from_config(cfg)
    _strict_load(vae, state, path, lambda k: vae_key_to_original(k, nrb), lambda _: dtype)
    return vae.eval()


# ----------------------------------------------------------------------------------------------
# Text encoder
# ----------------------------------------------------------------------------------------------
#: transformers ``UMT5Config`` of Wan's ``umt5_xxl`` encoder (t5.py: ``vocab_size=256384, dim=4096,
#: dim_attn=4096, dim_ffn=10240, num_heads=64, encoder_layers=24, num_buckets=32,
#: shared_pos=False``; ``T5RelativeEmbedding`` ``max_dist=128``; ``T5LayerNorm`` ``eps=1e-6``;
#: the gate is tanh-approximated GELU = transformers' ``gelu_new`` of ``gated-gelu``).
UMT5_XXL = dict(
    vocab_size=256384,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_decoder_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    layer_norm_epsilon=1e-6,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.1,
    tie_word_embeddings=False,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
)

#: Wan's ``T5Encoder`` block names <-> transformers' ``UMT5EncoderModel`` (per block ``{i}``).
T5_BLOCK = (
    ("norm1.weight", "layer.0.layer_norm.weight"),
    ("attn.q.weight", "layer.0.SelfAttention.q.weight"),
    ("attn.k.weight", "layer.0.SelfAttention.k.weight"),
    ("attn.v.weight", "layer.0.SelfAttention.v.weight"),
    ("attn.o.weight", "layer.0.SelfAttention.o.weight"),
    ("pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"),
    ("norm2.weight", "layer.1.layer_norm.weight"),
    ("ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"),  # GELU(gate(x)) * fc1(x)
    ("ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"),
    ("ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"),
)
T5_TOP = (("token_embedding.weight", "shared.weight"), ("norm.weight", "encoder.final_layer_norm.weight"))
#: transformers' second name of the (tied) input embedding.
_T5_TIED = "encoder.embed_tokens.weight"


def t5_key_to_transformers(key: str) -> str:
    """One Wan T5 encoder key -> ``UMT5EncoderModel``'s (unknown keys pass unchanged)."""
    for a, b in T5_TOP:
        if key == a:
            return b
    if m := re.fullmatch(r"blocks\.(\d+)\.(.+)", key):
        for a, b in T5_BLOCK:
            if m[2] == a:
                return f"encoder.block.{m[1]}.{b}"
    return key


def t5_key_to_original(key: str) -> str:
    """One ``UMT5EncoderModel`` key -> Wan's T5 encoder name (unknown keys pass unchanged)."""
    if key == _T5_TIED:
        return "token_embedding.weight"
    for a, b in T5_TOP:
        if key == b:
            return a
    if m := re.fullmatch(r"encoder\.block\.(\d+)\.(.+)", key):
        for a, b in T5_BLOCK:
            if m[2] == b:
                return f"blocks.{m[1]}.{a}"
    return key


def t5_original_to_transformers(state: dict) -> dict:
    """Wan's ``models_t5_umt5-xxl-enc-bf16.pth`` names -> ``UMT5EncoderModel``'s (the embedding
    under both of its tied names)."""
    out = {t5_key_to_transformers(k): v for k, v in state.items()}
    if "shared.weight" in out:
        out[_T5_TIED] = out["shared.weight"]
    return out


def t5_transformers_to_original(state: dict) -> dict:
    """``UMT5EncoderModel`` names -> Wan's T5 encoder names (the tied copy dropped)."""
    return {t5_key_to_original(k): v for k, v in state.items() if k != _T5_TIED}


def load_text_encoder(
    path: str | Path,
    dtype: torch.dtype = torch.bfloat16,
    config: dict | None = None,
    attn_implementation: str = "eager",
):
    """``models_t5_umt5-xxl-enc-bf16.pth`` -> transformers ``UMT5EncoderModel`` (config
    :data:`UMT5_XXL` unless given), loaded strictly. As ``from_pretrained`` does, ``wo`` stays in
    float32 when ``dtype`` is float16. ``eager`` attention computes exactly what Wan's ``T5Encoder``
    does (bit-identical on the CPU in float32 and bfloat16); ``sdpa`` differs by bfloat16 rounding."""
    from transformers import UMT5Config, UMT5EncoderModel

    path = Path(path)
    cfg = UMT5Config(**{**UMT5_XXL, **(config or {})}, attn_implementation=attn_implementation)
    state = t5_original_to_transformers(read_weights(path))
    with torch.device("meta"):
        model = UMT5EncoderModel(cfg)
    fp32 = tuple(f".{m}." for m in (UMT5EncoderModel._keep_in_fp32_modules or ()))
    keep = dtype == torch.float16 and bool(fp32)
    _strict_load(
        model, state, path, t5_key_to_original, lambda k: torch.float32 if keep and any(m in k for m in fp32) else dtype
    )
    model.set_input_embeddings(model.shared)  # one tensor under both names, as tied
    return model.eval()


def load_tokenizer(folder: str | Path):
    """The UMT5 tokenizer of an original-layout base (``google/umt5-xxl/``)."""
    from transformers import AutoTokenizer

    path = Path(folder) / TOKENIZER
    if not path.is_dir():
        raise RealcamError(f"no {TOKENIZER}/ (the tokenizer)", Path(folder))
    return AutoTokenizer.from_pretrained(path)
