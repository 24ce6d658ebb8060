"""Benchmark: decoding a video at camera timestamps (`stages.core.video.decode_at`) against one ffmpeg
process per timestamp, and the storage of one decoded clip as images or as a clip video.

1. Speed. A --seconds long 1280x720 H.264 MP4 at 30 fps (yuv420p, x264 `veryfast`, its default
   keyframe interval of 250 frames unless --keyint; ffmpeg's `testsrc2`), made in a temporary folder
   with the ffmpeg binary of imageio-ffmpeg (or --video PATH, reused). --timestamps camera
   timestamps (microseconds, integers) spread evenly over it on its frames (every 6th frame for 150
   timestamps over 30 s, as RealEstate10K clips are subsampled).
   Ours: one `decode_at(video, timestamps)` pass, its RGB frames collected; best of --repeats.
   Baseline (measured in the same run; what most RealEstate10K download scripts do): per timestamp
   one subprocess `ffmpeg -ss T -i video -frames:v 1 -f rawvideo -pix_fmt rgb24 pipe:1` (T in seconds,
   6 decimals, -ss before -i), its bytes read into an array; best of --baseline-repeats (default 1).
   The frames of both are compared: how many are identical, and the mean absolute pixel difference
   of those that are not (ffmpeg -ss takes the first frame at or after T, decode_at the nearest: on
   frame times they pick the same frame). Target: ours at least 5x faster for 150 timestamps over
   30 s of 720p.
2. Storage of the decoded clip (the --timestamps frames): PNG files (Pillow defaults), JPEG files at
   quality 95 (Pillow), a lossless clip video (`write_clip_video(..., crf=None)`, RGB libx264rgb) and
   a clip video at crf 18 (libx264, yuv420p): bytes per clip and per frame, and encoding seconds.

Usage: python benchmarks/bench_fetch.py [--seconds 30] [--timestamps 150] [--repeats 3]
       [--baseline-repeats 1] [--keyint N] [--video PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from stages.core.video import VideoInfo, decode_at, write_clip_video

FPS = 30
SIZE = (1280, 720)
TARGET = 5.0


def make_video(path: Path, seconds: float, keyint: int | None) -> None:
    """A YouTube-like test video: 1280x720, 30 fps, H.264 yuv420p in MP4."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate={FPS}", "-t", str(seconds)]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast"]
    cmd += ["-g", str(keyint)] if keyint else []
    subprocess.run([*cmd, str(path)], check=True)


