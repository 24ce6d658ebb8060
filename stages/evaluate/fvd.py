"""Fréchet video distance: I3D features (two preprocessing variants) and the Fréchet distance.

- ``InceptionI3d``: the Inception-v1 I3D (400 Kinetics classes) with the parameter names of the
  widely used PyTorch port (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b0.bn.running_mean``,
  ``logits.conv3d.bias``, ...), so a distributed state dict (``i3d_pretrained_400.pt``) loads into
  it; TF "SAME" padding computed per input; output = logits averaged over time (400 features).
  ``width`` scales every channel count (1.0 = the real network; tests use tiny ones).
- ``load_i3d(path)``: a TorchScript file (``i3d_torchscript.pt`` of StyleGAN-V) through
  ``torch.jit.load``, otherwise a state dict loaded into ``InceptionI3d``.
- Variants: ``videogpt`` (frames to [0, 1], shorter side bilinearly resized to 224, centre crop,
  mapped to [-1, 1], network called without its own preprocessing) and ``stylegan`` (frames as
  0..255 floats, the network's own ``rescale=True, resize=True``: [-1, 1] and 224x224 inside).
  Both take the pre-softmax 400-d features (``return_features=True``).
- ``frechet_distance``: ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)`` in float64
  from symmetric eigen-decompositions (no complex ``sqrtm``).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages.core.errors import RealcamError

VARIANTS = ("videogpt", "stylegan")
RESOLUTION = 224
NUM_CLASSES = 400
STEM_CHANNELS = 64

# (name, in-channel source, six branch widths) of the Inception blocks, in order
_MIXED = [
    ("Mixed_3b", [64, 96, 128, 16, 32, 32]),
    ("Mixed_3c", [128, 128, 192, 32, 96, 64]),
    ("MaxPool3d_4a_3x3", ([3, 3, 3], (2, 2, 2))),
    ("Mixed_4b", [192, 96, 208, 16, 48, 64]),
    ("Mixed_4c", [160, 112, 224, 24, 64, 64]),
    ("Mixed_4d", [128, 128, 256, 24, 64, 64]),
    ("Mixed_4e", [112, 144, 288, 32, 64, 64]),
    ("Mixed_4f", [256, 160, 320, 32, 128, 128]),
    ("MaxPool3d_5a_2x2", ([2, 2, 2], (2, 2, 2))),
    ("Mixed_5b", [256, 160, 320, 32, 128, 128]),
    ("Mixed_5c", [384, 192, 384, 48, 128, 128]),
]


def _same_pad(x: torch.Tensor, kernel: list[int], stride: list[int]) -> torch.Tensor:
    """TF 'SAME' padding for a 3D window (zeros; split with the extra on the far side)."""
    pads: list[int] = []
    for dim in range(3):
        size = x.shape[2 + dim]
        k, s = kernel[dim], stride[dim]
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads = [total // 2, total - total // 2] + pads  # F.pad wants the last dimension first
    return F.pad(x, pads)


class Unit3D(nn.Module):
    def __init__(
        self,
        cin: int,
        cout: int,
        kernel=(1, 1, 1),
        stride=(1, 1, 1),
        relu: bool = True,
        batch_norm: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)
        self.relu = relu
        self.use_bn = batch_norm
        self.conv3d = nn.Conv3d(cin, cout, kernel_size=tuple(kernel), stride=tuple(stride), padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        if self.use_bn:
            x = self.bn(x)
        if self.relu:
            x = F.relu(x)
        return x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)
        self.pool = nn.MaxPool3d(tuple(kernel), tuple(stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(_same_pad(x, self.kernel, self.stride))


class InceptionModule(nn.Module):
    def __init__(self, cin: int, widths: Sequence[int]):
        super().__init__()
        self.b0 = Unit3D(cin, widths[0])
        self.b1a = Unit3D(cin, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a = Unit3D(cin, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    """I3D (Inception-v1 inflated) returning per-video logits averaged over time."""

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        self.width = width
        self.resolution = RESOLUTION

        def ch(c: int) -> int:
            return max(1, int(round(c * width)))

        self.Conv3d_1a_7x7 = Unit3D(in_channels, ch(64), (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(ch(64), ch(64))
        self.Conv3d_2c_3x3 = Unit3D(ch(64), ch(192), (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        cin = ch(192)
        for name, spec in _MIXED:
            if name.startswith("MaxPool"):
                module = MaxPool3dSame(*spec)
            else:
                module = InceptionModule(cin, [ch(c) for c in spec])
                cin = module.out_channels
            self.add_module(name, module)
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(cin, num_classes, relu=False, batch_norm=False, bias=True)

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv3d_1a_7x7(x)
        x = self.MaxPool3d_2a_3x3(x)
        x = self.Conv3d_2b_1x1(x)
        x = self.Conv3d_2c_3x3(x)
        x = self.MaxPool3d_3a_3x3(x)
        x = self.Mixed_3b(x)
        x = self.Mixed_3c(x)
        x = self.MaxPool3d_4a_3x3(x)
        x = self.Mixed_4b(x)
        x = self.Mixed_4c(x)
        x = self.Mixed_4d(x)
        x = self.Mixed_4e(x)
        x = self.Mixed_4f(x)
        x = self.MaxPool3d_5a_2x2(x)
        x = self.Mixed_5b(x)
        x = self.Mixed_5c(x)
        return x

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = True
    ) -> torch.Tensor:
        """``x`` (B, 3, T, H, W). ``rescale``: input is 0..255, mapped to [-1, 1]; ``resize``: every
        frame bilinearly resized to 224x224; ``return_features``: logits, else softmax."""
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            b, c, t, h, w = x.shape
            frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            r = self.resolution
            frames = F.interpolate(frames, size=(r, r), mode="bilinear", align_corners=False)
            x = frames.reshape(b, t, c, r, r).permute(0, 2, 1, 3, 4)
        x = self.extract(x)
        # the (2, 7, 7) average pool of the original, shrunk for inputs smaller than 224 x 16
        x = F.avg_pool3d(x, (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4])), stride=(1, 1, 1))
        x = self.logits(self.dropout(x))  # (B, classes, T', H', W')
        logits = x.mean(dim=(3, 4)).mean(dim=2)
        if return_features:
            return logits
        return F.softmax(logits, dim=1)


def load_i3d(path: str | Path) -> nn.Module:
    """A TorchScript I3D or a state dict for ``InceptionI3d`` (channel width inferred), in eval mode."""
    path = Path(path)
    if not path.exists():
        raise RealcamError("no such I3D checkpoint", path)
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is how the network ships
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception:
        pass
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RealcamError(f"not a TorchScript file or a state dict ({err.__class__.__name__})", path) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()} if isinstance(state, dict) else state
    stem = state.get("Conv3d_1a_7x7.conv3d.weight") if isinstance(state, dict) else None
    if stem is None or "logits.conv3d.weight" not in state:
        raise RealcamError("state dict is not an I3D (lacks Conv3d_1a_7x7 / logits weights)", path)
    width = stem.shape[0] / STEM_CHANNELS
    model = InceptionI3d(num_classes=state["logits.conv3d.weight"].shape[0], in_channels=stem.shape[1], width=width)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RealcamError(f"state dict does not fit the I3D: {str(err).splitlines()[0]}", path) from None
    return model.eval()


# ----------------------------------------------------------------------------------------------
# Preprocessing and features
# ----------------------------------------------------------------------------------------------
def preprocess_videogpt(video: np.ndarray, resolution: int = RESOLUTION) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 to ``(3, T, R, R)`` in [-1, 1]: shorter side to R, centre crop."""
    x = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float() / 255.0
    t, c, h, w = x.shape
    scale = resolution / min(h, w)
    size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top, left = (x.shape[2] - resolution) // 2, (x.shape[3] - resolution) // 2
    x = x[:, :, top : top + resolution, left : left + resolution]
    return ((x - 0.5) * 2.0).permute(1, 0, 2, 3).contiguous()


