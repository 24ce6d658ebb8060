import pytest
import torch

from stages.core.device import resolve_device, resolve_dtype
from stages.core.errors import RealcamError


def test_auto_follows_environment_then_hardware(monkeypatch):
    monkeypatch.setenv("REALCAM_DEVICE", "cpu")
    assert resolve_device("auto") == "cpu"
    monkeypatch.delenv("REALCAM_DEVICE")
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")


def test_bad_devices_and_dtypes():
    with pytest.raises(RealcamError, match="--device: unknown device 'gpu7'"):
        resolve_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(RealcamError, match="no CUDA device"):
            resolve_device("cuda")
        with pytest.raises(RealcamError, match="fp16 needs a CUDA device"):
            resolve_dtype("fp16", "cpu")
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(RealcamError, match="--dtype"):
        resolve_dtype("int8", "cpu")