def camera_timestamps(seconds: float, n: int) -> np.ndarray:
    """``n`` integer microsecond timestamps on frames, evenly spaced over the video."""
    frames = int(round(seconds * FPS))
    step = max(1, frames // n)
    return np.round(np.arange(n) * step * 1e6 / FPS).astype(np.int64)


def ours(video: Path, ts: np.ndarray) -> tuple[list, VideoInfo]:
    info = VideoInfo()
    frames: list = [None] * len(ts)
    for k, frame in decode_at(video, ts, info=info):
        frames[k] = frame
    return frames, info


def baseline(video: Path, ts: np.ndarray, width: int, height: int) -> list:
    """One ffmpeg process per timestamp, seeking before the input as the usual scripts do."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    frames = []
    for t in ts:
        cmd = [ffmpeg, "-nostdin", "-loglevel", "error", "-ss", f"{t / 1e6:.6f}", "-i", str(video)]
        cmd += ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        out = subprocess.run(cmd, capture_output=True, check=True).stdout
        frames.append(np.frombuffer(out, np.uint8).reshape(height, width, 3) if out else None)
    return frames


def best_of(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def storage(frames: list, ts: np.ndarray, work: Path) -> list[tuple[str, float, int]]:
    """(method, encoding seconds, bytes) for the clip stored each way."""
    rows = []
    for name, fmt, kwargs in (("PNG files (Pillow default)", "png", {}), ("JPEG files, q95", "jpg", {"quality": 95})):
        folder = work / fmt
        folder.mkdir()
        t0 = time.perf_counter()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"{i:05d}.{fmt}", **kwargs)
        rows.append((name, time.perf_counter() - t0, sum(p.stat().st_size for p in folder.iterdir())))
    for name, crf in (("clip video, lossless (libx264rgb)", None), ("clip video, crf 18 (libx264)", 18)):
        path = work / f"clip_{crf}.mp4"
        t0 = time.perf_counter()
        write_clip_video(path, frames, ts, crf=crf)
        rows.append((name, time.perf_counter() - t0, path.stat().st_size))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the generated video")
    parser.add_argument("--timestamps", type=int, default=150, help="camera timestamps to decode")
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours (best is shown)")
    parser.add_argument("--baseline-repeats", type=int, default=1, help="runs of the baseline (best is shown)")
    parser.add_argument("--keyint", type=int, default=None, help="keyframe interval (default: x264's, 250)")
    parser.add_argument("--video", type=Path, default=None, help="an existing 30 fps video to use instead")
    args = parser.parse_args()
    console = Console(width=150)  # no wrapping: the tables are pasted into RESULTS.md

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        video = args.video
        if video is None:
            video = work / "video.mp4"
            t0 = time.perf_counter()
            make_video(video, args.seconds, args.keyint)
            console.print(
                f"made {video.name}: {args.seconds:g} s, {SIZE[0]}x{SIZE[1]}, {FPS} fps, H.264 yuv420p, "
                f"{video.stat().st_size / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f} s"
            )
        ts = camera_timestamps(args.seconds, args.timestamps)
        n = len(ts)

        ours(video, ts[:1])  # warm-up: PyAV's import and first open are not part of the pass
        t_ours, (frames, info) = best_of(lambda: ours(video, ts), args.repeats)
        t_base, base = best_of(lambda: baseline(video, ts, info.width, info.height), args.baseline_repeats)

        missing = sum(f is None for f in frames) + sum(b is None for b in base)
        pairs = [(f, b) for f, b in zip(frames, base) if f is not None and b is not None]
        same = sum(np.array_equal(f, b) for f, b in pairs)
        diffs = [np.abs(f.astype(np.int16) - b.astype(np.int16)) for f, b in pairs if not np.array_equal(f, b)]

        table = Table(
            title=f"{n} timestamps over a {args.seconds:g} s {info.width}x{info.height} video ({info.fps:g} fps)"
        )
        for col in ("method", "seconds", "timestamps/s", "frames decoded", "ratio vs baseline"):
            table.add_column(col, justify="left" if col == "method" else "right")
        table.add_row(
            f"ffmpeg -ss per timestamp (baseline, best of {args.baseline_repeats})",
            f"{t_base:.2f}",
            f"{n / t_base:.1f}",
            "",
            "1.0x",
        )
        table.add_row(
            f"decode_at, one pass (ours, best of {args.repeats})",
            f"{t_ours:.2f}",
            f"{n / t_ours:.1f}",
            str(info.frames_decoded),
            f"{t_base / t_ours:.1f}x",
        )
        console.print(table)
        console.print(
            f"agreement: {same}/{len(pairs)} frames identical, {missing} missing"
            + (
                f"; where they differ ({len(diffs)}): mean |diff| "
                f"{np.mean([d.mean() for d in diffs]):.3f}, max {max(int(d.max()) for d in diffs)}"
                if diffs
                else ""
            )
        )
        console.print(
            f"target: ours >= {TARGET:g}x faster -> {t_base / t_ours:.1f}x, "
            f"{'met' if t_base / t_ours >= TARGET else 'NOT met'}"
        )

        rows = storage([f for f in frames if f is not None], ts, work)
        table = Table(title=f"storage of one clip of {n} frames ({info.width}x{info.height})")
        for col in ("stored as", "MiB per clip", "KiB per frame", "encode s", "vs PNG"):
            table.add_column(col, justify="left" if col == "stored as" else "right")
        png = rows[0][2]
        for name, secs, size in rows:
            table.add_row(name, f"{size / 2**20:.2f}", f"{size / n / 2**10:.1f}", f"{secs:.2f}", f"{size / png:.3f}")
        console.print(table)
        console.print(f"os.cpu_count() = {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
