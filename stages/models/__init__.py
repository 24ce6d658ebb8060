"""The camera-controlled image-to-video model (SPEC.md section 5): DynamiCrafter backbone and the
RealCam-I2V camera modules, official-name checkpoints, trainable-set reports."""

from .checkpoint import (LoadReport, load_checkpoint, load_pretrained, load_saved, official_state_dict,
                         read_state_dict, resolve_checkpoint, save_checkpoint)
from .configs import CONFIG_NAMES, ModelConfig, get_config
from .model import CAMERA_MODES, CameraI2V, build_model
from .trainable import count_parameters, set_trainable, trainable_report

__all__ = [
    "CONFIG_NAMES", "CAMERA_MODES", "CameraI2V", "LoadReport", "ModelConfig", "build_model",
    "count_parameters", "get_config", "load_checkpoint", "load_pretrained", "load_saved",
    "official_state_dict", "resolve_checkpoint", "read_state_dict",
    "save_checkpoint", "set_trainable", "trainable_report",
]
