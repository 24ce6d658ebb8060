"""Training data (docs/method.md#training-samples): clips kept by ``filter``, with metric cameras, as samples.

A sample is ``frames`` frames of one clip at a frame stride (random in ``1..10`` for training,
fixed for validation), resized keeping aspect and centre-cropped to the model resolution, with
pixel intrinsics updated and camera-to-world poses relative to the condition frame (random for
training, the first for validation). Translations are metric (the filtered cameras) unless
``relative_scale`` (the ablation: the dataset's own SfM scale).

Every random choice of sample ``n`` comes from a generator seeded with ``(seed, n)``, so the data
order and content depend only on the seed and the sample number: a resumed run sees exactly what
an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core import cameras as cam
from ..core.artifacts import read_table
from ..core.dataset import find_clips
from ..core.errors import RealcamError
from ..core.image import fit_image
from ..core.video import list_images, read_clip_video, read_image

MAX_STRIDE = 10
VAL_STRIDE = 8


@dataclass
class ClipRecord:
    clip_id: str
    frames: list[Path] | Path  # image files, or one video file
    cameras: cam.CameraFile  # metric (or the dataset's own scale with relative_scale)
    caption: str = ""

    def __len__(self) -> int:
        return len(self.cameras)


def _frame_source(clip) -> list[Path] | Path | None:
    """The clip's frame images (its frame folder) or its clip video (decoded at the timestamps)."""
    if clip.frames_dir.is_dir():
        return list_images(clip.frames_dir)
    return clip.video


def load_clips(
    filtered_dir: str | Path,
    frames_root: str | Path,
    *,
    relative_scale: bool = False,
    captions: str | Path | None = None,
) -> tuple[list[ClipRecord], list[dict]]:
    """Kept clips with their cameras and frames; returns ``(clips, skipped)`` (skipped with reasons)."""
    filtered_dir, frames_root = Path(filtered_dir), Path(frames_root)
    if not filtered_dir.is_dir():
        raise RealcamError("no such folder (expected the output of realcam filter)", filtered_dir)
    keep = read_table(filtered_dir / "keep.parquet", ["clip_id"])
    if keep.empty:
        raise RealcamError("no kept clips to train on", filtered_dir / "keep.parquet")
    dataset = {c.clip_id: c for c in find_clips(frames_root)}
    caption_of = _read_captions(captions) if captions else {}
    clips, skipped = [], []
    for clip_id in keep["clip_id"].astype(str):
        clip = dataset.get(clip_id)
        try:
            source = clip.camera_path if relative_scale and clip else filtered_dir / "cameras" / f"{clip_id}.txt"
            cams = cam.read_re10k(source)
        except RealcamError as err:
            skipped.append({"item": clip_id, "reason": str(err)})
            continue
        frames = _frame_source(clip) if clip else None
        if frames is None:
            skipped.append({"item": clip_id, "reason": "no frames folder or video"})
            continue
        if isinstance(frames, list) and len(frames) != len(cams):
            skipped.append({"item": clip_id, "reason": f"{len(frames)} frames for {len(cams)} cameras"})
            continue
        clips.append(ClipRecord(clip_id, frames, cams, caption_of.get(clip_id, "")))
    return clips, skipped


def _read_captions(path: str | Path) -> dict[str, str]:
    import pandas as pd

    path = Path(path)
    if path.suffix == ".parquet":
        table = read_table(path, ["clip_id", "caption"])
    elif path.exists():
        table = pd.read_csv(path)
    else:
        raise RealcamError("no such caption table", path)
    if not {"clip_id", "caption"} <= set(table.columns):
        raise RealcamError("caption table needs columns clip_id and caption", path)
    return dict(zip(table["clip_id"].astype(str), table["caption"].fillna("").astype(str)))


