"""Bad input for `depth`, `preview`, `edit` and `evaluate` (issue 22: defects 3, 4, 5, 6, 10, 15,
16, 17, 19, 20, 23, 24, and the cases that already worked).

Everything runs in-process on tiny inputs: the 2-clip synthetic dataset (``ds``) with its
ground-truth depth as `--from-files`, a 32x32 photo with a flat depth file, estimated
trajectories instead of SfM. No case loads a depth model or sends a byte over the network.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from corpus import assert_fails, assert_ok, run

from stages.core.artifacts import read_arrays, read_table

SIZE = 32


def _clips(ds: Path) -> list[str]:
    return sorted(p.stem for p in (ds / "cameras").glob("*.txt"))


# ----------------------------------------------------------------------------------------------
# depth
# ----------------------------------------------------------------------------------------------
def _depth(ds: Path, out: Path, *extra):
    return run("depth", ds, "--out", out, "--from-files", ds / "depth_gt", *extra)


def _rows(out: Path) -> dict:
    index = read_table(out / "index.parquet")
    return {item: rows.iloc[0] for item, rows in index.sort_values("status").groupby("item")}


def test_depth_out_is_a_file_before_any_work(ds, tmp_path):
    """Defect 3: an --out that is a file is refused first, not after every item is done."""
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    assert_fails(_depth(ds, blocker), "taken", "is a file")
    assert blocker.read_text() == "keep me"
    assert_fails(_depth(ds, blocker / "sub"), "is a file", absent=[blocker / "sub"])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_depth_full_or_read_only_disk_fails_the_item(ds, tmp_path, monkeypatch, code):
    """Defect 4: a write that fails makes a failed row with the reason (all failed: exit 1)."""
    import stages.depth

    def broken(path, *args, **kwargs):
        raise OSError(code, "simulated", str(path))

    monkeypatch.setattr(stages.depth, "write_arrays", broken)
    out = tmp_path / "out"
    r = _depth(ds, out)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    hint = "the disk is full" if code == errno.ENOSPC else "not writable"
    for clip in _clips(ds):
        row = _rows(out)[clip]
        assert row["status"] == "failed" and hint in row["reason"] and f"{clip}.npz" in row["reason"]
        assert not (out / f"{clip}.npz").exists()


def test_depth_index_that_cannot_be_written_is_one_line(ds, tmp_path, monkeypatch):
    """Defect 4: the index itself on a full disk: one line naming it, exit 2."""
    import stages.core.batch

    def broken(path, table):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(stages.core.batch, "write_table", broken)  # the batch engine writes the index
    assert_fails(_depth(ds, tmp_path / "out"), "index.parquet", "the disk is full")


def test_depth_npz_of_strings_fails_its_item_only(ds, tmp_path):
    """Defect 6: a depth file of strings is a failed row; the batch goes on and is indexed."""
    bad, good = _clips(ds)
    np.savez(ds / "depth_gt" / f"{bad}.npz", depth=np.full((16, 4, 4), "x"))
    out = tmp_path / "out"
    assert_ok(_depth(ds, out))
    rows = _rows(out)
    assert rows[bad]["status"] == "failed" and "must hold numbers" in rows[bad]["reason"]
    assert rows[good]["status"] == "ok" and (out / f"{good}.npz").exists()
    assert not (out / f"{bad}.npz").exists()


@pytest.mark.parametrize("kind,fill", [("NaN", np.nan), ("infinite", np.inf), ("zero", 0.0), ("negative", -2.0)])
def test_depth_without_usable_values_fails_at_depth(ds, tmp_path, kind, fill):
    """Defect 20: all-NaN, all-inf, all-zero and negative maps fail here, with the reason."""
    bad, good = _clips(ds)
    path = ds / "depth_gt" / f"{bad}.npz"
    data = read_arrays(path)
    data["depth"][3] = fill
    np.savez(path, **data)
    out = tmp_path / "out"
    assert_ok(_depth(ds, out))
    rows = _rows(out)
    reason = rows[bad]["reason"]
    assert rows[bad]["status"] == "failed", reason
    assert "no usable depth" in reason and f"100% {kind}" in reason and "frame" in reason, reason
    assert rows[good]["status"] == "ok"


def test_depth_with_holes_is_still_ok(ds, tmp_path):
    """Defect 20, the rule's other side: partial NaN/zero holes pass (align-scale skips them);
    the index statistics are over the measured pixels."""
    bad, _ = _clips(ds)
    path = ds / "depth_gt" / f"{bad}.npz"
    data = read_arrays(path)
    data["depth"][:, :64] = np.nan
    data["depth"][:, 64:70] = 0.0
    np.savez(path, **data)
    out = tmp_path / "out"
    assert_ok(_depth(ds, out))
    rows = read_table(out / "index.parquet")
    mine = rows[rows["item"] == bad]
    assert (mine["status"] == "ok").all() and np.isfinite(mine[["min", "median", "max"]]).all().all()
    assert (mine["min"] > 0).all()


def test_depth_missing_from_files_folder_is_up_front(ds, tmp_path):
    """Defect 23: a missing --from-files folder is one line, not a failed row per item."""
    out = tmp_path / "out"
    r = run("depth", ds, "--out", out, "--from-files", tmp_path / "no such")
    assert_fails(r, "no such", "--from-files", absent=[out])


def test_depth_garbage_npz_is_named_without_pickles(ds, tmp_path):
    """Defect 24: a damaged NPZ is 'not a readable NPZ file', never numpy's pickle advice."""
    bad, good = _clips(ds)
    (ds / "depth_gt" / f"{bad}.npz").write_text("garbage, not a zip archive\n")
    out = tmp_path / "out"
    assert_ok(_depth(ds, out))
    reason = _rows(out)[bad]["reason"]
    assert "not a readable NPZ file" in reason and "pickle" not in reason.lower(), reason


