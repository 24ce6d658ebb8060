"""Condition encoders with the official parameter names: OpenCLIP ViT-H-14 text tower
(``cond_stage_model.model.*``, penultimate layer), OpenCLIP ViT-H-14 vision tower
(``embedder.model.visual.*``, all tokens after the last block, before ``ln_post``) and the image
``Resampler`` (``image_proj_model.*``).

``open_clip_torch`` imports torchvision, which cannot be loaded on the project's CPU machines, so
the towers are written here with open_clip's parameter names; weights made for open_clip load
unchanged.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.constants import TOKENIZER
from .configs import ImageEncoderConfig, ResamplerConfig, TextEncoderConfig

SOT_TOKEN, EOT_TOKEN = 49406, 49407  # OpenCLIP start/end-of-text tokens

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class _MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """open_clip's block: ``ln_1``, ``attn`` (``nn.MultiheadAttention``), ``ln_2``, ``mlp``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = _MLP(width, int(width * mlp_ratio))

    def forward(self, x, attn_mask=None):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(layers)])

    def forward(self, x, attn_mask=None, skip_last: int = 0):
        for block in self.resblocks[: len(self.resblocks) - skip_last]:
            x = block(x, attn_mask=attn_mask)
        return x


class OpenCLIPText(nn.Module):
    """Text half of open_clip's ``CLIP`` (its ``visual`` deleted, as the official embedder does)."""

    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width).normal_(std=0.01))
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio)
        self.ln_final = nn.LayerNorm(cfg.width)
        self.text_projection = nn.Parameter(torch.empty(cfg.width, cfg.embed_dim).normal_(std=cfg.width**-0.5))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))


class FrozenOpenCLIPEmbedder(nn.Module):
    """Tokens (B, 77) -> penultimate-layer features (B, 77, width) after ``ln_final``."""

    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.model = OpenCLIPText(cfg)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.token_embedding(tokens) + m.positional_embedding.to(m.token_embedding.weight.dtype)
        n = tokens.shape[1]
        causal = torch.full((n, n), float("-inf"), device=x.device, dtype=x.dtype).triu(1)
        skip = 1 if self.cfg.layer == "penultimate" else 0
        x = m.transformer(x, attn_mask=causal, skip_last=skip)
        return m.ln_final(x)


def empty_tokens(batch: int, context_length: int = 77) -> torch.Tensor:
    """The empty prompt (``<start> <end>`` then zeros), which needs no tokenizer."""
    out = torch.zeros(batch, context_length, dtype=torch.long)
    out[:, 0], out[:, 1] = SOT_TOKEN, EOT_TOKEN
    return out


def tokenize(texts: list[str], tokenizer, context_length: int = 77) -> torch.Tensor:
    """open_clip tokenisation with a Hugging Face ``CLIPTokenizer``: ``<start> ... <end>`` then
    zeros (open_clip pads with 0, not with the end token), truncated to ``context_length``."""
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=True, truncation=True, max_length=context_length)["input_ids"]
        if len(ids) == context_length:
            ids[-1] = tokenizer.eos_token_id
        out[i, : len(ids)] = torch.tensor(ids)
    return out


class VisionTransformer(nn.Module):
    def __init__(self, cfg: ImageEncoderConfig):
        super().__init__()
        self.cfg = cfg
        grid = cfg.image_size // cfg.patch_size
        scale = cfg.width**-0.5
        self.conv1 = nn.Conv2d(3, cfg.width, cfg.patch_size, cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(cfg.width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, cfg.width))
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio)
        self.ln_post = nn.LayerNorm(cfg.width)
        self.proj = nn.Parameter(scale * torch.randn(cfg.width, cfg.embed_dim))


class OpenCLIPVisionModel(nn.Module):
    """open_clip ``CLIP`` with ``transformer`` deleted (what the official image embedder keeps)."""

    def __init__(self, cfg: ImageEncoderConfig):
        super().__init__()
        self.visual = VisionTransformer(cfg)
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.text_width)
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.context_length, cfg.text_width))
        self.ln_final = nn.LayerNorm(cfg.text_width)
        self.text_projection = nn.Parameter(torch.zeros(cfg.text_width, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))


class FrozenOpenCLIPImageEmbedderV2(nn.Module):
    """Images in ``[-1, 1]`` (B, 3, H, W) -> all tokens of the last block (B, 1 + grid^2, width)."""

    def __init__(self, cfg: ImageEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.model = OpenCLIPVisionModel(cfg)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """The official preprocessing: ``kornia.geometry.resize`` to the CLIP size (bicubic, align
        corners, antialias: a Gaussian blur before downscaling, unlike ``F.interpolate``'s
        antialias), ``[-1, 1] -> [0, 1]``, CLIP mean/std."""
        import kornia

        size = self.cfg.image_size
        dtype = x.dtype
        x = kornia.geometry.resize(x.float(), (size, size), interpolation="bicubic", align_corners=True, antialias=True)
        x = (x + 1.0) / 2.0
        return kornia.enhance.normalize(x, self.mean.flatten(), self.std.flatten()).to(dtype)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        v = self.model.visual
        x = v.conv1(self.preprocess(image))
        x = x.flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.ln_pre(x)
        return v.transformer(x)


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x, latents):
        x = self.norm1(x)
        latents = self.norm2(latents)
        b, n, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.view(b, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class Resampler(nn.Module):
    """Perceiver resampler: image tokens -> ``num_queries`` tokens per frame (``video_length``)."""

    def __init__(self, cfg: ResamplerConfig):
        super().__init__()
        n = cfg.num_queries * (cfg.video_length or 1)
        self.latents = nn.Parameter(torch.randn(1, n, cfg.dim) / cfg.dim**0.5)
        self.proj_in = nn.Linear(cfg.embedding_dim, cfg.dim)
        self.proj_out = nn.Linear(cfg.dim, cfg.output_dim)
        self.norm_out = nn.LayerNorm(cfg.output_dim)
        inner = int(cfg.dim * cfg.ff_mult)
        self.layers = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        PerceiverAttention(cfg.dim, cfg.dim_head, cfg.heads),
                        nn.Sequential(
                            nn.LayerNorm(cfg.dim),
                            nn.Linear(cfg.dim, inner, bias=False),
                            nn.GELU(),
                            nn.Linear(inner, cfg.dim, bias=False),
                        ),
                    ]
                )
                for _ in range(cfg.depth)
            ]
        )

    def forward(self, x):
        latents = self.latents.expand(x.shape[0], -1, -1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))


def load_tokenizer(name: str = TOKENIZER, option: str = "--prompt"):
    """The CLIP tokenizer (Hub id or local folder); unavailable: one line at once, no retries."""
    from ..core.errors import RealcamError
    from ..core.hub import download_command, hub_model_available

    hint = " (--negative-prompt '' uses the empty prompt, which needs none)" if option == "--negative-prompt" else ""
    ok, reason = hub_model_available(name, marker="vocab.json")
    if not ok:
        raise RealcamError(
            f"the tokenizer {name} is unavailable ({reason}; when online: "
            f"{download_command(name)}); a prompt needs it{hint}",
            option,
        )
    try:
        return _tokenizer(name)
    except Exception as exc:
        raise RealcamError(
            f"cannot load the tokenizer {name} ({type(exc).__name__}); a prompt needs it{hint}", option
        ) from None


@functools.lru_cache(maxsize=4)
def _tokenizer(name: str):
    """One CLIPTokenizer per name (the prompt and the negative prompt share it)."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(name)
