"""Camera control on Wan2.1 by a Plücker patchify layer (CameraCtrl II): the packing of the Plücker
embedding onto the causal VAE's latent grid, the zero-initialised layer, unlabelled samples and
the state dict, on the tiny random Wan transformer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from wan_fixtures import TRANSFORMER, tiny_transformer

from stages.core import cameras as cam
from stages.core.errors import RealcamError
from stages.core.plucker import plucker_embedding
from stages.models import wan_camera as wc

DIM = TRANSFORMER["num_attention_heads"] * TRANSFORMER["attention_head_dim"]
TEXT = TRANSFORMER["text_dim"]


def _loop_pack(plucker: np.ndarray, temporal: int, spatial: int) -> np.ndarray:
    """The packing written pixel by pixel, from the source side: every value of every frame is put
    where it belongs (frame 0 in all ``temporal`` slots of latent frame 0)."""
    b, frames, c, height, width = plucker.shape
    f = (frames - 1) // temporal + 1
    out = np.full((b, c * temporal * spatial * spatial, f, height // spatial, width // spatial), np.nan)
    for n in range(frames):
        slots = [(0, t) for t in range(temporal)] if n == 0 else [((n - 1) // temporal + 1, (n - 1) % temporal)]
        for j, t in slots:
            for bi in range(b):
                for p in range(c):
                    for yy in range(height):
                        for xx in range(width):
                            dy, dx = yy % spatial, xx % spatial
                            ch = p * temporal * spatial * spatial + t * spatial * spatial + dy * spatial + dx
                            out[bi, ch, j, yy // spatial, xx // spatial] = plucker[bi, n, p, yy, xx]
    assert not np.isnan(out).any(), "every packed value comes from one pixel"
    return out


def _cameras(b=2, frames=5, height=16, width=24, seed=0):
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (b, frames, 1, 1))
    c2w[..., :3, :3] = Rotation.random(b * frames, random_state=seed).as_matrix().reshape(b, frames, 3, 3)
    c2w[..., :3, 3] = rng.normal(size=(b, frames, 3))
    k = cam.intrinsics_matrix(
        np.full((b, frames), 0.6), np.full((b, frames), 0.9), np.full((b, frames), 0.5), np.full((b, frames), 0.5)
    )
    k[..., 0, :] *= width
    k[..., 1, :] *= height
    return torch.from_numpy(k).float(), torch.from_numpy(c2w).float()


def _inputs(b=1, f=2, h=4, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, TRANSFORMER["in_channels"], f, h, w, generator=g)
    text = torch.randn(b, 5, TEXT, generator=g)
    return x, torch.full((b,), 700.0), text


def _model(temporal=4, spatial=4, seed=0):
    return wc.WanCamera(tiny_transformer(seed), temporal=temporal, spatial=spatial)


def _randomise(model, seed=1, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    layer = model.camera_patchify
    with torch.no_grad():
        layer.weight.copy_(scale * torch.randn(layer.weight.shape, generator=g))
        layer.bias.copy_(scale * torch.randn(layer.bias.shape, generator=g))
    return model


# ----------------------------------------------------------------------------------------------
# Packing
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("temporal, spatial", [(4, 8), (2, 4)])
def test_pack_plucker_equals_a_per_pixel_loop(temporal, spatial):
    plucker = torch.randn(2, 5, 6, 16, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    packed = wc.pack_plucker(plucker, temporal, spatial)
    f = (5 - 1) // temporal + 1
    assert packed.shape == (2, wc.packed_channels(temporal, spatial), f, 16 // spatial, 24 // spatial)
    assert packed.dtype == torch.float64
    np.testing.assert_array_equal(packed.numpy(), _loop_pack(plucker.numpy(), temporal, spatial))


def test_pack_plucker_is_videox_fun_layout_then_pixel_unshuffle():
    """Latent frame 0 is frame 0 in all four slots; 1536 channels for Wan2.1's 4 and 8."""
    plucker = torch.randn(1, 9, 6, 8, 16, generator=torch.Generator().manual_seed(0))
    packed = wc.pack_plucker(plucker)
    assert wc.packed_channels() == 6 * 4 * 64 == packed.shape[1]
    first = packed[:, :, 0].reshape(1, 6, 4, 64, 1, 2)
    assert torch.equal(first, first[:, :, :1].expand_as(first))
    # latent frame 2 = frames 5..8; channel (p * 4 + t) * 64 + dy * 8 + dx
    assert torch.equal(packed[0, (3 * 4 + 2) * 64 + 5 * 8 + 7, 2, 0, 1], plucker[0, 7, 3, 5, 15])


