"""The browser side of `realcam edit`: a viser scene and panel over an ``EditorSession``.

viser serves a three.js client from Python over a websocket. The scene holds the image's metric
point cloud, the reference camera, one frustum per keyframe under a move/rotate gizmo, and the
interpolated path. The panel edits the selected keyframe (position, pan/tilt/roll, time), adds and
deletes keyframes, sets the path options, starts from a preset, shows the preview (frames streamed
as they are rendered, then played in a loop) and exports JSON, RealEstate10K text and the
`realcam generate` command.

Callbacks arrive on viser's worker threads; rendering happens on one refresh thread that always
renders the newest state (intermediate drags are skipped, never queued).
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..core import checks
from ..core import trajectory as tr
from ..core.errors import RealcamError
from .session import EditorSession

#: The point cloud sent to the browser is thinned to at most this many points (rendering only).
MAX_VIEW_POINTS = 300_000
#: Frames rendered per chunk; each chunk is shown as soon as it is ready.
CHUNK = 4
KEYFRAME_COLOR = (235, 120, 20)
SELECTED_COLOR = (220, 30, 60)
REFERENCE_COLOR = (40, 40, 40)
PATH_COLOR = (30, 110, 220)
#: Ports tried from ``--port`` on when it is taken.
PORT_TRIES = 100


def _bind_error(host: str, port: int, err: OSError) -> RealcamError:
    reason = err.strerror or str(err)
    if err.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return RealcamError(f"cannot serve on {host}: not an address of this machine ({reason})", "--host")
    return RealcamError(f"cannot serve on {host}:{port} ({reason})", "--port")


def free_port(host: str, port: int) -> int:
    """The port to serve on: ``port``, or the next free one when it is taken (``0``: any free port,
    left to the server). Binding is only tried, nothing is sent: an address that is not this
    machine's, a host name that does not resolve or a port out of range is an error at once (the
    server itself would retry in its own thread and never return)."""
    port = checks.integer(port, "--port", minimum=0, maximum=65535)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as err:
        raise RealcamError(f"cannot serve on {host!r} ({getattr(err, 'strerror', None) or err})", "--host") from None
    last = min(65535, port + PORT_TRIES - 1) if port else 0
    for candidate in range(port, last + 1):
        try:
            for family, kind, proto, _, address in infos:
                with socket.socket(family, kind, proto) as sock:
                    # As the server binds (asyncio): address reuse on, IPv6 sockets IPv6 only.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind((address[0], candidate, *address[2:]))
                    sock.listen(1)
            return candidate
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise _bind_error(host, candidate, err) from None
    raise RealcamError(f"ports {port} to {last} on {host} are all taken", "--port")


def pose_to_fields(c2w: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Position (m) and pan/tilt/roll (degrees) of a c2w: ``R = Ry(pan) Rx(tilt) Rz(roll)``.

    Pan right turns the view towards ``+x``, tilt up towards ``-y`` (as the presets)."""
    pan, tilt, roll = Rotation.from_matrix(c2w[:3, :3]).as_euler("YXZ", degrees=True)
    return tuple(float(v) for v in c2w[:3, 3]), (float(pan), float(tilt), float(roll))


def fields_to_pose(position, angles) -> np.ndarray:
    pan, tilt, roll = (float(v) for v in angles)
    out = np.eye(4)
    out[:3, :3] = Rotation.from_euler("YXZ", [pan, tilt, roll], degrees=True).as_matrix()
    out[:3, 3] = [float(v) for v in position]
    return out


def wxyz_of(c2w: np.ndarray) -> np.ndarray:
    x, y, z, w = Rotation.from_matrix(c2w[:3, :3]).as_quat()
    return np.array([w, x, y, z])


def pose_of(wxyz, position) -> np.ndarray:
    w, x, y, z = (float(v) for v in wxyz)
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    out[:3, 3] = [float(v) for v in position]
    return out


