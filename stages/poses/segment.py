"""Motion masks from a semantic segmentation model (``poses --mask-model ID``): the pixels of the
classes that move on their own (people, vehicles, animals), from any transformers
``AutoModelForSemanticSegmentation`` (SegFormer, Mask2Former-semantic, UPerNet, ... on ADE20K,
Cityscapes or COCO-Stuff labels) by Hugging Face id or local folder
(docs/method.md#poses-of-dynamic-videos).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import RealcamError

#: Class names (any of a label's ``;``/``,``-separated synonyms) counted as moving objects.
DYNAMIC_CLASSES = frozenset(
    {
        "person", "people", "rider", "pedestrian",
        "car", "truck", "bus", "van", "train", "tram", "motorcycle", "motorbike", "minibike", "bicycle", "bike",
        "boat", "ship", "airplane", "aeroplane", "vehicle",
        "animal", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    }
)  # fmt: skip


def dynamic_ids(id2label: dict) -> list[int]:
    """The class ids whose label (or one of its synonyms) is a moving kind of thing."""
    out = []
    for i, label in id2label.items():
        names = {n.strip().lower() for part in str(label).split(";") for n in part.split(",")}
        if names & DYNAMIC_CLASSES:
            out.append(int(i))
    return sorted(out)


def check_segmenter(model: str) -> list[int]:
    """The model's config is readable and has classes of moving things: their ids (no weights read)."""
    from transformers import AutoConfig

    from ..core.hub import quiet_loading

    try:
        with quiet_loading():
            config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as exc:
        where = model if Path(model).exists() else "--mask-model"
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise RealcamError(f"cannot load the segmentation model {model} ({reason})", where) from None
    ids = dynamic_ids(getattr(config, "id2label", {}) or {})
    if not ids:
        raise RealcamError(
            f"the model {model} has no class of moving things (people, vehicles, animals)", "--mask-model"
        )
    return ids


def load_segmenter(model: str, device: str = "cpu"):
    """``(processor, model, dynamic ids)`` of a segmentation model (Hub id or folder)."""
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from ..core.hub import quiet_loading

    try:
        with quiet_loading():
            processor = AutoImageProcessor.from_pretrained(model)
            net = AutoModelForSemanticSegmentation.from_pretrained(model).to(device).eval()
    except (OSError, ValueError) as exc:
        where = model if Path(model).exists() else "--mask-model"
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise RealcamError(f"cannot load the segmentation model {model} ({reason})", where) from None
    ids = dynamic_ids(net.config.id2label)
    if not ids:
        raise RealcamError(
            f"the model {model} has no class of moving things (people, vehicles, animals)", "--mask-model"
        )
    return processor, net, ids


def segment_masks(frames: np.ndarray, model: str, device: str = "cpu", batch_size: int = 4) -> np.ndarray:
    """``(F, H, W)`` bool: True where the model's label is a moving kind of thing."""
    import torch

    processor, net, ids = load_segmenter(model, device)
    n, h, w = frames.shape[:3]
    out = np.zeros((n, h, w), dtype=bool)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            chunk = list(frames[start : start + batch_size])
            inputs = processor(images=chunk, return_tensors="pt").to(device)
            outputs = net(**inputs)
            labels = processor.post_process_semantic_segmentation(outputs, target_sizes=[(h, w)] * len(chunk))
            for k, lab in enumerate(labels):
                out[start + k] = np.isin(lab.cpu().numpy(), ids)
    return out