def test_bad_frame_counts_and_sizes_raise():
    for frames in (0, 2, 4, 6, 8):
        with pytest.raises(RealcamError, match="4k\\+1"):
            wc.pack_plucker(torch.zeros(1, frames, 6, 16, 16))
    for h, w in ((12, 16), (16, 20), (17, 16)):
        with pytest.raises(RealcamError, match="multiple of the latent stride 8"):
            wc.pack_plucker(torch.zeros(1, 5, 6, h, w))
    with pytest.raises(RealcamError, match="2k\\+1"):
        wc.pack_plucker(torch.zeros(1, 4, 6, 8, 8), temporal=2, spatial=4)
    with pytest.raises(RealcamError, match="B, F, 6, H, W"):
        wc.pack_plucker(torch.zeros(1, 5, 3, 16, 16))
    k, c2w = _cameras(frames=6)
    with pytest.raises(RealcamError, match="4k\\+1"):
        wc.camera_input(k, c2w, 16, 24)
    k, c2w = _cameras()
    with pytest.raises(RealcamError, match="multiple"):
        wc.camera_input(k, c2w, 20, 24)
    with pytest.raises(RealcamError, match="differ"):
        wc.camera_input(k[:, :3], c2w[:, :1], 16, 24)
    model = _model()
    x, t, text = _inputs()
    with pytest.raises(RealcamError, match="does not fit"):
        model(x, t, text, torch.zeros(1, wc.packed_channels(4, 4), 3, 4, 6))
    with pytest.raises(RealcamError, match="patch"):
        model(torch.zeros(1, 4, 2, 3, 6), t, text)


def test_camera_input_is_packed_plucker_and_labelled_zeroes_samples():
    k, c2w = _cameras()
    packed = wc.camera_input(k, c2w, 16, 24, temporal=4, spatial=4)
    expected = wc.pack_plucker(plucker_embedding(k, c2w, 16, 24), 4, 4)
    assert torch.equal(packed, expected)
    assert wc.has_camera(packed).tolist() == [True, True]
    masked = wc.camera_input(k, c2w, 16, 24, labelled=torch.tensor([False, True]), temporal=4, spatial=4)
    assert torch.equal(masked[1], expected[1]) and not masked[0].any()
    assert wc.has_camera(masked).tolist() == [False, True]
    assert _model().camera_input(k, c2w, 16, 24).dtype == torch.float32


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
def test_zero_initialised_patchify_leaves_the_base_output_exactly():
    x, t, text = _inputs(b=2)
    base = tiny_transformer()
    with torch.no_grad():
        expected = base(x, t, text, return_dict=False)[0]
    model = wc.WanCamera(base, temporal=4, spatial=4)
    layer = model.camera_patchify
    assert isinstance(layer, wc.CameraPatchify) and layer is base.camera_patchify
    assert layer.weight.shape == (DIM, wc.packed_channels(4, 4), 1, 2, 2)
    assert layer.kernel_size == layer.stride == tuple(TRANSFORMER["patch_size"])
    assert not layer.weight.any() and not layer.bias.any()
    k, c2w = _cameras()
    packed = model.camera_input(k, c2w, 16, 24)
    with torch.no_grad():
        for cam_in, labelled in (
            (packed, None),
            (packed, torch.tensor([True, False])),
            (torch.zeros_like(packed), None),
            (None, None),
        ):
            assert torch.equal(model(x, t, text, cam_in, labelled), expected)