def test_depth_offline_model_fails_at_once(ds, tmp_path, monkeypatch):
    """Defect 17: offline and not cached: one line naming the model and `hf download`, at once,
    without retry lines."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = "realcam-tests/no-such-depth-model"
    t0 = time.perf_counter()
    r = run("depth", ds, "--out", tmp_path / "out", "--model", model, "--device", "cpu")
    elapsed = time.perf_counter() - t0
    assert_fails(r, model, f"hf download {model}", absent=[tmp_path / "out"])
    assert elapsed < 10 and "Retrying" not in r.output and "huggingface-cli" not in r.output, elapsed


def test_depth_bad_model_paths(ds, tmp_path):
    assert_fails(
        run("depth", ds, "--out", tmp_path / "o", "--model", tmp_path / "no" / "model"),
        "no such depth model folder",
        absent=[tmp_path / "o"],
    )
    (tmp_path / "file.bin").write_text("x")
    assert_fails(
        run("depth", ds, "--out", tmp_path / "o", "--model", tmp_path / "file.bin"), "file.bin", absent=[tmp_path / "o"]
    )


@pytest.mark.parametrize("option,value", [("--max-depth", "0"), ("--max-depth", "nan"), ("--batch-size", "0")])
def test_depth_bad_numbers_before_any_work(ds, tmp_path, option, value):
    out = tmp_path / "out"
    assert_fails(_depth(ds, out, option, value), option, absent=[out])


def test_depth_missing_input_and_undecodable_frames(ds, tmp_path):
    assert_fails(run("depth", tmp_path / "nothing", "--out", tmp_path / "o"), "nothing", absent=[tmp_path / "o"])
    bad, good = _clips(ds)
    frames = sorted((ds / "frames" / bad).iterdir())
    frames[0].write_text("not an image")
    frames[1].write_bytes(b"")
    out = tmp_path / "out"
    assert_ok(_depth(ds, out))
    rows = _rows(out)
    assert rows[bad]["status"] == "failed" and "cannot decode image" in rows[bad]["reason"]
    assert frames[0].name in rows[bad]["reason"] and rows[good]["status"] == "ok"


def test_depth_all_items_failed_exits_1(ds, tmp_path):
    for clip in _clips(ds):
        (ds / "depth_gt" / f"{clip}.npz").unlink()
    out = tmp_path / "out"
    r = _depth(ds, out)
    assert r.exit_code == 1 and "Traceback" not in r.output and "0 ok" in r.output, r.output
    assert all(row["status"] == "failed" for row in _rows(out).values())


# ----------------------------------------------------------------------------------------------
# preview
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 32x32 photo with a flat metric depth at 3 m, and a few broken files."""
    from stages.core.video import write_image

    root = tmp_path_factory.mktemp("badpreview")
    rng = np.random.default_rng(0)
    write_image(root / "image.png", rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    np.save(root / "depth.npy", np.full((SIZE, SIZE), 3.0, np.float32))
    (root / "text.png").write_text("not an image")
    (root / "empty.png").write_bytes(b"")
    (root / "garbage.npz").write_text("not an npz")
    return root


def _preview(photo, out, *extra, image=None, preset=("--preset", "pan-left")):
    return run(
        "preview",
        image or photo / "image.png",
        *extra,
        *preset,
        "--depth",
        photo / "depth.npy",
        "--out",
        out,
        "--frames",
        "4",
        "--device",
        "cpu",
    )


def test_preview_out_is_a_file_before_any_work(photo, tmp_path):
    """Defect 3."""
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    assert_fails(_preview(photo, blocker), "taken", "is a file")
    assert blocker.read_text() == "keep me" and not list(tmp_path.glob(".taken*"))


def test_preview_full_disk_is_one_line(photo, tmp_path, monkeypatch):
    """Defect 4 (preview side): a write that fails is one line naming the file, exit 2."""
    import stages.preview

    def broken(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(stages.preview, "write_arrays", broken)
    out = tmp_path / "out"
    assert_fails(_preview(photo, out), "preview.npz", "the disk is full", absent=[out / "preview.npz"])


def test_preview_of_a_huge_photo_works_at_the_render_size(photo, tmp_path):
    """Defect 15: a 6000x4000 photo (depth given) previews at 64x64 in seconds, not minutes:
    the scene is built at twice the render size (192x128), not from 24 M pixels."""
    from PIL import Image

    big = tmp_path / "big.png"
    ramp = np.linspace(0, 255, 6000, dtype=np.float32)
    rgb = np.broadcast_to(ramp[None, :, None], (4000, 6000, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(big, compress_level=1)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = _preview(photo, out, "--size", "64x64", image=big)
    elapsed = time.perf_counter() - t0
    assert_ok(r)
    assert elapsed < 30, elapsed  # about 2 s here; more than 180 s before the fix
    arrays = read_arrays(out / "preview.npz")
    assert arrays["frames"].shape == (4, 64, 64, 3) and arrays["masks"][0].mean() > 0.5
    points = int(re.search(r"from (\d+) points", r.output).group(1))
    assert points <= 192 * 128, points  # twice the render size (64 on the 4000 side), not 24 M


def test_preview_of_a_huge_photo_without_size_is_refused(photo, tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (5000, 100)).save(big)
    assert_fails(_preview(photo, tmp_path / "o", image=big), "big.png", "--size", absent=[tmp_path / "o"])


def test_preview_frame_count_is_bounded(photo, tmp_path):
    """Defect 16: a billion frames is one line naming the file (or --frames), not a MemoryError."""
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"version": 1, "frames": 1_000_000_000, "keyframes": [{"c2w": np.eye(4).tolist()}]}))
    out = tmp_path / "out"
    assert_fails(_preview(photo, out, traj, preset=()), "t.json", "frames", "10000", absent=[out])
    r = run(
        "preview",
        photo / "image.png",
        "--preset",
        "pan-left",
        "--depth",
        photo / "depth.npy",
        "--out",
        out,
        "--frames",
        "1000000000",
    )
    assert_fails(r, "--frames", absent=[out])
    r = run(
        "preview",
        photo / "image.png",
        "--preset",
        "pan-left",
        "--depth",
        photo / "depth.npy",
        "--out",
        out,
        "--frames",
        "10000",
        "--size",
        "1024x1024",
    )
    assert_fails(r, "--frames", "smaller --size", absent=[out])


def test_preview_odd_size_is_refused_with_the_even_one(photo, tmp_path):
    """Defect 19: preview.mp4 cannot be 127x65 in H.264 yuv420p: refused, the even sizes named."""
    out = tmp_path / "out"
    assert_fails(_preview(photo, out, "--size", "127x65"), "--size", "128x66", "126x64", absent=[out])
    assert_fails(_preview(photo, out, "--size", "64x33"), "--size", "64x34 or 64x32", absent=[out])


def test_preview_odd_image_defaults_to_the_even_size_below(photo, tmp_path):
    """Defect 19 without --size: a 33x21 photo previews at 32x20, and says so."""
    from stages.core.video import read_video, write_image

    write_image(tmp_path / "odd.png", np.full((21, 33, 3), 128, np.uint8))
    np.save(tmp_path / "odd.npy", np.full((21, 33), 2.0, np.float32))
    out = tmp_path / "out"
    r = run(
        "preview",
        tmp_path / "odd.png",
        "--preset",
        "dolly-in",
        "--depth",
        tmp_path / "odd.npy",
        "--out",
        out,
        "--frames",
        "3",
        "--device",
        "cpu",
    )
    assert_ok(r)
    assert "3 frames of 32x20" in r.output
    assert read_arrays(out / "preview.npz")["frames"].shape == (3, 20, 32, 3)
    assert read_video(out / "preview.mp4").shape == (3, 20, 32, 3)


@pytest.mark.parametrize(
    "name,message", [("missing.png", "no such image"), ("text.png", "cannot decode"), ("empty.png", "cannot decode")]
)
def test_preview_bad_images(photo, tmp_path, name, message):
    out = tmp_path / "out"
    assert_fails(_preview(photo, out, image=photo / name), name, message, absent=[out])


def test_preview_bad_depth_files(photo, tmp_path):
    """Defect 24 (preview side): a damaged NPZ is named without numpy's pickle text."""
    out = tmp_path / "out"
    r = run("preview", photo / "image.png", "--preset", "pan-left", "--depth", photo / "garbage.npz", "--out", out)
    line = assert_fails(r, "garbage.npz", "not a readable NPZ file", absent=[out])
    assert "pickle" not in line.lower()
    (tmp_path / "empty.npy").write_bytes(b"")
    r = run("preview", photo / "image.png", "--preset", "pan-left", "--depth", tmp_path / "empty.npy", "--out", out)
    assert_fails(r, "empty.npy", absent=[out])
    np.save(tmp_path / "nan.npy", np.full((SIZE, SIZE), np.nan, np.float32))
    r = run("preview", photo / "image.png", "--preset", "pan-left", "--depth", tmp_path / "nan.npy", "--out", out)
    assert_fails(r, "nan.npy", "no positive finite value", absent=[out])


def test_preview_trajectory_syntax_error_names_file_and_line(photo, tmp_path):
    traj = tmp_path / "t.json"
    traj.write_text('{\n  "version": 1,\n  "keyframes": [\n    {"c2w": [1, 2,]}\n  ]\n}\n')
    out = tmp_path / "out"
    assert_fails(_preview(photo, out, traj, preset=()), f"{traj}:4", "invalid JSON", absent=[out])


def test_preview_reflection_in_a_keyframe(photo, tmp_path):
    traj = tmp_path / "t.json"
    traj.write_text(
        json.dumps(
            {"version": 1, "keyframes": [{"c2w": np.eye(4).tolist()}, {"c2w": np.diag([1, -1, 1, 1.0]).tolist()}]}
        )
    )
    out = tmp_path / "out"
    assert_fails(_preview(photo, out, traj, preset=()), "t.json", "keyframe 1", "reflection", absent=[out])


@pytest.mark.parametrize(
    "extra,option",
    [
        (("--preset", "spin"), "--preset"),
        (("--preset", "pan-left+dolly-in+tilt-up"), "--preset"),
        (("--preset", "pan-left", "--magnitude", "abc"), "--magnitude"),
        (("--preset", "pan-left", "--magnitude", "nan"), "--magnitude"),
        (("--preset", "pan-left", "--magnitude", "1,2,3"), "--magnitude"),
        (("--preset", "pan-left", "--size", "abc"), "--size"),
        (("--preset", "pan-left", "--size", "12x"), "--size"),
        (("--preset", "pan-left", "--size", "0x0"), "--size"),
        (("--preset", "pan-left", "--size", "-8x8"), "--size"),
        (("--preset", "pan-left", "--size", "8x8x8"), "--size"),
        (("--preset", "pan-left", "--size", "99999x64"), "--size"),
        (("--preset", "pan-left", "--kernel", "4"), "--kernel"),
        (("--preset", "pan-left", "--fov", "180"), "--fov"),
        (("--preset", "pan-left", "--fov", "nan"), "--fov"),
        (("--preset", "pan-left", "--fps", "0"), "--fps"),
        (("--preset", "pan-left", "--easing", "wobble"), "--easing"),
        (("--preset", "pan-left", "--latent-stride", "0"), "--latent-stride"),
        (("--preset", "pan-left", "--batch-size", "0"), "--batch-size"),
        (("--preset", "pan-left", "--device", "tpu"), "--device"),
    ],
)
def test_preview_bad_options_before_any_work(photo, tmp_path, extra, option):
    out = tmp_path / "out"
    r = run("preview", photo / "image.png", *extra, "--depth", photo / "depth.npy", "--out", out, "--frames", "4")
    assert_fails(r, option, absent=[out])


def test_preview_file_and_preset_together(photo, tmp_path):
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"version": 1, "keyframes": [{"c2w": np.eye(4).tolist()}]}))
    assert_fails(_preview(photo, tmp_path / "o", traj), "--preset", absent=[tmp_path / "o"])


