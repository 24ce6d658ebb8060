"""Camera control on Wan2.1 by a Plücker patchify layer (CameraCtrl II's design on diffusers'
``WanTransformer3DModel``): the Plücker embedding (docs/method.md#plucker-embedding) of every
video frame, packed onto the VAE's latent grid, goes through one extra patchify layer whose
tokens are added to the video tokens right after the DiT's own patch embedding.

**Packing** (:func:`pack_plucker`). The Wan VAE is causal in time: latent frame 0 encodes frame 0
alone and latent frame ``j >= 1`` encodes frames ``4j - 3 .. 4j`` (81 frames -> 21 latent frames).
The pixel-resolution embedding ``(B, F, 6, H, W)``, ``F = 4 (f - 1) + 1``, is packed as VideoX-Fun's
``Wan2.1-Fun-V1.1-*-Control-Camera`` pipelines do: frame 0 repeated 4 times, then the frames taken
4 at a time and stacked into channels (24 per latent frame, Plücker channel major, frame minor),
then ``PixelUnshuffle(8)`` on every latent frame. The result is ``(B, 6 * 4 * 64, f, H/8, W/8)``
and its channel ``c`` at latent cell ``(j, y, x)`` is::

    c = ((p * temporal + t) * spatial + dy) * spatial + dx
    value = plucker[b, frame, p, y * spatial + dy, x * spatial + dx]
    frame = 0 if j == 0 else temporal * (j - 1) + 1 + t

with ``p`` the Plücker channel (0-2 the moment ``o x d``, 3-5 the direction ``d``), ``t`` the frame
within its group, ``dy, dx`` the offsets inside the ``spatial x spatial`` cell. ``temporal`` (4)
and ``spatial`` (8) are parameters so that other VAEs (and the tiny test parts) fit. CameraCtrl II
instead samples one camera every 4 frames; packing all frames keeps every frame's camera and costs
nothing but input channels of a layer that is applied once.

**The layer** (:class:`CameraPatchify`): a ``Conv3d`` shaped like the DiT's ``patch_embedding``
(kernel = stride = the patch size, ``(1, 2, 2)`` for Wan2.1) from the packed channels to the
DiT's width, weight and bias **zero at the start**, so a freshly attached model computes exactly
what the base model does. It is attached to the transformer itself as ``camera_patchify``: the
transformer's state dict keeps every base name and gains ``camera_patchify.{weight,bias}``
(:func:`camera_state_dict` returns just those). VideoX-Fun's adapter puts a 2x2 ``Conv2d`` and a
residual block after the unshuffle; CameraCtrl II has one patchify layer and nothing else, which
is what this is (the ``Conv3d`` with a time kernel of 1 is a per-frame 2x2 ``Conv2d``).

**Unlabelled clips.** CameraCtrl II trains on clips without cameras by feeding a zero Plücker
embedding. Here ``None``, an all-zero embedding and ``labelled=False`` all mean an unlabelled
sample, and an unlabelled sample gets **no** camera tokens, not even the layer's bias: its output is
exactly the DiT's without the adapter, whatever the layer has learnt. (A zero input through the
layer would add its bias; dropping it makes the three spellings one, and makes the camera-free
branch of camera guidance the plain DiT.) A labelled embedding is never all zero (its direction
channels are unit vectors), so the test is unambiguous.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.constants import WAN_SPATIAL_STRIDE, WAN_TEMPORAL_STRIDE
from ..core.errors import RealcamError
from ..core.plucker import plucker_embedding

PLUCKER_CHANNELS = 6
#: The prefix of the new parameters in the transformer's state dict.
PREFIX = "camera_patchify"


def packed_channels(temporal: int = WAN_TEMPORAL_STRIDE, spatial: int = WAN_SPATIAL_STRIDE) -> int:
    """Channels of a packed Plücker embedding: ``6 * temporal * spatial**2`` (1536 for Wan2.1)."""
    return PLUCKER_CHANNELS * temporal * spatial * spatial


def latent_frames(frames: int, temporal: int = WAN_TEMPORAL_STRIDE) -> int:
    """Latent frames of ``frames = temporal * (f - 1) + 1`` video frames; any other count fails."""
    if frames < 1 or (frames - 1) % temporal:
        raise RealcamError(
            f"{frames} frames: the causal VAE needs {temporal}k+1 frames (1, {temporal + 1}, {2 * temporal + 1}, ...)",
            "camera",
        )
    return (frames - 1) // temporal + 1


def pack_plucker(
    plucker: torch.Tensor, temporal: int = WAN_TEMPORAL_STRIDE, spatial: int = WAN_SPATIAL_STRIDE
) -> torch.Tensor:
    """``(B, F, 6, H, W)`` pixel-resolution Plücker embedding -> ``(B, 6 * temporal * spatial**2,
    f, H / spatial, W / spatial)`` on the latent grid (the channel order of the module docstring).

    ``F`` must be ``temporal * (f - 1) + 1`` and ``H``, ``W`` multiples of ``spatial``."""
    if temporal < 1 or spatial < 1:
        raise RealcamError(f"strides must be positive, got temporal {temporal} and spatial {spatial}", "camera")
    if plucker.dim() != 5 or plucker.shape[2] != PLUCKER_CHANNELS:
        raise RealcamError(f"a Plücker video must be (B, F, 6, H, W), got {tuple(plucker.shape)}", "camera")
    b, frames, c, height, width = plucker.shape
    f = latent_frames(frames, temporal)
    if height % spatial or width % spatial:
        raise RealcamError(f"size {height}x{width} is not a multiple of the latent stride {spatial}", "camera")
    # frame 0 repeated `temporal` times, then the groups of `temporal` frames: (B, f, temporal, 6, H, W)
    x = torch.cat([plucker[:, :1].expand(b, temporal, c, height, width), plucker[:, 1:]], dim=1)
    x = x.reshape(b, f, temporal, c, height, width).transpose(2, 3)  # (B, f, 6, temporal, H, W)
    x = x.reshape(b * f, c * temporal, height, width)  # channel p * temporal + t
    x = F.pixel_unshuffle(x, spatial)  # channel (p * temporal + t) * spatial**2 + dy * spatial + dx
    x = x.reshape(b, f, -1, height // spatial, width // spatial)
    return x.transpose(1, 2).contiguous()


def camera_input(
    k: torch.Tensor,
    c2w: torch.Tensor,
    height: int,
    width: int,
    labelled: torch.Tensor | None = None,
    temporal: int = WAN_TEMPORAL_STRIDE,
    spatial: int = WAN_SPATIAL_STRIDE,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The packed camera input of a batch: pixel intrinsics ``k (B, F, 3, 3)`` and camera-to-world
    poses ``c2w (B, F, 4, 4)`` (relative ones: reference frame = identity) for ``height x width``
    frames -> :func:`pack_plucker` of their Plücker embedding, computed in float32 at least and
    cast to ``dtype``; ``labelled (B,)`` bool zeroes the samples that are ``False``."""
    if k.dim() != 4 or k.shape[-2:] != (3, 3) or c2w.dim() != 4 or c2w.shape[-2:] != (4, 4):
        raise RealcamError(f"k must be (B, F, 3, 3) and c2w (B, F, 4, 4), got {tuple(k.shape)}, {tuple(c2w.shape)}")
    if k.shape[:2] != c2w.shape[:2]:
        raise RealcamError(f"k {tuple(k.shape)} and c2w {tuple(c2w.shape)} differ in batch or frames", "camera")
    latent_frames(k.shape[1], temporal)  # the frame count fails before any work
    work = torch.promote_types(torch.promote_types(k.dtype, c2w.dtype), torch.float32)
    with torch.autocast(device_type=k.device.type, enabled=False):  # geometry in float32 at least
        emb = plucker_embedding(k.to(work), c2w.to(work), height, width)  # (B, F, 6, H, W)
    packed = pack_plucker(emb, temporal, spatial)
    packed = mask_unlabelled(packed, labelled)
    return packed if dtype is None else packed.to(dtype)