def test_camera_changes_the_output_and_an_unlabelled_sample_is_the_base():
    x, t, text = _inputs(b=2)
    base = tiny_transformer()
    with torch.no_grad():
        expected = base(x, t, text, return_dict=False)[0]
    model = _randomise(wc.WanCamera(base, temporal=4, spatial=4))
    k, c2w = _cameras()
    packed = model.camera_input(k, c2w, 16, 24)
    with torch.no_grad():
        out = model(x, t, text, packed)
        assert (out - expected).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3  # both samples moved
        # a different trajectory gives a different output
        k2, c2w2 = _cameras(seed=5)
        assert not torch.allclose(model(x, t, text, model.camera_input(k2, c2w2, 16, 24)), out)
        # unlabelled, in all three spellings: the base output, even though the layer has a bias
        assert torch.equal(model(x, t, text, None), expected)
        assert torch.equal(model(x, t, text, torch.zeros_like(packed)), expected)
        assert torch.equal(model(x, t, text, packed, torch.tensor([False, False])), expected)
        # mixed batch: sample 1 unlabelled is the base, sample 0 keeps its camera
        mixed = model(x, t, text, packed, torch.tensor([True, False]))
        assert torch.equal(mixed[1], expected[1])
        torch.testing.assert_close(mixed[0], out[0], rtol=1e-5, atol=1e-6)
        zero_one = packed.clone()
        zero_one[1] = 0
        assert torch.equal(model(x, t, text, zero_one), mixed)
        # the tokens live for one call only: the bare transformer is the base again
        assert torch.equal(base(x, t, text, return_dict=False)[0], expected)


def test_gradients_reach_the_patchify_weights():
    x, t, text = _inputs(b=2)
    model = _model()
    k, c2w = _cameras()
    packed = model.camera_input(k, c2w, 16, 24)
    layer = model.camera_patchify
    model(x, t, text, packed, torch.tensor([True, False])).square().mean().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert layer.bias.grad.abs().sum() > 0
    assert model.transformer.patch_embedding.weight.grad.abs().sum() > 0  # the base trains too
    # unlabelled only: nothing reaches the layer
    layer.zero_grad(set_to_none=True)
    model(x, t, text, packed, torch.tensor([False, False])).square().mean().backward()
    assert layer.weight.grad is None


def test_state_dict_keeps_base_names_and_camera_weights_apart():
    base_keys = set(tiny_transformer().state_dict())
    model = _randomise(_model())
    keys = set(model.transformer.state_dict())
    assert keys - base_keys == {"camera_patchify.weight", "camera_patchify.bias"}
    assert base_keys <= keys
    new = wc.camera_state_dict(model)
    assert set(new) == {"camera_patchify.weight", "camera_patchify.bias"}
    assert torch.equal(new["camera_patchify.weight"], model.camera_patchify.weight)
    assert set(wc.camera_state_dict(model.transformer)) == set(new)
    with pytest.raises(RealcamError, match="no camera patchify"):
        wc.camera_state_dict(tiny_transformer())
    # wrapping the same transformer again keeps the layer and adds the tokens once
    x, t, text = _inputs()
    k, c2w = _cameras(b=1)
    packed = model.camera_input(k, c2w, 16, 24)
    with torch.no_grad():
        once = model(x, t, text, packed)
        again = wc.WanCamera(model.transformer, temporal=4, spatial=4)
        assert again.camera_patchify is model.camera_patchify
        torch.testing.assert_close(again(x, t, text, packed), once, rtol=0, atol=0)
    with pytest.raises(RealcamError, match="channels"):
        wc.WanCamera(model.transformer)  # the default strides need 1536 channels
