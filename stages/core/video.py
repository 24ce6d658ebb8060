"""Frame and video I/O: image folders and MP4 through imageio (ffmpeg); decoding at camera
timestamps and clip videos through PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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
    """All frames of a video (each decoded frame once, in presentation order: a variable-rate clip
    video gives its own frames, not a constant-rate resampling), or of a folder of images, as
    ``(F, H, W, 3)`` uint8."""
    import av

    path = Path(path)
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise RealcamError("folder holds no images", path)
        return np.stack([read_image(f) for f in files])
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except av.FFmpegError as err:
        raise RealcamError(f"cannot decode video ({_av_reason(err)})", path) from None
    finally:
        container.close()
    if not frames:
        raise RealcamError("video holds no frames", path)
    return np.stack(frames)


# ----------------------------------------------------------------------------------------------
# Decoding at timestamps (PyAV): one sequential pass, the nearest frame per timestamp
# ----------------------------------------------------------------------------------------------
@dataclass
class VideoInfo:
    """What a decoding pass learnt about a video."""

    width: int = 0
    height: int = 0
    fps: float = 0.0
    frames_decoded: int = 0


def _open_video(path: Path):
    import av

    if not path.is_file():
        raise RealcamError("no such video", path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, ValueError) as err:
        raise RealcamError(f"cannot open video ({_av_reason(err)})", path) from None
    if not container.streams.video:
        container.close()
        raise RealcamError("holds no video stream", path)
    return container


def _av_reason(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err) or err.__class__.__name__
    return text.splitlines()[0]


def decode_at(
    path: str | Path,
    timestamps_us,
    *,
    size: tuple[int, int] | None = None,
    info: VideoInfo | None = None,
) -> Iterator[tuple[int, np.ndarray | None]]:
    """The video's frame nearest to each timestamp (microseconds from the video's start), decoded
    in **one sequential pass**: yields ``(k, frame)`` for every index ``k`` of ``timestamps_us``,
    in increasing order of timestamp, ``frame`` an RGB ``uint8`` array ``(H, W, 3)`` (resized to
    ``size = (W, H)`` when given) or ``None`` where no frame lies within half a frame period of the
    timestamp (before the first or past the last frame, or in a gap). Only the chosen frames are
    converted to RGB. ``info`` (optional) is filled with the video's size, rate and frames decoded.
    """
    import av

    path = Path(path)
    targets = np.asarray(timestamps_us, dtype=np.float64).ravel()
    order = np.argsort(targets, kind="stable")
    info = info if info is not None else VideoInfo()
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads: same frames, faster
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        info.fps = float(rate) if rate else 0.0
        info.width, info.height = stream.codec_context.width, stream.codec_context.height
        half = 0.5e6 / info.fps if info.fps > 0 else 0.0
        start = stream.start_time or 0
        tb = float(stream.time_base)

        def rgb(frame):
            if size is None:
                return frame.to_ndarray(format="rgb24")
            return frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")

        cache: list = [None, None]  # the last converted frame and its RGB (rows sharing a frame)

        def pick(k: int, t: float, near, near_t: float):
            if near is None or abs(near_t - t) > half + 0.5:  # 0.5 us: timestamps are rounded to us
                return k, None
            if cache[0] is not near:  # holding the frame keeps its identity unique
                cache[:] = [near, rgb(near)]
            return k, cache[1]

        i, prev, prev_t = 0, None, -np.inf
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = (frame.pts - start) * tb * 1e6
                info.frames_decoded += 1
                while i < len(order) and targets[order[i]] <= t:
                    k = order[i]
                    near, near_t = (prev, prev_t) if targets[k] - prev_t <= t - targets[k] else (frame, t)
                    yield pick(k, targets[k], near, near_t)
                    i += 1
                if i == len(order):
                    return
                prev, prev_t = frame, t
        except av.FFmpegError as err:
            raise RealcamError(f"cannot decode video ({_av_reason(err)})", path) from None
        while i < len(order):  # past the last frame: its own frame if within half a period
            yield pick(order[i], targets[order[i]], prev, prev_t)
            i += 1
    finally:
        container.close()


def read_frames_at(path: str | Path, timestamps_us, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The frames nearest to ``timestamps_us`` in the given order (one pass); a timestamp with no
    frame within half a frame period is a ``RealcamError`` naming the video."""
    out: list[np.ndarray | None] = [None] * len(np.atleast_1d(timestamps_us))
    for k, frame in decode_at(path, timestamps_us, size=size):
        if frame is None:
            t = int(np.atleast_1d(timestamps_us)[k])
            raise RealcamError(f"no frame within half a frame period of {t} us (row {k + 1})", path)
        out[k] = frame
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# Clip videos: exactly a clip's frames, in order, presentation times = the camera timestamps
# ----------------------------------------------------------------------------------------------
#: Clip videos carry presentation times in microseconds, the camera files' unit.
MICROSECONDS = 1_000_000