class EditorViewer:
    """Serve ``session`` on ``host:port`` (localhost by default); ``export`` is the default file."""

    def __init__(
        self,
        session: EditorSession,
        host: str = "127.0.0.1",
        port: int = 8080,
        export: str | Path = "trajectory.json",
        fps: float = 8.0,
    ):
        import viser

        self.session = session
        self.fps = checks.number(fps, "--fps", above=0, maximum=1000)
        self.server = viser.ViserServer(host=host, port=free_port(host, port), verbose=False)
        self.frames: list[np.ndarray] = []
        self.last_refresh_ms = float("nan")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._gui_lock = threading.RLock()
        self._rendered_revision = -1
        self._render_lock = threading.Lock()
        self._rendered = threading.Condition()
        self._selected = len(session) - 1
        self._build_scene()
        self._build_panel(Path(export))
        self._draw_keyframes()
        self._threads = [
            threading.Thread(target=self._refresh_loop, daemon=True, name="refresh"),
            threading.Thread(target=self._play_loop, daemon=True, name="play"),
        ]
        for t in self._threads:
            t.start()
        self.request_refresh()

    @property
    def url(self) -> str:
        return f"http://{self.server.get_host()}:{self.server.get_port()}"

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.server.stop()

    # ------------------------------------------------------------------------------------------
    # Scene
    # ------------------------------------------------------------------------------------------
    def _frustum_geometry(self) -> tuple[float, float]:
        w, h = self.session.size
        fy = self.session.k[1, 1]
        return 2.0 * float(np.arctan(0.5 * h / fy)), w / h

    def _build_scene(self) -> None:
        s, scene = self.session, self.server.scene
        scene.set_up_direction("-y")
        d = s.scene.centre_depth
        self.unit = d
        pts, cols = s.scene.points, s.scene.colors
        if len(pts) > MAX_VIEW_POINTS:
            keep = np.random.default_rng(0).choice(len(pts), MAX_VIEW_POINTS, replace=False)
            pts, cols = pts[np.sort(keep)], cols[np.sort(keep)]
        spacing = d / max(s.k_image[0, 0], 1.0)  # a pixel's footprint at the scene centre
        self.cloud = scene.add_point_cloud(
            "/scene", pts, cols, point_size=2.0 * spacing, point_shading="flat", precision="float32"
        )
        fov, aspect = self._frustum_geometry()
        thumb = s.image[:: max(1, s.image.shape[0] // 96), :: max(1, s.image.shape[0] // 96)]
        scene.add_camera_frustum(
            "/reference",
            fov=fov,
            aspect=aspect,
            scale=0.1 * d,
            thickness=2.0,
            thickness_units="screen",
            color=REFERENCE_COLOR,
            image=np.ascontiguousarray(thumb),
        )
        self._place_view()
        self.frustum_nodes: list = []
        self.gizmo = None
        self.path_node = None

    def _place_view(self) -> None:
        """Start the browser's view behind and above the reference camera and every keyframe."""
        d = self.unit
        z0 = min(0.0, float(self.session.keyframes().c2w[:, 2, 3].min()))
        cam = self.server.initial_camera
        cam.position = (0.0, -0.35 * d, z0 - 0.8 * d)
        cam.look_at = (0.0, 0.0, 0.8 * d)
        cam.up = (0.0, -1.0, 0.0)

    def _draw_keyframes(self) -> None:
        """(Re)draw the keyframe frustums, the gizmo on the selected one, the path and the list."""
        s, scene = self.session, self.server.scene
        with self._gui_lock:
            for node in self.frustum_nodes:
                node.remove()
            self.frustum_nodes = []
            keys = s.keyframes()
            selected = self.selected()
            fov, aspect = self._frustum_geometry()
            for i, c2w in enumerate(keys.c2w):
                node = scene.add_camera_frustum(
                    f"/keyframes/{i}",
                    fov=fov,
                    aspect=aspect,
                    scale=0.06 * self.unit,
                    thickness=2.0,
                    thickness_units="screen",
                    wxyz=wxyz_of(c2w),
                    position=c2w[:3, 3],
                    color=SELECTED_COLOR if i == selected else KEYFRAME_COLOR,
                )
                node.on_click(lambda event, i=i: self._select(i))
                scene.add_label(f"/keyframes/{i}/label", f"{i + 1}")
                self.frustum_nodes.append(node)
            if self.gizmo is None:
                self.gizmo = scene.add_transform_controls(
                    "/gizmo", scale=0.15 * self.unit, disable_sliders=True, depth_test=False
                )
                self.gizmo.on_update(self._on_drag)
            options = tuple(f"{i + 1}" for i in range(len(keys)))
            self.gui_key.options = options
            self.gui_key.value = options[selected]
            self._fill_fields()
            self._draw_path()

    def _select(self, i: int) -> None:
        """Make keyframe ``i`` the one the panel and the gizmo edit."""
        with self._gui_lock:
            self._selected = i
            self.gui_key.value = f"{i + 1}"
            self._fill_fields()

    def _draw_path(self) -> None:
        dense = self.session.dense()
        pos = dense.c2w[:, :3, 3]
        with self._gui_lock:
            if len(pos) > 1:
                segments = np.stack([pos[:-1], pos[1:]], axis=1).astype(np.float32)
                self.path_node = self.server.scene.add_line_segments(
                    "/path", segments, PATH_COLOR, thickness=3.0, thickness_units="screen"
                )
            elif self.path_node is not None:
                self.path_node.remove()
                self.path_node = None

    def _on_drag(self, event) -> None:
        """The gizmo moved (a user drag): move the selected keyframe with it."""
        if event.client is None:
            return
        i = self.selected()
        pose = pose_of(self.gizmo.wxyz, self.gizmo.position)
        self.session.move_keyframe(i, pose)
        with self._gui_lock:
            node = self.frustum_nodes[i]
            node.position, node.wxyz = pose[:3, 3], wxyz_of(pose)
            self._fill_fields(move_gizmo=False)
        self._draw_path()
        self.request_refresh()

    # ------------------------------------------------------------------------------------------
    # Panel
    # ------------------------------------------------------------------------------------------
    def _build_panel(self, export: Path) -> None:
        gui = self.server.gui
        s = self.session
        gui.configure_theme(control_width="large")
        gui.add_markdown(
            "**realcam edit** — drag the keyframe gizmos, or type below. "
            "Poses are metres and degrees in the reference camera's frame."
        )
        with gui.add_folder("Keyframe"):
            self.gui_key = gui.add_dropdown("Keyframe", ("1",), initial_value="1")
            self.gui_position = gui.add_vector3("Position (m)", (0.0, 0.0, 0.0), step=0.01)
            self.gui_angles = gui.add_vector3("Pan/tilt/roll", (0.0, 0.0, 0.0), step=0.5)
            self.gui_time = gui.add_number("Time", 0.0, step=0.01)
            self.gui_add = gui.add_button("Add keyframe after")
            self.gui_delete = gui.add_button("Delete keyframe")
        with gui.add_folder("Path"):
            self.gui_frames = gui.add_number("Frames", s.frames, min=1, max=256, step=1)
            self.gui_interp = gui.add_dropdown(
                "Interpolation", ("linear", "spline"), initial_value="spline" if s.spline else "linear"
            )
            self.gui_easing = gui.add_dropdown("Easing", tr.EASINGS, initial_value=s.easing)
            self.gui_loop = gui.add_checkbox("Loop", s.loop)
        with gui.add_folder("Preset", expand_by_default=False):
            self.gui_preset = gui.add_dropdown("Preset", tuple(tr.PRESETS), initial_value="dolly-in")
            self.gui_magnitude = gui.add_text("Magnitude", "", hint="deg or m; empty = default")
            self.gui_apply = gui.add_button("Start from preset")
        with gui.add_folder("Preview"):
            w, h = s.size
            self.gui_image = gui.add_image(
                np.zeros((h, w, 3), np.uint8), label="preview", format="jpeg", jpeg_quality=85
            )
            self.gui_frame = gui.add_slider("Frame", 0, max(1, s.frames - 1), 1, 0)
            self.gui_play = gui.add_checkbox("Play", True)
            self.gui_show_scene = gui.add_checkbox("Show scene", True)
            self.gui_status = gui.add_markdown("rendering ...")
        with gui.add_folder("Export"):
            self.gui_file = gui.add_text("File", str(export))
            self.gui_export = gui.add_button("Export")
            self.gui_command = gui.add_text("Command", "", disabled=True)
            self.gui_exported = gui.add_markdown("")

        self.gui_key.on_update(self._on_select)
        self.gui_position.on_update(self._on_fields)
        self.gui_angles.on_update(self._on_fields)
        self.gui_time.on_update(self._on_time)
        self.gui_add.on_click(self._on_add)
        self.gui_delete.on_click(self._on_delete)
        for handle in (self.gui_frames, self.gui_interp, self.gui_easing, self.gui_loop):
            handle.on_update(self._on_path)
        self.gui_apply.on_click(self._on_preset)
        self.gui_frame.on_update(self._on_frame)
        self.gui_show_scene.on_update(lambda e: setattr(self.cloud, "visible", self.gui_show_scene.value))
        self.gui_export.on_click(self._on_export)

    def selected(self) -> int:
        """The keyframe the panel edits (0-based; the last one until the user picks another)."""
        return max(0, min(self._selected, len(self.session) - 1))

    def _fill_fields(self, move_gizmo: bool = True) -> None:
        """Show the selected keyframe in the panel and under the gizmo (Python-side assignments:
        no callback takes them for user edits)."""
        i = self.selected()
        keys = self.session.keyframes()
        position, angles = pose_to_fields(keys.c2w[i])
        self.gui_position.value = tuple(round(v, 6) for v in position)
        self.gui_angles.value = tuple(round(v, 4) for v in angles)
        self.gui_time.value = float(keys.times[i])
        for j, node in enumerate(self.frustum_nodes):
            node.color = SELECTED_COLOR if j == i else KEYFRAME_COLOR
        if move_gizmo and self.gizmo is not None:
            self.gizmo.position, self.gizmo.wxyz = keys.c2w[i][:3, 3], wxyz_of(keys.c2w[i])

    def _notify(self, text: str) -> None:
        self.gui_exported.content = text

    def _guarded(self, action) -> bool:
        try:
            action()
            return True
        except RealcamError as err:
            self._notify(f"**error:** {err}")
            with self._gui_lock:
                self._fill_fields()
            return False

    def _on_select(self, event) -> None:
        if event.client is None:
            return
        self._select(int(self.gui_key.value) - 1)

    def _on_fields(self, event) -> None:
        if event.client is None:
            return
        i = self.selected()
        pose = fields_to_pose(self.gui_position.value, self.gui_angles.value)
        if self._guarded(lambda: self.session.move_keyframe(i, pose)):
            with self._gui_lock:
                node = self.frustum_nodes[i]
                node.position, node.wxyz = pose[:3, 3], wxyz_of(pose)
                self._fill_fields()
            self._draw_path()
            self.request_refresh()

    def _on_time(self, event) -> None:
        if event.client is None:
            return
        if self._guarded(lambda: self.session.set_time(self.selected(), float(self.gui_time.value))):
            self._draw_path()
            self.request_refresh()

    def _on_add(self, event) -> None:
        self._selected = self.session.add_keyframe(self.selected())
        self._draw_keyframes()
        self.request_refresh()

    def _on_delete(self, event) -> None:
        if self._guarded(lambda: self.session.delete_keyframe(self.selected())):
            self._draw_keyframes()
            self.request_refresh()

    def _on_path(self, event) -> None:
        if event.client is None:
            return
        if self._guarded(
            lambda: self.session.set_path(
                frames=int(self.gui_frames.value),
                spline=self.gui_interp.value == "spline",
                easing=self.gui_easing.value,
                loop=bool(self.gui_loop.value),
            )
        ):
            self.gui_frame.max = max(1, self.session.frames - 1)
            self._draw_path()
            self.request_refresh()

    def _on_preset(self, event) -> None:
        text = self.gui_magnitude.value.strip()

        def apply() -> None:
            try:
                magnitude = [float(v) for v in text.split(",")] if text else None
            except ValueError:
                raise RealcamError(
                    f"magnitude must be numbers separated by commas, got {text!r}", "Magnitude"
                ) from None
            self.session.apply_preset(self.gui_preset.value, magnitude)

        if self._guarded(apply):
            self._draw_keyframes()
            self.request_refresh()

    def _on_frame(self, event) -> None:
        if event.client is None:
            return
        self.gui_play.value = False
        self._show(int(self.gui_frame.value))

    def _on_export(self, event) -> None:
        path = Path(self.gui_file.value.strip() or "trajectory.json")

        def export() -> None:
            written = self.session.export(path)
            self.gui_command.value = self.session.generate_command(written["json"])
            self._notify("exported " + ", ".join(f"`{p}`" for p in written.values()))

        self._guarded(export)

    # ------------------------------------------------------------------------------------------
    # Preview
    # ------------------------------------------------------------------------------------------
    def request_refresh(self) -> None:
        self._wake.set()

    def _show(self, index: int) -> None:
        frames = self.frames
        if frames:
            self.gui_image.image = frames[index % len(frames)]

    def refresh(self) -> float:
        """Render the newest state, showing each chunk of frames when ready; returns seconds."""
        with self._render_lock:
            s = self.session
            revision = s.revision
            dense = s.dense()
            n = len(dense.c2w)
            t0 = time.perf_counter()
            frames: list[np.ndarray] = []
            for start in range(0, n, CHUNK):
                chunk = s.render(range(start, min(n, start + CHUNK)), dense).frames
                frames.extend(chunk)
                self.frames = frames  # the player shows what is ready
                self.gui_image.image = chunk[-1]
                if s.revision != revision:  # a newer state arrived: drop this one
                    return time.perf_counter() - t0
            seconds = time.perf_counter() - t0
            self.last_refresh_ms = 1000 * seconds
            self.gui_status.content = f"{n} frames of {s.size[0]}x{s.size[1]} rendered in {self.last_refresh_ms:.0f} ms"
        with self._rendered:
            self._rendered_revision = revision
            self._rendered.notify_all()
        return seconds

    def wait_until_current(self, timeout: float = 30.0) -> bool:
        """Block until the preview shows the session's current state (True) or ``timeout``."""
        with self._rendered:
            return self._rendered.wait_for(lambda: self._rendered_revision == self.session.revision, timeout)

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
            except RealcamError as err:
                self._notify(f"**error:** {err}")

    def _play_loop(self) -> None:
        index = 0
        while not self._stop.wait(1.0 / self.fps):
            if self.gui_play.value and self.frames:
                index = (index + 1) % len(self.frames)
                self._show(index)
