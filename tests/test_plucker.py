import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from stages.core import cameras as cam
from stages.core.plucker import plucker_embedding


def _inputs(b=2, f=3, h=5, w=7, seed=0):
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (b, f, 1, 1))
    c2w[..., :3, :3] = Rotation.random(b * f, random_state=seed).as_matrix().reshape(b, f, 3, 3)
    c2w[..., :3, 3] = rng.normal(size=(b, f, 3))
    k = cam.intrinsics_matrix(
        rng.uniform(3, 8, (b, f)), rng.uniform(3, 8, (b, f)), rng.uniform(2, 5, (b, f)), rng.uniform(1, 4, (b, f))
    )
    return torch.from_numpy(k), torch.from_numpy(c2w), h, w


def test_matches_per_pixel_brute_force():
    k, c2w, h, w = _inputs()
    emb = plucker_embedding(k, c2w, h, w)
    assert emb.shape == (2, 3, 6, h, w) and emb.dtype == torch.float64
    kn, pn = k.numpy(), c2w.numpy()
    for b in range(2):
        for f in range(3):
            r, o = pn[b, f, :3, :3], pn[b, f, :3, 3]
            kinv = np.linalg.inv(kn[b, f])
            for v in range(h):
                for u in range(w):
                    d = r @ kinv @ np.array([u + 0.5, v + 0.5, 1.0])
                    d /= np.linalg.norm(d)
                    np.testing.assert_allclose(emb[b, f, :, v, u].numpy(), np.r_[np.cross(o, d), d], atol=1e-12)


def test_direction_channels_have_unit_norm_and_moment_is_orthogonal():
    k, c2w, h, w = _inputs(seed=3)
    emb = plucker_embedding(k, c2w, h, w)
    d = emb[:, :, 3:]
    m = emb[:, :, :3]
    torch.testing.assert_close(d.norm(dim=2), torch.ones_like(d[:, :, 0]), atol=1e-12, rtol=0)
    torch.testing.assert_close((m * d).sum(dim=2), torch.zeros_like(d[:, :, 0]), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtype_is_preserved(dtype):
    k, c2w, h, w = _inputs()
    ref = plucker_embedding(k, c2w, h, w)
    emb = plucker_embedding(k.to(dtype), c2w.to(dtype), h, w)
    assert emb.dtype == dtype and emb.device == k.device
    tol = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    torch.testing.assert_close(emb.double(), ref, atol=tol * (1 + ref.abs().max().item()), rtol=0)


def test_identity_camera_centre_pixel_looks_forward():
    k = torch.tensor(cam.intrinsics_matrix(2.0, 2.0, 1.5, 1.5))
    emb = plucker_embedding(k, torch.eye(4, dtype=torch.float64), 3, 3)
    torch.testing.assert_close(emb[3:, 1, 1], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(emb[:3], torch.zeros_like(emb[:3]))  # camera at the origin
