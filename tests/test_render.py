"""Point splatting with a z-buffer and the noise-shaping masks (stages/core/render.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.core import cameras as cam
from stages.core.errors import RealcamError
from stages.core.render import (
    PointRenderer,
    SurfaceRenderer,
    edge_filter,
    noise_shaping_masks,
    render_points,
    to_latent_mask,
)

H, W = 24, 32
K = cam.default_intrinsics(W, H)


def grid_cloud(depth: np.ndarray, k: np.ndarray):
    h, w = depth.shape
    uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([uu, vv, np.ones_like(uu)], -1) @ np.linalg.inv(k).T
    return (rays * depth[..., None]).reshape(-1, 3)


def test_identity_view_reproduces_the_image_exactly():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 4, (H, W))
    colours = rng.integers(0, 256, (H * W, 3), dtype=np.uint8)
    rgb, valid, z = render_points(grid_cloud(depth, K), colours, K, np.eye(4)[None], H, W, device="cpu")
    assert valid.all()
    assert np.array_equal(rgb[0].reshape(-1, 3), colours)
    assert np.allclose(z[0], depth, rtol=1e-6)


def test_nearest_point_wins_whatever_the_order():
    # Three points on the ray through pixel (5, 7)'s centre, and one behind the camera.
    ray = np.linalg.inv(K) @ [5.5, 7.5, 1.0]
    pts = np.stack([3.0 * ray, 1.5 * ray, 2.0 * ray, -1.0 * ray])
    cols = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]], dtype=np.uint8)
    for perm in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        rgb, valid, z = render_points(pts[perm], cols[perm], K, np.eye(4), H, W, background=(7, 8, 9), device="cpu")
        assert valid[0].sum() == 1 and valid[0, 7, 5]
        assert rgb[0, 7, 5].tolist() == [0, 255, 0]
        assert np.isclose(z[0, 7, 5], 1.5)
        others = rgb[0][~valid[0]]
        assert np.all(others == [7, 8, 9])


def test_point_lands_on_the_pixel_that_contains_it():
    # Pixel i covers [i, i+1): points just inside either edge land on it.
    pts = np.stack(
        [
            np.linalg.inv(K) @ [u, v, 1.0] * 2
            for u, v in [(3.001, 4.001), (3.999, 4.999), (W - 0.001, H - 0.001), (W + 0.001, 1.5)]
        ]
    )
    _, valid, _ = render_points(pts, np.full((4, 3), 200, np.uint8), K, np.eye(4), H, W, device="cpu")
    assert set(zip(*np.nonzero(valid[0]))) == {(4, 3), (H - 1, W - 1)}


def test_moved_camera_and_batches_agree():
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 3, (H, W))
    pts = grid_cloud(depth, K)
    cols = rng.integers(0, 256, (len(pts), 3), dtype=np.uint8)
    c2w = np.repeat(np.eye(4)[None], 5, axis=0)
    c2w[:, 0, 3] = np.linspace(0, 0.3, 5)
    w2c = cam.invert_pose(c2w)
    r = PointRenderer(pts, cols, "cpu")
    whole = r.render(K, w2c, H, W)
    single = r.render(K, w2c, H, W, batch_size=1)
    streamed = list(r.iter_render(K, w2c, H, W, batch_size=2))
    assert torch.equal(whole.rgb, single.rgb) and torch.equal(whole.valid, single.valid)
    assert torch.equal(torch.cat([s.rgb for s in streamed]), whole.rgb)
    # Every rendered pixel shows a point that projects into it, with the z-buffer's depth.
    for f in range(5):
        uv, z = cam.project(pts, w2c[f], K)
        ys, xs = np.nonzero(whole.valid[f].numpy())
        for y, x in list(zip(ys, xs))[::37]:
            hit = (np.floor(uv[:, 0]) == x) & (np.floor(uv[:, 1]) == y)
            best = np.argmin(np.where(hit, z, np.inf))
            assert np.isclose(whole.depth[f, y, x].item(), z[best], rtol=1e-5)
            assert whole.rgb[f, y, x].tolist() == cols[best].tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(2)
    pts = grid_cloud(rng.uniform(1, 3, (H, W)), K)
    cols = rng.integers(0, 256, (len(pts), 3), dtype=np.uint8)
    c2w = np.repeat(np.eye(4)[None], 2, axis=0)
    c2w[1, :3, 3] = [0.1, -0.05, 0.2]
    w2c = cam.invert_pose(c2w)
    a = render_points(pts, cols, K, w2c, H, W, device="cpu")
    b = render_points(pts, cols, K, w2c, H, W, device="cuda")
    assert all(np.array_equal(x, y) for x, y in zip(a[:2], b[:2]))


# ----------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------
def brute_edge_filter(valid: np.ndarray, k: int) -> np.ndarray:
    """The definition: all k x k neighbours valid, reading outside the image by reflection."""
    h, w = valid.shape
    r = k // 2
    out = np.zeros_like(valid)

    def reflect(i, n):
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    for y in range(h):
        for x in range(w):
            out[y, x] = all(
                valid[reflect(y + dy, h), reflect(x + dx, w)] for dy in range(-r, r + 1) for dx in range(-r, r + 1)
            )
    return out


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_edge_filter_erodes_a_hole_by_half_the_kernel(k):
    valid = np.ones((20, 30), dtype=bool)
    valid[8:11, 12:14] = False  # a 3 x 2 hole
    kept = edge_filter(valid, k)
    r = k // 2
    expected = np.ones_like(valid)
    expected[8 - r : 11 + r, 12 - r : 14 + r] = False  # the hole grown by floor(k/2) on every side
    assert np.array_equal(kept, expected)
    assert kept.dtype == bool and isinstance(kept, np.ndarray)


@pytest.mark.parametrize("k", [3, 5])
def test_edge_filter_equals_its_definition_on_random_masks(k):
    rng = np.random.default_rng(k)
    valid = rng.random((2, 13, 17)) > 0.08
    kept = edge_filter(torch.from_numpy(valid), k)
    assert torch.is_tensor(kept)
    for f in range(2):
        assert np.array_equal(kept[f].numpy(), brute_edge_filter(valid[f], k))
    with pytest.raises(RealcamError, match="odd"):
        edge_filter(valid, 4)


def test_latent_mask_is_bilinear_align_corners_then_threshold():
    mask = np.ones((16, 32), dtype=bool)
    mask[:, 20:] = False
    mask[3, 3] = False
    lat = to_latent_mask(mask, stride=8, threshold=0.9)
    assert lat.shape == (2, 4)
    # align_corners: latent column j samples x = j * 31 / 3, row i samples y = i * 15.
    ys = np.arange(2) * 15 / 1
    xs = np.arange(4) * 31 / 3
    m = mask.astype(float)
    expected = np.zeros((2, 4), dtype=bool)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, 15), min(x0 + 1, 31)
            fy, fx = y - y0, x - x0
            v = (1 - fy) * ((1 - fx) * m[y0, x0] + fx * m[y0, x1]) + fy * ((1 - fx) * m[y1, x0] + fx * m[y1, x1])
            expected[i, j] = v >= 0.9
    assert np.array_equal(lat, expected)
    assert expected[:, 0].all() and not expected[:, 2:].any()
    pixel, latent = noise_shaping_masks(np.ones((3, 64, 40), bool), 5, 8)
    assert pixel.all() and latent.shape == (3, 8, 5) and latent.all()


# ----------------------------------------------------------------------------------------------
# The surface renderer
# ----------------------------------------------------------------------------------------------
def test_surface_identity_view_reproduces_the_image_exactly():
    rng = np.random.default_rng(0)
    depth = rng.uniform(2.0, 2.05, (H, W))  # one surface: every quad joins its four pixels
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = SurfaceRenderer(image, depth, K, "cpu").render(K, np.eye(4), H, W)
    assert out.valid.all()
    assert np.array_equal(out.rgb[0].numpy(), image)
    assert np.allclose(out.depth[0].numpy(), depth, rtol=1e-6)


def test_surface_closing_in_leaves_no_hole_and_samples_the_image():
    # A plane 2 m away filling the image; the camera moves 1 m towards it: a 2x magnification,
    # where one point per pixel leaves three pixels in four empty.
    h, w = 48, 64
    k = cam.default_intrinsics(w, h)
    image = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = np.full((h, w), 2.0)
    w2c = np.eye(4)
    w2c[2, 3] = -1.0
    surface = SurfaceRenderer(image, depth, k, "cpu").render(k, w2c, h, w)
    points = PointRenderer(grid_cloud(depth, k), image.reshape(-1, 3), "cpu").render(k, w2c, h, w)
    assert surface.valid.all()
    assert 0.2 < points.valid.float().mean() < 0.3  # the lattice of holes of one pixel per point
    assert np.allclose(surface.depth.numpy(), 1.0, rtol=1e-5)
    # each pixel shows the image bilinearly at the point its ray meets: (u, v) = centre + (p - c) / 2
    uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    u = (uu - k[0, 2]) / 2 + k[0, 2] - 0.5
    v = (vv - k[1, 2]) / 2 + k[1, 2] - 0.5
    x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fx, fy = (u - x0)[..., None], (v - y0)[..., None]
    img = image.astype(np.float64)
    expected = (
        img[y0, x0] * (1 - fx) * (1 - fy)
        + img[y0, x0 + 1] * fx * (1 - fy)
        + img[y0 + 1, x0] * (1 - fx) * fy
        + img[y0 + 1, x0 + 1] * fx * fy
    )
    assert np.abs(surface.rgb[0].numpy() - expected).max() <= 1.0


def test_surface_keeps_true_holes_and_batches_agree():
    # A near square (1 m) in front of a far wall (3 m); the camera steps sideways: the wall strip
    # the square hid from the image stays a hole, everything else is drawn.
    h, w = 48, 64
    k = cam.default_intrinsics(w, h)
    depth = np.full((h, w), 3.0)
    depth[16:32, 24:40] = 1.0
    image = np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8)
    w2c = np.tile(np.eye(4), (3, 1, 1))
    w2c[1, 0, 3], w2c[2, 0, 3] = -0.4, 0.4  # camera 0.4 m to the right, then to the left
    r = SurfaceRenderer(image, depth, k, "cpu")
    out = r.render(k, w2c, h, w)
    one_by_one = r.render(k, w2c, h, w, batch_size=1)
    assert torch.equal(out.rgb, one_by_one.rgb) and torch.equal(out.valid, one_by_one.valid)
    f = k[0, 0]
    for i, shift in ((1, -0.4), (2, 0.4)):
        # exact visibility: a wall point is seen by the image unless the square covers it there
        uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        square = (uu >= 24 + f * shift / 1.0) & (uu < 40 + f * shift / 1.0) & (vv >= 16) & (vv < 32)
        wall_u = uu - f * shift / 3.0  # where the image sees the wall point behind this pixel
        hidden = (wall_u >= 24) & (wall_u < 40) & (vv >= 16) & (vv < 32) & ~square
        valid = out.valid[i].numpy()
        assert hidden.sum() > 100
        assert not (valid & hidden).any()  # true holes stay holes
        clear = (
            ~hidden
            & ~np.roll(hidden, 1, 1)
            & ~np.roll(hidden, -1, 1)
            & ~np.roll(hidden, 2, 1)
            & ~np.roll(hidden, -2, 1)
        )
        edge = np.abs(uu - (24 + f * shift)) < 2.5
        edge |= np.abs(uu - (40 + f * shift)) < 2.5
        inside = (uu > 2) & (uu < w - 2) & (wall_u > 2) & (wall_u < w - 2)
        assert valid[clear & ~edge & inside].mean() > 0.99  # and all else is drawn


def test_surface_background_does_not_bleed_through_a_magnified_foreground():
    # A near square (1 m) in front of a far wall (4 m); the camera moves 0.3 m forward: the square
    # grows 1.43x (not enough to subdivide its quads: one-pixel cracks between its points) and
    # covers wall the image also sees beside it. The wall's points land in the square's cracks
    # first; the square must still be drawn whole, at its depth (0.7 m), and the wall beside it too.
    h, w = 96, 128
    k = cam.default_intrinsics(w, h)
    depth = np.full((h, w), 4.0)
    depth[32:64, 40:88] = 1.0
    image = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    w2c = np.eye(4)
    w2c[2, 3] = -0.3
    out = SurfaceRenderer(image, depth, k, "cpu").render(k, w2c, h, w)
    z = out.depth[0].numpy()
    # the square's pixel centres span (its pixel centres in the image, scaled about the centre)
    cx, cy = k[0, 2], k[1, 2]
    xs = (np.array([40.5, 87.5]) - cx) / 0.7 + cx
    ys = (np.array([32.5, 63.5]) - cy) / 0.7 + cy
    inner = (slice(int(ys[0]) + 2, int(ys[1]) - 1), slice(int(xs[0]) + 2, int(xs[1]) - 1))
    assert out.valid[0][inner].all()
    assert np.allclose(z[inner], 0.7, rtol=1e-4), np.unique(np.round(z[inner], 2))
    # the wall around it keeps its own depth (3.7 m): the fill does not spread the square
    assert np.allclose(z[:4], 3.7, rtol=1e-4) and np.allclose(z[:, :4], 3.7, rtol=1e-4)
