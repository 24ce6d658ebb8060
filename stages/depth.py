"""``depth``: metric depth per frame, behind one interface.

Two predictors:

- a ``transformers`` depth model (default Depth Anything V2 metric indoor Large, metric head,
  maximum depth 20 m; 80 m for outdoor models), loaded from a Hugging Face id or a local folder in
  the same format. Frames are batched (frames of one size together), resized as the model's image
  processor says, and the prediction is resized back to each frame's own resolution;
- precomputed depth maps from files (``--from-files``): an NPZ per item (key ``depth`` ``(F, H, W)``
  in metres, optional ``timestamps``) or a folder per item of 16-bit PNGs in millimetres named like
  the frames (other predictors, sensors, the synthetic ground truth).

Output per item (clip or input folder): ``<item>.npz`` with ``depth`` ``(F, H, W)`` float16 metres,
``timestamps`` (int64, -1 where a frame name is not a number), ``frames`` (names) and ``max_depth``
(the saturation value; ``inf`` for files), plus ``index.parquet`` with one row per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .core import cameras as cam
from .core import checks
from .core.artifacts import FAILED, OK, done_items, read_arrays, read_table, should_skip, write_arrays
from .core.batch import BatchTask, run_batch
from .core.constants import DEPTH_MODEL
from .core.dataset import find_clips, shard, shard_table
from .core.device import resolve_device, resolve_dtype
from .core.errors import RealcamError
from .core.hub import is_hub_id, quiet_loading
from .core.video import IMAGE_SUFFIXES, list_images, read_image
from .settings import BatchSettings

INDOOR_MAX_DEPTH = 20.0
OUTDOOR_MAX_DEPTH = 80.0
INDEX_TABLE = "index.parquet"
INDEX_COLUMNS = ["item", "frame", "path", "height", "width", "min", "median", "max", "model", "status", "reason"]
FILES_MODEL = "files"
#: A depth map with fewer finite, positive values than this fraction of its pixels (all NaN,
#: infinite, zero or negative) fails its item here rather than in ``align-scale``. Holes (0 or
#: NaN where nothing was measured) are allowed below that: ``align-scale`` drops the
#: observations that fall in them.
MIN_VALID_FRACTION = 0.01

_MODELS: dict[tuple, tuple] = {}


# ----------------------------------------------------------------------------------------------
# The transformers predictor
# ----------------------------------------------------------------------------------------------
def default_max_depth(model: str) -> float:
    return OUTDOOR_MAX_DEPTH if "outdoor" in str(model).lower() else INDOOR_MAX_DEPTH


def model_source(model: str) -> dict:
    """Where ``model`` loads from, decided at once and without the network when it cannot work:
    a local folder; a Hugging Face id in the local cache (then loaded from it alone, no request);
    else a reachable Hub. Offline (``HF_HUB_OFFLINE``) or with the Hub unreachable, a model that is
    not in the cache is one error naming it and the ``hf download`` command. Returns extra keyword
    arguments for ``from_pretrained``."""
    from .core import hub

    model = str(model)
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise RealcamError("a depth model is a folder or a Hugging Face id, not a file", model)
        return {}
    return hub.hub_model_kwargs(model, "depth model")


def load_model(model: str = DEPTH_MODEL, device: str = "auto", dtype: str = "auto", max_depth: float | None = None):
    """``(processor, model, device, max_depth)``, cached per (model, device, dtype, max_depth)."""
    if max_depth is not None:
        max_depth = checks.number(max_depth, "--max-depth", above=0)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    key = (str(model), device, str(torch_dtype), max_depth)
    if key in _MODELS:
        return _MODELS[key]
    source = model_source(str(model))
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    try:
        with quiet_loading():
            processor = AutoImageProcessor.from_pretrained(str(model), **source)
            net = AutoModelForDepthEstimation.from_pretrained(str(model), dtype=torch_dtype, **source)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        hint = f"; fetch it with `hf download {model}`" if is_hub_id(str(model)) else ""
        raise RealcamError(f"cannot load depth model ({first}){hint}", str(model)) from None
    net = net.to(device).eval()
    if max_depth is not None:  # the metric head is ``sigmoid * max_depth``
        if hasattr(getattr(net, "head", None), "max_depth"):
            net.head.max_depth = float(max_depth)
    cfg_max = getattr(net.config, "max_depth", None)
    if getattr(net.config, "depth_estimation_type", "relative") != "metric":
        raise RealcamError("model is not a metric depth model (depth_estimation_type != 'metric')", str(model))
    eff_max = float(max_depth if max_depth is not None else (cfg_max or default_max_depth(model)))
    _MODELS[key] = (processor, net, device, eff_max)
    return _MODELS[key]


def predict_depth(
    images: list[np.ndarray],
    model: str = DEPTH_MODEL,
    device: str = "auto",
    dtype: str = "auto",
    max_depth: float | None = None,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Metric depth (float32 metres) at each image's own resolution, in ``[0, max_depth]``.

    Images of the same size are batched together (``batch_size`` per forward pass).
    """
    import torch

    batch_size = checks.integer(batch_size, "--batch-size", minimum=1)
    processor, net, device, sat = load_model(model, device, dtype, max_depth)
    out: list[np.ndarray | None] = [None] * len(images)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise RealcamError(f"image {i} must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
        by_size.setdefault(img.shape[:2], []).append(i)
    dtype_in = next(net.parameters()).dtype
    for size, idx in by_size.items():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            inputs = processor(images=[np.asarray(images[i]) for i in chunk], return_tensors="pt")
            pixels = inputs["pixel_values"].to(device=device, dtype=dtype_in)
            with torch.inference_mode():
                pred = net(pixel_values=pixels).predicted_depth  # (B, h, w)
                pred = torch.nn.functional.interpolate(
                    pred.float()[:, None], size=size, mode="bicubic", align_corners=False
                )[:, 0]
                pred = pred.clamp_(0.0, sat)  # bicubic resizing overshoots the head's range
            pred = pred.cpu().numpy().astype(np.float32)
            for j, i in enumerate(chunk):
                out[i] = pred[j]
            if progress:
                progress(len(chunk))
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# Depth from files
# ----------------------------------------------------------------------------------------------
def _timestamp(name: str) -> int:
    return int(name) if name.isdigit() else -1


def read_depth_png(path: Path) -> np.ndarray:
    """A 16-bit PNG in millimetres, as float32 metres (0 stays 0: no measurement)."""
    import imageio.v3 as iio

    try:
        arr = np.asarray(iio.imread(path))
    except Exception as err:
        raise RealcamError(f"cannot decode depth image ({err.__class__.__name__})", path) from None
    if arr.ndim != 2 or arr.dtype != np.uint16:
        raise RealcamError(f"depth PNG must be single-channel 16-bit (mm), got {arr.shape} {arr.dtype}", path)
    return arr.astype(np.float32) / 1000.0


def _depth_maps(arrays: list[np.ndarray], path: Path) -> list[np.ndarray]:
    """float32 ``(H, W)`` maps from an NPZ's arrays: numbers only (strings, objects and booleans
    are an error naming the file, as any other damage)."""
    out = []
    for d in arrays:
        d = np.asarray(d)
        if not (np.issubdtype(d.dtype, np.integer) or np.issubdtype(d.dtype, np.floating)):
            raise RealcamError(f"depth must hold numbers, got {d.dtype} values", path)
        if d.ndim != 2:
            raise RealcamError(f"depth maps must be (H, W), got shape {d.shape}", path)
        out.append(d.astype(np.float32))
    return out


def depth_from_files(source: str | Path, item: str, frame_names: list[str]) -> list[np.ndarray]:
    """The depth maps of ``item``'s frames from ``source/<item>.npz`` or ``source/<item>/*.png``."""
    source = Path(source)
    npz, folder = source / f"{item}.npz", source / item
    if npz.exists():
        maps, data = read_depth_file(npz)
        depth = _depth_maps(maps, npz)
        if "timestamps" in data and all(_timestamp(n) >= 0 for n in frame_names):
            stamps = np.asarray(data["timestamps"]).ravel()
            whole = np.issubdtype(stamps.dtype, np.integer) or (
                np.issubdtype(stamps.dtype, np.floating)
                and np.isfinite(stamps).all()
                and (stamps == np.round(stamps)).all()
            )
            if not whole or len(stamps) != len(depth):
                raise RealcamError(
                    f"'timestamps' must be {len(depth)} integers (one per depth map), "
                    f"got {len(stamps)} {stamps.dtype} values",
                    npz,
                )
            where = {int(t): k for k, t in enumerate(stamps)}
            missing = [n for n in frame_names if int(n) not in where]
            if missing:
                raise RealcamError(f"no depth for frame(s) {', '.join(missing[:3])}", npz)
            return [depth[where[int(n)]] for n in frame_names]
        if len(depth) != len(frame_names):
            raise RealcamError(f"holds {len(depth)} depth maps for {len(frame_names)} frames", npz)
        return depth
    if folder.is_dir():
        out = []
        for n in frame_names:
            p = folder / f"{n}.png"
            if not p.exists():
                raise RealcamError(f"no depth PNG for frame {n}", folder)
            out.append(read_depth_png(p))
        return out
    raise RealcamError(f"no depth for {item} ({item}.npz or {item}/ with PNGs)", source)


def depth_problem(depth: np.ndarray) -> str:
    """Why a depth map is unusable ('' when it is usable): fewer than :data:`MIN_VALID_FRACTION`
    of its values finite and positive; the reason says what the rest are."""
    d = np.asarray(depth, dtype=np.float32)
    n = max(d.size, 1)
    valid = np.isfinite(d) & (d > 0)
    if valid.sum() >= MIN_VALID_FRACTION * n and valid.any():
        return ""
    parts = [
        (np.isnan(d).sum(), "NaN"),
        (np.isinf(d).sum(), "infinite"),
        ((d == 0).sum(), "zero"),
        ((np.isfinite(d) & (d < 0)).sum(), "negative"),
    ]
    what = ", ".join(f"{100 * c / n:.0f}% {name}" for c, name in parts if c)
    return (
        f"no usable depth: {100 * valid.sum() / n:.1f}% of the values are finite and positive, "
        f"at least {100 * MIN_VALID_FRACTION:g}% needed ({what})"
    )


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------
@dataclass
class DepthItem:
    item: str
    frames: list[Path]
    error: str = ""
    video: Path | None = None  # a clip stored as a clip video: decoded at ``timestamps``
    timestamps: tuple[int, ...] = ()

    def read(self) -> tuple[list[np.ndarray], list[str], list[str]]:
        """The item's images, frame names (timestamps for a clip) and where each came from."""
        if self.video is not None:
            from .core.video import read_clip_video

            names = [str(t) for t in self.timestamps]
            return read_clip_video(self.video, self.timestamps), names, [f"{self.video}@{t}" for t in names]
        # every frame must decode, whether depth is predicted or read from files
        return [read_image(f) for f in self.frames], [f.stem for f in self.frames], [str(f) for f in self.frames]


def collect_items(inputs: Sequence[str | Path]) -> list[DepthItem]:
    """Image files (grouped by folder), folders of images, or dataset roots (one item per clip)."""
    items: dict[str, DepthItem] = {}

    def add(name: str, files: list[Path], error: str = "") -> None:
        if name in items and items[name].frames and files:
            items[name].frames.extend(f for f in files if f not in items[name].frames)
        else:
            items[name] = DepthItem(name, list(files), error)

    for p in map(Path, inputs):
        if p.is_dir() and (p / "cameras").is_dir():
            for clip in find_clips(p):
                if clip.video is not None:
                    try:
                        stamps = tuple(int(t) for t in cam.read_re10k(clip.camera_path).timestamps)
                        items[clip.clip_id] = DepthItem(clip.clip_id, [], "", clip.video, stamps)
                    except RealcamError as err:
                        add(clip.clip_id, [], str(err))
                    continue
                if not clip.frames_dir.is_dir():
                    add(clip.clip_id, [], f"no frames folder {clip.frames_dir}")
                    continue
                frames = list_images(clip.frames_dir)
                add(clip.clip_id, frames, "" if frames else f"no images in {clip.frames_dir}")
        elif p.is_dir():
            frames = list_images(p)
            if not frames:
                raise RealcamError("folder holds no images", p)
            add(p.name, frames)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise RealcamError("not an image file", p)
            add(p.parent.name or "images", [p])
        else:
            raise RealcamError("no such file or folder", p)
    return [items[k] for k in sorted(items)]


def write_depth_file(path: str | Path, depth: list[np.ndarray], names: list[str], max_depth: float) -> Path:
    """One NPZ per item: ``depth`` ``(F, H, W)`` when the frames share a size, else ``depth_<k>``
    per frame; ``frames``, ``timestamps`` and ``max_depth`` alongside."""
    arrays = {
        "frames": np.array(names),
        "max_depth": np.float64(max_depth),
        "timestamps": np.array([_timestamp(n) for n in names], np.int64),
    }
    if len({d.shape for d in depth}) == 1:
        arrays["depth"] = np.stack(depth)
    else:
        arrays.update({f"depth_{k}": d for k, d in enumerate(depth)})
    return write_arrays(path, **arrays)


def read_depth_file(path: str | Path) -> tuple[list[np.ndarray], dict]:
    """The per-frame depth maps of an item's NPZ (either layout) and its other arrays."""
    data = read_arrays(path)
    if "depth" in data:
        stack = np.asarray(data["depth"])
        if stack.ndim != 3:
            raise RealcamError(f"'depth' must be (F, H, W), got shape {stack.shape}", path)
        return list(stack), data
    n = len(data.get("frames", []))
    keys = [f"depth_{k}" for k in range(n)]
    if not n or any(k not in data for k in keys):
        raise RealcamError("holds neither 'depth' nor 'depth_<k>' per frame", path)
    return [data[k] for k in keys], data


# ----------------------------------------------------------------------------------------------
# Depth at points (align-scale's sampling), and depth stored only there (--sample-depth)
# ----------------------------------------------------------------------------------------------
#: ``<clip>.samples.npz``: a clip's depth at its SfM observations only (``depth --sample-depth``).
SAMPLES_SUFFIX = ".samples.npz"


def bilinear_taps(h: int, w: int, x: np.ndarray, y: np.ndarray):
    """The four neighbours and the weights of bilinear sampling at continuous pixel coordinates
    (centres at +0.5, clamped to the outermost centres): ``x0, y0, x1, y1, fx, fy``."""
    xs = np.clip(np.asarray(x, dtype=np.float64) - 0.5, 0.0, w - 1.0)
    ys = np.clip(np.asarray(y, dtype=np.float64) - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(xs).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(ys).astype(np.int64), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    return x0, y0, x1, y1, xs - x0, ys - y0


def bilinear_combine(q: np.ndarray, fx: np.ndarray, fy: np.ndarray, max_depth: float) -> np.ndarray:
    """Bilinear value of the neighbours ``q (4, N)`` (top-left, top-right, bottom-left,
    bottom-right); NaN where any is invalid (not finite, ``<= 0`` or ``>= max_depth``)."""
    bad = ~np.isfinite(q).all(0) | (q <= 0).any(0) | (q >= max_depth).any(0)
    val = q[0] * (1 - fx) * (1 - fy) + q[1] * fx * (1 - fy) + q[2] * (1 - fx) * fy + q[3] * fx * fy
    return np.where(bad, np.nan, val)


def neighbours(depth: np.ndarray, x0, y0, x1, y1) -> np.ndarray:
    """``(4, N)`` depth values at the taps (float64)."""
    d = np.asarray(depth, dtype=np.float64)
    return np.stack([d[y0, x0], d[y0, x1], d[y1, x0], d[y1, x1]])


def sample_bilinear(depth: np.ndarray, x: np.ndarray, y: np.ndarray, max_depth: float) -> np.ndarray:
    """Bilinear depth at continuous pixel coordinates (centres at +0.5); NaN where any of the four
    samples is invalid (not finite, ``<= 0`` or ``>= max_depth``). Coordinates are clamped to the
    outermost pixel centres."""
    h, w = np.shape(depth)
    x0, y0, x1, y1, fx, fy = bilinear_taps(h, w, x, y)
    return bilinear_combine(neighbours(depth, x0, y0, x1, y1), fx, fy, max_depth)


@dataclass
class SampledFrame:
    """One frame's depth at its observations: the map's ``shape`` and the four neighbours of each
    observation, ``q (N, 4)`` float16 (the values a stored map would give)."""

    shape: tuple[int, int]
    q: np.ndarray


@dataclass
class DepthSamples:
    """A clip's depth at its SfM observations (``<clip>.samples.npz``): per depth frame its map
    shape, per observation (row of ``observations.parquet``) the four neighbours."""

    shapes: np.ndarray  # (F, 2) map (h, w) of each depth frame
    q: np.ndarray  # (N_observations, 4) float16

    def __len__(self) -> int:
        return len(self.shapes)

    def frame(self, k: int, observations: pd.DataFrame) -> SampledFrame:
        """Depth frame ``k`` at the given rows of the clip's observation table."""
        return SampledFrame(tuple(int(v) for v in self.shapes[k]), self.q[observations.index.to_numpy()])


def depth_samples(depth: list[np.ndarray], names: list[str], sfm_clip: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(shapes, q)`` of :class:`DepthSamples` for float16 maps of the frames ``names`` and the SfM
    clip folder (``clip.json``, ``cameras.txt``, ``observations.parquet``); observations of
    frames without depth get NaN neighbours."""
    from .triangulate import read_clip_json

    meta = read_clip_json(sfm_clip / "clip.json")
    cams = cam.read_re10k(sfm_clip / "cameras.txt")
    obs = read_table(sfm_clip / "observations.parquet", ["point", "frame", "u", "v"])
    by_time = {_timestamp(n): k for k, n in enumerate(names)}
    q = np.full((len(obs), 4), np.nan, np.float16)
    frames = obs["frame"].to_numpy()
    for i, ts in enumerate(cams.timestamps):
        k = by_time.get(int(ts))
        rows = np.nonzero(frames == i)[0]
        if k is None or not len(rows):
            continue
        h, w = depth[k].shape
        x = obs["u"].to_numpy()[rows] * (w / meta["width"])
        y = obs["v"].to_numpy()[rows] * (h / meta["height"])
        x0, y0, x1, y1, _, _ = bilinear_taps(h, w, x, y)
        d = np.asarray(depth[k])
        q[rows] = np.stack([d[y0, x0], d[y0, x1], d[y1, x0], d[y1, x1]], axis=1)
    return np.array([d.shape for d in depth], np.int64).reshape(-1, 2), q


def write_depth_samples(path: Path, shapes: np.ndarray, q: np.ndarray, names: list[str], max_depth: float) -> Path:
    return write_arrays(
        path,
        shapes=shapes,
        q=q,
        frames=np.array(names),
        max_depth=np.float64(max_depth),
        timestamps=np.array([_timestamp(n) for n in names], np.int64),
    )


def read_depth_samples(path: str | Path) -> tuple[DepthSamples, dict]:
    """A ``<clip>.samples.npz`` and its other arrays (``timestamps``, ``max_depth``)."""
    data = read_arrays(path)
    for key in ("shapes", "q", "timestamps"):
        if key not in data:
            raise RealcamError(f"lacks {key!r} (not a depth --sample-depth file)", path)
    q, shapes = np.asarray(data["q"]), np.asarray(data["shapes"])
    if q.ndim != 2 or q.shape[1] != 4 or shapes.ndim != 2 or shapes.shape[1] != 2:
        raise RealcamError(f"'q' must be (N, 4) and 'shapes' (F, 2), got {q.shape} and {shapes.shape}", path)
    return DepthSamples(shapes, q), data


def _failed_row(item: str, reason: str, model: str) -> dict:
    return {
        "item": item,
        "frame": -1,
        "path": "",
        "height": 0,
        "width": 0,
        "min": math.nan,
        "median": math.nan,
        "max": math.nan,
        "model": model,
        "status": FAILED,
        "reason": reason,
    }


@dataclass
class DepthTask(BatchTask):
    """``depth`` in the batch engine: one item's frames in, its ``<item>.npz`` and index rows out."""

    out: Path
    model: str
    from_files: Path | None
    max_depth: float | None
    batch_size: int
    device: str
    dtype: str
    saturation: float = math.inf  # saved with the maps; a model's is read when it loads (setup)
    sample_at: Path | None = None  # a triangulate folder: store depth at its observations only
    tables = {"index": INDEX_COLUMNS}
    key = "item"

    @property
    def uses_model(self) -> bool:  # a model loads once per worker (a GPU per Ray worker)
        return self.from_files is None

    @property
    def model_name(self) -> str:
        return f"{FILES_MODEL}:{self.from_files}" if self.from_files else str(self.model)

    def key_of(self, it: DepthItem) -> str:
        return it.item

    def target(self, it: DepthItem) -> Path:
        return self.out / (f"{it.item}{SAMPLES_SUFFIX}" if self.sample_at is not None else f"{it.item}.npz")

    def outputs(self, it: DepthItem) -> list[Path]:
        return [self.target(it)]

    def setup(self) -> None:
        if self.from_files is None:
            _, _, _, self.saturation = load_model(self.model, self.device, self.dtype, self.max_depth)

    def run(self, it: DepthItem) -> dict[str, list[dict]]:
        if it.error:
            raise RealcamError(it.error)
        target = self.target(it)
        if self.sample_at is not None and not (self.sample_at / it.item / "clip.json").is_file():
            raise RealcamError(
                "not triangulated (depth at the observations needs triangulate's output)", self.sample_at / it.item
            )
        images, names, sources = it.read()
        if self.from_files is not None:
            depth = depth_from_files(self.from_files, it.item, names)
        else:
            depth = predict_depth(images, self.model, self.device, self.dtype, self.max_depth, self.batch_size)
        depth = [d.astype(np.float16) for d in depth]  # what is stored is what is checked
        for name, d in zip(names, depth):
            problem = depth_problem(d)
            if problem:
                raise RealcamError(f"frame {name}: {problem}")
        with checks.writing(target):
            if self.sample_at is not None:
                shapes, q = depth_samples(depth, names, self.sample_at / it.item)
                write_depth_samples(target, shapes, q, names, self.saturation)
            else:
                write_depth_file(target, depth, names, self.saturation)
        rows = []
        for k, (f, d) in enumerate(zip(sources, depth)):
            d32 = d.astype(np.float32)
            v = d32[np.isfinite(d32) & (d32 > 0)]  # statistics of the measured depth (holes left out)
            rows.append(
                {
                    "item": it.item,
                    "frame": k,
                    "path": f,
                    "height": d.shape[0],
                    "width": d.shape[1],
                    "min": float(v.min()),
                    "median": float(np.median(v)),
                    "max": float(v.max()),
                    "model": self.model_name,
                    "status": OK,
                    "reason": "",
                }
            )
        return {"index": rows}

    def failed(self, it: DepthItem, reason: str) -> dict[str, list[dict]]:
        return {"index": [_failed_row(it.item, reason, self.model_name)]}


def run_depth(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    model: str = DEPTH_MODEL,
    from_files: str | Path | None = None,
    max_depth: float | None = None,
    batch_size: int = 4,
    device: str = "auto",
    dtype: str = "auto",
    sample_at: str | Path | None = None,
    batch: BatchSettings | None = None,
    progress: Callable[[str], None] | None = None,
    **overrides,
) -> tuple[pd.DataFrame, int]:
    """Depth for every item (of the shard); returns (and writes) the frame index, and the number of
    items skipped as already done. Failed items get a status row (a frame without usable depth, a
    file that cannot be read or written); the options, the inputs and the output folder are
    checked first. ``batch``: where and how the items run (``overrides``: its fields).
    ``sample_at``: a ``triangulate`` output folder: each clip's depth is stored only at its SfM
    observations (``<clip>.samples.npz``, what ``align-scale`` reads), not as whole maps."""
    batch = replace(batch or BatchSettings(), **overrides).check()
    out = checks.output_dir(out)
    if from_files is not None:
        from_files = checks.input_dir(from_files, "depth folder (--from-files)")
    if max_depth is not None:
        max_depth = checks.number(max_depth, "--max-depth", above=0)
    batch_size = checks.integer(batch_size, "--batch-size", minimum=1)
    if sample_at is not None:
        sample_at = checks.input_dir(sample_at, "triangulate folder (--sample-at)")
    items = shard(collect_items(inputs), batch.shard)
    index_path = out / shard_table(INDEX_TABLE, batch.shard)
    if from_files is None and not batch.ray:  # a bad model fails now, unless every item is done
        done = done_items(index_path)
        suffix = SAMPLES_SUFFIX if sample_at is not None else ".npz"
        outputs = {it.item: [out / f"{it.item}{suffix}"] for it in items}
        if not items or not all(should_skip(it.item, done, outputs[it.item], batch.overwrite) for it in items):
            load_model(model, device, dtype, max_depth)
    with checks.writing(out):
        out.mkdir(parents=True, exist_ok=True)
    sat = float(max_depth) if from_files is not None and max_depth is not None else math.inf
    task = DepthTask(out, model, from_files, max_depth, batch_size, device, dtype, sat, sample_at)
    result = run_batch(task, items, {"index": index_path}, batch, progress)
    return result.tables["index"], result.skipped