def usable_strides(n_frames: int, frames: int, max_stride: int = MAX_STRIDE) -> int:
    """The largest stride ``s <= max_stride`` with ``(frames - 1) * s < n_frames`` (0: too short)."""
    if frames <= 1:
        return max_stride if n_frames >= 1 else 0
    return min(max_stride, (n_frames - 1) // (frames - 1))


class ClipDataset(torch.utils.data.Dataset):
    """``dataset[n]`` is sample number ``n`` (any non-negative integer; clips repeat per epoch)."""

    def __init__(
        self,
        clips: list[ClipRecord],
        *,
        frames: int,
        size: tuple[int, int],
        train: bool = True,
        seed: int = 0,
        max_stride: int = MAX_STRIDE,
        val_stride: int = VAL_STRIDE,
        random_condition: bool = True,
    ):
        self.clips = [c for c in clips if usable_strides(len(c), frames, max_stride if train else val_stride) > 0]
        self.too_short = [c.clip_id for c in clips if c not in self.clips]
        if not self.clips:
            raise RealcamError(f"no clip has at least {frames} frames at stride 1", "--data")
        self.frames, self.size, self.train, self.seed = frames, size, train, seed
        self.max_stride, self.val_stride = max_stride, val_stride
        # the condition frame (the poses' reference): random in training (RealCam-I2V's
        # augmentation), else the first (image-to-video on a DiT starts from frame 0)
        self.random_condition = random_condition

    def __len__(self) -> int:
        return len(self.clips)

    def clip_index(self, n: int) -> int:
        """Each epoch visits every clip once, in an order drawn from ``(seed, epoch)``."""
        epoch, i = divmod(n, len(self.clips))
        return int(np.random.default_rng([self.seed, epoch]).permutation(len(self.clips))[i])

    def choose(self, n: int, clip: ClipRecord) -> tuple[np.ndarray, int, int]:
        """Frame indices, the condition frame's position among them, and the stride."""
        rng = np.random.default_rng([self.seed, 1_000_003, n])
        if self.train:
            stride = int(rng.integers(1, usable_strides(len(clip), self.frames, self.max_stride) + 1))
        else:
            stride = min(self.val_stride, usable_strides(len(clip), self.frames, self.val_stride))
        span = (self.frames - 1) * stride
        start = int(rng.integers(0, len(clip) - span)) if self.train else 0
        cond = int(rng.integers(0, self.frames)) if self.train and self.random_condition else 0
        return start + stride * np.arange(self.frames), cond, stride

    def __getitem__(self, n: int) -> dict:
        clip = self.clips[self.clip_index(int(n))]
        idx, cond, stride = self.choose(int(n), clip)
        images = _read_frames(clip, idx)
        src = (images[0].shape[1], images[0].shape[0])
        video = np.stack([fit_image(im, None, self.size)[0] for im in images])
        k = cam.resize_crop_intrinsics(cam.denormalize_intrinsics(clip.cameras.intrinsics[idx], *src), src, self.size)
        c2w = cam.relative_poses(clip.cameras.c2w[idx], reference=cond)
        return {
            "video": torch.from_numpy(video).permute(3, 0, 1, 2).float() / 127.5 - 1.0,  # (3, T, H, W)
            "k": torch.from_numpy(k).float(),
            "c2w": torch.from_numpy(c2w).float(),
            "cond_frame": cond,
            "stride": stride,
            "fps": cam.frame_rate(clip.cameras.timestamps),  # the source video's rate
            "caption": clip.caption,
            "clip_id": clip.clip_id,
            "sample": int(n),
        }


def _read_frames(clip: ClipRecord, idx: np.ndarray) -> list[np.ndarray]:
    if isinstance(clip.frames, list):
        return [read_image(clip.frames[i]) for i in idx]
    return read_clip_video(clip.frames, clip.cameras.timestamps, idx)


class RankBatches(torch.utils.data.Sampler):
    """The sample numbers of one rank's micro-batches, optimiser steps ``start .. steps - 1``.

    Micro-batch ``m`` of step ``s`` on rank ``r`` holds samples
    ``((s * accum + m) * world + r) * mb + j`` for ``j < mb``: ranks and steps never overlap, and
    the numbers depend only on the step (so a resumed run continues the same sequence).
    """

    def __init__(self, start: int, steps: int, accum: int, world: int, rank: int, micro_batch: int):
        self.start, self.steps, self.accum = start, steps, accum
        self.world, self.rank, self.mb = world, rank, micro_batch

    def batch(self, step: int, micro: int) -> list[int]:
        base = ((step * self.accum + micro) * self.world + self.rank) * self.mb
        return list(range(base, base + self.mb))

    def __iter__(self):
        for step in range(self.start, self.steps):
            for micro in range(self.accum):
                yield self.batch(step, micro)

    def __len__(self) -> int:
        return max(0, self.steps - self.start) * self.accum


def collate(items: list[dict]) -> dict:
    out = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = (
            torch.stack(values)
            if isinstance(values[0], torch.Tensor)
            else (torch.tensor(values) if isinstance(values[0], (int, float)) else values)
        )
    return out
