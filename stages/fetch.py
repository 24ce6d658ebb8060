"""``realcam fetch``: a RealEstate10K release (camera files) in, a dataset every stage reads out.

The release is a folder of camera files, ``<split>/<clip_id>.txt`` (or a flat folder), whose
first line is the source video's URL and whose rows carry timestamps in microseconds. Clips that
share a video are one item of the batch: the video is obtained once (a file ``<video_id>.<ext>``
of ``--videos``, or downloaded with yt-dlp's Python API) and decoded in **one sequential pass**
(PyAV), taking for each camera row the frame whose presentation time is nearest to the row's
timestamp; a row further than half a frame period from every frame has no frame (``missing``).

Written into ``DATASET``:

- ``frames/<split>/<clip>/<timestamp>.png`` (or ``.jpg``), or with ``store="video"``
  ``videos/<split>/<clip>.mp4``: exactly the clip's frames in row order, presentation times = the
  camera timestamps from the first (lossless RGB, or ``crf``);
- ``cameras/<split>/<clip>.txt``: the camera file, checked; a clip with missing rows keeps only
  the rows that have a frame, so every camera row of the dataset has its frame;
- ``fetch.parquet``: one row per clip, ``clip_id, split, video_id, status, reason,
  frames_written, frames_missing, width, height, fps``; status ``ok`` | ``partial`` (some rows
  missing) | ``unavailable`` (the video could not be obtained; yt-dlp's reason) | ``failed``
  (an unreadable camera file, an undecodable video, no frame at any row).

``ok`` and ``partial`` clips are done; a re-run skips their videos (unless ``overwrite``) and
tries the others again. Downloaded videos are deleted after decoding unless ``keep_videos``
(then ``videos/<video_id>.<ext>``, usable as ``--videos`` later).
"""

from __future__ import annotations

import contextlib
import shutil
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .core import cameras as cam
from .core import checks
from .core.artifacts import FAILED, OK, atomic_dir, atomic_write_bytes
from .core.batch import BatchTask, run_batch
from .core.dataset import clip_layout, shard, shard_table
from .core.errors import RealcamError
from .core.video import VIDEO_SUFFIXES, ClipVideoWriter, VideoInfo, decode_at
from .settings import BatchSettings, FetchSettings

TABLE = "fetch.parquet"
COLUMNS = [
    "clip_id",
    "split",
    "video_id",
    "status",
    "reason",
    "frames_written",
    "frames_missing",
    "width",
    "height",
    "fps",
]
PARTIAL = "partial"
UNAVAILABLE = "unavailable"
#: Where downloads are made (inside DATASET, removed after decoding unless kept).
DOWNLOADS = ".downloads"


# ----------------------------------------------------------------------------------------------
# The release: camera files grouped by video
# ----------------------------------------------------------------------------------------------
def video_id_of(url: str) -> str:
    """The video id of a camera file's URL: YouTube's ``v=`` value (or ``youtu.be/<id>``),
    otherwise the URL path's file stem."""
    parsed = urllib.parse.urlparse(url.strip())
    query = urllib.parse.parse_qs(parsed.query)
    if query.get("v"):
        return query["v"][0]
    host = parsed.netloc.lower()
    if host.endswith("youtu.be") and parsed.path.strip("/"):
        return parsed.path.strip("/").split("/")[0]
    stem = Path(urllib.parse.unquote(parsed.path)).stem
    if not stem:
        raise RealcamError(f"cannot tell a video id from the URL {url!r}")
    return stem


@dataclass
class ReleaseClip:
    clip_id: str
    split: str
    camera_path: Path
    cams: cam.CameraFile | None = None
    error: str = ""


@dataclass
class VideoJob:
    """One video and the clips cut from it (one batch item)."""

    video_id: str
    url: str
    clips: list[ReleaseClip] = field(default_factory=list)


