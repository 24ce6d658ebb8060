"""Clips stored as clip videos (`videos/<clip>.mp4`, as `fetch --store video` and `synth --store video`
write them) read by every dataset stage exactly as their frame files: depth, train samples,
evaluate's ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests_tiny_depth import save_tiny_depth_model

from stages.core import cameras as cam
from stages.core.artifacts import read_arrays, write_table
from stages.core.dataset import find_clips
from stages.core.video import read_image, read_video
from stages.depth import run_depth
from stages.evaluate.run import find_samples
from stages.train.data import ClipDataset, load_clips


def test_clip_videos_hold_the_frame_files_bit_for_bit(synth_dataset, synth_video_dataset):
    png, vid = find_clips(synth_dataset), find_clips(synth_video_dataset)
    assert [c.clip_id for c in png] == [c.clip_id for c in vid]
    for a, b in zip(png, vid):
        assert a.video is None and b.video == synth_video_dataset / "videos" / f"{b.clip_id}.mp4"
        ts = cam.read_re10k(b.camera_path).timestamps
        files = [read_image(a.frames_dir / f"{t}.png") for t in ts]
        assert all(np.array_equal(x, y) for x, y in zip(files, b.read_frames(ts)))
        rows = [5, 0, 9]
        assert all(np.array_equal(files[r], y) for r, y in zip(rows, b.read_frames(ts, rows)))
        assert np.array_equal(np.stack(files), read_video(b.video))  # each frame once, in order


def test_depth_on_clip_videos_equals_frame_files(synth_dataset, synth_video_dataset, tmp_path):
    model = save_tiny_depth_model(tmp_path / "model")
    a, _ = run_depth([synth_dataset], tmp_path / "a", model=str(model), device="cpu")
    b, _ = run_depth([synth_video_dataset], tmp_path / "b", model=str(model), device="cpu")
    assert (a["status"] == "ok").all() and (b["status"] == "ok").all()
    pd.testing.assert_frame_equal(a.drop(columns="path"), b.drop(columns="path"))
    assert b["path"].str.contains(r"\.mp4@\d+$").all()
    for clip in a["item"].unique():
        da, db = read_arrays(tmp_path / "a" / f"{clip}.npz"), read_arrays(tmp_path / "b" / f"{clip}.npz")
        assert sorted(da) == sorted(db)
        for key in da:
            assert np.array_equal(da[key], db[key]), key


@pytest.fixture()
def filtered(synth_dataset, tmp_path):
    folder = tmp_path / "filtered"
    ids = [c.clip_id for c in find_clips(synth_dataset)]
    for c in find_clips(synth_dataset):
        cam.write_re10k(folder / "cameras" / f"{c.clip_id}.txt", cam.read_re10k(c.camera_path))
    write_table(folder / "keep.parquet", pd.DataFrame({"clip_id": ids}))
    return folder


def test_train_samples_on_clip_videos_equal_frame_files(synth_dataset, synth_video_dataset, filtered):
    png, skipped_a = load_clips(filtered, synth_dataset)
    vid, skipped_b = load_clips(filtered, synth_video_dataset)
    assert skipped_a == skipped_b == [] and all(not isinstance(c.frames, list) for c in vid)
    a = ClipDataset(png, frames=4, size=(64, 64), train=True, seed=3)
    b = ClipDataset(vid, frames=4, size=(64, 64), train=True, seed=3)
    for n in range(4):
        sa, sb = a[n], b[n]
        assert sa["clip_id"] == sb["clip_id"] and sa["stride"] == sb["stride"]
        for key in ("video", "k", "c2w"):
            assert np.array_equal(sa[key].numpy(), sb[key].numpy()), key


def test_evaluate_reference_dataset_gives_trajectories_and_ground_truth(synth_video_dataset, tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    clips = find_clips(synth_video_dataset)
    for c in clips:
        (samples / f"{c.clip_id}.mp4").write_bytes(c.video.read_bytes())
    found = find_samples(samples, synth_video_dataset)
    assert [s.name for s in found] == [c.clip_id for c in clips]
    for s, c in zip(found, clips):
        assert s.trajectory == c.camera_path and s.gt_video == c.video
