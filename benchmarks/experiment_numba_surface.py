"""Experiment (issue 21): what a hand-written CPU kernel of the surface renderer reaches.

The surface renderer's algorithm (vertex splat, quad subdivision, crack fill, back-projected
bilinear colour with the visibility check; ``stages/core/render.py:SurfaceRenderer``) written as
one numba loop nest, one thread, timed against the torch renderer in the same run on 16 frames at
512x320 (render + noise-shaping masks), along a gentle path and one that closes in 2-3x.

Not part of realcam: the issue asks for one renderer for CPU and CUDA, and this kernel would be a
second, CPU-only one. numba is not a dependency; install it into the environment to run this:

    .venv/bin/pip install numba
    PYTHONPATH=. NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/experiment_numba_surface.py
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

try:
    from numba import njit
except ImportError:  # pragma: no cover - an experiment with an optional dependency
    sys.exit("this experiment needs numba: .venv/bin/pip install numba")

from benchmarks.bench_preview import H, W, timed, view_along
from stages.core import render as R
from stages.preview import make_renderer

# the torch renderer's constants, compile-time constants of the kernel
TIERS = np.array(R.SUBDIVISION_TIERS, dtype=np.int64)
NEAR = R.NEAR
SUBDIVIDE_ABOVE = R.SUBDIVIDE_ABOVE
SURFACE = 1 + R.SURFACE_RATIO
VISIBILITY = R.VISIBILITY_RATIO


@njit(cache=False)
def _tier(s):
    c = math.ceil(s)
    for t in TIERS:
        if c <= t:
            return t
    return TIERS[-1]


@njit(cache=False)
def render_frames(pts, keep, quad_ok, src, dk, kw, proj, M, B, H, W, out_rgb, out_valid, out_z):
    n = proj.shape[0]
    h0, w0 = dk.shape
    P = pts.shape[1]
    u = np.empty(P, np.float32)
    v = np.empty(P, np.float32)
    zz = np.empty(P, np.float32)
    front = np.empty(P, np.bool_)
    zb = np.empty((H + 2, W + 2), np.float32)
    for f in range(n):
        zb[:] = np.inf
        pr = proj[f]
        for p in range(P):
            x = pr[0, 0] * pts[0, p] + pr[0, 1] * pts[1, p] + pr[0, 2] * pts[2, p] + pr[0, 3]
            y = pr[1, 0] * pts[0, p] + pr[1, 1] * pts[1, p] + pr[1, 2] * pts[2, p] + pr[1, 3]
            z = pr[2, 0] * pts[0, p] + pr[2, 1] * pts[1, p] + pr[2, 2] * pts[2, p] + pr[2, 3]
            uu = x / z
            vv = y / z
            u[p] = uu
            v[p] = vv
            zz[p] = z
            fr = (z > NEAR) and keep[p]
            front[p] = fr
            if fr and uu >= 0 and uu < W and vv >= 0 and vv < H:
                iy = int(vv) + 1
                ix = int(uu) + 1
                if z < zb[iy, ix]:
                    zb[iy, ix] = z
        for qy in range(h0 - 1):
            for qx in range(w0 - 1):
                if not quad_ok[qy, qx]:
                    continue
                i00 = qy * w0 + qx
                i01 = i00 + 1
                i10 = i00 + w0
                i11 = i10 + 1
                if not (front[i00] and front[i01] and front[i10] and front[i11]):
                    continue
                ex0 = math.hypot(u[i01] - u[i00], v[i01] - v[i00])
                ex1 = math.hypot(u[i11] - u[i10], v[i11] - v[i10])
                ey0 = math.hypot(u[i10] - u[i00], v[i10] - v[i00])
                ey1 = math.hypot(u[i11] - u[i01], v[i11] - v[i01])
                sx = max(ex0, ex1)
                sy = max(ey0, ey1)
                if not (max(sx, sy) > SUBDIVIDE_ABOVE):
                    continue
                umin = min(min(u[i00], u[i01]), min(u[i10], u[i11]))
                umax = max(max(u[i00], u[i01]), max(u[i10], u[i11]))
                vmin = min(min(v[i00], v[i01]), min(v[i10], v[i11]))
                vmax = max(max(v[i00], v[i01]), max(v[i10], v[i11]))
                if umax < 0 or umin >= W or vmax < 0 or vmin >= H:
                    continue
                nx = _tier(sx)
                ny = _tier(sy)
                a0 = 1.0 / zz[i00]
                a1 = 1.0 / zz[i01]
                a2 = 1.0 / zz[i10]
                a3 = 1.0 / zz[i11]
                for ja in range(ny + 1):
                    a = ja / ny
                    for jc in range(nx + 1):
                        c = jc / nx
                        w00 = (1 - a) * (1 - c)
                        w01 = (1 - a) * c
                        w10 = a * (1 - c)
                        w11 = a * c
                        us = w00 * u[i00] + w01 * u[i01] + w10 * u[i10] + w11 * u[i11]
                        vs = w00 * v[i00] + w01 * v[i01] + w10 * v[i10] + w11 * v[i11]
                        if us >= 0 and us < W and vs >= 0 and vs < H:
                            zs = 1.0 / (w00 * a0 + w01 * a1 + w10 * a2 + w11 * a3)
                            iy = int(vs) + 1
                            ix = int(us) + 1
                            if zs < zb[iy, ix]:
                                zb[iy, ix] = zs
        # crack fill (reads zb, writes out_z)
        for y in range(H):
            for x in range(W):
                cz = zb[y + 1, x + 1]
                best = np.inf
                for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    a_ = zb[y + 1 - dy, x + 1 - dx]
                    c_ = zb[y + 1 + dy, x + 1 + dx]
                    lo = min(a_, c_)
                    hi = max(a_, c_)
                    if hi <= SURFACE * lo and lo < best:
                        best = lo
                out_z[f, y, x] = best if best * SURFACE < cz else cz
        # colour
        m = M[f]
        bb = B[f]
        for y in range(H):
            py = y + 0.5
            for x in range(W):
                z = out_z[f, y, x]
                out_valid[f, y, x] = False
                out_rgb[f, y, x, 0] = 0
                out_rgb[f, y, x, 1] = 0
                out_rgb[f, y, x, 2] = 0
                if not math.isfinite(z):
                    continue
                px = x + 0.5
                q0 = z * (m[0, 0] * px + m[0, 1] * py + m[0, 2]) + bb[0]
                q1 = z * (m[1, 0] * px + m[1, 1] * py + m[1, 2]) + bb[1]
                q2 = z * (m[2, 0] * px + m[2, 1] * py + m[2, 2]) + bb[2]
                if not (q2 > NEAR):
                    continue
                sxp = q0 / q2 - 0.5
                syp = q1 / q2 - 0.5
                x0 = math.floor(sxp)
                y0 = math.floor(syp)
                fx = sxp - x0
                fy = syp - y0
                d = 0.0
                k = 0.0
                r = 0.0
                g = 0.0
                bl = 0.0
                for oy in range(2):
                    yy = y0 + oy
                    if yy < 0 or yy >= h0:
                        continue
                    wy = fy if oy else 1 - fy
                    for ox in range(2):
                        xx = x0 + ox
                        if xx < 0 or xx >= w0:
                            continue
                        w = wy * (fx if ox else 1 - fx)
                        d += w * dk[yy, xx]
                        k += w * kw[yy, xx]
                        r += w * src[0, yy, xx]
                        g += w * src[1, yy, xx]
                        bl += w * src[2, yy, xx]
                if not (k > 0.5):
                    continue
                sz = d / max(k, 1e-6)
                if abs(sz - q2) <= VISIBILITY * q2:
                    out_valid[f, y, x] = True
                    out_rgb[f, y, x, 0] = min(max(r + 0.5, 0.0), 255.0)
                    out_rgb[f, y, x, 1] = min(max(g + 0.5, 0.0), 255.0)
                    out_rgb[f, y, x, 2] = min(max(bl + 0.5, 0.0), 255.0)


def measure(clip: str) -> tuple[float, float, float, int]:
    """Torch and kernel ms, share of pixels whose validity agrees, largest rgb difference."""
    cloud, k, w2c, _ = view_along(clip)
    r = make_renderer(cloud, "surface", "cpu")
    kk, ww = R.view_cameras(k, w2c)
    proj = (kk @ ww[:, :3, :]).float().numpy()
    m, b = r._back_projection(kk, ww)
    src = r.source[0].numpy()
    args = (
        r.points_t.numpy(),
        r.keep.numpy(),
        r.quad_ok.numpy(),
        np.ascontiguousarray(src[:3]),
        np.ascontiguousarray(src[3]),
        np.ascontiguousarray(src[4]),
        proj,
        m.numpy(),
        b.numpy()[:, :, 0],
        H,
        W,
    )
    n = len(proj)
    rgb = np.empty((n, H, W, 3), np.uint8)
    valid = np.empty((n, H, W), np.bool_)
    z = np.empty((n, H, W), np.float32)

    def kernel():
        render_frames(*args, rgb, valid, z)
        R.noise_shaping_masks(torch.from_numpy(valid), 5, 8)

    def eager():
        R.noise_shaping_masks(r.render(k, w2c, H, W).valid, 5, 8)

    ms_torch, ms_kernel = timed(eager, 5)[0], timed(kernel, 5)[0]
    out = r.render(k, w2c, H, W)
    ours_valid, ours_rgb = out.valid.numpy(), out.rgb.numpy()
    both = ours_valid & valid
    return ms_torch, ms_kernel, float((ours_valid == valid).mean()), int(np.abs(ours_rgb.astype(int) - rgb)[both].max())


def main() -> None:
    torch.set_num_threads(1)
    print("| path | torch SurfaceRenderer ms | numba kernel ms | kernel / torch | validity agrees | max rgb diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for clip in ("0f47577ab3441480", "0c9b371cc6225682"):
        t, kms, agree, diff = measure(clip)
        print(f"| {clip} | {t:.1f} | {kms:.1f} | {kms / t:.2f}x | {agree:.5f} | {diff} |")
    print("16 frames at 512x320, render + noise-shaping masks, one thread, best of 5 (after a warm-up)")


if __name__ == "__main__":
    main()
