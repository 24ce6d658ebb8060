"""Bad input for `synth`, `triangulate`, `align-scale`, `filter` and the camera reader (issue 22:
defects 1, 2, 3, 4, 7, 9, 12, 21, 23, 24, and the cases that already worked).

Everything runs in-process on the 2-clip synthetic dataset (``ds``, 128x128). SfM costs about a
second per short clip, so only the cases about a clip that succeeds run it, on clips cut to a few
frames; every other case fails before pycolmap is reached. The kill -9 fault test of
`triangulate` is in ``tests/test_triangulate.py``.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from corpus import assert_fails, assert_ok, run

from stages.core.artifacts import read_table

# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
ROW = 2  # the first camera line (line 1 is the URL)


def _clips(ds: Path) -> list[str]:
    return sorted(p.stem for p in (ds / "cameras").glob("*.txt"))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _edit_row(path: Path, lineno: int, **columns) -> Path:
    """Replace numbers on one line: ``columns`` maps a 0-based column to its new text."""
    lines = _lines(path)
    tokens = lines[lineno - 1].split()
    for col, text in columns.items():
        tokens[int(col[1:])] = text
    lines[lineno - 1] = " ".join(tokens)
    return _write_lines(path, lines)


def _cut(ds: Path, clip: str, frames: int) -> None:
    """Keep the first ``frames`` cameras of a clip (its extra frame files are ignored)."""
    path = ds / "cameras" / f"{clip}.txt"
    _write_lines(path, _lines(path)[: 1 + frames])


def _only(ds: Path, keep: list[str]) -> None:
    for clip in _clips(ds):
        if clip not in keep:
            (ds / "cameras" / f"{clip}.txt").unlink()


def _status(out: Path) -> dict:
    return read_table(out / "status.parquet").set_index("item").to_dict("index")


def _scratch(out: Path) -> list[str]:
    """Our scratch names: hidden temporary folders/files and COLMAP folders of older versions."""
    return sorted(p.name for p in out.iterdir() if p.name.startswith((".", "colmap.")))


@pytest.fixture
def poses(tmp_path, ds) -> Path:
    """A copy of one of the dataset's camera files, free to corrupt (a 16-frame trajectory)."""
    src = ds / "cameras" / f"{_clips(ds)[0]}.txt"
    return Path(shutil.copy(src, tmp_path / "poses.txt"))


def _synth(poses: Path, out: Path, *extra):
    return run("synth", "--poses", poses, "--out", out, "--size", "16x16", *extra)


# ----------------------------------------------------------------------------------------------
# The camera reader, through synth (defects 1 and 7; the rest already worked)
# ----------------------------------------------------------------------------------------------
def test_duplicate_timestamp_is_rejected_with_file_and_line(poses, tmp_path):
    """Defect 1: a repeated row made synth write 16 cameras for 15 frames."""
    lines = _lines(poses)
    _write_lines(poses, lines[: ROW + 1] + [lines[ROW]] + lines[ROW + 1 :])  # line 3 again as line 4
    line = assert_fails(_synth(poses, tmp_path / "out"), f"{poses}:4", absent=[tmp_path / "out"])
    assert "repeats the one on line 3" in line


def test_decreasing_timestamps_are_rejected(poses, tmp_path):
    lines = _lines(poses)
    lines[ROW - 1], lines[ROW] = lines[ROW], lines[ROW - 1]
    _write_lines(poses, lines)
    line = assert_fails(_synth(poses, tmp_path / "out"), f"{poses}:3", absent=[tmp_path / "out"])
    assert "earlier than" in line


@pytest.mark.parametrize("fx,fy", [("0", "0"), ("-0.5", "0.8"), ("0.5", "-1e-9")])
def test_focal_lengths_must_be_positive(poses, tmp_path, fx, fy):
    """Defect 7: fx = fy = 0 was a LinAlgError traceback; negative ones went into the dataset."""
    _edit_row(poses, ROW + 2, c1=fx, c2=fy)
    line = assert_fails(_synth(poses, tmp_path / "out"), f"{poses}:{ROW + 2}", absent=[tmp_path / "out"])
    assert "focal lengths must be positive" in line


