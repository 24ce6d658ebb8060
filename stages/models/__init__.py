"""The camera-controlled image-to-video model (docs/method.md#conditioning): DynamiCrafter backbone and the
RealCam-I2V camera modules, official-name checkpoints, trainable-set reports.

    from stages.models import build_model, load_pretrained, set_trainable, trainable_report
    model = build_model("tiny", camera="realcam")            # or "256", "512", "1024"; camera "none"
    model, report = load_pretrained("512", base="Doubiiu/DynamiCrafter_512",
                                    camera_weights="512_realcam-i2v_50k.safetensors")
    set_trainable(model)                                       # base frozen, camera modules train
    print(trainable_report(model))
    eps = model(x_t, t, context, concat_latent, fs=fs, k=k_pixels, c2w=relative_c2w)

Modules: ``configs`` (named configs as data), ``unet`` (3D UNet), ``camera`` (pose encoder,
epipolar geometry and attention), ``encoders`` (OpenCLIP towers, Resampler), ``autoencoder``
(diffusers ``AutoencoderKL`` + LDM name map), ``checkpoint`` (strict loading, saving),
``trainable`` (trainable set and counts).
"""

from .checkpoint import (
    LoadReport,
    load_checkpoint,
    load_pretrained,
    load_saved,
    official_state_dict,
    read_state_dict,
    resolve_checkpoint,
    save_checkpoint,
)
from .configs import CONFIG_NAMES, ModelConfig, get_config
from .model import CAMERA_MODES, CameraI2V, build_model
from .trainable import count_parameters, set_trainable, trainable_report

__all__ = [
    "CONFIG_NAMES",
    "CAMERA_MODES",
    "CameraI2V",
    "LoadReport",
    "ModelConfig",
    "build_model",
    "count_parameters",
    "get_config",
    "load_checkpoint",
    "load_pretrained",
    "load_saved",
    "official_state_dict",
    "resolve_checkpoint",
    "read_state_dict",
    "save_checkpoint",
    "set_trainable",
    "trainable_report",
]