def test_preview_paths_with_spaces_and_unicode(photo, tmp_path):
    folder = tmp_path / "mes fichiers é 写真"
    folder.mkdir()
    shutil.copy(photo / "image.png", folder / "photo à moi.png")
    shutil.copy(photo / "depth.npy", folder / "profondeur 1.npy")
    out = folder / "aperçu out"
    r = run(
        "preview",
        folder / "photo à moi.png",
        "--preset",
        "orbit-left",
        "--depth",
        folder / "profondeur 1.npy",
        "--out",
        out,
        "--frames",
        "3",
        "--device",
        "cpu",
    )
    assert_ok(r)
    assert (out / "preview.mp4").exists() and (out / "trajectory.txt").exists()


# ----------------------------------------------------------------------------------------------
# edit
# ----------------------------------------------------------------------------------------------
def _edit(photo, tmp_path, *extra):
    return run(
        "edit",
        photo / "image.png",
        "--depth",
        photo / "depth.npy",
        "--export",
        tmp_path / "p.json",
        "--duration",
        "0",
        "--device",
        "cpu",
        *extra,
    )


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_edit_port_out_of_range_fails_at_once(photo, tmp_path, port):
    """Defect 5: no server-thread traceback and no hang: one line, before the scene is built."""
    t0 = time.perf_counter()
    assert_fails(_edit(photo, tmp_path, "--port", port), "--port", port)
    assert time.perf_counter() - t0 < 5 and not list(tmp_path.iterdir())


