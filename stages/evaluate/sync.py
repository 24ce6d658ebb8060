"""Synchronization of a re-rendered (target) video with its source video at the same time
(docs/method.md#synchronization-metrics): the view-synchronization metrics of ReCamMaster.

- **CLIP-V**: mean over frames ``i`` of the cosine similarity of the CLIP image embeddings of
  source frame ``i`` and target frame ``i`` (a transformers CLIP model, Hub id or folder).
- **Mat. Pix.**: per frame pair, the number of SIFT correspondences (COLMAP's SIFT through
  ``pycolmap``) that pass kornia's mutual nearest neighbour and ratio tests and fit one fundamental
  matrix (kornia's RANSAC); the mean over frames (and the sum). The paper uses GIM, which is not
  packaged; SIFT is hand-crafted and needs no weights.
- **FVD-V**: the Fréchet video distance (the I3D features of ``fvd``) between the set of source
  videos and the set of re-rendered videos.

The source is brought to the target's geometry first (resized to cover, centre-cropped: what
``rerender`` does to its input), and only the first ``min(n_source, n_target)`` frames are
compared. Heavy libraries (torch, kornia, pycolmap, transformers) load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from stages.core.errors import RealcamError

#: columns a per-video row gains (means over the compared frames; ``sync_frames`` their number)
SYNC_COLUMNS = ["clip_v", "matched_pixels", "matched_pixels_sum", "sync_frames"]
#: summarised over videos (mean and median)
SYNC_SUMMARY = ["clip_v", "matched_pixels", "matched_pixels_sum"]
#: the per-frame table ``sync/<name>.parquet``
FRAME_COLUMNS = ["frame", "clip_cos", "keypoints_source", "keypoints_target", "tentative", "matched_pixels"]
SYNC_DIR = "sync"
#: the files of a transformers checkpoint, one of which a CLIP folder must hold
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
CLIP_TYPES = ("clip", "clip_vision_model")


# ----------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------
def align_frames(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """The first ``n = min(len(source), len(target))`` frames of both, the source resized to
    cover the target's size and centre-cropped (bicubic, :func:`stages.core.image.fit_image`);
    a note when the frame counts differ."""
    from stages.core.image import fit_image

    n = min(len(source), len(target))
    note = (
        "" if len(source) == len(target) else f"source {len(source)} frames, target {len(target)}: first {n} compared"
    )
    height, width = target.shape[1:3]
    src = source[:n]
    if src.shape[1:3] != (height, width):
        src = np.stack([fit_image(f, None, (width, height))[0] for f in src])
    return np.ascontiguousarray(src), np.ascontiguousarray(target[:n]), note


def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(N, D)`` arrays, float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(na * nb, 1e-300)


# ----------------------------------------------------------------------------------------------
# CLIP-V
# ----------------------------------------------------------------------------------------------
def clip_source(model: str) -> dict:
    """Keyword arguments for ``from_pretrained(model)``: a local folder holding a transformers CLIP
    (``config.json`` and weights), or a Hugging Face id in the local cache or on a reachable Hub.
    Anything else is a ``RealcamError`` naming the folder or file."""
    from stages.core import hub

    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise RealcamError("a CLIP model is a folder or a Hugging Face id, not a file", model)
        if not (path / "config.json").is_file():
            if (path / "open_clip_config.json").is_file():
                raise RealcamError(
                    "an open_clip checkpoint without transformers weights (config.json); the open_clip package "
                    "is not installed: use a repository that ships both, e.g. laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                    path / "config.json",
                )
            raise RealcamError("not a transformers model folder (no config.json)", path / "config.json")
        if not any((path / f).is_file() for f in WEIGHT_FILES):
            raise RealcamError(f"CLIP folder holds no weights ({', '.join(WEIGHT_FILES[::2])})", path)
        if not (path / "preprocessor_config.json").is_file():
            raise RealcamError("CLIP folder has no image processor (preprocessor_config.json)", path)
        return {}
    return hub.hub_model_kwargs(model, "CLIP model")


def _load_error(model: str, err: Exception) -> RealcamError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
    return RealcamError(f"cannot load the CLIP model ({first})", model)


def check_clip(model: str) -> str:
    """Fail now, in one line, on a CLIP model that cannot load: no such folder, not a CLIP
    configuration, no weights or image processor. Reads the configuration only."""
    model = str(model)
    source = clip_source(model)
    from transformers import AutoConfig

    from stages.core.hub import quiet_loading

    try:
        with quiet_loading():
            config = AutoConfig.from_pretrained(model, **source)
    except (OSError, ValueError, KeyError) as err:
        raise _load_error(model, err) from None
    if config.model_type not in CLIP_TYPES:
        raise RealcamError(f"not a CLIP model (model_type {config.model_type!r})", model)
    return model


@dataclass
class ClipEncoder:
    """A CLIP image tower with its processor: :meth:`embed` gives the projected image embeddings."""

    processor: object
    model: object
    device: str
    name: str = ""

    def embed(self, frames: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """``(N, D)`` float64 image embeddings (not normalised) of ``(N, H, W, 3)`` uint8 frames."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(frames), batch_size):
                chunk = [np.asarray(f) for f in frames[i : i + batch_size]]
                pixels = self.processor(images=chunk, return_tensors="pt")["pixel_values"]
                pixels = pixels.to(self.device, dtype=next(self.model.parameters()).dtype)
                if hasattr(self.model, "get_image_features"):
                    emb = self.model.get_image_features(pixel_values=pixels)
                    emb = emb if torch.is_tensor(emb) else emb.pooler_output  # transformers 5 wraps it
                else:  # CLIPVisionModelWithProjection
                    emb = self.model(pixel_values=pixels).image_embeds
                out.append(emb.float().cpu().numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros((0, 0))


_ENCODERS: dict[tuple[str, str], ClipEncoder] = {}


def load_clip(model: str, device: str = "auto") -> ClipEncoder:
    """A transformers CLIP (``CLIPModel``, or ``CLIPVisionModelWithProjection`` for a vision-only
    folder) in fp32, eval mode, cached per (model, device)."""
    from stages.core.device import resolve_device

    model, device = str(model), resolve_device(device)
    key = (model, device)
    if key in _ENCODERS:
        return _ENCODERS[key]
    check_clip(model)
    source = clip_source(model)
    from transformers import AutoConfig, AutoImageProcessor, CLIPModel, CLIPVisionModelWithProjection

    from stages.core.hub import quiet_loading

    try:
        with quiet_loading():
            config = AutoConfig.from_pretrained(model, **source)
            cls = CLIPModel if config.model_type == "clip" else CLIPVisionModelWithProjection
            processor = AutoImageProcessor.from_pretrained(model, **source)
            net = cls.from_pretrained(model, **source)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise _load_error(model, err) from None
    _ENCODERS[key] = ClipEncoder(processor, net.float().to(device).eval(), device, model)
    return _ENCODERS[key]


def clip_cosines(source: np.ndarray, target: np.ndarray, encoder: ClipEncoder) -> np.ndarray:
    """Per frame ``i``: ``cos(E(source_i), E(target_i))`` (equal frame counts)."""
    return cosine_similarities(encoder.embed(source), encoder.embed(target))


# ----------------------------------------------------------------------------------------------
# Mat. Pix.
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatchSettings:
    """SIFT matching of two frames taken at the same time (docs/method.md#synchronization-metrics)."""

    size: int = 512  # longer side of the frames fed to SIFT (0: as they are)
    max_features: int = 8192  # COLMAP's SIFT default: the strongest keypoints kept
    ratio: float = 0.8  # Lowe's ratio test, both ways (mutual nearest neighbours)
    inlier_px: float = 2.0  # Sampson distance of a RANSAC inlier, pixels at the matching size
    min_inliers: int = 15  # fewer verified matches count as none (COLMAP's two-view minimum)
    ransac_iters: int = 10000
    confidence: float = 0.9999
    seed: int = 0


_SIFT: dict[int, object] = {}


def _sift(max_features: int):
    """COLMAP's CPU SIFT (VLFeat's detector with Lowe's thresholds: peak 0.02/3, edge 10; RootSIFT
    descriptors), one thread, cached per process."""
    import pycolmap

    if max_features not in _SIFT:
        if pycolmap.logging.minloglevel < 2:  # no INFO line per extractor
            pycolmap.logging.minloglevel = 2
        options = pycolmap.FeatureExtractionOptions()
        options.num_threads = 1
        sift = options.sift
        sift.max_num_features = max_features
        options.sift = sift
        _SIFT[max_features] = pycolmap.FeatureExtractor.create(options, pycolmap.Device.cpu)
    return _SIFT[max_features]


def working_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(h, w)`` with the longer side ``size`` (aspect kept; unchanged when ``size`` is 0)."""
    if not size or max(height, width) == size:
        return height, width
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def sift_features(frame: np.ndarray, settings: MatchSettings = MatchSettings()):
    """Keypoint positions ``(K, 2)`` float64 (pixels at the matching size) and L2-normalised
    descriptors ``(K, 128)`` float32 of one RGB uint8 frame (grey by ITU-R 601-2 luma, resized with
    PIL's bicubic filter so the longer side is ``settings.size``), on the CPU: the same counts on
    every machine."""
    import torch
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(frame)).convert("L")
    h, w = working_size(image.height, image.width, settings.size)
    if (h, w) != (image.height, image.width):
        image = image.resize((w, h), Image.BICUBIC)
    keypoints, descriptors = _sift(settings.max_features).extract_from_uint8_array(np.asarray(image))
    xy = np.array([(k.x, k.y) for k in keypoints], np.float64).reshape(-1, 2)
    desc = torch.from_numpy(np.asarray(descriptors.data, np.float32).reshape(-1, 128))
    desc = desc / desc.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.from_numpy(xy), desc


def match_features(feats_source, feats_target, settings: MatchSettings = MatchSettings()) -> dict[str, int]:
    """Tentative matches (mutual nearest neighbours passing the ratio test both ways) and those of
    them that fit one fundamental matrix (RANSAC, Sampson distance <= ``inlier_px``)."""
    import kornia.feature as KF
    import torch
    from kornia.geometry.ransac import RANSAC

    (k1, d1), (k2, d2) = feats_source, feats_target
    row = {"keypoints_source": int(len(k1)), "keypoints_target": int(len(k2)), "tentative": 0, "matched_pixels": 0}
    if len(k1) < 2 or len(k2) < 2:
        return row
    with torch.inference_mode():
        _, idx = KF.match_smnn(d1, d2, settings.ratio)
    row["tentative"] = int(len(idx))
    if len(idx) < max(8, settings.min_inliers):
        return row
    ransac = RANSAC(
        "fundamental",
        inl_th=settings.inlier_px,
        max_iter=settings.ransac_iters,
        confidence=settings.confidence,
        seed=settings.seed,
    )
    p1, p2 = k1[idx[:, 0]].double(), k2[idx[:, 1]].double()
    _, inliers = ransac(p1, p2)
    n = int(inliers.sum())
    row["matched_pixels"] = n if n >= settings.min_inliers else 0
    return row


def matched_pixels(source: np.ndarray, target: np.ndarray, settings: MatchSettings = MatchSettings()) -> list[dict]:
    """Per frame pair ``i`` (equal counts): :func:`match_features` of ``source_i`` and ``target_i``."""
    return [
        match_features(sift_features(s, settings), sift_features(t, settings), settings) for s, t in zip(source, target)
    ]


# ----------------------------------------------------------------------------------------------
# One video
# ----------------------------------------------------------------------------------------------
def _read(path: Path, what: str) -> np.ndarray:
    from stages.core.video import read_video

    try:
        return read_video(path)
    except RealcamError as err:
        raise RealcamError(f"{what}: {err.message}", err.source or path) from None


def sync_video(
    source: str | Path,
    target: str | Path,
    encoder: ClipEncoder | None = None,
    match: MatchSettings = MatchSettings(),
) -> tuple[dict, pd.DataFrame, str]:
    """The synchronization metrics of one re-rendered video against its source: the per-video
    values (:data:`SYNC_COLUMNS`; ``clip_v`` NaN without ``encoder``), the per-frame table
    (:data:`FRAME_COLUMNS`) and a note (frame counts that differ). An unreadable video is a
    ``RealcamError`` naming it."""
    tgt = _read(Path(target), "target video")
    src = _read(Path(source), "source video")
    src, tgt, note = align_frames(src, tgt)
    n = len(tgt)
    cos = clip_cosines(src, tgt, encoder) if encoder is not None else np.full(n, np.nan)
    matches = matched_pixels(src, tgt, match)
    frames = pd.DataFrame(
        [{"frame": i, "clip_cos": float(cos[i]), **m} for i, m in enumerate(matches)], columns=FRAME_COLUMNS
    )
    counts = frames["matched_pixels"].to_numpy(float)
    row = {
        "clip_v": float(np.mean(cos)) if encoder is not None else np.nan,
        "matched_pixels": float(counts.mean()),
        "matched_pixels_sum": float(counts.sum()),
        "sync_frames": n,
    }
    return row, frames, note


# ----------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------
def record_of(target: Path) -> Path:
    """The ``rerender`` record beside a re-rendered video: ``<name>.json``."""
    return target.with_suffix(".json") if target.suffix else target.with_name(target.name + ".json")


def source_of(sample, source_dir: str | Path | None) -> Path:
    """The source video of a sample: its table's ``source_video``, else ``<source_dir>/<name>``
    (video file or frame folder), else the ``video_in`` of the ``rerender`` record beside the
    re-rendered video. None found is a ``RealcamError`` naming what was looked for."""
    from stages.core.video import first_video

    if sample.source is not None:
        if not sample.source.exists():
            raise RealcamError(f"no such source video (sample {sample.name})", sample.source)
        return sample.source
    target = sample.fvd_video
    if target is None:
        raise RealcamError(
            f"synchronization metrics need the re-rendered video of every sample; none for {sample.name} "
            "(put <name>.mp4 beside <name>.txt, or a generated_video column)",
            sample.video,
        )
    if source_dir is not None:
        found = first_video(Path(source_dir), sample.name)
        if found is not None:
            return found
    record = record_of(target)
    if record.is_file():
        from stages.rerender.pipeline import read_record

        video_in = read_record(record).get("video_in")
        if not video_in:
            raise RealcamError("rerender record has no video_in", record)
        if not Path(video_in).exists():
            raise RealcamError(f"source video {video_in} named by the record does not exist", record)
        return Path(video_in)
    if source_dir is not None:
        raise RealcamError(
            f"no source video for {sample.name}: not in --source (<name>.mp4 or <name>/ frames) "
            f"and no rerender record {record.name} beside the video",
            Path(source_dir) / f"{sample.name}.mp4",
        )
    raise RealcamError(
        f"no source video for {sample.name}: no rerender record beside the video (give --source DIR "
        "or a source_video column)",
        record,
    )


# ----------------------------------------------------------------------------------------------
# FVD-V
# ----------------------------------------------------------------------------------------------
def fvd_v(pairs: Sequence[tuple[Path, Path]], i3d: str | Path, frames: int = 16) -> dict[str, float]:
    """Both FVD variants between the re-rendered videos and their sources (source aligned to
    the target's geometry; the first ``frames`` frames, cut to the shortest video):
    ``fvd_v_videogpt`` and ``fvd_v_stylegan``."""
    from .fvd import VARIANTS, frechet_distance, i3d_features, load_i3d

    if len(pairs) < 2:
        raise RealcamError("FVD-V needs at least 2 videos", "--i3d")
    targets, sources = [], []
    for target, source in pairs:
        src, tgt, _ = align_frames(
            _read(Path(source), "source video")[:frames], _read(Path(target), "target video")[:frames]
        )
        targets.append(tgt)
        sources.append(src)
    n = min(len(v) for v in targets)
    targets, sources = [v[:n] for v in targets], [v[:n] for v in sources]
    same = len({v.shape for v in targets}) == 1
    model = load_i3d(i3d)
    batch = 8 if same else 1  # the StyleGAN-V variant stacks whole frames: one video a batch when sizes differ
    return {
        f"fvd_v_{variant}": frechet_distance(
            i3d_features(model, targets, variant, batch), i3d_features(model, sources, variant, batch)
        )
        for variant in VARIANTS
    }


def frame_table_path(out: Path, name: str) -> Path:
    return Path(out) / SYNC_DIR / f"{name}.parquet"