@pytest.mark.parametrize(
    "edit,words",
    [
        ({"c0": "1.5"}, "not an integer"),
        ({"c0": "1e30"}, "out of range"),
        ({"c3": "nan"}, "non-finite"),
        ({"c4": "inf"}, "non-finite"),
        ({"c2": "abc"}, "not a number: 'abc'"),
        ({"c17": "-1"}, "reflection"),  # r33 = -1 turns the identity-like rotation into a reflection
    ],
)
def test_malformed_camera_lines(poses, tmp_path, edit, words):
    if "c17" in edit:  # make the line's rotation exactly diag(1, 1, -1): a reflection
        lines = _lines(poses)
        tokens = lines[ROW - 1].split()
        tokens[7:19] = "1 0 0 0 0 1 0 0 0 0 -1 0".split()
        lines[ROW - 1] = " ".join(tokens)
        _write_lines(poses, lines)
    else:
        _edit_row(poses, ROW, **edit)
    line = assert_fails(_synth(poses, tmp_path / "out"), f"{poses}:{ROW}", absent=[tmp_path / "out"])
    assert words in line


def test_wrong_number_of_columns(poses, tmp_path):
    lines = _lines(poses)
    lines[ROW] += " 7"
    _write_lines(poses, lines)
    line = assert_fails(_synth(poses, tmp_path / "out"), f"{poses}:{ROW + 1}", absent=[tmp_path / "out"])
    assert "found 20" in line


def test_empty_and_url_only_camera_files(tmp_path):
    empty = _write_lines(tmp_path / "empty.txt", [""])
    assert_fails(_synth(empty, tmp_path / "out"), empty, absent=[tmp_path / "out"])
    url = _write_lines(tmp_path / "url.txt", ["https://example.com"])
    assert "no camera lines" in assert_fails(_synth(url, tmp_path / "out"), url, absent=[tmp_path / "out"])


def test_binary_camera_file(tmp_path):
    f = tmp_path / "bin.txt"
    f.write_bytes(b"\xff\xfe\x00garbage\x89PNG")
    assert_fails(_synth(f, tmp_path / "out"), f, absent=[tmp_path / "out"])


# ----------------------------------------------------------------------------------------------
# synth
# ----------------------------------------------------------------------------------------------
def test_synth_out_is_a_file(poses, tmp_path):
    """Defect 3: a FileExistsError traceback after all the rendering."""
    f = tmp_path / "taken"
    f.write_text("x")
    assert "is a file" in assert_fails(_synth(poses, f), f)
    assert f.read_text() == "x"


@pytest.mark.parametrize(
    "args,option",
    [
        (["--seed", "-1"], "--seed"),
        (["--scale", "0"], "--scale"),
        (["--scale", "nan"], "--scale"),
        (["--random-scale", "2", "1"], "--random-scale"),
        (["--random-scale", "1", "inf"], "--random-scale"),
        (["--random-scale", "0", "1"], "--random-scale"),
        (["--size", "4x4"], "--size"),
        (["--size", "16"], "--size"),
        (["--size", "99999x16"], "--size"),
        (["--size", "16x16x3"], "--size"),
    ],
)
def test_synth_bad_options(poses, tmp_path, args, option):
    out = tmp_path / "out"
    assert_fails(run("synth", "--poses", poses, "--out", out, *args), option, absent=[out])


def test_synth_missing_poses_and_texture_not_an_image(poses, tmp_path):
    out = tmp_path / "out"
    assert_fails(_synth(tmp_path / "nope.txt", out), tmp_path / "nope.txt", absent=[out])
    junk = tmp_path / "texture.png"
    junk.write_bytes(b"not a png")
    assert_fails(_synth(poses, out, "--texture", junk), junk, absent=[out])


def test_synth_disk_full_leaves_no_clip_behind(poses, tmp_path, monkeypatch):
    """Defect 4: an OSError while writing is one line naming the file; the clip's frames already
    written are removed and the truth table does not list it."""
    import stages.synth

    def full(path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stages.synth, "write_arrays", full)
    out = tmp_path / "out"
    line = assert_fails(
        _synth(poses, out),
        f"{out / 'depth_gt' / 'poses.npz'}",
        absent=[out / "frames" / "poses", out / "cameras" / "poses.txt", out / "truth.parquet"],
    )
    assert "the disk is full" in line
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_synth_unwritable_output(poses):
    """Defect 4: an output that cannot be created (here under /proc) fails before any rendering."""
    assert_fails(_synth(poses, Path("/proc/realcam-test/out")), "/proc/realcam-test")