def mask_unlabelled(packed: torch.Tensor, labelled: torch.Tensor | None) -> torch.Tensor:
    """``packed`` with the samples whose ``labelled`` is ``False`` set to zero (``None``: as is)."""
    if labelled is None:
        return packed
    labelled = torch.as_tensor(labelled, device=packed.device).reshape(-1)
    if labelled.shape[0] != packed.shape[0]:
        raise RealcamError(f"labelled has {labelled.shape[0]} values for a batch of {packed.shape[0]}", "camera")
    keep = labelled.bool().view(-1, *([1] * (packed.dim() - 1)))
    return torch.where(keep, packed, torch.zeros((), device=packed.device, dtype=packed.dtype))


def has_camera(packed: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: the samples whose packed embedding is not all zero (the labelled ones)."""
    return packed.flatten(1).ne(0).any(dim=1)


class CameraPatchify(nn.Conv3d):
    """The camera patchify layer: packed Plücker ``(B, C_in, f, h, w)`` -> tokens
    ``(B, dim, f / pt, h / ph, w / pw)`` on the grid of the DiT's ``patch_embedding``
    (kernel = stride = ``patch_size``), weight and bias zero at the start."""

    def __init__(self, in_channels: int, dim: int, patch_size: tuple[int, int, int]):
        patch_size = tuple(int(p) for p in patch_size)
        super().__init__(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.reset()

    def reset(self) -> None:
        """The initial values: weight and bias zero."""
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()


class WanCamera(nn.Module):
    """A ``WanTransformer3DModel`` with a camera patchify layer attached (in place, as
    ``transformer.camera_patchify``); its tokens are added to the output of
    ``transformer.patch_embedding`` by a forward hook, for the call in progress only."""

    def __init__(self, transformer: nn.Module, temporal: int = WAN_TEMPORAL_STRIDE, spatial: int = WAN_SPATIAL_STRIDE):
        super().__init__()
        self.transformer = transformer
        cfg = transformer.config
        self.dim = cfg.num_attention_heads * cfg.attention_head_dim
        self.patch_size = tuple(cfg.patch_size)
        self.temporal = temporal
        self.spatial = spatial
        channels = packed_channels(temporal, spatial)
        layer = getattr(transformer, PREFIX, None)
        if layer is None:
            param = transformer.patch_embedding.weight
            layer = CameraPatchify(channels, self.dim, self.patch_size).to(param.device, param.dtype)
            setattr(transformer, PREFIX, layer)
        elif layer.in_channels != channels:
            raise RealcamError(
                f"the attached camera layer takes {layer.in_channels} channels, not {channels} "
                f"(temporal {temporal}, spatial {spatial})",
                "model",
            )
        self._tokens: torch.Tensor | None = None
        # one hook per transformer: wrapping it again replaces the previous wrapper's
        old = getattr(transformer, "_camera_hook", None)
        if old is not None:
            old.remove()
        transformer._camera_hook = transformer.patch_embedding.register_forward_hook(self._add_camera)

    @property
    def config(self):
        return self.transformer.config

    @property
    def camera_patchify(self) -> CameraPatchify:
        return getattr(self.transformer, PREFIX)

    def _add_camera(self, module, args, output):
        tokens = self._tokens
        if tokens is None:
            return output
        if tokens.shape != output.shape:
            raise RealcamError(
                f"camera tokens {tuple(tokens.shape)} do not match the video tokens {tuple(output.shape)}", "model"
            )
        return output + tokens.to(output.dtype)

    def camera_input(
        self, k: torch.Tensor, c2w: torch.Tensor, height: int, width: int, labelled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:func:`camera_input` with this model's strides, in the camera layer's dtype."""
        return camera_input(
            k, c2w, height, width, labelled, self.temporal, self.spatial, dtype=self.camera_patchify.weight.dtype
        )

    def camera_tokens(
        self, plucker_packed: torch.Tensor | None, labelled: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """The tokens added to the video tokens ``(B, dim, f', h', w')``, zero for the unlabelled
        samples (``labelled`` False or an all-zero embedding); ``None`` when no sample has a camera."""
        if plucker_packed is None:
            return None
        layer = self.camera_patchify
        packed = mask_unlabelled(plucker_packed, labelled)
        keep = has_camera(packed)
        if not bool(keep.any()):
            return None
        tokens = layer(packed.to(layer.weight.dtype))
        keep = keep.view(-1, *([1] * (tokens.dim() - 1)))
        return torch.where(keep, tokens, torch.zeros((), device=tokens.device, dtype=tokens.dtype))

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        plucker_packed: torch.Tensor | None = None,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Velocity ``(B, C, f, h, w)`` of noisy ``latents`` at ``timestep (B,)`` (``sigma * 1000``)
        with ``text (B, L, text_dim)`` and the camera ``plucker_packed (B, C_cam, f, h, w)`` (from
        :meth:`camera_input`; ``None`` = no camera for any sample)."""
        pt, ph, pw = self.patch_size
        if latents.dim() != 5 or latents.shape[2] % pt or latents.shape[3] % ph or latents.shape[4] % pw:
            raise RealcamError(
                f"latent size {tuple(latents.shape[2:])} is not a multiple of the patch {self.patch_size}", "model"
            )
        if plucker_packed is not None:
            want = (latents.shape[0], self.camera_patchify.in_channels, *latents.shape[2:])
            if tuple(plucker_packed.shape) != want:
                raise RealcamError(
                    f"camera input {tuple(plucker_packed.shape)} does not fit latents {tuple(latents.shape)} "
                    f"(expected {want})",
                    "model",
                )
        self._tokens = self.camera_tokens(plucker_packed, labelled)
        try:
            return self.transformer(latents, timestep, text, return_dict=False)[0]
        finally:
            # the patch embedding runs outside the checkpointed blocks: nothing needs the tokens later
            self._tokens = None


def camera_state_dict(model: WanCamera | nn.Module) -> dict[str, torch.Tensor]:
    """Only the new weights, under their names in the transformer's state dict
    (``camera_patchify.weight``, ``camera_patchify.bias``)."""
    transformer = model.transformer if isinstance(model, WanCamera) else model
    layer = getattr(transformer, PREFIX, None)
    if layer is None:
        raise RealcamError("the model has no camera patchify layer", "model")
    return {f"{PREFIX}.{name}": value for name, value in layer.state_dict().items()}
