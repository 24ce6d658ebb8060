"""The DynamiCrafter 3D UNet, with parameter names matching ``model.diffusion_model.*`` of the
official checkpoints, and the RealCam-I2V camera hooks in its temporal transformers.

Layout facts (public DynamiCrafter ``lvdm`` code): frames are folded into the batch, ``(b t) c h w``,
everywhere except in the temporal convolution and temporal transformers; a spatial transformer
does self-attention, text cross-attention and (decoupled) image cross-attention with a scale
``tanh(alpha) + 1`` when learnable; temporal transformers attend over frames per pixel.
The camera features are added to the temporal blocks' main branch (``add_to_main_branch``):
``x = pluker_projection(n + f) + epipolar(n + f) + attn1(n) + x`` with ``n = norm1(x)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .configs import CameraConfig, UNetConfig
from .layers import FeedForward, attention, maybe_checkpoint, normalization, zero_module


# ----------------------------------------------------------------------------------------------
# Small pieces
# ----------------------------------------------------------------------------------------------
def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t f), sin(t f)]``, ``f = exp(-ln(max_period) k / half)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class CrossAttention(nn.Module):
    def __init__(
        self,
        query_dim,
        context_dim=None,
        heads=8,
        dim_head=64,
        dropout=0.0,
        image_cross_attention=False,
        scale_learnable=False,
        text_context_len=77,
    ):
        super().__init__()
        inner = heads * dim_head
        self.context_dim = context_dim
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))
        self.image_cross_attention = image_cross_attention
        self.scale_learnable = scale_learnable
        self.text_context_len = text_context_len
        if image_cross_attention:
            self.to_k_ip = nn.Linear(context_dim, inner, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner, bias=False)
            if scale_learnable:
                self.alpha = nn.Parameter(torch.tensor(0.0))

    def forward(self, x, context=None):
        q = self.to_q(x)
        if context is None:  # self-attention
            return self.to_out(attention(q, self.to_k(x), self.to_v(x), self.heads))
        text = context[:, : self.text_context_len]
        out = attention(q, self.to_k(text), self.to_v(text), self.heads)
        if self.image_cross_attention:
            image = context[:, self.text_context_len :]
            out_ip = attention(q, self.to_k_ip(image), self.to_v_ip(image), self.heads)
            if self.scale_learnable:
                out_ip = out_ip * (torch.tanh(self.alpha) + 1)
            out = out + out_ip
        return self.to_out(out)


class BasicTransformerBlock(nn.Module):
    def __init__(
        self,
        dim,
        n_heads,
        d_head,
        dropout=0.0,
        context_dim=None,
        temporal=False,
        image_cross_attention=False,
        scale_learnable=False,
        text_context_len=77,
    ):
        super().__init__()
        self.temporal = temporal
        self.attn1 = CrossAttention(dim, None, n_heads, d_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = CrossAttention(
            dim,
            None if temporal else context_dim,
            n_heads,
            d_head,
            dropout,
            image_cross_attention=image_cross_attention and not temporal,
            scale_learnable=scale_learnable,
            text_context_len=text_context_len,
        )
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.use_checkpoint = False

    def forward(self, x, context=None, camera=None):
        return maybe_checkpoint(self._forward, self.use_checkpoint, x, context, camera)

    def _forward(self, x, context=None, camera=None):
        n = self.norm1(x)
        h = self.attn1(n)
        if camera is not None:
            feature = camera.get("feature")
            inp = n if feature is None else n + feature
            extra = torch.zeros_like(n)
            if feature is not None and hasattr(self, "pluker_projection"):
                extra = extra + self.pluker_projection(inp)
            if hasattr(self, "epipolar"):
                extra = extra + self.epipolar(inp, camera)
            h = extra + h
        x = h + x
        x = self.attn2(self.norm2(x), context=None if self.temporal else context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(
        self,
        channels,
        n_heads,
        d_head,
        depth=1,
        dropout=0.0,
        context_dim=None,
        use_linear=True,
        image_cross_attention=False,
        scale_learnable=False,
        text_context_len=77,
    ):
        super().__init__()
        inner = n_heads * d_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if use_linear else nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [
                BasicTransformerBlock(
                    inner,
                    n_heads,
                    d_head,
                    dropout,
                    context_dim,
                    image_cross_attention=image_cross_attention,
                    scale_learnable=scale_learnable,
                    text_context_len=text_context_len,
                )
                for _ in range(depth)
            ]
        )
        self.proj_out = zero_module(nn.Linear(inner, channels) if use_linear else nn.Conv2d(inner, channels, 1))

    def forward(self, x, context=None):
        b, c, h, w = x.shape
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = rearrange(x, "b c h w -> b (h w) c")
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context=context)
        if self.use_linear:
            x = self.proj_out(x)
        x = rearrange(x, "b (h w) c -> b c h w", h=h, w=w)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in


class TemporalTransformer(nn.Module):
    """Self-attention over frames at each pixel; input and output ``b c t h w``."""

    def __init__(self, channels, n_heads, d_head, depth=1, dropout=0.0, use_linear=True, camera_hooks=True):
        super().__init__()
        inner = n_heads * d_head
        self.use_linear = use_linear
        self.camera_hooks = camera_hooks  # False for the UNet's extra ``init_attn``
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if use_linear else nn.Conv1d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, n_heads, d_head, dropout, temporal=True) for _ in range(depth)]
        )
        self.proj_out = zero_module(nn.Linear(inner, channels) if use_linear else nn.Conv1d(inner, channels, 1))

    def forward(self, x, camera=None):
        b, c, t, h, w = x.shape
        x_in = x
        x = rearrange(self.norm(x), "b c t h w -> (b h w) c t")
        if not self.use_linear:
            x = self.proj_in(x)
        x = rearrange(x, "n c t -> n t c")
        if self.use_linear:
            x = self.proj_in(x)
        cam = {**camera, "h": h, "w": w} if (camera is not None and self.camera_hooks) else None
        for block in self.transformer_blocks:
            x = block(x, camera=cam)
        if self.use_linear:
            x = self.proj_out(x)
            x = rearrange(x, "(b h w) t c -> b c t h w", b=b, h=h, w=w)
        else:
            x = self.proj_out(rearrange(x, "n t c -> n c t"))
            x = rearrange(x, "(b h w) c t -> b c t h w", b=b, h=h, w=w)
        return x + x_in


# ----------------------------------------------------------------------------------------------
# Convolutional blocks
# ----------------------------------------------------------------------------------------------
class TemporalConvBlock(nn.Module):
    def __init__(self, channels, dropout=0.1):
        super().__init__()
        k, p = (3, 1, 1), (1, 0, 0)
        self.conv1 = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Conv3d(channels, channels, k, padding=p))
        self.conv2 = nn.Sequential(
            nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(dropout), nn.Conv3d(channels, channels, k, padding=p)
        )
        self.conv3 = nn.Sequential(
            nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(dropout), nn.Conv3d(channels, channels, k, padding=p)
        )
        self.conv4 = nn.Sequential(
            nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(dropout), nn.Conv3d(channels, channels, k, padding=p)
        )
        zero_module(self.conv4[-1])

    def forward(self, x):
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(nn.Module):
    def __init__(self, channels, emb_channels, dropout, out_channels=None, temporal_conv=False):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            normalization(out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        if temporal_conv:
            # (sic) the official parameter name is misspelt
            self.temopral_conv = TemporalConvBlock(out_channels, dropout=0.1)
        self.use_checkpoint = False

    def forward(self, x, emb, batch_size):
        return maybe_checkpoint(self._forward, self.use_checkpoint, x, emb, batch_size)

    def _forward(self, x, emb, batch_size):
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[..., None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        if hasattr(self, "temopral_conv"):
            h = rearrange(h, "(b t) c h w -> b c t h w", b=batch_size)
            h = self.temopral_conv(h)
            h = rearrange(h, "b c t h w -> (b t) c h w")
        return h


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    def forward(self, x, emb, context=None, batch_size=None, camera=None):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, batch_size)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                x = rearrange(x, "(b t) c h w -> b c t h w", b=batch_size)
                x = layer(x, camera=camera)
                x = rearrange(x, "b c t h w -> (b t) c h w")
            else:
                x = layer(x)
        return x


# ----------------------------------------------------------------------------------------------
# The UNet
# ----------------------------------------------------------------------------------------------
class UNet3D(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        mc = cfg.model_channels
        ted = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        if cfg.fs_condition:
            self.fps_embedding = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
            zero_module(self.fps_embedding[-1])

        def spatial(ch):
            heads = ch // cfg.num_head_channels
            return SpatialTransformer(
                ch,
                heads,
                cfg.num_head_channels,
                cfg.transformer_depth,
                context_dim=cfg.context_dim,
                use_linear=cfg.use_linear,
                image_cross_attention=cfg.image_cross_attention,
                scale_learnable=cfg.image_cross_attention_scale_learnable,
                text_context_len=cfg.text_context_len,
            )

        def temporal(ch):
            heads = ch // cfg.num_head_channels
            return TemporalTransformer(
                ch, heads, cfg.num_head_channels, cfg.transformer_depth, use_linear=cfg.use_linear
            )

        def res(ch, out):
            return ResBlock(ch, ted, cfg.dropout, out, temporal_conv=cfg.temporal_conv)

        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        if cfg.addition_attention:
            self.init_attn = TimestepEmbedSequential(
                TemporalTransformer(
                    mc,
                    cfg.init_attn_heads,
                    cfg.num_head_channels,
                    cfg.transformer_depth,
                    use_linear=False,
                    camera_hooks=False,
                )
            )
        chans, ch, ds = [mc], mc, 1
        self.input_ds, self.output_ds = [1], []
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(spatial(ch))
                    if cfg.temporal_attention:
                        layers.append(temporal(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                self.input_ds.append(ds)
                chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                self.input_ds.append(ds)
                chans.append(ch)
                ds *= 2
        middle = [res(ch, ch), spatial(ch)]
        if cfg.temporal_attention:
            middle.append(temporal(ch))
        middle.append(res(ch, ch))
        self.middle_block = TimestepEmbedSequential(*middle)
        self.middle_ds = ds
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + chans.pop(), mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(spatial(ch))
                    if cfg.temporal_attention:
                        layers.append(temporal(ch))
                self.output_ds.append(ds)
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), zero_module(nn.Conv2d(mc, cfg.out_channels, 3, padding=1))
        )
        self.set_gradient_checkpointing(cfg.use_checkpoint)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        for m in self.modules():
            if isinstance(m, (ResBlock, BasicTransformerBlock)):
                m.use_checkpoint = enabled

    def temporal_blocks(self):
        """(name, block) of the temporal transformer blocks that carry camera modules."""
        for name, module in self.named_modules():
            if isinstance(module, TemporalTransformer) and module.camera_hooks:
                for i, block in enumerate(module.transformer_blocks):
                    yield f"{name}.transformer_blocks.{i}", block

    def add_camera_modules(self, cam: CameraConfig, pose_encoder: bool = True) -> None:
        """Attach zero-initialised ``pluker_projection`` and (optionally) ``epipolar`` modules."""
        from .camera import Epipolar

        for _, block in self.temporal_blocks():
            dim = block.attn1.to_q.in_features
            if pose_encoder:
                block.pluker_projection = zero_module(nn.Linear(dim, dim))
            if cam.epipolar:
                block.epipolar = Epipolar(dim, block.attn1.heads, cam.num_register_tokens)

    def forward(self, x, timesteps, context, fs=None, camera=None):
        """``x (B, C, T, h, w)``, ``timesteps (B,)``, ``context (B, L, D)`` (77 text tokens, then
        image tokens: per frame when ``L == 77 + T * image_tokens_per_frame``); ``camera`` a dict
        with ``features`` (list of ``(B, C_l, T, h_l, w_l)`` per level) and ``masks`` (dict
        downsample -> ``(B, T h w, T h w)`` bool) as made by :class:`CameraConditioner`."""
        cfg = self.cfg
        b, _, t, _, _ = x.shape
        emb = self.time_embed(timestep_embedding(timesteps, cfg.model_channels).type(x.dtype))
        n_text = cfg.text_context_len
        if context.shape[1] == n_text + t * cfg.image_tokens_per_frame:
            text = context[:, :n_text].repeat_interleave(t, dim=0)
            image = rearrange(context[:, n_text:], "b (t l) c -> (b t) l c", t=t)
            context = torch.cat([text, image], dim=1)
        else:
            context = context.repeat_interleave(t, dim=0)
        emb = emb.repeat_interleave(t, dim=0)
        if cfg.fs_condition:
            if fs is None:
                fs = torch.full((b,), cfg.default_fs, dtype=torch.long, device=x.device)
            fs_emb = self.fps_embedding(
                timestep_embedding(torch.as_tensor(fs, device=x.device).reshape(b), cfg.model_channels).type(x.dtype)
            )
            emb = emb + fs_emb.repeat_interleave(t, dim=0)
        h = rearrange(x, "b c t h w -> (b t) c h w")

        def cam_at(ds):
            if camera is None or (ds not in cfg.attention_resolutions and ds != self.middle_ds):
                return None
            feats = camera.get("features")
            level = int(math.log2(ds))
            feature = None
            if feats is not None:
                feature = feats[-1] if ds == self.middle_ds else feats[level]
                feature = rearrange(feature, "b c f h w -> (b h w) f c")
            return {"feature": feature, "masks": camera.get("masks"), "ds": ds, "batch": b}

        hs = []
        for i, module in enumerate(self.input_blocks):
            h = module(h, emb, context, b, camera=cam_at(self.input_ds[i]))
            if i == 0 and cfg.addition_attention:
                h = self.init_attn(h, emb, context, b)
            hs.append(h)
        h = self.middle_block(h, emb, context, b, camera=cam_at(self.middle_ds))
        for i, module in enumerate(self.output_blocks):
            h = torch.cat([h, hs.pop()], dim=1)
            h = module(h, emb, context, b, camera=cam_at(self.output_ds[i]))
        y = self.out(h)
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)
