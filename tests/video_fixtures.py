"""Test videos whose frames carry their own index, and RealEstate10K camera files that point at them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

BITS = 12  # frame indices up to 4095
STRIPE = 8  # pixels per bit: wide black/white stripes survive H.264 compression


def index_frame(k: int, height: int = 48, background: int = 0) -> np.ndarray:
    """A frame whose ``BITS`` vertical stripes spell ``k`` in binary (white = 1), most significant
    first, over a band of mid grey carrying ``background`` (so frames also differ elsewhere)."""
    bits = [(k >> (BITS - 1 - b)) & 1 for b in range(BITS)]
    row = np.repeat(np.array(bits, np.uint8) * 255, STRIPE)
    frame = np.repeat(row[None, :, None], height, axis=0).repeat(3, axis=2)
    frame[: height // 4] = (background * 37) % 200 + 28
    return frame


def frame_index(frame: np.ndarray) -> int:
    """The index an :func:`index_frame` carries, at any size (read from the centre of each stripe)."""
    h, w = frame.shape[:2]
    band = frame[h // 2 :, :, :].astype(np.float64).mean(axis=(0, 2))
    stripe = w / BITS
    bits = [band[int((b + 0.25) * stripe) : int(np.ceil((b + 0.75) * stripe))].mean() > 127 for b in range(BITS)]
    return int("".join("1" if b else "0" for b in bits), 2)


def make_indexed_video(path: Path, n: int, fps: Fraction, crf: int = 23) -> Path:
    """An H.264 MP4 (yuv420p, as YouTube serves) of ``n`` index frames at a constant ``fps``."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = BITS * STRIPE, 48, "yuv420p"
        s.options = {"crf": str(crf), "preset": "ultrafast"}
        for k in range(n):
            vf = av.VideoFrame.from_ndarray(index_frame(k, background=k), format="rgb24")
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def frame_time_us(k: float, fps: Fraction) -> int:
    """Microsecond timestamp of (fractional) frame position ``k``, rounded as RealEstate10K's are."""
    return int(round(k * 1_000_000 / float(fps)))


def write_camera_file(path: Path, url: str, timestamps) -> Path:
    """A RealEstate10K camera file: the URL line, then one row per timestamp (a camera moving along x)."""
    lines = [url]
    for i, t in enumerate(timestamps):
        pose = [1, 0, 0, -0.01 * i, 0, 1, 0, 0, 0, 0, 1, 0]
        lines.append(" ".join(str(v) for v in [int(t), 0.5, 0.9, 0.5, 0.5, 0, 0, *pose]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
