"""The editor's state, without any user interface: keyframes, the scene, the preview and exports.

`realcam edit` (``stages.edit.viewer``) draws this in the browser; tests and scripts drive it
directly. Keyframes are camera-to-world poses in the reference camera's frame (OpenCV axes,
metres), the conventions of ``docs/trajectory.md``. Everything that renders or exports goes
through the same functions as ``realcam preview`` (``load_scene``, ``dense_trajectory``,
``render_preview``), so an exported trajectory previews to the editor's frames exactly.
"""

from __future__ import annotations

import shlex
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core import cameras as cam
from ..core import checks
from ..core import trajectory as tr
from ..core.artifacts import atomic_write_text, write_arrays
from ..core.errors import RealcamError
from ..core.image import fit_intrinsics
from ..preview import load_scene, make_renderer, render_preview
from ..settings import EditSettings

#: Keyframes a preset starts with (its progress 0, 1/4, ..., 1): enough to follow an orbit closely.
PRESET_KEYFRAMES = 5
DEFAULT_SIZE = 256  # long side of the preview, pixels


def default_size(width: int, height: int, long_side: int = DEFAULT_SIZE) -> tuple[int, int]:
    """The image's aspect with ``long_side`` pixels on the long side, both multiples of 8."""
    scale = long_side / max(width, height)
    return (max(8, int(round(width * scale / 8)) * 8), max(8, int(round(height * scale / 8)) * 8))


@dataclass
class Refresh:
    """One preview refresh: the frames and how long it took (seconds)."""

    frames: np.ndarray  # (N, H, W, 3) uint8
    c2w: np.ndarray  # (N, 4, 4) dense trajectory
    seconds: float