def test_synth_paths_with_spaces_and_unicode_and_rerun_counts(poses, tmp_path):
    """Defect 23: a re-run says what it skipped."""
    src = tmp_path / "pösés dir" / "clip ü 1.txt"
    src.parent.mkdir()
    _write_lines(src, _lines(poses)[:4])
    out = tmp_path / "out ñ"
    res = _synth(src, out)
    assert_ok(res)
    assert "1 written (0 skipped" in res.output
    assert sorted(p.name for p in (out / "frames" / "clip ü 1").iterdir()) == sorted(
        f"{line.split()[0]}.png" for line in _lines(src)[1:]
    )
    res = _synth(src, out)
    assert_ok(res)
    assert "0 written (1 skipped as already done)" in res.output


# ----------------------------------------------------------------------------------------------
# triangulate: what fails before pycolmap
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,option",
    [
        (["--overlap", "0"], "--overlap"),  # defect 2: "Check failed: overlap > 0", exit 134
        (["--overlap", "-3"], "--overlap"),
        (["--workers", "0"], "--workers"),
        (["--min-points", "-1"], "--min-points"),
        (["--seed", "-1"], "--seed"),
        (["--shard", "2/2"], "--shard"),
        (["--shard", "x"], "--shard"),
    ],
)
def test_triangulate_bad_options(ds, tmp_path, args, option):
    out = tmp_path / "sfm"
    assert_fails(run("triangulate", ds, "--out", out, *args), option, absent=[out])


def test_triangulate_out_is_a_file(ds, tmp_path):
    """Defect 3."""
    f = tmp_path / "taken"
    f.write_text("x")
    assert_fails(run("triangulate", ds, "--out", f), f)


def test_triangulate_missing_dataset_and_empty_cameras(ds, tmp_path):
    out = tmp_path / "sfm"
    assert "no such dataset folder" in assert_fails(
        run("triangulate", tmp_path / "nope", "--out", out), tmp_path / "nope", absent=[out]
    )
    for f in (ds / "cameras").glob("*.txt"):
        f.unlink()
    assert "no clips" in assert_fails(run("triangulate", ds, "--out", out), ds / "cameras", absent=[out])


def test_triangulate_unwritable_output(ds):
    """Defect 4: an output that cannot be created is one line before any clip."""
    assert_fails(run("triangulate", ds, "--out", "/proc/realcam-test/sfm"), "/proc/realcam-test")


def test_triangulate_bad_status_table(ds, tmp_path):
    out = tmp_path / "sfm"
    out.mkdir()
    (out / "status.parquet").write_text("not parquet")
    assert_fails(run("triangulate", ds, "--out", out), out / "status.parquet")


@pytest.mark.parametrize(
    "corrupt,words",
    [
        ("duplicate", "repeats the one on line 3"),  # defect 1: C++ abort, every clip of the batch lost
        ("zero_focal", "focal lengths must be positive"),  # defect 7
        ("not_an_image", "unreadable frame"),
        ("missing_frame", "missing frame"),
    ],
)
def test_triangulate_bad_clip_is_a_failed_row(ds, tmp_path, corrupt, words):
    """A bad clip alone: its status row says why (naming the file), nothing else is written, no
    scratch is left, exit 1 (nothing succeeded). None of these reaches pycolmap."""
    clip = _clips(ds)[0]
    _only(ds, [clip])
    cams = ds / "cameras" / f"{clip}.txt"
    frames = sorted((ds / "frames" / clip).iterdir())
    where = {
        "duplicate": f"{cams}:4",
        "zero_focal": f"{cams}:2",
        "not_an_image": str(frames[1]),
        "missing_frame": str(ds / "frames" / clip),
    }[corrupt]
    if corrupt == "duplicate":
        lines = _lines(cams)
        _write_lines(cams, lines[:3] + [lines[2]] + lines[3:])
    elif corrupt == "zero_focal":
        _edit_row(cams, 2, c1="0", c2="0")
    elif corrupt == "not_an_image":
        frames[1].write_bytes(b"GIF89a but not really")
    else:
        frames[1].unlink()
    out = tmp_path / "sfm"
    res = run("triangulate", ds, "--out", out)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    row = _status(out)[clip]
    assert row["status"] == "failed" and words in row["reason"] and where in row["reason"], row
    assert f"failed {clip}: " in res.output and "0 ok" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["status.parquet"]


