"""Frame and video I/O: image folders and MP4 through imageio (ffmpeg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .artifacts import atomic_path
from .errors import RealcamError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif"}


def read_image(path: str | Path) -> np.ndarray:
    """An RGB ``uint8`` image ``(H, W, 3)``."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.exists():
        raise RealcamError("no such image", path)
    try:
        img = np.asarray(iio.imread(path))
    except Exception as err:  # imageio raises many types for undecodable files
        raise RealcamError(f"cannot decode image ({err.__class__.__name__})", path) from None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4) or min(img.shape[:2]) < 1:
        raise RealcamError(f"not a single RGB image (array of shape {img.shape})", path)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.floating):  # float images (TIFF, EXR): [0, 1]
        if not np.isfinite(img).all():
            raise RealcamError("image has non-finite values", path)
        img = (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.integer):
            raise RealcamError(f"unsupported pixel type {img.dtype}", path)
        info = np.iinfo(img.dtype)
        img = (np.clip(img.astype(np.float64), 0, info.max) / info.max * 255).round().astype(np.uint8)
    return np.ascontiguousarray(img[..., :3])


def write_image(path: str | Path, image: np.ndarray) -> Path:
    import imageio.v3 as iio

    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.asarray(image), extension=path.suffix)
    return path


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder, sorted by name (numeric names sort numerically)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]

    def key(p: Path):
        return (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem)

    return sorted(files, key=key)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8, lossless: bool = False) -> Path:
    """Write ``(F, H, W, 3)`` uint8 frames as H.264 MP4 (``lossless``: crf 0, yuv444p)."""
    import imageio.v3 as iio

    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = np.clip(frames * 255.0 if frames.max() <= 1.0 else frames, 0, 255).round().astype(np.uint8)
    # H.264 with yuv420p needs even sizes; pad by replicating the last row/column.
    h, w = frames.shape[1:3]
    pad = ((0, 0), (0, h % 2), (0, w % 2), (0, 0))
    if any(p[1] for p in pad):
        frames = np.pad(frames, pad, mode="edge")
    kwargs = {"fps": fps, "codec": "libx264", "plugin": "FFMPEG", "macro_block_size": 1}
    if lossless:
        kwargs.update(pixelformat="yuv444p", output_params=["-crf", "0"])
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frames, extension=path.suffix or ".mp4", **kwargs)
    return path


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 8, max_side: int | None = None) -> Path:
    """Write ``(F, H, W, 3)`` uint8 frames as a looping GIF (Pillow; ``max_side`` shrinks larger
    frames so that documentation media stay small)."""
    from PIL import Image

    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    if max_side is not None and max(images[0].size) > max_side:
        scale = max_side / max(images[0].size)
        size = (max(1, round(images[0].width * scale)), max(1, round(images[0].height * scale)))
        images = [im.resize(size, Image.LANCZOS) for im in images]
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
            optimize=True,
        )
    return path


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video, or of a folder of images, as ``(F, H, W, 3)`` uint8."""
    import imageio.v3 as iio

    path = Path(path)
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise RealcamError("folder holds no images", path)
        return np.stack([read_image(f) for f in files])
    if not path.exists():
        raise RealcamError("no such video", path)
    try:
        frames = np.asarray(iio.imread(path, plugin="FFMPEG"))
    except Exception as err:
        raise RealcamError(f"cannot decode video ({err.__class__.__name__})", path) from None
    return np.ascontiguousarray(frames[..., :3])