def read_release(cameras: str | Path) -> list[VideoJob]:
    """The release's clips grouped by video, sorted by video id; a camera file that cannot be read
    or has no URL line is a job of its own (``video_id`` = ``?<clip_id>``) that fails with the reason."""
    root = checks.input_dir(cameras, "folder of RealEstate10K camera files")
    files = [(root, f) for f in sorted(root.glob("*.txt"))]
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files += [(split_dir, f) for f in sorted(split_dir.glob("*.txt"))]
    if not files:
        raise RealcamError("no camera files: expected <split>/<clip_id>.txt or <clip_id>.txt", root)
    jobs: dict[str, VideoJob] = {}
    seen: dict[str, Path] = {}
    for folder, f in files:
        if f.stem in seen:
            raise RealcamError(f"clip id {f.stem} appears twice (also {seen[f.stem]})", f)
        seen[f.stem] = f
        clip = ReleaseClip(f.stem, "" if folder == root else folder.name, f)
        try:
            clip.cams = cam.read_re10k(f)
            if not clip.cams.url:
                raise RealcamError("no URL line: the first line must be the source video's URL", f)
            vid = video_id_of(clip.cams.url)
            url = clip.cams.url
        except RealcamError as err:
            clip.error, vid, url = str(err), f"?{f.stem}", ""
        jobs.setdefault(vid, VideoJob(vid, url)).clips.append(clip)
    return [jobs[k] for k in sorted(jobs)]


# ----------------------------------------------------------------------------------------------
# Obtaining a video: a local file, or yt-dlp
# ----------------------------------------------------------------------------------------------
class Unavailable(RealcamError):
    """The video could not be obtained (removed, private, not in --videos)."""


