"""ReCamMaster on Wan2.1 (docs/method.md#recammaster): diffusers' ``WanTransformer3DModel`` with a
camera encoder and a projector in every block, conditioned on the source video along frames.

Per block (the official ``DiTBlock`` of ReCamMaster, mapped onto diffusers' block order):

    input_x = modulate(norm1(x), shift_msa, scale_msa) + cam_encoder(camera)   # per latent frame
    x = x + gate_msa * projector(self_attn(input_x))
    (cross-attention and the FFN unchanged)

``cam_encoder = Linear(12, dim)`` starts at zero and ``projector = Linear(dim, dim)`` at the
identity, so a freshly attached model computes exactly what the base model does. The camera term
is added by a forward pre-hook on ``blocks[i].attn1`` and the projector applied by a forward hook
on it; both modules are submodules of the block, so the state dict holds
``blocks.{i}.cam_encoder.{weight,bias}`` and ``blocks.{i}.projector.{weight,bias}`` as the
released checkpoint does.

Frame-dimension conditioning: the noisy target latents and the clean source latents are
concatenated along frames (``[target, source]``); RoPE positions run over the doubled frame count
(diffusers derives them from the input's shape); one timestep for all tokens; the camera of target
latent frame ``j`` is added to both target frame ``j`` and source frame ``j``; only the target half
of the output is returned.

Checkpoint names: the released ``step20000.ckpt`` uses Wan's original key names; diffusers' own
converter (:func:`diffusers.loaders.single_file_utils.convert_wan_transformer_to_diffusers`) maps
them onto diffusers' and :func:`diffusers_to_original` maps back. Loading is strict: a missing,
unexpected or misshapen key fails with its name.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..core.errors import RealcamError

CAMERA_DIM = 12  # a 3x4 relative pose, row-major
#: The released ReCamMaster weights (Hugging Face repository, file).
RELEASED = ("KwaiVGI/ReCamMaster-Wan2.1", "step20000.ckpt")
#: The base model whose config, VAE, text encoder and tokenizer ReCamMaster uses.
BASE = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
CAMERA_MODULES = ("cam_encoder", "projector")


class ReCamMaster(nn.Module):
    """A ``WanTransformer3DModel`` with ReCamMaster's camera modules attached (in place)."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer
        cfg = transformer.config
        self.dim = cfg.num_attention_heads * cfg.attention_head_dim
        self.patch_size = tuple(cfg.patch_size)
        self._camera: torch.Tensor | None = None
        for block in transformer.blocks:
            if not hasattr(block, "cam_encoder"):
                param = next(block.parameters())
                block.cam_encoder = nn.Linear(CAMERA_DIM, self.dim).to(param.device, param.dtype)
                block.projector = nn.Linear(self.dim, self.dim).to(param.device, param.dtype)
                reset_camera_modules(block)
            block.attn1.register_forward_pre_hook(self._add_camera(block), with_kwargs=True)
            block.attn1.register_forward_hook(self._project(block))

    @property
    def config(self):
        return self.transformer.config

    def _add_camera(self, block):
        def hook(attn, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            cam = self._camera
            if cam is None:
                raise RealcamError("ReCamMaster needs a camera: call the model with camera=", "model")
            emb = block.cam_encoder(cam.to(x.dtype))  # (B, f, dim)
            emb = torch.cat([emb, emb], dim=1)  # source latent frame j gets target pose j
            b, n, d = x.shape
            x = (x.view(b, emb.shape[1], n // emb.shape[1], d) + emb.unsqueeze(2)).view(b, n, d)
            if args:
                return (x, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": x}

        return hook

    def _project(self, block):
        def hook(attn, args, output):
            return block.projector(output)

        return hook

    def forward(
        self,
        latents: torch.Tensor,
        source: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        camera: torch.Tensor,
    ) -> torch.Tensor:
        """Velocity of the target half: ``latents`` (noisy target) and ``source`` (clean)
        ``(B, C, f, h, w)``, ``timestep`` ``(B,)`` (``sigma * 1000``), ``text`` ``(B, L, text_dim)``,
        ``camera`` ``(B, f, 12)`` (target poses relative to the reference, per latent frame)."""
        if latents.shape != source.shape:
            raise RealcamError(
                f"target latents {tuple(latents.shape)} and source {tuple(source.shape)} differ", "model"
            )
        f = latents.shape[2]
        if camera.shape[-2:] != (f, CAMERA_DIM):
            raise RealcamError(
                f"camera must be (B, {f}, {CAMERA_DIM}) for {f} latent frames, got {tuple(camera.shape)}"
            )
        pt, ph, pw = self.patch_size
        if f % pt or latents.shape[3] % ph or latents.shape[4] % pw:
            raise RealcamError(
                f"latent size {tuple(latents.shape[2:])} is not a multiple of the patch {self.patch_size}"
            )
        # kept after the call: gradient checkpointing recomputes the blocks during backward
        self._camera = camera
        x = torch.cat([latents, source], dim=2)
        out = self.transformer(x, timestep, text, return_dict=False)[0]
        return out[:, :, :f]


def reset_camera_modules(block: nn.Module) -> None:
    """The initial values: ``cam_encoder`` zero, ``projector`` identity (bias zero)."""
    with torch.no_grad():
        block.cam_encoder.weight.zero_()
        block.cam_encoder.bias.zero_()
        block.projector.weight.copy_(torch.eye(block.projector.weight.shape[0]))
        block.projector.bias.zero_()


def trainable_parameters(model: ReCamMaster) -> list[str]:
    """Names (diffusers' form) of the parameters ReCamMaster trains: the camera modules and the
    self-attention (``self_attn`` in the original names, ``attn1`` here)."""
    return [
        name
        for name, _ in model.transformer.named_parameters()
        if any(part in name for part in (*CAMERA_MODULES, ".attn1."))
    ]


# ----------------------------------------------------------------------------------------------
# Key names: Wan's original <-> diffusers
# ----------------------------------------------------------------------------------------------
def original_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original Wan (and ReCamMaster) names -> diffusers', by diffusers' own converter."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    return convert_wan_transformer_to_diffusers(dict(state))


#: diffusers -> original, applied in order to each key (the inverse of diffusers' converter for the
#: text-to-video model; the block-level ``scale_shift_table`` is handled apart from the head's).
_TO_ORIGINAL = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("attn1.", "self_attn."),
    ("attn2.", "cross_attn."),
    (".to_out.0.", ".o."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
    ("proj_out", "head.head"),
    ("norm2", "norm__swap"),
    ("norm3", "norm2"),
    ("norm__swap", "norm3"),
)


def diffusers_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers names -> Wan's original ones (what ReCamMaster's ``step20000.ckpt`` holds)."""
    out = {}
    for key, value in state.items():
        new = key
        if new == "scale_shift_table":
            new = "head.modulation"
        new = re.sub(r"^(blocks\.\d+\.)scale_shift_table$", r"\1modulation", new)
        for a, b in _TO_ORIGINAL:
            new = new.replace(a, b)
        out[new] = value
    return out


def original_name(key: str) -> str:
    """A diffusers key's name in the original (checkpoint) form."""
    return next(iter(diffusers_to_original({key: None})))


def name_list(keys, limit: int = 6) -> str:
    """The first ``limit`` names, sorted, then how many more (a tied tensor has two model names
    but one in the file: each name once)."""
    keys = sorted(set(keys))
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_state_keys(state: dict, own: dict, path, to_file_name) -> None:
    """A state dict that loads strictly into a model whose own state is ``own``; else one error
    naming the unexpected, missing or misshapen keys as the file spells them (``to_file_name``)."""
    unexpected = [to_file_name(k) for k in state if k not in own]
    missing = [to_file_name(k) for k in own if k not in state]
    if unexpected:
        raise RealcamError(f"unexpected keys (not in the model): {name_list(unexpected)}", path)
    if missing:
        raise RealcamError(f"missing keys: {name_list(missing)}", path)
    bad = [
        f"{to_file_name(k)} {tuple(v.shape)} (model {tuple(own[k].shape)})"
        for k, v in state.items()
        if v.shape != own[k].shape
    ]
    if bad:
        raise RealcamError(f"misshapen keys: {name_list(bad, 3)}", path)


def load_transformer_weights(model: ReCamMaster, path: str | Path, state: dict | None = None) -> int:
    """Load a ReCamMaster checkpoint (original names) strictly; returns the tensors loaded.
    A missing, unexpected or misshapen key stops the load naming the key (in the file's names)."""
    from .checkpoint import read_state_dict

    raw = state if state is not None else read_state_dict(path)
    converted = original_to_diffusers(raw)
    own = model.transformer.state_dict()
    check_state_keys(converted, own, path, original_name)
    model.transformer.load_state_dict(converted, strict=True, assign=own[next(iter(own))].is_meta)
    return len(converted)
