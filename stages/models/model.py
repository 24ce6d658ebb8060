"""The camera-controlled image-to-video model: DynamiCrafter backbone + RealCam-I2V camera modules.

Attribute names follow the official Lightning module, so ``state_dict()`` names equal the names in
the released checkpoints: ``model.diffusion_model.*`` (UNet, with the camera's
``pluker_projection`` / ``epipolar`` inside its temporal blocks), ``first_stage_model.*``
(autoencoder), ``cond_stage_model.model.*`` (text), ``embedder.model.*`` (image),
``image_proj_model.*`` (Resampler) and ``pose_encoder.*`` (camera encoder).
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.cameras import DEFAULT_FPS
from ..core.errors import RealcamError
from . import autoencoder as ae
from .camera import CameraPoseEncoder, camera_condition
from .configs import ModelConfig, get_config
from .encoders import FrozenOpenCLIPEmbedder, FrozenOpenCLIPImageEmbedderV2, Resampler
from .unet import UNet3D

CAMERA_MODES = ("realcam", "cameractrl", "none")


class DiffusionWrapper(nn.Module):
    def __init__(self, unet: UNet3D):
        super().__init__()
        self.diffusion_model = unet


class CameraI2V(nn.Module):
    """DynamiCrafter image-to-video latent diffusion model with optional camera control.

    ``camera``: ``"realcam"`` (pose encoder + epipolar attention, the RealCam-I2V / CamI2V model),
    ``"cameractrl"`` (pose encoder only) or ``"none"`` (the base model, for ablations).
    """

    def __init__(self, config: ModelConfig, camera: str = "realcam", encoders: bool = True):
        super().__init__()
        if camera not in CAMERA_MODES:
            raise RealcamError(
                f"unknown camera mode {camera!r}; choose one of {', '.join(CAMERA_MODES)}", source="camera"
            )
        self.config = config
        self.camera_mode = camera
        self.model = DiffusionWrapper(UNet3D(config.unet))
        if encoders:
            self.first_stage_model = ae.build_autoencoder(config.autoencoder)
            self.cond_stage_model = FrozenOpenCLIPEmbedder(config.text)
            self.embedder = FrozenOpenCLIPImageEmbedderV2(config.image)
            self.image_proj_model = Resampler(config.resampler)
        if camera != "none":
            self.pose_encoder = CameraPoseEncoder(config.camera)
            config.camera.epipolar = camera == "realcam"
            self.model.diffusion_model.add_camera_modules(config.camera, pose_encoder=True)

    # ------------------------------------------------------------------------------------------
    @property
    def unet(self) -> UNet3D:
        return self.model.diffusion_model

    @property
    def has_camera(self) -> bool:
        return self.camera_mode != "none"

    def fs_condition(self, stride: torch.Tensor, source_fps: float | torch.Tensor = DEFAULT_FPS) -> torch.Tensor:
        """The ``fs`` input for a frame stride: the stride itself (``fs`` type, 256), or the sampled
        clip's frame rate ``floor(source_fps / stride)`` (``fps`` type, 512/1024; 3 at stride 8) with
        ``source_fps`` the video's rate: RealEstate10K's 29.97 at inference, as the official
        ``SingleImageForInference``; the clip's own in training, as the official dataset."""
        stride = torch.as_tensor(stride)
        if self.config.fps_condition_type == "fps":
            fps = torch.as_tensor(source_fps, dtype=torch.float64)
            return torch.div(fps, stride.double(), rounding_mode="floor").long()
        return stride.long()

    def condition(
        self,
        tokens: torch.Tensor,
        image: torch.Tensor,
        latent: torch.Tensor,
        frames: int,
        stride: torch.Tensor,
        source_fps: float | torch.Tensor = DEFAULT_FPS,
        keep_image: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The conditioning contract, one function for training and sampling
        (docs/method.md#conditioning): ``(context, concat, fs)``.

        ``context`` = text tokens then Resampler image tokens, ``(B, 77 + 16·T', C)``; ``concat`` =
        the condition frame's latent ``latent (B, 4, h, w)`` repeated over ``frames`` (never dropped,
        as the official ``get_batch_input``); ``fs`` from :meth:`fs_condition`. ``tokens (B, L)``:
        OpenCLIP ids (empty prompts for text dropout or the unconditional branch); ``image (B, 3,
        H, W)`` in ``[-1, 1]``; ``keep_image (B,)`` bool: ``False`` zeroes the image (image dropout in
        training, the unconditional branch in sampling)."""
        dtype = latent.dtype
        if keep_image is not None:
            image = image * keep_image.to(image.dtype)[:, None, None, None]
        context = torch.cat([self.encode_text(tokens).to(dtype), self.encode_image(image).to(dtype)], dim=1)
        concat = latent[:, :, None].expand(-1, -1, frames, -1, -1)
        fs = self.fs_condition(stride, source_fps).to(latent.device)
        return context, concat, fs

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.unet.set_gradient_checkpointing(enabled)

    def camera_inputs(
        self,
        k: torch.Tensor,
        c2w: torch.Tensor,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | None = None,
    ) -> dict | None:
        """Pose features and epipolar masks for pixel intrinsics ``k (B, T, 3, 3)`` and relative
        ``c2w (B, T, 4, 4)`` at the generation resolution."""
        if not self.has_camera:
            return None
        height = height or self.config.height
        width = width or self.config.width
        dtype = next(self.pose_encoder.parameters()).dtype
        return camera_condition(
            self.pose_encoder,
            self.config.camera,
            k,
            c2w,
            height,
            width,
            epipolar=self.camera_mode == "realcam",
            generator=generator,
            dtype=dtype,
        )

    def forward(
        self,
        x_noisy: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        concat: torch.Tensor,
        fs: torch.Tensor | None = None,
        camera: dict | None = None,
        k: torch.Tensor | None = None,
        c2w: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One denoiser evaluation (``hybrid`` conditioning): ``x_noisy`` and ``concat`` (the
        condition latent, repeated over frames) are ``(B, 4, T, h, w)``; ``context`` is text tokens
        then image tokens; the camera is given either as ``camera`` (from :meth:`camera_inputs`) or
        as ``k`` and ``c2w``. Without a camera (or in mode ``none``) the base model runs."""
        if camera is None and c2w is not None and self.has_camera:
            h, w = x_noisy.shape[-2:]
            f = self.config.camera.downscale_factor
            camera = self.camera_inputs(k, c2w, h * f, w * f)
        if not self.has_camera:
            camera = None
        x = torch.cat([x_noisy, concat], dim=1)
        return self.unet(x, timesteps, context, fs=fs, camera=camera)

    # ------------------------------------------------------------------------------------------
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.cond_stage_model(tokens)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Condition image ``(B, 3, H, W)`` in ``[-1, 1]`` -> Resampler tokens."""
        return self.image_proj_model(self.embedder(image))

    def encode_video(self, video: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        return ae.encode(
            self.first_stage_model,
            video,
            self.config.autoencoder.scale_factor,
            perframe=self.config.perframe_ae,
            sample=sample,
            generator=generator,
        )

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return ae.decode(
            self.first_stage_model, latents, self.config.autoencoder.scale_factor, perframe=self.config.perframe_ae
        )


def build_model(
    config: str | ModelConfig = "tiny",
    camera: str = "realcam",
    epipolar: bool = True,
    encoders: bool = True,
    gradient_checkpointing: bool | None = None,
    perframe_ae: bool | None = None,
    device: str | torch.device | None = None,
) -> CameraI2V:
    """Build the model from a named config (``tiny``, ``small``, ``256``, ``512``, ``1024``) or a config.

    ``camera="realcam"`` with ``epipolar=False`` gives the pose-encoder-only model; build under
    ``device="meta"`` to count parameters without allocating memory.
    """
    cfg = get_config(config) if isinstance(config, str) else config
    if gradient_checkpointing is not None:
        cfg.unet.use_checkpoint = gradient_checkpointing
    if perframe_ae is not None:
        cfg.perframe_ae = perframe_ae
    mode = "cameractrl" if (camera == "realcam" and not epipolar) else camera
    if device is not None:
        with torch.device(device):
            return CameraI2V(cfg, mode, encoders=encoders)
    return CameraI2V(cfg, mode, encoders=encoders)
