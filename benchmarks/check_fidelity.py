"""Our sampler against the official one: same model function, same noise, final latents compared.

Runs the official DDIM sampler (``lvdm/models/samplers/ddim.py`` of a checkout of the public CamI2V
repository, which holds the RealCam-I2V code) on a stand-in for the official ``LatentDiffusion``
(its schedule buffers built by the official ``make_beta_schedule`` / ``rescale_zero_terminal_snr``
as ``DDPM.register_schedule`` does, ``scale_arr`` as ``LatentDiffusion.__init__``) whose denoiser is
a fixed nonlinear function of the latents, the timestep and the condition variant (cond, uncond,
no camera); and :func:`stages.diffusion.sample` on the same function. Every random draw of the
official sampler (its initial noise, the noise-shaping ``q_sample`` noise, the per-step
``noise_like``) is taken from one generator in the order it happens, and ours draws from a generator
with the same seed, so both see the same noise.

    python benchmarks/check_fidelity.py --official PATH/TO/CamI2V [--before OLD_diffusion.py]

``--before`` also runs an earlier version of ``stages/diffusion.py`` (e.g.
``git show REV:stages/diffusion.py > /tmp/old_diffusion.py``) for the before/after table. Prints
the relative difference ``|ours - official| / |official|`` of the final latents per case; the
target is below 1e-4. Needs no GPU and no weights; the official code is not a dependency of the
toolkit, so this is a check to run by hand (results in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages import diffusion as dm

SHAPE = (1, 4, 16, 8, 8)  # a 16-frame latent (small spatial size keeps it quick)


class Denoiser:
    """A fixed nonlinear function of (x, t, variant), the same for both samplers."""

    def __init__(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.w = {v: 0.5 + 0.3 * torch.rand(SHAPE, generator=g) for v in ("cond", "uncond", "no_camera")}
        self.b = {v: torch.randn(SHAPE, generator=g) for v in ("cond", "uncond", "no_camera")}

    def __call__(self, x: torch.Tensor, t: int, variant: str) -> torch.Tensor:
        s = t / 1000.0
        return torch.tanh(self.w[variant] * x + (1 - s) * self.b[variant]) + 0.1 * s * x


def official_model(od_utils, common, res: str, denoiser: Denoiser, g: torch.Generator):
    """A stand-in for the official LatentDiffusion with the buffers the DDIM sampler reads."""
    v = res != "256"
    betas = od_utils.make_beta_schedule("linear", 1000, linear_start=0.00085, linear_end=0.012)
    if v:
        betas = od_utils.rescale_zero_terminal_snr(betas)
    alphas_cumprod = np.cumprod(1.0 - betas, axis=0)
    to_torch = partial(torch.tensor, dtype=torch.float32)
    extract = common.extract_into_tensor

    class Model:
        num_timesteps = 1000
        device = torch.device("cpu")
        parameterization = "v" if v else "eps"
        use_dynamic_rescale = res in ("512", "1024")

        def __init__(self):
            self.betas = to_torch(betas)
            self.alphas_cumprod = to_torch(alphas_cumprod)
            self.alphas_cumprod_prev = to_torch(np.append(1.0, alphas_cumprod[:-1]))
            self.sqrt_alphas_cumprod = to_torch(np.sqrt(alphas_cumprod))
            self.sqrt_one_minus_alphas_cumprod = to_torch(np.sqrt(1.0 - alphas_cumprod))
            if self.use_dynamic_rescale:
                base = 0.7 if res == "512" else 0.3
                self.scale_arr = to_torch(np.concatenate((np.linspace(1.0, base, 400), np.full(1000, base))))

        def apply_model(self, x, t, c, **kwargs):
            if c.get("uc"):
                variant = "uncond"
            else:
                variant = "cond" if "camera_condition" in c else "no_camera"
            return denoiser(x, int(t[0]), variant)

        def predict_eps_from_z_and_v(self, x_t, t, v_):
            return (
                extract(self.sqrt_alphas_cumprod, t, x_t.shape) * v_
                + extract(self.sqrt_one_minus_alphas_cumprod, t, x_t.shape) * x_t
            )

        def predict_start_from_z_and_v(self, x_t, t, v_):
            return (
                extract(self.sqrt_alphas_cumprod, t, x_t.shape) * x_t
                - extract(self.sqrt_one_minus_alphas_cumprod, t, x_t.shape) * v_
            )

        def q_sample(self, x_start, t, noise=None):
            noise = torch.randn(x_start.shape, generator=g)
            return (
                extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
                + extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise
            )

    return Model()


def run_official(od, od_utils, common, res, case, denoiser, z_preview, mask, seed):
    g = torch.Generator().manual_seed(seed)
    od.noise_like = lambda shape, device, repeat=False: torch.randn(shape, generator=g)
    model = official_model(od_utils, common, res, denoiser, g)
    sampler = od.DDIMSampler(model)
    x_t = torch.randn(SHAPE, generator=g)
    kwargs = dict(enable_camera_condition=True, camera_cfg=case["camera_cfg"], camera_cfg_scheduler=case["schedule"])
    if case["t_ns"] is not None:
        kwargs.update(
            noise_shaping=True, noise_shaping_minimum_timesteps=case["t_ns"], scene_frames=z_preview, scene_mask=mask
        )
    cond = {"c_crossattn": [torch.zeros(1, 1)], "camera_condition": {"features": None}}
    uncond = {"c_crossattn": [torch.zeros(1, 1)], "uc": True}
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the official sampler prints every shaped step
        out, _ = sampler.sample(
            case["steps"],
            1,
            SHAPE[1:],
            conditioning=cond,
            verbose=False,
            eta=case["eta"],
            x_T=x_t,
            unconditional_guidance_scale=case["cfg"],
            unconditional_conditioning=uncond,
            timestep_spacing="uniform_trailing",
            guidance_rescale=0.7,
            **kwargs,
        )
    return out


def run_ours(module, res, case, denoiser, z_preview, mask, seed, before=False):
    if before:  # the earlier API: Schedule(prediction_type, zero_snr), shaping at t > t_NS
        schedule = module.Schedule("epsilon" if res == "256" else "v_prediction", res != "256")
    else:
        schedule = module.Schedule.for_resolution(res)
    config = module.SamplerConfig(case["steps"], case["eta"], case["cfg"], 0.7, case["camera_cfg"], case["schedule"])
    shaping = None if case["t_ns"] is None else module.NoiseShaping(z_preview, mask, case["t_ns"])
    with torch.no_grad():
        return module.sample(
            denoiser, SHAPE, schedule, config, generator=torch.Generator().manual_seed(seed), noise_shaping=shaping
        )


CASES = [
    dict(name="cfg 7.5, camera 1.0", cfg=7.5, camera_cfg=1.0, schedule="constant", t_ns=None),
    dict(name="cfg 7.5, camera 1.5 constant", cfg=7.5, camera_cfg=1.5, schedule="constant", t_ns=None),
    dict(name="cfg 7.5, camera 1.5 cosine", cfg=7.5, camera_cfg=1.5, schedule="cosine", t_ns=None),
    dict(name="+ shaping t_NS 900", cfg=7.5, camera_cfg=1.5, schedule="cosine", t_ns=900),
    dict(name="+ shaping t_NS 919 (a sampled step)", cfg=7.5, camera_cfg=1.0, schedule="constant", t_ns=919),
    dict(name="+ shaping t_NS 999", cfg=7.5, camera_cfg=1.0, schedule="constant", t_ns=999),
]


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="a checkout of the public CamI2V repository")
    ap.add_argument("--before", type=Path, help="an earlier stages/diffusion.py to compare as well")
    ap.add_argument("--steps", type=int, nargs="+", default=[25, 50])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(args.official.resolve()))
    import lvdm.common as common
    import lvdm.models.samplers.ddim as od
    import lvdm.models.utils_diffusion as od_utils

    od.DDIMSampler.register_buffer = lambda self, name, attr: setattr(self, name, attr)  # it moves to CUDA
    before = load_module(args.before, "diffusion_before") if args.before else None
    denoiser = Denoiser(1)
    g = torch.Generator().manual_seed(2)
    z_preview = torch.randn(SHAPE, generator=g)
    mask = (torch.rand(SHAPE[:1] + (1,) + SHAPE[2:], generator=g) > 0.4).float().expand(SHAPE).contiguous()
    table = Table(title="final latents, |ours - official| / |official| (target < 1e-4)")
    for col in ("res", "steps", "eta", "case", "before", "now"):
        table.add_column(col, justify="left" if col == "case" else "right")
    worst = 0.0
    for res in ("256", "512", "1024"):
        for steps in args.steps:
            for eta in (1.0, 0.0):
                for case in CASES:
                    case = dict(case, steps=steps, eta=eta)
                    ref = run_official(od, od_utils, common, res, case, denoiser, z_preview, mask, args.seed)
                    ours = run_ours(dm, res, case, denoiser, z_preview, mask, args.seed)
                    rel = float((ours - ref).norm() / ref.norm())
                    worst = max(worst, rel)
                    old = "-"
                    if before is not None:
                        prev = run_ours(before, res, case, denoiser, z_preview, mask, args.seed, before=True)
                        old = f"{float((prev - ref).norm() / ref.norm()):.2e}"
                    table.add_row(res, str(steps), f"{eta:g}", case["name"], old, f"{rel:.2e}")
    Console().print(table)
    Console().print(f"worst relative difference now: {worst:.2e} ({'PASS' if worst < 1e-4 else 'FAIL'} at 1e-4)")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main()
