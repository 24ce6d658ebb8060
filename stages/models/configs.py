"""Model configurations as data: ``tiny`` (tests, 2-core CPU), ``small`` (the demo: a whole 16-frame
128x128 clip on a 2-core CPU) and the official ``256``, ``512``, ``1024``.

The numbers of the full configs are those of the public DynamiCrafter and RealCam-I2V YAMLs
(docs/fidelity.md), so the released weights load onto the modules built from them.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

from ..core.errors import RealcamError


@dataclass
class UNetConfig:
    in_channels: int = 8
    out_channels: int = 4
    model_channels: int = 320
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_res_blocks: int = 2
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    dropout: float = 0.1
    num_head_channels: int = 64
    transformer_depth: int = 1
    context_dim: int = 1024
    use_linear: bool = True
    temporal_conv: bool = True
    temporal_attention: bool = True
    temporal_length: int = 16
    addition_attention: bool = True
    init_attn_heads: int = 8
    image_cross_attention: bool = True
    image_cross_attention_scale_learnable: bool = False
    text_context_len: int = 77
    image_tokens_per_frame: int = 16
    fs_condition: bool = True
    default_fs: int = 24
    use_checkpoint: bool = False


@dataclass
class AutoencoderConfig:
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    norm_groups: int = 32
    scale_factor: float = 0.18215


@dataclass
class TextEncoderConfig:
    """OpenCLIP text tower (ViT-H-14: width 1024, 24 layers, 16 heads), penultimate layer."""

    vocab_size: int = 49408
    context_length: int = 77
    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    embed_dim: int = 1024
    layer: str = "penultimate"


@dataclass
class ImageEncoderConfig:
    """OpenCLIP vision tower (ViT-H-14: 224 px, patch 14, width 1280, 32 layers, 16 heads)."""

    image_size: int = 224
    patch_size: int = 14
    width: int = 1280
    layers: int = 32
    heads: int = 16
    mlp_ratio: float = 4.0
    embed_dim: int = 1024
    # text-side leftovers kept by the official image embedder (open_clip deletes only .transformer)
    vocab_size: int = 49408
    context_length: int = 77
    text_width: int = 1024


@dataclass
class ResamplerConfig:
    dim: int = 1024
    depth: int = 4
    dim_head: int = 64
    heads: int = 12
    num_queries: int = 16
    embedding_dim: int = 1280
    output_dim: int = 1024
    ff_mult: int = 4
    video_length: int = 16


@dataclass
class CameraConfig:
    """CameraCtrl-style pose encoder + CamI2V epipolar attention (RealCam-I2V settings)."""

    downscale_factor: int = 8
    channels: tuple[int, ...] = (320, 640, 1280, 1280)
    nums_rb: int = 2
    ksize: int = 1
    sk: bool = True
    temporal_attention_nhead: int = 8
    temporal_position_encoding_max_len: int = 16
    epipolar: bool = True
    num_register_tokens: int = 4
    epipolar_resolutions: tuple[int, ...] = (8, 4, 2, 1)
    perturb_zero_translation: float = 1e-6
    #: How the epipolar masks are built (docs/fidelity.md): ``"official"`` as the released weights
    #: were trained (cell centres ``i*d + d/2 - 0.5``, ``F = K_j^-T E K_j^-1``), or ``"exact"``
    #: (cell centres ``(i + 0.5) * d`` like the Plücker rays, ``F = K_j^-T E K_i^-1``, right when
    #: the intrinsics change over the clip). Saved with the model.
    epipolar_form: str = "official"

    @property
    def cin(self) -> int:
        return 6 * self.downscale_factor**2


@dataclass
class ModelConfig:
    name: str
    width: int
    height: int
    frames: int = 16
    parameterization: str = "eps"  # "eps" or "v"
    zero_terminal_snr: bool = False
    fps_condition_type: str = "fs"
    perframe_ae: bool = False
    #: Dynamic rescale of DynamiCrafter 512/1024 (``use_dynamic_rescale``, ``base_scale``; see
    #: stages/diffusion.py): z0 scaled by ``scale(t)`` in training, predicted z0 rescaled in sampling.
    use_dynamic_rescale: bool = False
    base_scale: float = 1.0
    unet: UNetConfig = field(default_factory=UNetConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    resampler: ResamplerConfig = field(default_factory=ResamplerConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)

    @property
    def latent_stride(self) -> int:
        """Pixels per latent cell along each axis (the autoencoder's downsampling factor f)."""
        return 2 ** (len(self.autoencoder.ch_mult) - 1)

    @property
    def latent_size(self) -> tuple[int, int]:
        """(h, w) of the latent."""
        return self.height // self.latent_stride, self.width // self.latent_stride

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        subs = {
            "unet": UNetConfig,
            "autoencoder": AutoencoderConfig,
            "text": TextEncoderConfig,
            "image": ImageEncoderConfig,
            "resampler": ResamplerConfig,
            "camera": CameraConfig,
        }
        kwargs = {}
        for key, value in data.items():
            if key in subs:
                sub = subs[key]
                names = {f.name for f in dataclasses.fields(sub)}
                unknown = set(value) - names
                if unknown:
                    raise RealcamError(f"unknown {key} config fields {sorted(unknown)}")
                kwargs[key] = sub(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _tiny() -> ModelConfig:
    frames = 4
    return ModelConfig(
        name="tiny",
        width=64,
        height=64,
        frames=frames,
        unet=UNetConfig(
            model_channels=32,
            attention_resolutions=(1, 2),
            num_res_blocks=1,
            channel_mult=(1, 2),
            dropout=0.0,
            num_head_channels=16,
            context_dim=32,
            temporal_length=frames,
            image_tokens_per_frame=4,
            default_fs=3,
            image_cross_attention_scale_learnable=True,
        ),
        autoencoder=AutoencoderConfig(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1),
        text=TextEncoderConfig(vocab_size=49408, width=32, layers=2, heads=2, embed_dim=32),
        image=ImageEncoderConfig(
            image_size=28, patch_size=14, width=32, layers=2, heads=2, embed_dim=32, text_width=32
        ),
        resampler=ResamplerConfig(
            dim=32,
            depth=1,
            dim_head=16,
            heads=2,
            num_queries=4,
            embedding_dim=32,
            output_dim=32,
            ff_mult=2,
            video_length=frames,
        ),
        camera=CameraConfig(
            channels=(32, 64),
            temporal_attention_nhead=2,
            temporal_position_encoding_max_len=frames,
            epipolar_resolutions=(2, 1),
            epipolar_form="exact",
        ),
    )


def _small() -> ModelConfig:
    """The ``make demo`` model: ``tiny``'s widths at 16 frames of 128x128 (enough for SfM to register
    the generated video), with an autoencoder of two downsamplings (f = 4) so image detail survives
    the round trip. Spatial and epipolar attention (and so the camera modules) sit at latent stride
    4 only, where the epipolar attention over all 16 frames stays small."""
    frames = 16
    tiny = _tiny()
    return dataclasses.replace(
        tiny,
        name="small",
        width=128,
        height=128,
        frames=frames,
        unet=dataclasses.replace(tiny.unet, attention_resolutions=(4,), channel_mult=(1, 2, 2), temporal_length=frames),
        autoencoder=dataclasses.replace(tiny.autoencoder, ch_mult=(1, 2, 2)),
        resampler=dataclasses.replace(tiny.resampler, video_length=frames),
        camera=dataclasses.replace(
            tiny.camera,
            downscale_factor=4,
            channels=(32, 64, 64),
            temporal_position_encoding_max_len=frames,
            epipolar_resolutions=(4,),
        ),
    )


def _official(name: str) -> ModelConfig:
    if name == "256":
        return ModelConfig(
            name="256",
            width=256,
            height=256,
            parameterization="eps",
            zero_terminal_snr=False,
            fps_condition_type="fs",
            unet=UNetConfig(default_fs=3, image_cross_attention_scale_learnable=True),
            camera=CameraConfig(epipolar_resolutions=(8, 4, 2, 1)),
        )
    if name == "512":
        return ModelConfig(
            name="512",
            width=512,
            height=320,
            parameterization="v",
            zero_terminal_snr=True,
            fps_condition_type="fps",
            perframe_ae=True,
            use_dynamic_rescale=True,
            base_scale=0.7,
            unet=UNetConfig(default_fs=10, use_checkpoint=True),
            camera=CameraConfig(epipolar_resolutions=(8, 4, 2)),
        )
    if name == "1024":
        return ModelConfig(
            name="1024",
            width=1024,
            height=576,
            parameterization="v",
            zero_terminal_snr=True,
            fps_condition_type="fps",
            perframe_ae=True,
            use_dynamic_rescale=True,
            base_scale=0.3,
            unet=UNetConfig(default_fs=10, use_checkpoint=True),
            camera=CameraConfig(epipolar_resolutions=(8, 4, 2)),
        )
    raise KeyError(name)


CONFIG_NAMES = ("tiny", "small", "256", "512", "1024")


def get_config(name: str) -> ModelConfig:
    """A fresh copy of a named config (``tiny``, ``small``, ``256``, ``512``, ``1024``)."""
    name = str(name)
    if name == "tiny":
        return _tiny()
    if name == "small":
        return _small()
    if name in CONFIG_NAMES:
        return _official(name)
    raise RealcamError(f"unknown model config {name!r}; choose one of {', '.join(CONFIG_NAMES)}", source="config")


def replace(config: ModelConfig, **changes) -> ModelConfig:
    return dataclasses.replace(copy.deepcopy(config), **changes)
