"""Tiny randomly initialised Wan2.1 parts in the Diffusers layout (``transformer/``, ``vae/``,
``text_encoder/``, ``tokenizer/``): what the tests and ``make demo`` run ReCamMaster on, offline.
The real loading code (``from_pretrained`` on a folder) runs on them exactly as on
``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``; only the sizes differ (and nothing they produce means
anything before training)."""

from __future__ import annotations

from pathlib import Path

import torch

#: 2 blocks of 2 heads of 12 (RoPE splits 12 into 4 + 4 + 4), text width 16, latent channels 4.
TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=4,
    out_channels=4,
    text_dim=16,
    freq_dim=16,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=64,
)
WORDS = "a the video of room kitchen camera moves slowly bright dark people walking street car tree sky".split()


def tiny_transformer(seed: int = 0):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    model = WanTransformer3DModel(**TRANSFORMER)
    with torch.no_grad():  # diffusers zero-initialises nothing here, but make every output non-trivial
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    return model.eval()


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    z = TRANSFORMER["in_channels"]
    return AutoencoderKLWan(
        base_dim=8,
        z_dim=z,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        latents_mean=[0.1 * i for i in range(z)],
        latents_std=[1.0 + 0.5 * i for i in range(z)],
    ).eval()


def tiny_text_encoder(seed: int = 0):
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    cfg = UMT5Config(vocab_size=len(WORDS) + 8, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, pad_token_id=0)
    return UMT5EncoderModel(cfg).eval()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in WORDS:
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def save_tiny_base(folder: Path, seed: int = 0) -> Path:
    """A Diffusers-layout base folder (what ``--base`` takes) with tiny random parts."""
    folder = Path(folder)
    tiny_transformer(seed).save_pretrained(folder / "transformer")
    tiny_vae(seed).save_pretrained(folder / "vae")
    tiny_text_encoder(seed).save_pretrained(folder / "text_encoder")
    tiny_tokenizer().save_pretrained(folder / "tokenizer")
    return folder