class ClipVideoWriter:
    """Write frames one by one into an MP4 whose presentation times are the given microsecond
    timestamps (relative to the first). ``crf=None``: **lossless** RGB (``libx264rgb``, qp 0; the
    decoded frames equal the written ones bit for bit); ``crf=N``: ``libx264`` at that constant
    rate factor (yuv420p, or yuv444p for odd sizes). Written atomically: the file appears on
    :meth:`close` only, and an exception leaves nothing."""

    def __init__(self, path: str | Path, crf: int | None = None, preset: str = "fast"):
        self.path, self.crf, self.preset = Path(path), crf, preset
        self._atomic = self._container = self._stream = None
        self._t0: int | None = None
        self.frames = 0

    def __enter__(self) -> "ClipVideoWriter":
        from .artifacts import atomic_path

        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def _open(self, width: int, height: int) -> None:
        import fractions

        import av

        self._container = av.open(str(self._tmp), "w", format="mp4")
        tb = fractions.Fraction(1, MICROSECONDS)
        if self.crf is None:
            stream = self._container.add_stream("libx264rgb", rate=30)
            stream.pix_fmt = "rgb24"
            stream.options = {"qp": "0", "preset": self.preset}
        else:
            stream = self._container.add_stream("libx264", rate=30)
            stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
            stream.options = {"crf": str(self.crf), "preset": self.preset}
        stream.width, stream.height = width, height
        stream.time_base = tb
        stream.codec_context.time_base = tb
        self._stream = stream

    def write(self, frame: np.ndarray, timestamp_us: int) -> None:
        import fractions

        import av

        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if self._stream is None:
            self._open(frame.shape[1], frame.shape[0])
            self._t0 = int(timestamp_us)
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts = int(timestamp_us) - self._t0
        vf.time_base = fractions.Fraction(1, MICROSECONDS)
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def __exit__(self, kind, err, tb) -> bool:
        try:
            if self._stream is not None:
                if kind is None:
                    for packet in self._stream.encode():
                        self._container.mux(packet)
                self._container.close()
            if kind is None and self._stream is None:
                raise RealcamError("a clip video needs at least one frame", self.path)
        except BaseException as inner:
            self._atomic.__exit__(type(inner), inner, inner.__traceback__)
            raise
        self._atomic.__exit__(kind, err, tb)
        return False


def write_clip_video(path: str | Path, frames, timestamps_us, crf: int | None = None) -> Path:
    """A clip video of ``frames`` at ``timestamps_us`` (see :class:`ClipVideoWriter`)."""
    with ClipVideoWriter(path, crf) as writer:
        for frame, t in zip(frames, timestamps_us):
            writer.write(frame, t)
    return Path(path)


def read_clip_video(path: str | Path, timestamps_us, rows=None) -> list[np.ndarray]:
    """Frames of a clip video at its camera timestamps (the first timestamp is the video's start),
    all rows or the given ``rows`` (decoding stops after the last one needed)."""
    ts = np.asarray(timestamps_us, dtype=np.int64)
    idx = np.arange(len(ts)) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(ts) == 0:
        return []
    return read_frames_at(path, ts[idx] - ts[0])


def is_video(p: Path) -> bool:
    """A video file, or a folder of images."""
    return (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or (p.is_dir() and bool(list_images(p)))


def first_video(folder: Path, name: str, readable: bool = False) -> Path | None:
    """``folder/name`` (frames) or ``folder/name.<video suffix>``, the first that exists
    (``readable``: the first that is a video file or a folder of images)."""
    for cand in [folder / name, *(folder / f"{name}{s}" for s in sorted(VIDEO_SUFFIXES))]:
        if cand.exists() and (not readable or is_video(cand)):
            return cand
    return None