# ----------------------------------------------------------------------------------------------
# triangulate: cases that run SfM (short clips)
# ----------------------------------------------------------------------------------------------
def test_triangulate_batch_goes_on_with_unicode_paths(ds, tmp_path):
    """One clip fails (a repeated timestamp), the other is triangulated, under paths with spaces
    and non-ASCII characters; the re-run skips the good clip, retries the bad one and says so."""
    a, b = _clips(ds)
    root = tmp_path / "dätä set"
    shutil.move(ds, root)
    (root / "cameras" / f"{a}.txt").rename(root / "cameras" / "clip ü.txt")
    (root / "frames" / a).rename(root / "frames" / "clip ü")
    _cut(root, "clip ü", 5)
    cams = root / "cameras" / f"{b}.txt"
    lines = _lines(cams)[:6]
    _write_lines(cams, lines[:3] + [lines[2]] + lines[3:])
    out = tmp_path / "sfm ñ"
    res = run("triangulate", root, "--out", out)
    assert_ok(res)
    assert "1 ok (0 skipped as already done), 1 failed" in res.output
    st = _status(out)
    assert st["clip ü"]["status"] == "ok" and st["clip ü"]["n_points"] > 0
    assert st[b]["status"] == "failed" and f"{cams}:4" in st[b]["reason"]
    assert (out / "clip ü" / "points.parquet").exists() and not (out / b).exists()
    assert _scratch(out) == []
    res = run("triangulate", root, "--out", out)
    assert "1 ok (1 skipped as already done), 1 failed" in res.output


def test_triangulate_disk_full_is_a_failed_row(ds, tmp_path, monkeypatch):
    """Defect 4: a write that fails (ENOSPC) inside a clip fails that clip with the reason; the
    clip's temporary folder (with the COLMAP database) is removed and the batch goes on."""
    import stages.triangulate

    clip = _clips(ds)[0]
    _only(ds, [clip])
    _cut(ds, clip, 4)
    real = stages.triangulate.write_table

    def full(path, table):
        if Path(path).name == "points.parquet":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, table)

    monkeypatch.setattr(stages.triangulate, "write_table", full)
    out = tmp_path / "sfm"
    res = run("triangulate", ds, "--out", out)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    row = _status(out)[clip]
    assert row["status"] == "failed" and "the disk is full" in row["reason"] and str(out / clip) in row["reason"]
    assert sorted(p.name for p in out.iterdir()) == ["status.parquet"]


def test_triangulate_removes_stale_scratch_of_its_own_clips_only(ds, tmp_path):
    """Defect 12: scratch of a killed run (ours, for this shard's clips) is removed at start;
    another shard's temporary folder and foreign files are left alone."""
    a, b = _clips(ds)  # shard 0/2 is clip a, shard 1/2 clip b
    cams = ds / "cameras" / f"{a}.txt"
    _edit_row(cams, 2, c1="0")  # clip a fails at once: the case needs no SfM
    out = tmp_path / "sfm"
    stale = [out / f".{a}.abc_1234.tmp", out / f".{a}.old", out / "colmap.k2j4h5g6"]
    kept = [out / f".{b}.zzzz9999.tmp", out / "notes.txt", out / ".hidden"]
    for p in stale + kept[:1]:
        (p / "sparse").mkdir(parents=True)
        (p / "database.db").write_bytes(b"sqlite")
    (out / ".status.shard-0-of-2.abcdefgh.tmp.parquet").write_bytes(b"half")
    stale.append(out / ".status.shard-0-of-2.abcdefgh.tmp.parquet")
    for p in kept[1:]:
        p.write_text("mine")
    res = run("triangulate", ds, "--out", out, "--shard", "0/2")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert not [p for p in stale if p.exists()]
    assert all(p.exists() for p in kept)


# ----------------------------------------------------------------------------------------------
# align-scale
# ----------------------------------------------------------------------------------------------
def _fake_sfm(ds: Path, out: Path, clip: str) -> Path:
    """A triangulation folder for one clip, written by hand (no SfM): enough for align-scale."""
    from stages.core import cameras as cam
    from stages.core.artifacts import write_table

    d = out / clip
    d.mkdir(parents=True)
    cams = cam.read_re10k(ds / "cameras" / f"{clip}.txt")
    cam.write_re10k(d / "cameras.txt", cams)
    x, y, z, _ = cams.c2w[0] @ [0.0, 0.0, 2.0, 1.0]  # on frame 0's optical axis, 2 units ahead
    write_table(
        d / "points.parquet",
        pd.DataFrame({"point": [1], "x": [x], "y": [y], "z": [z], "error": [0.1], "track_length": [3]}),
    )
    write_table(
        d / "observations.parquet",
        pd.DataFrame(
            {"point": [1, 1, 1], "frame": [0, 1, 2], "timestamp": cams.timestamps[:3], "u": [64.0] * 3, "v": [64.0] * 3}
        ),
    )
    (d / "clip.json").write_text(json.dumps({"clip_id": clip, "width": 128, "height": 128}))
    write_table(out / "status.parquet", pd.DataFrame({"item": [clip], "status": ["ok"], "reason": [""]}))
    return d


