"""Flow-matching sampling of the Wan2.1 models (docs/method.md#flow-matching-sampling).

The path is ``x_s = (1 - s) x_0 + s eps``; the DiT predicts the velocity ``v = eps - x_0`` at
timestep ``1000 s``. ReCamMaster samples with Euler steps on the shifted sigmas

    s_i = shift * u_i / (1 + (shift - 1) u_i),   u = linspace(1, 0, steps + 1)[:-1],

then ``s = 0`` at the end (DiffSynth's ``FlowMatchScheduler`` with ``shift = 5``,
``sigma_min = 0``, ``extra_one_step``). The steps are diffusers' ``FlowMatchEulerDiscreteScheduler``
given exactly these ``u``. Classifier-free guidance acts on the text
(``v = v_neg + cfg (v_pos - v_neg)``; ReCamMaster's only guidance) and, for the camera-patchify
model, on the camera as well (:func:`guided`).

Noise shaping (new for re-rendering; RealCam-I2V's rule in flow-matching form): at every step
with ``s >= sigma_min``, before the model call, ``x = m ((1 - s) z_preview + s eps) + (1 - m) x``
with fresh ``eps``: where the preview is reliable (``m = 1``) the sample restarts from the
preview's latents noised to the current level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .core.constants import NUM_TRAIN_TIMESTEPS
from .diffusion import randn

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def shifted_sigmas(steps: int, shift: float) -> np.ndarray:
    """The ``steps`` noise levels (1 first, the terminal 0 not included), as the formula above."""
    u = np.linspace(1.0, 0.0, steps + 1)[:-1]
    return shift * u / (1 + (shift - 1) * u)


def make_scheduler(steps: int, shift: float):
    """diffusers' Euler flow-matching scheduler set to ReCamMaster's sigmas."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, steps + 1)[:-1])
    return scheduler


@dataclass
class FlowShaping:
    """Noise shaping on the flow path: ``z_preview`` latents and ``mask`` (1: reliable,
    broadcastable to the latents), active at the steps with ``sigma >= sigma_min``."""

    z_preview: torch.Tensor
    mask: torch.Tensor
    sigma_min: float

    def active(self, sigma: float) -> bool:
        return sigma >= self.sigma_min

    def shape(self, x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = randn(x.shape, generator, x.device, torch.float32).to(x.dtype)
        m = self.mask.to(x)
        return m * ((1 - sigma) * self.z_preview.to(x) + sigma * eps) + (1 - m) * x


def guided(
    positive: Velocity,
    negative: Velocity | None,
    cfg: float,
    camera_free: Velocity | None = None,
    camera_cfg: float = 1.0,
    camera_schedule: str = "constant",
) -> Velocity:
    """The guided velocity: text CFG ``v = v_neg + cfg (v_pos - v_neg)`` (the negative branch
    skipped at ``cfg == 1``), then camera CFG as RealCam-I2V's sampler (SPEC 6):
    ``+ (w(t) - 1) (v_pos - v_free)``, ``v_free`` the positive branch without the camera and
    ``w(t)`` :func:`stages.diffusion.camera_cfg_weight` at ``t = 1000 sigma`` (skipped at 1). Both
    text branches carry the camera: three network calls per step with both guidances on."""
    from .diffusion import camera_cfg_weight

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = positive(x, t)
        out = v
        if negative is not None and cfg != 1.0:
            v_neg = negative(x, t)
            out = v_neg + cfg * (v - v_neg)
        if camera_free is not None and camera_cfg != 1.0:
            w = camera_cfg_weight(camera_cfg, float(t.flatten()[0]), camera_schedule)
            if w != 1.0:
                out = out + (w - 1.0) * (v - camera_free(x, t))
        return out

    return velocity


@torch.no_grad()
def sample(
    velocity: Velocity,
    noise: torch.Tensor,
    steps: int,
    shift: float,
    shaping: FlowShaping | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Euler flow-matching sampling from ``noise`` (``x`` at ``sigma = 1``) to ``sigma = 0``."""
    scheduler = make_scheduler(steps, shift)
    x = noise
    for i, t in enumerate(scheduler.timesteps):
        sigma = float(scheduler.sigmas[i])
        if shaping is not None and shaping.active(sigma):
            x = shaping.shape(x, sigma, generator)
        tt = t.expand(x.shape[0]).to(x.device, torch.float32)
        v = velocity(x, tt)
        x = scheduler.step(v.float(), t, x.float(), return_dict=False)[0].to(noise.dtype)
        if on_step is not None:
            on_step(i + 1, steps)
    return x
