"""Device and dtype choice, one rule for every stage.

``auto`` means the ``REALCAM_DEVICE`` environment variable when it is set to something other than
``auto`` (the Makefile's ``DEVICE``), else CUDA when a GPU is visible, else the CPU.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .constants import DTYPE_NAMES
from .errors import RealcamError

if TYPE_CHECKING:
    import torch


def torch_dtype(name: str):
    """``fp32`` / ``fp16`` / ``bf16`` -> the torch dtype."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def resolve_device(device: "str | torch.device | None" = "auto") -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a device string that exists here."""
    import torch

    name = "auto" if device is None else str(device)
    if name == "auto":
        name = os.environ.get("REALCAM_DEVICE", "auto") or "auto"
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise RealcamError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)", "--device") from None
    if dev.type not in ("cpu", "cuda"):
        raise RealcamError(f"unsupported device {name!r} (auto, cpu, cuda, cuda:N)", "--device")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RealcamError("CUDA was asked for but no CUDA device is available", "--device")
    return name


def resolve_dtype(dtype: str, device: str) -> "torch.dtype":
    """``auto`` (fp16 on CUDA, fp32 on the CPU), ``fp32``, ``fp16`` or ``bf16``."""
    if dtype == "auto":
        return torch_dtype("fp16" if str(device).startswith("cuda") else "fp32")
    if dtype not in DTYPE_NAMES:
        raise RealcamError(f"dtype must be auto, fp32, fp16 or bf16, got {dtype!r}", "--dtype")
    if dtype == "fp16" and not str(device).startswith("cuda"):
        raise RealcamError("fp16 needs a CUDA device; use fp32 or bf16 on the CPU", "--dtype")
    return torch_dtype(dtype)