def preprocess_stylegan(video: np.ndarray) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 to ``(3, T, H, W)`` float 0..255 (the network rescales and resizes)."""
    return torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2).float()


@torch.no_grad()
def i3d_features(
    model: nn.Module,
    videos: Sequence[np.ndarray],
    variant: str = "videogpt",
    batch_size: int = 8,
    resolution: int = RESOLUTION,
) -> np.ndarray:
    """400-d features ``(N, 400)`` float64 of uint8 videos ``(T, H, W, 3)`` (equal shapes per batch).

    ``resolution`` is the VideoGPT crop size (224 for real FVD; smaller only for tests).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    feats = []
    for i in range(0, len(videos), batch_size):
        chunk = videos[i : i + batch_size]
        if variant == "videogpt":
            x = torch.stack([preprocess_videogpt(v, resolution) for v in chunk])
            y = model(x, rescale=False, resize=False, return_features=True)
        else:
            x = torch.stack([preprocess_stylegan(v) for v in chunk])
            y = model(x, rescale=True, resize=True, return_features=True)
        feats.append(y.detach().to(torch.float64).cpu().numpy().reshape(len(chunk), -1))
    return np.concatenate(feats)


# ----------------------------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------------------------
def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise RealcamError(f"the Fréchet distance needs at least 2 feature vectors, got {len(feats)}")
    return feats.mean(0), np.cov(feats, rowvar=False)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_stats(mu1, sigma1, mu2, sigma2) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)``, float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(d, 0.0)


