"""A tiny randomly initialised Depth Anything V2 metric model in the Hugging Face folder format."""

from __future__ import annotations

from pathlib import Path


def save_tiny_depth_model(folder: Path, seed: int = 0, max_depth: int = 20, spread: float = 0.1) -> Path:
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(seed)
    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        patch_size=14,
        reshape_hidden_states=False,
        image_size=140,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 16, 32, 32],
        reassemble_hidden_size=32,
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="metric",
        max_depth=max_depth,
    )
    model = DepthAnythingForDepthEstimation(config)
    with torch.no_grad():  # spread the random weights so that depth varies across the image
        for p in model.parameters():
            p.add_(torch.randn_like(p) * spread)
    model.save_pretrained(folder)
    # Same processor settings as the released models, at 140 px instead of 518 to stay fast.
    DPTImageProcessor(
        size={"height": 140, "width": 140},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return Path(folder)