def local_video(folder: Path, video_id: str) -> Path:
    """``folder/<video_id>.<ext>`` (a video suffix); :class:`Unavailable` when there is none."""
    hits = sorted(p for p in folder.glob(f"{glob_escape(video_id)}.*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not hits:
        raise Unavailable(f"no video {video_id}.<{'|'.join(sorted(s[1:] for s in VIDEO_SUFFIXES))}> in {folder}")
    return hits[0]


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def ytdlp_params(settings: FetchSettings, folder: Path, video_id: str) -> dict:
    """The ``YoutubeDL`` parameters of one download: the best MP4 no taller than ``max_height``
    (video only is enough: no merging, so no ffmpeg binary needed), into ``folder``."""
    h = settings.max_height
    params = {
        "format": f"bv*[ext=mp4][height<=?{h}]/b[ext=mp4][height<=?{h}]/bv*[height<=?{h}]/b[height<=?{h}]",
        "outtmpl": str(folder / f"{video_id}.%(ext)s"),
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "retries": settings.retries,
        "fragment_retries": settings.retries,
        "logger": _YtdlpLog(),
    }
    if settings.cookies:
        params["cookiefile"] = str(settings.cookies)
    if settings.rate_limit:
        from yt_dlp.utils import parse_bytes

        rate = parse_bytes(str(settings.rate_limit))
        if rate is None:
            raise RealcamError(f"expected a rate such as 50K or 4.2M, got {settings.rate_limit!r}", "--rate-limit")
        params["ratelimit"] = rate
    params.update(dict(settings.yt_dlp_options))
    return params


class _YtdlpLog:
    """yt-dlp's messages kept out of the terminal (the progress bar is ours); errors are raised
    to us as ``DownloadError`` with the same text."""

    def debug(self, msg: str) -> None:
        pass

    info = warning = error = debug


def download(url: str, folder: Path, video_id: str, settings: FetchSettings) -> Path:
    """Download with yt-dlp's Python API; :class:`Unavailable` with yt-dlp's reason."""
    import yt_dlp

    folder.mkdir(parents=True, exist_ok=True)
    try:
        with yt_dlp.YoutubeDL(ytdlp_params(settings, folder, video_id)) as ydl:
            info = ydl.extract_info(url, download=True)
            path = Path(ydl.prepare_filename(info))
    except yt_dlp.utils.YoutubeDLError as err:  # DownloadError, and RequestError raised before it
        raise Unavailable(_ytdlp_reason(err)) from None
    if not path.is_file():  # a post-processor renamed it: the one file in the folder
        found = [p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".part")]
        if len(found) != 1:
            raise Unavailable(f"yt-dlp reported success but wrote no single video file for {url}")
        path = found[0]
    return path


def _ytdlp_reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
    return text.removeprefix("ERROR: ").strip()


# ----------------------------------------------------------------------------------------------
# Decoding one video into its clips
# ----------------------------------------------------------------------------------------------
class _ClipOut:
    """One clip's output while its video is decoded: frame files in a temporary folder, or a
    clip video being encoded; nothing is visible before :meth:`commit`."""

    def __init__(self, clip: ReleaseClip, out: Path, settings: FetchSettings, stack: contextlib.ExitStack):
        self.clip, self.settings = clip, settings
        self.kept: list[int] = []  # camera rows with a frame
        self.size: tuple[int, int] | None = None
        self.camera_path, self.target = clip_outputs(out, clip, settings.store)
        self._ctx = None  # opened at the first frame: a clip without frames creates nothing
        self._open = False
        stack.callback(self._abandon)

    def _start(self) -> None:
        if self.settings.store == "video":
            self._ctx = ClipVideoWriter(self.target, self.settings.crf)
            self.writer = self._ctx.__enter__()
        else:
            self._ctx = atomic_dir(self.target)
            self.folder = self._ctx.__enter__()
        self._open = True

    def add(self, row: int, frame: np.ndarray) -> None:
        if self._ctx is None:
            self._start()
        self.kept.append(row)
        self.size = (frame.shape[1], frame.shape[0])
        ts = int(self.clip.cams.timestamps[row])
        if self.settings.store == "video":
            self.writer.write(frame, ts)
            return
        from PIL import Image

        image = Image.fromarray(frame)
        if self.settings.format == "jpg":
            image.save(self.folder / f"{ts}.jpg", quality=self.settings.jpeg_quality)
        else:
            image.save(self.folder / f"{ts}.png")

    def commit(self) -> None:
        """Finish the frames, then write the camera file (the clip exists for later stages when
        its camera file does)."""
        self._open = False
        self._ctx.__exit__(None, None, None)
        cams = self.clip.cams
        if len(self.kept) == len(cams):
            atomic_write_bytes(self.camera_path, self.clip.camera_path.read_bytes())
        else:
            rows = np.asarray(self.kept)
            kept = cam.CameraFile(
                cams.timestamps[rows], cams.intrinsics[rows], cams.w2c[rows], cams.url, cams.distortion[rows]
            )
            cam.write_re10k(self.camera_path, kept)

    def _abandon(self) -> None:
        if self._open:
            self._open = False
            with contextlib.suppress(Exception):
                self._ctx.__exit__(RealcamError, RealcamError("abandoned"), None)


def clip_outputs(out: Path, clip: ReleaseClip, store: str) -> tuple[Path, Path]:
    """A clip's camera file and its frames folder (``store="frames"``) or clip video in ``out``."""
    where = clip_layout(out, clip.clip_id, clip.split)
    return where.camera_path, where.video_path if store == "video" else where.frames_dir


def _row(clip: ReleaseClip, video_id: str, status: str, reason: str = "", **values) -> dict:
    row = {
        "clip_id": clip.clip_id,
        "split": clip.split,
        "video_id": video_id,
        "status": status,
        "reason": reason,
        "frames_written": 0,
        "frames_missing": 0,
        "width": 0,
        "height": 0,
        "fps": float("nan"),
    }
    row.update(values)
    return row


def decode_clips(video: Path, job: VideoJob, out: Path, settings: FetchSettings) -> list[dict]:
    """Decode ``video`` once for every clip of ``job`` and write their outputs; one row per clip."""
    clips = [c for c in job.clips if not c.error]
    owner = np.concatenate([np.full(len(c.cams), i) for i, c in enumerate(clips)])
    row_of = np.concatenate([np.arange(len(c.cams)) for c in clips])
    stamps = np.concatenate([c.cams.timestamps for c in clips])
    info = VideoInfo()
    missing = np.zeros(len(clips), np.int64)
    with contextlib.ExitStack() as stack:
        outs = [_ClipOut(c, out, settings, stack) for c in clips]
        for k, frame in decode_at(video, stamps, size=settings.size, info=info):
            if frame is None:
                missing[owner[k]] += 1
            else:
                outs[owner[k]].add(int(row_of[k]), frame)
        rows = []
        end = info.frames_decoded / info.fps if info.fps else float("nan")
        for i, (clip, o) in enumerate(zip(clips, outs)):
            common = dict(frames_missing=int(missing[i]), fps=info.fps)
            if not o.kept:
                reason = (
                    f"no frame within half a frame period of any of the {len(clip.cams)} camera timestamps "
                    f"({clip.cams.timestamps[0] / 1e6:.2f}-{clip.cams.timestamps[-1] / 1e6:.2f} s; "
                    f"the video has {info.frames_decoded} frames, about {end:.1f} s)"
                )
                rows.append(_row(clip, job.video_id, FAILED, reason, **common))
                continue
            with checks.writing(o.target):
                o.commit()
            status, reason = OK, ""
            if missing[i]:
                status = PARTIAL
                reason = (
                    f"{missing[i]} of {len(clip.cams)} camera rows have no frame within half a frame period "
                    f"(the video has {info.frames_decoded} frames, about {end:.1f} s); they are left out of "
                    "the dataset's camera file"
                )
            w, h = o.size
            written = dict(frames_written=len(o.kept), width=w, height=h)
            rows.append(_row(clip, job.video_id, status, reason, **written, **common))
    return rows


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------
@dataclass
class FetchTask(BatchTask):
    """``fetch`` in the batch engine: one video (all its clips) per item, one row per clip."""

    out: Path
    settings: FetchSettings
    tables = {"fetch": COLUMNS}
    dtypes = {
        "fetch": {
            "frames_written": "int64",
            "frames_missing": "int64",
            "width": "int64",
            "height": "int64",
            "fps": "float64",
        }
    }
    key = "video_id"
    finished = frozenset({OK, PARTIAL})

    def key_of(self, job: VideoJob) -> str:
        return job.video_id

    def outputs(self, job: VideoJob) -> list[Path]:
        return [p for c in job.clips for p in clip_outputs(self.out, c, self.settings.store)]

    def scratch(self, job: VideoJob) -> Path:
        return self.out / DOWNLOADS / job.video_id

    def run(self, job: VideoJob) -> dict[str, list[dict]]:
        rows = [_row(c, job.video_id, FAILED, c.error) for c in job.clips if c.error]
        if len(rows) == len(job.clips):
            return {"fetch": rows}
        try:
            video = self.obtain(job)
        except Unavailable as err:
            self.after_death(job)  # a failed download's leftovers
            return {"fetch": rows + [_row(c, job.video_id, UNAVAILABLE, str(err)) for c in job.clips if not c.error]}
        try:
            rows += decode_clips(video, job, self.out, self.settings)
        except RealcamError as err:
            rows += [_row(c, job.video_id, FAILED, str(err)) for c in job.clips if not c.error]
        finally:
            self.release(job, video)
        return {"fetch": rows}

    def obtain(self, job: VideoJob) -> Path:
        if self.settings.videos is not None:
            return local_video(Path(self.settings.videos), job.video_id)
        shutil.rmtree(self.scratch(job), ignore_errors=True)
        return download(job.url, self.scratch(job), job.video_id, self.settings)

    def release(self, job: VideoJob, video: Path) -> None:
        """Keep a downloaded video (``keep_videos``) in ``videos/``, and remove the download folder."""
        if self.settings.videos is not None:
            return
        if self.settings.keep_videos and video.is_file():
            kept = self.out / "videos" / f"{job.video_id}{video.suffix}"
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(video), kept)
        self.after_death(job)

    def failed(self, job: VideoJob, reason: str) -> dict[str, list[dict]]:
        return {"fetch": [_row(c, job.video_id, FAILED, c.error or reason) for c in job.clips]}

    def after_death(self, job: VideoJob) -> None:
        """Remove the job's download folder and, after a killed worker, its clips' temporary
        outputs (``.<clip>.XXXXXXXX.tmp`` folders and ``.tmp.mp4`` files of the atomic writes)."""
        shutil.rmtree(self.scratch(job), ignore_errors=True)
        for target in self.outputs(job):
            for tmp in target.parent.glob(f".{glob_escape(target.stem)}.*.tmp*"):
                if tmp.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    tmp.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (self.out / DOWNLOADS).rmdir()  # only when empty (other workers may be downloading)


def run_fetch(
    release: str | Path | list[VideoJob],
    out: str | Path,
    settings: FetchSettings | None = None,
    batch: BatchSettings | None = None,
    progress: Callable[[str], None] | None = None,
):
    """Every video of the release (a folder of camera files, or its :func:`read_release` jobs)
    through :class:`FetchTask`; returns ``(table, skipped)``: the clip table and the number of
    videos skipped as done. With a shard, only that slice of the videos."""
    settings = (settings or FetchSettings()).check()
    batch = (batch or BatchSettings()).check()
    jobs = release if isinstance(release, list) else read_release(release)
    jobs = shard(jobs, batch.shard)
    out = checks.output_dir(out, "--out")
    if settings.videos is not None and Path(settings.videos).resolve() == (out / "videos").resolve():
        settings = replace(settings, keep_videos=False)  # reading the kept videos of an earlier run
    with checks.writing(out):
        out.mkdir(parents=True, exist_ok=True)
    table = out / shard_table(TABLE, batch.shard)
    result = run_batch(FetchTask(out, settings), jobs, {"fetch": table}, batch, progress)
    return result.tables["fetch"], result.skipped
