"""Trainable set (docs/fidelity.md, "Training"): base frozen, camera modules trainable; counts by module."""

from __future__ import annotations

import pandas as pd
from torch import nn

GROUP_ORDER = [
    "unet",
    "unet.image_cross_attention_scale",
    "camera.pose_encoder",
    "camera.pluker_projection",
    "camera.epipolar",
    "autoencoder",
    "text_encoder",
    "image_encoder",
    "image_projector",
]


def parameter_group(name: str) -> str:
    if name.startswith("pose_encoder."):
        return "camera.pose_encoder"
    if ".pluker_projection." in name:
        return "camera.pluker_projection"
    if ".epipolar." in name:
        return "camera.epipolar"
    if name.startswith("model.diffusion_model."):
        return "unet.image_cross_attention_scale" if name.endswith(".alpha") else "unet"
    return {
        "first_stage_model": "autoencoder",
        "cond_stage_model": "text_encoder",
        "embedder": "image_encoder",
        "image_proj_model": "image_projector",
    }.get(name.split(".")[0], "other")


def is_camera_parameter(name: str) -> bool:
    return parameter_group(name).startswith("camera.")


def set_trainable(model: nn.Module, camera: bool = True, image_cross_attention_scale: bool = False) -> int:
    """Freeze everything, then unfreeze the camera modules (pose encoder, projections, epipolar
    attention with its register tokens) and optionally the image cross-attention scales.
    Returns the number of trainable parameters."""
    total = 0
    for name, p in model.named_parameters():
        group = parameter_group(name)
        train = (camera and group.startswith("camera.")) or (
            image_cross_attention_scale and group == "unet.image_cross_attention_scale"
        )
        p.requires_grad_(train)
        total += p.numel() if train else 0
    return total


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def trainable_report(model: nn.Module) -> pd.DataFrame:
    """One row per module group: ``module``, ``parameters``, ``trainable``."""
    rows: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        r = rows.setdefault(parameter_group(name), [0, 0])
        r[0] += p.numel()
        r[1] += p.numel() if p.requires_grad else 0
    order = [g for g in GROUP_ORDER if g in rows] + [g for g in rows if g not in GROUP_ORDER]
    df = pd.DataFrame([{"module": g, "parameters": rows[g][0], "trainable": rows[g][1]} for g in order])
    total = pd.DataFrame(
        [{"module": "total", "parameters": int(df.parameters.sum()), "trainable": int(df.trainable.sum())}]
    )
    return pd.concat([df, total], ignore_index=True)
