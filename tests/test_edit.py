"""`realcam edit`: the editor's state (no browser) and an end-to-end run in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stages import preview as pv
from stages import synth
from stages.core import cameras as cam
from stages.core import trajectory as tr
from stages.core.artifacts import read_arrays
from stages.core.errors import RealcamError
from stages.edit import EditorSession, default_size
from stages.edit.viewer import fields_to_pose, pose_to_fields

POSES = Path(__file__).resolve().parents[1] / "examples" / "data" / "poses"
CLIP = "0f47577ab3441480"
SIZE = 128


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("edit_synth")
    synth.synthesize([POSES / f"{CLIP}.txt"], out, scale=1.0, size=(SIZE, SIZE), seed=5)
    image = sorted((out / "frames" / CLIP).iterdir())[0]
    return {"image": image, "depth": out / "depth_gt" / f"{CLIP}.npz", "cameras": out / "cameras" / f"{CLIP}.txt"}


@pytest.fixture()
def session(scene_files):
    return EditorSession(scene_files["image"], depth_file=scene_files["depth"], preset="pan-right", magnitude=20.0)


def test_default_size_keeps_the_aspect_on_multiples_of_8():
    assert default_size(1920, 1080) == (256, 144)
    assert default_size(480, 640) == (192, 256)
    assert default_size(256, 256) == (256, 256)


def test_fields_round_trip_and_follow_the_preset_directions():
    rng = np.random.default_rng(0)
    for _ in range(20):
        position, angles = rng.normal(size=3), rng.uniform(-60, 60, size=3)
        m = fields_to_pose(position, angles)
        assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
        p2, a2 = pose_to_fields(m)
        assert np.allclose(p2, position) and np.allclose(a2, angles, atol=1e-9)
    # Pan right turns the view towards +x, tilt up towards -y: the presets' conventions.
    assert np.allclose(fields_to_pose((0, 0, 0), (20, 0, 0)), tr.preset_pose("pan-right", 20, 1, 2))
    assert np.allclose(fields_to_pose((0, 0, 0), (0, 15, 0)), tr.preset_pose("tilt-up", 15, 1, 2))


def test_preset_start_and_editing(session):
    keys = session.keyframes()
    assert len(keys) == 5 and np.allclose(keys.times, np.linspace(0, 1, 5))
    assert np.array_equal(keys.c2w[0], np.eye(4))
    assert np.allclose(keys.c2w[-1], tr.preset_pose("pan-right", 20.0, 1.0, session.scene.centre_depth))
    # Move the last keyframe 0.3 m to the right: the dense path ends there.
    moved = keys.c2w[-1].copy()
    moved[0, 3] += 0.3
    session.move_keyframe(4, moved)
    dense = session.dense()
    assert len(dense) == 16 and np.array_equal(dense.c2w[-1], moved)
    assert np.array_equal(dense.c2w[0], np.eye(4))
    # Add: halfway between keyframes 1 and 2 on the path; delete brings the path back.
    before = session.dense().c2w
    new = session.add_keyframe(1)
    assert new == 2 and len(session) == 6 and session.times[2] == pytest.approx(0.375)
    assert np.allclose(session.dense().c2w, before, atol=1e-9)  # a point on the path changes nothing
    session.delete_keyframe(2)
    assert np.array_equal(session.dense().c2w, before)
    # Re-time: must stay between neighbours; bad edits are clear errors and change nothing.
    session.set_time(1, 0.1)
    assert session.times[1] == 0.1
    with pytest.raises(RealcamError, match="between"):
        session.set_time(1, 0.9)
    reflection = np.diag([1.0, 1.0, -1.0, 1.0])
    with pytest.raises(RealcamError, match="keyframe 0"):
        session.move_keyframe(0, reflection)
    with pytest.raises(RealcamError, match="no keyframe 9"):
        session.delete_keyframe(9)
    # Add after the last: the last step repeated (same relative motion, same time step).
    c2w, times = np.stack(session.c2w), list(session.times)
    assert session.add_keyframe() == 5
    step = np.linalg.inv(c2w[3]) @ c2w[4]
    assert np.allclose(session.c2w[5], c2w[4] @ step, atol=1e-12)
    assert session.times[5] == pytest.approx(2 * times[4] - times[3])
    session.set_path(frames=9, spline=True, easing="ease-in-out", loop=True)
    dense = session.dense()
    assert len(dense) == 9 and np.array_equal(dense.c2w[0], dense.c2w[-1])


def test_export_previews_to_the_editor_frames_exactly(session, scene_files, tmp_path):
    moved = session.keyframes().c2w[2].copy()
    moved[:3, 3] += (0.1, -0.05, 0.2)
    session.move_keyframe(2, moved)
    session.set_path(spline=True)
    written = session.export(tmp_path / "path.json")
    assert {p.name for p in written.values()} == {"path.json", "path.txt", "path.sh", "path_preview.npz"}
    loaded = tr.load_trajectory(written["json"])
    keys = session.keyframes()
    assert np.array_equal(loaded.c2w, keys.c2w) and np.array_equal(loaded.times, keys.times)
    assert loaded.spline and np.array_equal(loaded.intrinsics, session.intrinsics)
    # The RealEstate10K text is the dense path (w2c) at the preview size.
    cams = cam.read_re10k(written["re10k"])
    assert np.allclose(cam.invert_pose(cams.w2c), session.dense().c2w, atol=1e-8)
    command = written["command"].read_text()
    assert f"realcam generate {scene_files['image']} {written['json']}" in command
    assert "--depth" in command
    # `realcam preview` of the exported file renders the editor's frames bit for bit.
    editor = read_arrays(written["preview"])
    result = pv.run_preview(
        scene_files["image"],
        tmp_path / "pv",
        written["json"],
        depth_file=scene_files["depth"],
        size=session.size,
        device="cpu",
    )
    assert np.array_equal(result.frames, editor["frames"])
    assert np.array_equal(result.c2w, editor["c2w"])
    # ... and a different path does not (the comparison can fail).
    other = session.keyframes().c2w[2].copy()
    other[0, 3] += 0.2
    session.move_keyframe(2, other)
    assert not np.array_equal(session.render().frames, editor["frames"])


def test_trajectory_file_start(scene_files):
    s = EditorSession(scene_files["image"], scene_files["cameras"], depth_file=scene_files["depth"])
    truth = tr.load_trajectory(scene_files["cameras"])
    assert len(s) == 16 and np.array_equal(s.keyframes().c2w, truth.c2w)
    # The camera file's intrinsics are the image's.
    assert np.allclose(s.intrinsics, truth.intrinsics)


# ----------------------------------------------------------------------------------------------
# End to end in headless Chromium
# ----------------------------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture()
def editor_process(scene_files, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "realcam_cli",
        "edit",
        str(scene_files["image"]),
        "--depth",
        str(scene_files["depth"]),
        "--port",
        "0",
        "--size",
        f"{SIZE}x{SIZE}",
        "--preset",
        "dolly-in",
        "--magnitude",
        "0.4",
        "--export",
        str(tmp_path / "first.json"),
        "--duration",
        "240",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    url, lines = None, []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"open (http://\S+) in a browser", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        pytest.fail("the editor did not start:\n" + "".join(lines))
    yield url, tmp_path
    proc.terminate()
    proc.wait(timeout=30)


def _inputs(page, label: str):
    """The input boxes on the panel row labelled ``label`` (viser does not link every label)."""
    return page.locator(
        f"xpath=//label[normalize-space(text())='{label}']"
        "/ancestor::div[contains(@class, 'mantine-Flex-root')][1]//input"
    )


VIEW = np.s_[100:700, 100:750]  # the 3D view, left of the panel


def _screenshot(page, path: Path, timeout: float = 30.0) -> np.ndarray:
    """A screenshot once the 3D view has settled (the client fades new content in)."""
    import imageio.v3 as iio

    previous, deadline = None, time.monotonic() + timeout
    while True:
        page.wait_for_timeout(400)
        page.screenshot(path=str(path))
        shot = np.asarray(iio.imread(path))[..., :3].astype(np.int16)
        if previous is not None and np.abs(shot[VIEW] - previous[VIEW]).max() <= 2:
            return shot
        if time.monotonic() > deadline:
            return shot
        previous = shot


def test_browser_end_to_end(editor_process, scene_files, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium; `make setup` does)")
    playwright = pytest.importorskip("playwright.sync_api")
    url, out = editor_process
    first, second = out / "first.json", out / "second.json"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
        )
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(url)
        page.get_by_text("Connected").wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"16 frames of 128x128 rendered in \d+ ms")).wait_for(timeout=60_000)
        # The point cloud is drawn: hiding it changes the pixels where the scene is.
        shown = _screenshot(page, tmp_path / "shown.png")
        page.get_by_label("Show scene").uncheck()
        hidden = _screenshot(page, tmp_path / "hidden.png")
        view = VIEW
        changed = (np.abs(shown[view] - hidden[view]).sum(-1) > 30).mean()
        assert changed > 0.2, f"only {changed:.1%} of the view changed when hiding the scene"
        # Where the scene is, the screen shows the photo's colours (mean and spread within 25 %).
        import imageio.v3 as iio

        photo = np.asarray(iio.imread(scene_files["image"]))[..., :3].reshape(-1, 3).astype(float)
        scene_pixels = shown[view][np.abs(shown[view] - hidden[view]).sum(-1) > 30].astype(float)
        assert np.allclose(scene_pixels.mean(0), photo.mean(0), rtol=0.25), scene_pixels.mean(0)
        assert np.allclose(scene_pixels.std(0), photo.std(0), rtol=0.25), scene_pixels.std(0)
        page.get_by_label("Show scene").check()

        # Export the preset as it is, then move the last keyframe through the panel and export.
        page.get_by_role("button", name="Export").click()
        page.get_by_text("exported").wait_for(timeout=30_000)
        before = json.loads(first.read_text())
        x_input = _inputs(page, "Position (m)").nth(0)  # x, y, z: x
        x_input.fill("0.25")
        x_input.press("Enter")
        page.get_by_text(re.compile(r"rendered in")).wait_for(timeout=30_000)
        file_input = _inputs(page, "File").first
        file_input.fill(str(second))
        file_input.press("Enter")
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Export").click()
        deadline = time.monotonic() + 30
        while not second.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        browser.close()
    after = json.loads(second.read_text())
    assert len(before["keyframes"]) == len(after["keyframes"]) == 5
    for i, (a, b) in enumerate(zip(before["keyframes"], after["keyframes"])):
        ma, mb = np.array(a["c2w"]), np.array(b["c2w"])
        if i < 4:
            assert np.array_equal(ma, mb), f"keyframe {i} changed"
        else:
            assert mb[0, 3] == pytest.approx(0.25, abs=1e-9)  # x moved to what was typed
            assert ma[0, 3] == pytest.approx(0.0, abs=1e-9)
            assert np.allclose(mb[1:3, 3], ma[1:3, 3], atol=1e-6)  # y, z kept (to display precision)
            assert np.allclose(mb[:3, :3], ma[:3, :3], atol=1e-6)
    # The exported file loads in `realcam preview` and gives the editor's frames.
    editor = read_arrays(second.with_name("second_preview.npz"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "realcam_cli",
            "preview",
            str(scene_files["image"]),
            str(second),
            "--out",
            str(out / "pv"),
            "--size",
            f"{SIZE}x{SIZE}",
            "--depth",
            str(scene_files["depth"]),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert np.array_equal(read_arrays(out / "pv" / "preview.npz")["frames"], editor["frames"])
    assert "realcam generate" in second.with_suffix(".sh").read_text()


def test_cli_errors_are_one_line(scene_files, tmp_path):
    from typer.testing import CliRunner

    from realcam_cli.app import app

    runner = CliRunner()
    res = runner.invoke(app, ["edit", str(tmp_path / "missing.png"), "--depth", str(scene_files["depth"])])
    assert res.exit_code == 2 and "missing.png" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app,
        [
            "edit",
            str(scene_files["image"]),
            "--depth",
            str(scene_files["depth"]),
            "--export",
            str(tmp_path / "out.txt"),
            "--duration",
            "0",
        ],
    )
    assert res.exit_code == 2 and "--export" in res.output and ".json" in res.output
    res = runner.invoke(
        app,
        [
            "edit",
            str(scene_files["image"]),
            "--depth",
            str(scene_files["depth"]),
            "--preset",
            "spin",
            "--duration",
            "0",
        ],
    )
    assert res.exit_code == 2 and "unknown preset 'spin'" in res.output
    assert not list(tmp_path.iterdir())  # nothing written


def test_viewer_drag_and_panel_callbacks_edit_the_session(session, tmp_path):
    """The server side of the UI: a gizmo drag and panel edits, as the browser sends them."""
    from types import SimpleNamespace

    from stages.edit.viewer import EditorViewer, wxyz_of

    viewer = EditorViewer(session, port=0, export=tmp_path / "t.json")
    try:
        assert viewer.url.startswith("http://127.0.0.1:")  # localhost only by default
        assert viewer.selected() == len(session) - 1
        target = session.keyframes().c2w[2].copy()
        target[:3, :3] = fields_to_pose((0, 0, 0), (10, -5, 3))[:3, :3]
        target[:3, 3] = (0.2, -0.1, 0.3)
        # Select keyframe 3 (what a click on its frustum does): the gizmo jumps to it.
        viewer._select(2)
        assert viewer.selected() == 2
        assert np.allclose(viewer.gizmo.position, session.keyframes().c2w[2][:3, 3])
        # Drag the gizmo: the browser sets its pose, then the callback moves the keyframe.
        viewer.gizmo.position, viewer.gizmo.wxyz = target[:3, 3], wxyz_of(target)
        viewer._on_drag(SimpleNamespace(client=object()))
        assert np.allclose(session.keyframes().c2w[2], target, atol=1e-12)
        assert np.allclose(viewer.frustum_nodes[2].position, target[:3, 3])
        assert np.allclose(viewer.gui_position.value, target[:3, 3], atol=1e-6)
        # A Python-side assignment (client None) is not a user edit.
        viewer.gizmo.position = (9.0, 9.0, 9.0)
        viewer._on_drag(SimpleNamespace(client=None))
        assert np.allclose(session.keyframes().c2w[2], target, atol=1e-12)
        viewer._select(len(session) - 1)
        # Panel: type a position for the selected (last) keyframe; the gizmo follows.
        viewer.gui_position.value = (0.5, 0.0, 0.1)
        viewer.gui_angles.value = (0.0, 0.0, 0.0)
        viewer._on_fields(SimpleNamespace(client=object()))
        last = session.keyframes().c2w[-1]
        assert np.allclose(last[:3, 3], (0.5, 0.0, 0.1)) and np.allclose(last[:3, :3], np.eye(3))
        assert np.allclose(viewer.frustum_nodes[-1].position, (0.5, 0.0, 0.1))
        assert np.allclose(viewer.gizmo.position, (0.5, 0.0, 0.1))
        # Re-timing outside the neighbours is refused with a message; nothing changes.
        times = list(session.times)
        viewer.gui_time.value = -1.0
        viewer._on_time(SimpleNamespace(client=object()))
        assert session.times == times and "error" in viewer.gui_exported.content
        # The refresh thread catches up and shows the current path.
        assert viewer.wait_until_current(30)
        assert len(viewer.frames) == 16
        assert np.array_equal(np.stack(viewer.frames), session.render().frames)
        viewer._on_export(None)
        assert (tmp_path / "t.json").exists() and "realcam generate" in viewer.gui_command.value
    finally:
        viewer.stop()
