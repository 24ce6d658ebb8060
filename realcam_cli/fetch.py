"""``realcam fetch``: RealEstate10K camera files (+ downloaded or local videos) -> a dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from stages.settings import FetchSettings

from . import options
from .parsers import parse_size
from .ui import progress_bar, report


def parse_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> ``(key, value)``, the value read as JSON where it is (numbers, true/false,
    lists), else kept as text."""
    from stages.core.errors import RealcamError

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RealcamError(f"expected KEY=VALUE, got {text!r}", "--yt-dlp-option")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def fetch(
    cameras: Path = typer.Argument(
        ..., help="RealEstate10K release folder: <split>/<clip_id>.txt (or a flat folder of .txt)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Dataset folder to write (cameras/, frames/ or videos/, fetch.parquet)."
    ),
    videos: Optional[Path] = typer.Option(
        None, "--videos", help="Take each video from DIR/<video_id>.<ext> instead of downloading (offline clusters)."
    ),
    store: str = typer.Option(
        FetchSettings.store, "--store", help="frames (one image per camera row) or video (one clip video per clip)."
    ),
    fmt: str = typer.Option(FetchSettings.format, "--format", help="Frame files: png or jpg."),
    jpeg_quality: int = typer.Option(FetchSettings.jpeg_quality, "--jpeg-quality", help="JPEG quality (1-100)."),
    size: Optional[str] = typer.Option(None, "--size", help="Resize frames to WIDTHxHEIGHT (default: the video's)."),
    crf: Optional[int] = typer.Option(
        None, "--crf", help="Clip videos: H.264 constant rate factor (e.g. 18); default lossless RGB."
    ),
    max_height: int = typer.Option(
        FetchSettings.max_height, "--max-height", help="Download the best MP4 no taller than this."
    ),
    cookies: Optional[Path] = typer.Option(None, "--cookies", help="Cookie file for yt-dlp (Netscape format)."),
    rate_limit: Optional[str] = typer.Option(
        None, "--rate-limit", help="Download rate limit, e.g. 50K or 4.2M (bytes/s)."
    ),
    retries: int = typer.Option(FetchSettings.retries, "--retries", help="yt-dlp retries per download."),
    yt_dlp_option: Optional[List[str]] = typer.Option(
        None, "--yt-dlp-option", help="Any other YoutubeDL parameter, KEY=VALUE (repeat); VALUE read as JSON if it is."
    ),
    keep_videos: bool = typer.Option(False, "--keep-videos", help="Keep downloaded videos in DATASET/videos/."),
    workers: int = options.WORKERS,
    ray: Optional[str] = options.RAY,
    cpus_per_task: float = options.CPUS_PER_TASK,
    timeout: Optional[float] = options.TIMEOUT,
    shard_spec: Optional[str] = options.SHARD,
    overwrite: bool = options.OVERWRITE,
) -> None:
    """Frames of RealEstate10K clips at their camera timestamps: one download and one decoding
    pass per video, one row per clip in fetch.parquet."""
    from stages import fetch as fetch_stage
    from stages.core import checks
    from stages.core.dataset import shard, shard_table

    settings = FetchSettings(
        videos=str(videos) if videos is not None else None,
        store=store,
        format=fmt,
        jpeg_quality=jpeg_quality,
        size=parse_size(size) if size else None,
        crf=crf,
        max_height=max_height,
        cookies=str(cookies) if cookies is not None else None,
        rate_limit=rate_limit,
        retries=retries,
        yt_dlp_options=tuple(parse_option(o) for o in yt_dlp_option or []),
        keep_videos=keep_videos,
    ).check()
    checks.output_dir(out, "--out")
    batch = options.batch_settings(workers, ray, None, cpus_per_task, timeout, 1, shard_spec, overwrite)
    jobs = fetch_stage.read_release(cameras)
    with progress_bar("fetch", total=len(shard(jobs, batch.shard))) as advance:
        table, skipped = fetch_stage.run_fetch(jobs, out, settings, batch, progress=advance)
    counts = table["status"].value_counts()
    n = {s: int(counts.get(s, 0)) for s in ("ok", "partial", "unavailable", "failed")}
    gone = table.loc[table["status"] == "unavailable", "video_id"].nunique()
    stored = out / ("videos" if settings.store == "video" else "frames")
    report(
        f"fetch: {len(table)} clips of {table['video_id'].nunique()} videos ({skipped} videos skipped as done): "
        f"{n['ok']} ok, {n['partial']} partial, {n['unavailable']} unavailable ({gone} videos), {n['failed']} failed "
        f"-> {stored}, {out / 'cameras'}, {out / shard_table(fetch_stage.TABLE, shard_spec)}"
    )
    for _, r in table.loc[~table["status"].isin(["ok"])].head(20).iterrows():
        report(f"  {r['status']} {r['clip_id']} ({r['video_id']}): {r['reason']}")
    if len(table) and n["ok"] + n["partial"] == 0:
        raise typer.Exit(1)