def _align(ds: Path, sfm: Path, out: Path, *extra):
    return run("align-scale", "--depth", ds / "depth_gt", "--sfm", sfm, "--out", out, *extra)


def test_align_scale_status_without_status_column(ds, tmp_path):
    """Defect 9: a KeyError traceback."""
    sfm = tmp_path / "sfm"
    _fake_sfm(ds, sfm, _clips(ds)[0])
    pd.DataFrame({"item": [_clips(ds)[0]], "reason": [""]}).to_parquet(sfm / "status.parquet")
    line = assert_fails(_align(ds, sfm, tmp_path / "scales"), sfm / "status.parquet", absent=[tmp_path / "scales"])
    assert "lacks column(s) status" in line


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"width": 0, "height": 128}', '{"height": 5}'])
def test_align_scale_corrupt_clip_json_names_the_file(ds, tmp_path, content):
    """Defect 24: the reason of a corrupt clip.json did not name the file."""
    clip = _clips(ds)[0]
    sfm = tmp_path / "sfm"
    d = _fake_sfm(ds, sfm, clip)
    (d / "clip.json").write_text(content)
    res = _align(ds, sfm, tmp_path / "scales")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    row = read_table(tmp_path / "scales" / "clips.parquet").set_index("clip_id").loc[clip]
    assert row["status"] == "failed" and str(d / "clip.json") in row["reason"], row["reason"]


def test_align_scale_out_is_a_file(ds, tmp_path):
    """Defect 3."""
    sfm = tmp_path / "sfm"
    _fake_sfm(ds, sfm, _clips(ds)[0])
    f = tmp_path / "taken"
    f.write_text("x")
    assert_fails(_align(ds, sfm, f), f)


@pytest.mark.parametrize(
    "args,option",
    [
        (["--min-points", "0"], "--min-points"),
        (["--min-track", "-2"], "--min-track"),
        (["--max-depth", "0"], "--max-depth"),
        (["--max-depth", "nan"], "--max-depth"),
    ],
)
def test_align_scale_bad_options(ds, tmp_path, args, option):
    sfm = tmp_path / "sfm"
    _fake_sfm(ds, sfm, _clips(ds)[0])
    assert_fails(_align(ds, sfm, tmp_path / "scales", *args), option, absent=[tmp_path / "scales"])


def test_align_scale_missing_folders_and_bad_old_table(ds, tmp_path):
    sfm = tmp_path / "sfm"
    scales = tmp_path / "scales"
    assert "given to --sfm" in assert_fails(_align(ds, sfm, scales), sfm, absent=[scales])
    _fake_sfm(ds, sfm, _clips(ds)[0])
    res = run("align-scale", "--depth", tmp_path / "nodepth", "--sfm", sfm, "--out", scales)
    assert "given to --depth" in assert_fails(res, tmp_path / "nodepth", absent=[scales])
    scales.mkdir()
    pd.DataFrame({"clip_id": ["x"]}).to_parquet(scales / "clips.parquet")
    assert "lacks column(s) status" in assert_fails(_align(ds, sfm, scales), scales / "clips.parquet")


def test_align_scale_rerun_counts(ds, tmp_path):
    """Defect 23 (already worked): a re-run prints what it skipped."""
    clip = _clips(ds)[0]
    sfm = tmp_path / "sfm"
    _fake_sfm(ds, sfm, clip)
    res = _align(ds, sfm, tmp_path / "scales", "--min-points", "1", "--min-track", "1")
    assert_ok(res)
    assert "1 ok (0 skipped as already done), 0 failed" in res.output
    res = _align(ds, sfm, tmp_path / "scales", "--min-points", "1", "--min-track", "1")
    assert "1 ok (1 skipped as already done), 0 failed" in res.output