def frechet_distance(feats1: np.ndarray, feats2: np.ndarray) -> float:
    return frechet_distance_stats(*feature_stats(feats1), *feature_stats(feats2))


def fvd(
    model: nn.Module,
    generated: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    variant: str = "videogpt",
    batch_size: int = 8,
) -> float:
    return frechet_distance(
        i3d_features(model, generated, variant, batch_size), i3d_features(model, reference, variant, batch_size)
    )


def fvd_for_samples(
    pairs: Sequence[tuple[Path, Path | None]], i3d: str | Path | None, frames: int = 16, fid: str | Path | None = None
) -> dict[str, float]:
    """Both FVD variants (with ``i3d``) and the per-frame FID (with ``fid``) between generated
    videos and their ground-truth videos (first ``frames`` frames)."""
    from stages.core.video import read_video

    missing = [str(g) for g, r in pairs if r is None]
    if missing:
        raise RealcamError(
            f"FVD/FID need a ground-truth video for every sample; none for {missing[0]}"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}",
            "--gt-videos",
        )
    if len(pairs) < 2 and i3d is not None:
        raise RealcamError("FVD needs at least 2 videos", "--fvd")

    def load(path):
        v = read_video(path)
        return v[:frames]

    gen = [load(g) for g, _ in pairs]
    ref = [load(r) for _, r in pairs]
    n = min(min(len(v) for v in gen), min(len(v) for v in ref))
    gen, ref = [v[:n] for v in gen], [v[:n] for v in ref]
    out = {}
    if i3d is not None:
        model = load_i3d(i3d)
        out.update({f"fvd_{variant}": fvd(model, gen, ref, variant) for variant in VARIANTS})
    if fid is not None:
        out["fid"] = fid_per_frame(load_feature_net(fid), gen, ref)
    return out


# ----------------------------------------------------------------------------------------------
# FID per frame (torchmetrics with a user-given feature network)
# ----------------------------------------------------------------------------------------------
class FrameFeatures(nn.Module):
    """Wraps a TorchScript image feature network (e.g. StyleGAN's ``inception-2015-12-05.pt``,
    called as ``net(uint8 images (N, 3, H, W), return_features=True)``) for torchmetrics."""

    def __init__(self, net: nn.Module, probe: torch.Tensor):
        super().__init__()
        self.net = net
        self.kwargs = {"return_features": True}
        try:
            out = self.net(probe, **self.kwargs)
        except (RuntimeError, TypeError):
            self.kwargs = {}
            out = self.net(probe)
        self.num_features = int(out.reshape(len(probe), -1).shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, **self.kwargs).reshape(len(x), -1).to(torch.float64)


def load_feature_net(path: str | Path) -> nn.Module:
    path = Path(path)
    if not path.exists():
        raise RealcamError("no such FID feature network", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as err:
        raise RealcamError(
            f"FID network must be a TorchScript file (e.g. inception-2015-12-05.pt) ({err.__class__.__name__})", path
        ) from None


@torch.no_grad()
def fid_per_frame(
    net: nn.Module, generated: Sequence[np.ndarray], reference: Sequence[np.ndarray], batch_size: int = 32
) -> float:
    """FID over all frames of the generated videos against all frames of the reference videos,
    through ``torchmetrics.image.fid.FrechetInceptionDistance`` (its statistics are float64; the
    wrapped features are float64, so the result is too)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    def batches(videos):
        frames = np.concatenate([np.asarray(v) for v in videos])
        for i in range(0, len(frames), batch_size):
            yield torch.from_numpy(np.ascontiguousarray(frames[i : i + batch_size])).permute(0, 3, 1, 2).contiguous()

    probe = next(batches(reference))[:1]
    metric = FrechetInceptionDistance(feature=FrameFeatures(net, probe), normalize=False)
    for x in batches(reference):
        metric.update(x, real=True)
    for x in batches(generated):
        metric.update(x, real=False)
    return float(metric.compute())
