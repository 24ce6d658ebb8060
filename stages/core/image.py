"""Fitting an image to a size: resize keeping the aspect ratio, then centre crop, with the
intrinsics that follow (the one rule of preview, generate and the editor)."""

from __future__ import annotations

import numpy as np

from . import cameras as cam


def fit_intrinsics(k: np.ndarray, image_size: tuple[int, int], size: tuple[int, int] | None) -> np.ndarray:
    """The intrinsics :func:`fit_image` gives, without resizing the image."""
    if size is None or tuple(size) == tuple(image_size):
        return k
    return cam.resize_crop_intrinsics(k, tuple(image_size), tuple(size))


def fit_image(image: np.ndarray, k: np.ndarray | None, size: tuple[int, int] | None):
    """Resize keeping aspect (bicubic) then centre crop to ``size``; returns the image and its
    intrinsics (``None`` when ``k`` is)."""
    h, w = image.shape[:2]
    if size is None or tuple(size) == (w, h):
        return image, k
    from PIL import Image

    (rw, rh), (left, top) = cam.resize_crop_geometry((w, h), size)
    resized = np.asarray(Image.fromarray(image).resize((rw, rh), Image.BICUBIC))
    out = resized[top : top + size[1], left : left + size[0]]
    return np.ascontiguousarray(out), None if k is None else cam.resize_crop_intrinsics(k, (w, h), tuple(size))