# ----------------------------------------------------------------------------------------------
# filter
# ----------------------------------------------------------------------------------------------
def _scales(ds: Path, out: Path, n_frames: dict | None = None) -> Path:
    """clips.parquet and frames.parquet for the dataset's clips, written by hand."""
    clips = _clips(ds)
    out.mkdir(parents=True)
    pd.DataFrame(
        {
            "clip_id": clips,
            "scale": 2.0,
            "scale_max": 2.5,
            "scale_min": 1.5,
            "scale_spread": 0.5,
            "n_frames": 16,
            "n_points": 100,
            "status": "ok",
            "reason": "",
        }
    ).to_parquet(out / "clips.parquet")
    rows = [(c, f, 2.0) for c in clips for f in range((n_frames or {}).get(c, 16))]
    pd.DataFrame(rows, columns=["clip_id", "frame", "scale"]).to_parquet(out / "frames.parquet")
    return out


def _filter(scales: Path, ds: Path, out: Path, *extra):
    return run("filter", scales, "--cameras", ds, "--out", out, *extra)


@pytest.mark.parametrize("frame", ["99", "16", "-1"])
def test_filter_cond_frame_out_of_range(ds, tmp_path, frame):
    """Defect 21: it fell back to the clip median without a word."""
    scales = _scales(ds, tmp_path / "scales")
    out = tmp_path / "filtered"
    assert_fails(_filter(scales, ds, out, "--cond-frame", frame), "--cond-frame", absent=[out])


def test_filter_cond_frame_beyond_a_short_clip_drops_it(ds, tmp_path):
    """Defect 21, clips of different lengths: the clip without that frame is dropped with the
    reason, the other is kept."""
    short, long_ = _clips(ds)
    _cut(ds, short, 8)
    scales = _scales(ds, tmp_path / "scales", {short: 8})
    out = tmp_path / "filtered"
    res = _filter(scales, ds, out, "--cond-frame", "10")
    assert_ok(res)
    assert "kept 1, dropped 1" in res.output
    dropped = read_table(out / "dropped.parquet").set_index("clip_id")
    assert dropped.loc[short, "rule"].startswith("cond_frame_missing: the clip has 8 frames")
    assert read_table(out / "keep.parquet")["clip_id"].tolist() == [long_]
    assert sorted(p.stem for p in (out / "cameras").iterdir()) == [long_]


def test_filter_out_is_a_file(ds, tmp_path):
    """Defect 3."""
    scales = _scales(ds, tmp_path / "scales")
    f = tmp_path / "taken"
    f.write_text("x")
    assert_fails(_filter(scales, ds, f), f)


@pytest.mark.parametrize("q", ["0.5", "-0.1", "nan"])
def test_filter_bad_quantile(ds, tmp_path, q):
    scales = _scales(ds, tmp_path / "scales")
    assert_fails(_filter(scales, ds, tmp_path / "f", "--quantile", q), "--quantile", absent=[tmp_path / "f"])


def test_filter_missing_inputs(ds, tmp_path):
    out = tmp_path / "f"
    assert_fails(_filter(tmp_path / "nope", ds, out), tmp_path / "nope", absent=[out])
    scales = _scales(ds, tmp_path / "scales")
    assert_fails(_filter(scales, tmp_path / "nods", out), tmp_path / "nods", absent=[out])
    (scales / "frames.parquet").unlink()
    assert_fails(_filter(scales, ds, out), scales / "frames.parquet", absent=[out])


def test_filter_bad_camera_file_drops_the_clip(ds, tmp_path):
    """Already worked: a kept clip whose camera file is broken is dropped with file:line."""
    bad, good = _clips(ds)
    _edit_row(ds / "cameras" / f"{bad}.txt", 3, c5="x")
    scales = _scales(ds, tmp_path / "scales")
    res = _filter(scales, ds, tmp_path / "f ü")
    assert_ok(res)
    rule = read_table(tmp_path / "f ü" / "dropped.parquet").set_index("clip_id").loc[bad, "rule"]
    assert rule.startswith("bad_camera_file") and f"{bad}.txt:3" in rule


# ----------------------------------------------------------------------------------------------
# depth (the CLI's output check only; the stage is tested in test_bad_media.py)
# ----------------------------------------------------------------------------------------------
def test_depth_out_is_a_file(ds, tmp_path):
    """Defect 3."""
    f = tmp_path / "taken"
    f.write_text("x")
    assert_fails(run("depth", ds, "--out", f, "--from-files", ds / "depth_gt"), f)
    assert f.read_text() == "x"