def test_edit_address_of_another_machine_fails_at_once(photo, tmp_path):
    """Defect 5: an address this machine does not have cannot be bound (EADDRNOTAVAIL): one line
    at once. Only a bind is tried, nothing is sent to it."""
    t0 = time.perf_counter()
    assert_fails(_edit(photo, tmp_path, "--host", "10.255.255.1", "--port", "8080"), "--host", "10.255.255.1")
    assert time.perf_counter() - t0 < 5


def test_edit_taken_port_moves_to_the_next_free_one(photo, tmp_path):
    """--port taken on 127.0.0.1 (a socket this test holds): the editor serves on the next free
    port and says which (as --port's help promises), and stops (--duration 0)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        r = _edit(photo, tmp_path, "--port", str(port), "--size", "32x32", "--frames", "2")
    assert_ok(r)
    served = [line for line in r.output.splitlines() if "in a browser" in line]
    assert served and f":{port} " not in served[0] and "http://127.0.0.1:" in served[0], r.output


@pytest.mark.parametrize(
    "extra,option",
    [
        (("--size", "127x65"), "--size"),
        (("--frames", "1000000000"), "--frames"),
        (("--frames", "0"), "--frames"),
        (("--fps", "0"), "--fps"),
        (("--duration", "nan"), "--duration"),
        (("--preset", "spin"), "--preset"),
        (("--magnitude", "inf"), "--magnitude"),
        (("--fov", "0"), "--fov"),
    ],
)
def test_edit_bad_options_before_the_scene(photo, tmp_path, extra, option):
    assert_fails(_edit(photo, tmp_path, *extra), option)
    assert not list(tmp_path.iterdir())


def test_edit_bad_image_and_export(photo, tmp_path):
    assert_fails(
        run(
            "edit",
            photo / "text.png",
            "--depth",
            photo / "depth.npy",
            "--duration",
            "0",
            "--export",
            tmp_path / "p.json",
        ),
        "text.png",
    )
    assert_fails(_edit(photo, tmp_path, "--export", tmp_path / "p.txt"), "--export", ".json")
    (tmp_path / "dir.json").mkdir()
    assert_fails(_edit(photo, tmp_path, "--export", tmp_path / "dir.json"), "dir.json", "folder")


# ----------------------------------------------------------------------------------------------
# evaluate (estimated trajectories or failures before SfM: no SfM runs here)
# ----------------------------------------------------------------------------------------------
def test_evaluate_out_is_a_file_before_any_work(ds, tmp_path):
    """Defect 3."""
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    r = run("evaluate", ds / "cameras", "--reference", ds / "cameras", "--out", blocker, "--estimated")
    assert_fails(r, "taken", "is a file")
    assert blocker.read_text() == "keep me"


def test_evaluate_missing_reference_folder(ds, tmp_path):
    r = run("evaluate", ds / "frames", "--reference", tmp_path / "no ref", "--out", tmp_path / "o")
    assert_fails(r, "no ref", "--reference", absent=[tmp_path / "o"])


def test_evaluate_empty_frame_folder_is_a_failed_row_and_all_failed_exits_1(ds, tmp_path):
    """Defects 23 and 10: an empty frames folder is a failed row (not dropped), and a batch in
    which every video failed exits 1, printing its counts."""
    samples = tmp_path / "samples"
    (samples / "empty").mkdir(parents=True)
    shutil.copy(next((ds / "cameras").glob("*.txt")), tmp_path / "empty.txt")
    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.move(tmp_path / "empty.txt", ref / "empty.txt")
    out = tmp_path / "out"
    r = run("evaluate", samples, "--reference", ref, "--out", out, "--trials", "1")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "0 ok (0 skipped as already done), 1 failed" in r.output
    row = read_table(out / "per_video.parquet").set_index("video").loc["empty"]
    assert row["status"] == "failed" and "holds no images" in row["reason"]


def test_evaluate_skips_the_preview_folders_generate_writes(ds, tmp_path):
    """A `generate` output folder holds `<name>.mp4` and `<name>_preview/` (with preview.npz): the
    preview folders are not samples (the demo evaluates such a folder)."""
    from stages.evaluate.run import find_samples

    samples = tmp_path / "generated"
    (samples / "clip_preview").mkdir(parents=True)
    np.savez(samples / "clip_preview" / "preview.npz", frames=np.zeros((1, 2, 2, 3), np.uint8))
    (samples / "empty").mkdir()
    (samples / "clip.mp4").write_bytes(b"")
    names = [s.name for s in find_samples(samples, ds / "cameras")]
    assert names == ["clip", "empty"]


def test_evaluate_rerun_prints_counts(ds, tmp_path):
    """Defect 23: a re-run says what it skipped, and what was done and failed."""
    est = tmp_path / "est"
    shutil.copytree(ds / "cameras", est)
    (est / "stray.txt").write_text("not a camera file\n")
    args = ("evaluate", est, "--reference", ds / "cameras", "--out", tmp_path / "out", "--estimated")
    first = run(*args)
    assert_ok(first)
    assert "2 ok (0 skipped as already done), 1 failed" in first.output, first.output
    again = run(*args)
    assert_ok(again)
    assert "2 ok (2 skipped as already done), 1 failed" in again.output, again.output


def test_evaluate_damaged_depth_is_a_failed_row(ds, tmp_path):
    """Defect 24 (evaluate side): a garbage depth NPZ fails its video, named, without pickles,
    before any SfM."""
    clip = _clips(ds)[0]
    depth = tmp_path / "depth"
    depth.mkdir()
    (depth / f"{clip}.npz").write_text("garbage")
    samples = tmp_path / "samples"
    samples.mkdir()
    shutil.copytree(ds / "frames" / clip, samples / clip)
    r = run(
        "evaluate", samples, "--reference", ds / "cameras", "--out", tmp_path / "out", "--depth", depth, "--trials", "1"
    )
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    reason = read_table(tmp_path / "out" / "per_video.parquet").set_index("video").loc[clip, "reason"]
    assert "not a readable NPZ file" in reason and "pickle" not in reason.lower(), reason


@pytest.mark.parametrize(
    "option,value",
    [
        ("--trials", "0"),
        ("--workers", "0"),
        ("--max-depth", "nan"),
        ("--fvd-frames", "0"),
        ("--sfm", "magic"),
        ("--seed", "-1"),
    ],
)
def test_evaluate_bad_numbers_before_any_work(ds, tmp_path, option, value):
    out = tmp_path / "out"
    r = run("evaluate", ds / "cameras", "--reference", ds / "cameras", "--out", out, "--estimated", option, value)
    assert_fails(r, option, absent=[out])