class EditorSession:
    """An image's metric scene and an editable keyframed trajectory through it.

    Thread-safe: the browser's callbacks arrive on worker threads, so every change and every read
    of the keyframes holds one lock.
    """

    def __init__(
        self, image: str | Path, trajectory: str | Path | None = None, settings: EditSettings | None = None, **overrides
    ):
        """``overrides``: :class:`~stages.settings.EditSettings` fields (``depth_file``, ``size``,
        ``preset``, ...). Every option is checked before the scene is built (the heavy part)."""
        s = self.settings = replace(settings or EditSettings(), **overrides).check()
        checks.input_file(image, "image")
        self.image_path = Path(image)
        self.depth_file = Path(s.depth_file) if s.depth_file is not None else None
        self.kernel, self.latent_stride = s.kernel, s.latent_stride
        self._lock = threading.RLock()
        self.revision = 0  # bumped on every change; the viewer re-renders when it moves
        loaded = tr.load_trajectory(trajectory) if trajectory is not None else None
        size, frames, preset, magnitude = s.size, s.frames, s.preset, s.magnitude
        if loaded is None:
            tr.preset_magnitudes(preset, magnitude)
        elif frames is None and (loaded.frames or 0) > tr.MAX_FRAMES:  # a long RealEstate10K file
            raise RealcamError(
                f"holds {loaded.frames} frames, more than the {tr.MAX_FRAMES} a preview renders; give --frames",
                trajectory,
            )
        self.image, k_image, self.scene, _ = load_scene(
            image,
            loaded,
            s.depth_file,
            s.model,
            s.device,
            s.fov,
            size=lambda w, h: size if size is not None else default_size(w, h),
        )
        h, w = self.image.shape[:2]
        # The intrinsics travel normalised (as in the JSON), and K is always derived from them
        # the way `preview` derives it (Trajectory.pixel_intrinsics), so both use the very same K.
        self.intrinsics = cam.normalize_intrinsics(k_image, w, h)
        self.k_image = cam.denormalize_intrinsics(self.intrinsics, w, h)
        self.size = tuple(size) if size is not None else default_size(w, h)
        self.k = fit_intrinsics(self.k_image, (w, h), self.size)
        self.renderer = make_renderer(self.scene, s.renderer, s.device)
        if loaded is not None:
            self.c2w = [m.copy() for m in loaded.c2w]
            self.times = [float(t) for t in loaded.times]
            self.frames = frames or loaded.frames or tr.DEFAULT_FRAMES
            self.spline, self.easing, self.loop = loaded.spline, loaded.easing, loaded.loop
        else:
            self.frames = frames or tr.DEFAULT_FRAMES
            self.spline, self.easing, self.loop = False, "linear", False
            self.apply_preset(preset, magnitude)

    # ------------------------------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.c2w)

    def keyframes(self) -> tr.Trajectory:
        """The keyframes with the path settings and the image intrinsics (what gets exported)."""
        with self._lock:
            return tr.Trajectory(
                np.stack(self.c2w),
                np.asarray(self.times, dtype=np.float64),
                self.intrinsics.copy(),
                None,
                self.frames,
                self.spline,
                self.easing,
                self.loop,
            )

    def dense(self) -> tr.Trajectory:
        """The dense trajectory the preview renders (and `realcam preview` renders from the export)."""
        return tr.dense_trajectory(self.keyframes())

    def render(self, frames: Sequence[int] | None = None, dense: tr.Trajectory | None = None) -> Refresh:
        """Preview frames (all, or the listed ones) along the current path."""
        t0 = time.perf_counter()
        dense = dense if dense is not None else self.dense()
        c2w = dense.c2w if frames is None else dense.c2w[list(frames)]
        rgb, *_ = render_preview(
            self.scene, self.k, c2w, self.size, self.kernel, self.latent_stride, renderer=self.renderer
        )
        return Refresh(rgb, c2w, time.perf_counter() - t0)

    # ------------------------------------------------------------------------------------------
    # Editing
    # ------------------------------------------------------------------------------------------
    def _changed(self) -> None:
        self.revision += 1

    def _check_index(self, i: int) -> int:
        if not -len(self.c2w) <= i < len(self.c2w):
            raise RealcamError(f"no keyframe {i} (there are {len(self.c2w)})", "edit")
        return i % len(self.c2w)

    def move_keyframe(self, i: int, c2w: np.ndarray) -> None:
        """Set keyframe ``i``'s pose; the rotation must be proper (it is projected to SO(3))."""
        m = np.asarray(c2w, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise RealcamError("a keyframe pose must be a finite 4x4 matrix", "edit")
        problem = cam.rotation_problem(m[:3, :3])
        if problem:
            raise RealcamError(f"keyframe {i}: {problem}", "edit")
        m = m.copy()
        m[3] = (0, 0, 0, 1)
        if not np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12):
            m[:3, :3] = tr.orthonormalize(m[:3, :3])
        with self._lock:
            self.c2w[self._check_index(i)] = m
            self._changed()

    def set_time(self, i: int, time_: float) -> None:
        """Re-time keyframe ``i``; it must stay strictly between its neighbours' times."""
        with self._lock:
            i = self._check_index(i)
            lo = self.times[i - 1] if i > 0 else -np.inf
            hi = self.times[i + 1] if i + 1 < len(self.times) else np.inf
            if not (np.isfinite(time_) and lo < time_ < hi):
                raise RealcamError(f"keyframe {i}: time {time_} must lie between {lo} and {hi}", "edit")
            self.times[i] = float(time_)
            self._changed()

    def add_keyframe(self, after: int | None = None) -> int:
        """A new keyframe after ``after`` (default: the last): halfway to the next one on the path,
        or past the last one by the last step. Returns its index."""
        with self._lock:
            after = len(self.c2w) - 1 if after is None else self._check_index(after)
            if after + 1 < len(self.c2w):
                t = 0.5 * (self.times[after] + self.times[after + 1])
                m = tr.interpolate_poses(np.stack(self.c2w), np.asarray(self.times), np.array([t]), self.spline)[0]
            else:
                prev = self.c2w[after - 1] if after > 0 else np.eye(4)
                step = self.times[after] - self.times[after - 1] if after > 0 else 1.0
                t = self.times[after] + step
                m = self.c2w[after] @ np.linalg.inv(prev) @ self.c2w[after]  # repeat the last motion
                m[:3, :3] = tr.orthonormalize(m[:3, :3])
                if after == 0:
                    m = self.c2w[0].copy()
                    m[:3, 3] += m[:3, :3] @ np.array([0.0, 0.0, 0.1 * self.scene.centre_depth])
            self.c2w.insert(after + 1, m)
            self.times.insert(after + 1, float(t))
            self._changed()
            return after + 1

    def delete_keyframe(self, i: int) -> None:
        with self._lock:
            i = self._check_index(i)
            if len(self.c2w) == 1:
                raise RealcamError("the last keyframe cannot be deleted", "edit")
            del self.c2w[i]
            del self.times[i]
            self._changed()

    def set_path(
        self,
        *,
        frames: int | None = None,
        spline: bool | None = None,
        easing: str | None = None,
        loop: bool | None = None,
    ) -> None:
        with self._lock:
            if frames is not None:
                self.frames = tr.check_frames(frames, "edit")
            if spline is not None:
                self.spline = bool(spline)
            if easing is not None:
                if easing not in tr.EASINGS:
                    raise RealcamError(f"easing must be one of {', '.join(tr.EASINGS)}", "edit")
                self.easing = easing
            if loop is not None:
                self.loop = bool(loop)
            self._changed()

    def apply_preset(self, spec: str, magnitude: Sequence[float] | float | None = None) -> None:
        """Replace the keyframes by a preset's poses at progress 0, 1/4, ..., 1."""
        dense = tr.preset_trajectory(spec, magnitude, PRESET_KEYFRAMES, self.scene.centre_depth)
        with self._lock:
            self.c2w = [m.copy() for m in dense.c2w]
            self.times = [float(t) for t in dense.times]
            self._changed()

    # ------------------------------------------------------------------------------------------
    # Export
    # ------------------------------------------------------------------------------------------
    def export(self, path: str | Path) -> dict[str, Path]:
        """Write the keyframes as trajectory JSON (``path``, ``.json``), and beside it the dense
        path as RealEstate10K text (``.txt``), the `realcam generate` command (``.sh``) and the
        preview frames the editor shows (``_preview.npz``: ``frames``, ``c2w``, ``K``)."""
        path = Path(path)
        if path.suffix.lower() != ".json":
            path = path.with_suffix(".json")
        keys = self.keyframes()
        dense = tr.dense_trajectory(keys)
        written = {"json": tr.write_trajectory_json(path, keys)}
        txt = path.with_suffix(".txt")
        cam.write_re10k(txt, tr.to_re10k(dense, *self.size, k=self.k))
        written["re10k"] = txt
        sh = path.with_suffix(".sh")
        atomic_write_text(sh, "#!/bin/sh\n" + self.generate_command(path) + "\n")
        written["command"] = sh
        frames = self.render(dense=dense).frames
        written["preview"] = write_arrays(
            path.with_name(f"{path.stem}_preview.npz"), frames=frames, c2w=dense.c2w, K=self.k
        )
        return written

    def generate_command(self, trajectory: str | Path, out: str | Path | None = None) -> str:
        """The `realcam generate` command line for this image and an exported trajectory."""
        out = out or Path(trajectory).with_name(f"{self.image_path.stem}_video.mp4")
        args = ["realcam", "generate", str(self.image_path), str(trajectory), "--out", str(out)]
        if self.depth_file is not None:
            args += ["--depth", str(self.depth_file)]
        return shlex.join(args)
