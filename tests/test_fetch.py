"""`realcam fetch`: decoding at camera timestamps (nearest frame, half-frame tolerance), local videos
and yt-dlp downloads (offline, on file:// URLs), statuses, one pass per shared video, resume."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner
from video_fixtures import frame_index, frame_time_us, make_indexed_video, write_camera_file

from realcam_cli.app import app
from stages import fetch as fetch_stage
from stages.core import cameras as cam
from stages.core.dataset import find_clips
from stages.core.video import VideoInfo, decode_at, read_image
from stages.fetch import run_fetch, video_id_of
from stages.settings import BatchSettings, FetchSettings

FPS = {"30": Fraction(30), "29.97": Fraction(30000, 1001)}
N_FRAMES = 40
YT = "https://www.youtube.com/watch?v="


@pytest.fixture(scope="module", params=sorted(FPS))
def indexed(request, tmp_path_factory) -> tuple[Path, Fraction]:
    fps = FPS[request.param]
    folder = tmp_path_factory.mktemp(f"videos{request.param}")
    return make_indexed_video(folder / "vid00000001.mp4", N_FRAMES, fps), fps


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """A folder of two NTSC-rate videos named by their YouTube ids."""
    folder = tmp_path_factory.mktemp("vids")
    make_indexed_video(folder / "vid00000001.mp4", N_FRAMES, FPS["29.97"])
    make_indexed_video(folder / "vid00000002.mp4", 20, FPS["29.97"])
    return folder


def release(root: Path, fps: Fraction = FPS["29.97"]) -> Path:
    """A release folder: two clips of video 1 (one running past its end), one of video 2, one of
    a video nobody has, and a broken camera file."""
    clips = {
        "test/clipA": ("vid00000001", [k + 0.3 for k in range(10)]),
        "test/clipB": ("vid00000001", [k - 0.3 for k in range(30, 45)]),  # frames 40-44 are past the end
        "train/clipC": ("vid00000002", range(2, 12)),
        "train/clipD": ("gone0000000", range(5)),
    }
    for name, (video, positions) in clips.items():
        write_camera_file(root / f"{name}.txt", YT + video, [frame_time_us(k, fps) for k in positions])
    (root / "train" / "broken.txt").write_text(YT + "vid00000002\n1 2 3\n")
    return root


def indices(folder: Path) -> list[int]:
    files = sorted(folder.iterdir(), key=lambda p: int(p.stem))
    return [frame_index(read_image(f)) for f in files]


# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------
def test_decode_takes_the_nearest_frame_and_misses_past_the_end(indexed):
    video, fps = indexed
    rng = np.random.default_rng(0)
    offsets = rng.uniform(-0.45, 0.45, N_FRAMES)  # between frames, always nearer to frame k
    offsets[0] = abs(offsets[0])  # frame 0 has nothing before it
    stamps = [frame_time_us(k + o, fps) for k, o in enumerate(offsets)]
    stamps += [frame_time_us(N_FRAMES - 1 + 0.4, fps), frame_time_us(N_FRAMES - 1 + 0.6, fps)]
    stamps += [frame_time_us(N_FRAMES + 5, fps), -frame_time_us(0.7, fps)]
    order = rng.permutation(len(stamps))  # any order in, each answered once
    info = VideoInfo()
    got = {int(order[k]): f for k, f in decode_at(video, np.asarray(stamps)[order], info=info)}
    assert sorted(got) == list(range(len(stamps)))
    assert [frame_index(got[k]) for k in range(N_FRAMES)] == list(range(N_FRAMES))
    assert frame_index(got[N_FRAMES]) == N_FRAMES - 1  # 0.4 of a frame past the last: still it
    assert got[N_FRAMES + 1] is None and got[N_FRAMES + 2] is None and got[N_FRAMES + 3] is None
    assert info.frames_decoded == N_FRAMES and (info.width, info.height) == (96, 48)
    assert info.fps == pytest.approx(float(fps), rel=1e-3)


def test_decode_resizes_and_rejects_a_bad_file(indexed, tmp_path):
    video, fps = indexed
    (k, frame), *_ = list(decode_at(video, [0], size=(48, 24)))
    assert frame.shape == (24, 48, 3) and frame.dtype == np.uint8
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(Exception, match="bad.mp4: cannot open video"):
        list(decode_at(bad, [0]))


def test_video_ids():
    assert video_id_of("https://www.youtube.com/watch?v=QShWPZxTDoE") == "QShWPZxTDoE"
    assert video_id_of("https://youtu.be/QShWPZxTDoE") == "QShWPZxTDoE"
    assert video_id_of("file:///data/web/house%201.mp4") == "house 1"


# ----------------------------------------------------------------------------------------------
# The stage on local videos
# ----------------------------------------------------------------------------------------------
def test_fetch_local_videos_statuses_frames_and_one_pass_per_video(videos, tmp_path, monkeypatch):
    calls = []
    real = fetch_stage.decode_at

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fetch_stage, "decode_at", counting)
    table, skipped = run_fetch(release(tmp_path / "release"), tmp_path / "ds", FetchSettings(videos=str(videos)))
    assert skipped == 0
    assert sorted(calls) == ["vid00000001.mp4", "vid00000002.mp4"]  # two clips of video 1: one pass
    by = table.set_index("clip_id")
    assert by["status"].to_dict() == {
        "broken": "failed",
        "clipA": "ok",
        "clipB": "partial",
        "clipC": "ok",
        "clipD": "unavailable",
    }
    assert "expected 19 numbers" in by.loc["broken", "reason"]
    assert "no video gone0000000" in by.loc["clipD", "reason"]
    assert by.loc["clipB", "frames_written"] == 10 and by.loc["clipB", "frames_missing"] == 5
    assert (by.loc["clipA", "width"], by.loc["clipA", "height"]) == (96, 48)
    assert by.loc["clipA", "fps"] == pytest.approx(30000 / 1001, rel=1e-3)
    ds = tmp_path / "ds"
    assert indices(ds / "frames" / "test" / "clipA") == list(range(10))
    assert indices(ds / "frames" / "test" / "clipB") == list(range(30, 40))
    assert indices(ds / "frames" / "train" / "clipC") == list(range(2, 12))
    # a partial clip's camera file keeps the rows that have frames: every row has its frame
    kept = cam.read_re10k(ds / "cameras" / "test" / "clipB.txt")
    assert len(kept) == 10 and sorted(int(p.stem) for p in (ds / "frames" / "test" / "clipB").iterdir()) == list(
        kept.timestamps
    )
    assert (ds / "cameras" / "test" / "clipA.txt").read_bytes() == (
        tmp_path / "release" / "test" / "clipA.txt"
    ).read_bytes()
    assert not (ds / "cameras" / "train" / "clipD.txt").exists() and not (ds / "frames" / "train" / "clipD").exists()
    assert [c.clip_id for c in find_clips(ds)] == ["clipA", "clipB", "clipC"]
    assert not list(ds.rglob("*.tmp")) and not (ds / fetch_stage.DOWNLOADS).exists()


def test_fetch_resumes_and_skips_finished_videos(videos, tmp_path, monkeypatch):
    rel, ds = release(tmp_path / "release"), tmp_path / "ds"
    real = fetch_stage.FetchTask.run

    def dies_on_video_2(self, job):
        if job.video_id == "vid00000002":
            raise KeyboardInterrupt  # the run is killed while video 2 is being decoded
        return real(self, job)

    monkeypatch.setattr(fetch_stage.FetchTask, "run", dies_on_video_2)
    with pytest.raises(KeyboardInterrupt):
        run_fetch(rel, ds, FetchSettings(videos=str(videos)))
    first = pd.read_parquet(ds / "fetch.parquet")
    assert set(first["video_id"]) == {"?broken", "gone0000000", "vid00000001"}  # what finished is recorded
    monkeypatch.setattr(fetch_stage.FetchTask, "run", real)
    done = []
    table, skipped = run_fetch(rel, ds, FetchSettings(videos=str(videos)), progress=done.append)
    assert skipped == 1 and "vid00000001 (done)" in done  # video 1 is not decoded again
    assert sorted(k for k in done if "(done)" not in k) == ["?broken", "gone0000000", "vid00000002"]
    assert set(table.loc[table["status"] == "ok", "clip_id"]) == {"clipA", "clipC"}
    _, skipped = run_fetch(rel, ds, FetchSettings(videos=str(videos)), BatchSettings(overwrite=True))
    assert skipped == 0


def test_fetch_store_video_is_the_same_pixels(videos, tmp_path):
    rel = release(tmp_path / "release")
    png, _ = run_fetch(rel, tmp_path / "png", FetchSettings(videos=str(videos)))
    as_video = FetchSettings(videos=str(videos), store="video")
    vid, _ = run_fetch(rel, tmp_path / "vid", as_video, BatchSettings(workers=2))
    pd.testing.assert_frame_equal(png, vid)
    assert sorted(p.name for p in (tmp_path / "vid" / "videos" / "test").iterdir()) == ["clipA.mp4", "clipB.mp4"]
    assert not (tmp_path / "vid" / "frames").exists()
    a, b = find_clips(tmp_path / "png"), find_clips(tmp_path / "vid")
    for ca, cb in zip(a, b):
        assert ca.video is None and cb.video is not None
        ts = cam.read_re10k(cb.camera_path).timestamps
        fa, fb = ca.read_frames(ts), cb.read_frames(ts)
        assert len(fb) == len(ts) and all(np.array_equal(x, y) for x, y in zip(fa, fb))  # lossless: bit for bit
    jpg, _ = run_fetch(rel, tmp_path / "jpg", FetchSettings(videos=str(videos), format="jpg", size=(192, 64)))
    assert indices(tmp_path / "jpg" / "frames" / "test" / "clipA") == list(range(10))
    assert jpg.set_index("clip_id").loc["clipA", ["width", "height"]].tolist() == [192, 64]


# ----------------------------------------------------------------------------------------------
# yt-dlp, offline: file:// URLs
# ----------------------------------------------------------------------------------------------
def test_fetch_downloads_with_ytdlp_and_reports_unavailable(tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    fps = FPS["30"]
    make_indexed_video(web / "house.mp4", 20, fps)
    rel = tmp_path / "release"
    write_camera_file(rel / "a.txt", (web / "house.mp4").as_uri(), [frame_time_us(k, fps) for k in range(3, 13)])
    write_camera_file(rel / "b.txt", (web / "gone.mp4").as_uri(), [frame_time_us(k, fps) for k in range(5)])
    settings = FetchSettings(yt_dlp_options=(("enable_file_urls", True),), keep_videos=True)
    table, _ = run_fetch(rel, tmp_path / "ds", settings)
    by = table.set_index("clip_id")
    assert by.loc["a", "status"] == "ok" and by.loc["a", "video_id"] == "house"
    assert indices(tmp_path / "ds" / "frames" / "a") == list(range(3, 13))
    assert by.loc["b", "status"] == "unavailable"
    assert "No such file or directory" in by.loc["b", "reason"]  # yt-dlp's own message
    assert (tmp_path / "ds" / "videos" / "house.mp4").read_bytes() == (web / "house.mp4").read_bytes()
    assert not (tmp_path / "ds" / fetch_stage.DOWNLOADS).exists()
    # without enable_file_urls yt-dlp refuses file:// URLs: unavailable, with its reason
    table, _ = run_fetch(rel, tmp_path / "ds2", FetchSettings())
    assert set(table["status"]) == {"unavailable"} and table["reason"].str.contains("file").all()


def test_ytdlp_parameters(tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    s = FetchSettings(
        max_height=480, cookies=str(cookies), rate_limit="4.2M", retries=3, yt_dlp_options=(("proxy", "x"),)
    ).check()
    p = fetch_stage.ytdlp_params(s, tmp_path, "abc")
    assert "[height<=?480]" in p["format"] and "[ext=mp4]" in p["format"]
    assert p["cookiefile"] == str(cookies) and p["ratelimit"] == int(4.2 * 1024**2) and p["retries"] == 3
    assert p["proxy"] == "x" and p["outtmpl"] == str(tmp_path / "abc.%(ext)s")


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------
def test_cli_fetch_summary_and_bad_input(videos, tmp_path):
    rel = release(tmp_path / "release")
    res = CliRunner().invoke(app, ["fetch", str(rel), "--out", str(tmp_path / "ds"), "--videos", str(videos)])
    assert res.exit_code == 0, res.output
    assert "2 ok, 1 partial, 1 unavailable (1 videos), 1 failed" in res.output
    assert str(tmp_path / "ds" / "fetch.parquet") in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["fetch", str(empty), "--out", str(tmp_path / "ds2")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "no camera files" in res.output
    res = CliRunner().invoke(app, ["fetch", str(rel), "--out", str(tmp_path / "ds3"), "--store", "tape"])
    assert res.exit_code == 2 and "--store" in res.output
    res = CliRunner().invoke(app, ["fetch", str(rel), "--out", str(tmp_path / "ds3"), "--yt-dlp-option", "novalue"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output
    assert not (tmp_path / "ds3").exists()
    shutil.rmtree(tmp_path / "ds")


def test_a_killed_worker_leaves_no_temporary_outputs(videos, tmp_path):
    rel, ds = release(tmp_path / "release"), tmp_path / "ds"
    job = next(j for j in fetch_stage.read_release(rel) if j.video_id == "vid00000001")
    task = fetch_stage.FetchTask(ds, FetchSettings(videos=str(videos)).check())
    leftovers = [ds / "frames" / "test" / ".clipA.abcd1234.tmp", ds / "videos" / "test" / ".clipB.abcd1234.tmp.mp4"]
    leftovers[0].mkdir(parents=True)
    (leftovers[0] / "1.png").write_bytes(b"half")
    leftovers[1].parent.mkdir(parents=True)
    leftovers[1].write_bytes(b"half")
    keep = ds / "frames" / "test" / ".clipAB.abcd1234.tmp"  # another clip's, still being written
    keep.mkdir()
    task.after_death(job)
    task = fetch_stage.FetchTask(ds, FetchSettings(videos=str(videos), store="video").check())
    task.after_death(job)
    assert not any(p.exists() for p in leftovers) and keep.exists()


def test_an_undecodable_video_fails_its_clips_and_writes_nothing(tmp_path):
    vids = tmp_path / "vids"
    vids.mkdir()
    (vids / "vid00000001.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"broken" * 100)
    rel = tmp_path / "release"
    write_camera_file(rel / "a.txt", YT + "vid00000001", [frame_time_us(k, FPS["30"]) for k in range(4)])
    table, _ = run_fetch(rel, tmp_path / "ds", FetchSettings(videos=str(vids), store="video"))
    row = table.iloc[0]
    assert row["status"] == "failed" and "vid00000001.mp4: " in row["reason"]
    assert any(why in row["reason"] for why in ("cannot open video", "cannot decode video", "no video stream"))
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["fetch.parquet"]
