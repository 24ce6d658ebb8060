"""Diffusion schedule, DDIM sampling with guidance, and scene-constrained noise shaping.

This module is the one place of the method's diffusion arithmetic (``docs/fidelity.md`` lists each
point against the official code). It follows the official
DynamiCrafter / RealCam-I2V sampler (``lvdm/models/samplers/ddim.py``, ``lvdm/models/ddpm3d.py``,
``lvdm/models/utils_diffusion.py`` of the public CamI2V repository) so that released weights sample
as they do there:

- schedule: LDM "linear" betas ``linspace(sqrt(0.00085), sqrt(0.012), 1000)**2`` (float64),
  zero terminal SNR rescaling at 512/1024; epsilon-prediction at 256, v-prediction at 512/1024;
- dynamic rescale (512/1024, ``use_dynamic_rescale``): ``scale(t) = linspace(1, base_scale, 400)[t]``
  for ``t < 400``, ``base_scale`` after; training scales ``z0`` by ``scale(t)``; sampling multiplies
  the predicted ``z0`` by ``scale(t_prev) / scale(t)`` (1 at the last step);
- DDIM with ``uniform_trailing`` timesteps ``round(arange(1000, 0, -1000/S))[::-1] - 1``; the last
  step goes to ``alphas_cumprod[0]`` (not 1) and adds ``eta`` noise; the update
  ``sqrt(a_prev) z0 + sqrt(max(1 - a_prev - sigma^2, 0)) eps + sigma noise`` with the coefficients
  in the official float32 arithmetic; fresh noise is drawn at every step (as the official sampler);
- text-image classifier-free guidance, then camera CFG ``(w - 1) * weight(t) * (cond - cond_no_cam)``
  (weight 1, or ``cos((1 - t/999) pi/2)``), then guidance rescale; camera CFG only inside CFG;
- noise shaping: at every step with ``t >= t_NS``, before the model call,
  ``z_t = m * q_sample(z_preview, t, eps) + (1 - m) * z_t`` with fresh ``eps``; the ``z0`` variant
  (ours) pastes the preview onto the predicted ``z0`` instead, as the official sampler pastes known
  frames (``paste_cond_frame``).

We compute the schedule and the DDIM update ourselves rather than through ``diffusers``'
``DDIMScheduler``: that scheduler has no dynamic rescale, takes ``t - 1000 // S`` as the previous
timestep (not the official previous trailing step when ``S`` does not divide 1000), computes its
betas in float32, and puts a negative number under a square root at the zero-SNR first step.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch

from .core.constants import NUM_TRAIN_TIMESTEPS
from .settings import SamplerConfig

BETA_START = 0.00085
BETA_END = 0.012
TURNING_STEP = 400  # dynamic rescale: scale goes linearly from 1 to base_scale over t < 400

#: ``predict(z_t, t, variant)`` returns the model output (epsilon or v) for a batch of latents at
#: integer timestep ``t``; ``variant`` is ``"cond"`` (all conditions), ``"uncond"`` (negative or
#: empty prompt and no image) or ``"no_camera"`` (all conditions but the camera).
Predictor = Callable[[torch.Tensor, int, str], torch.Tensor]


@functools.lru_cache(maxsize=8)
def _alphas_cumprod(zero_snr: bool) -> np.ndarray:
    """``alphas_cumprod`` (float64) of the LDM linear schedule, optionally with zero terminal SNR
    (Lin et al. 2024, Algorithm 1), as ``make_beta_schedule`` + ``rescale_zero_terminal_snr``."""
    betas = np.linspace(BETA_START**0.5, BETA_END**0.5, NUM_TRAIN_TIMESTEPS, dtype=np.float64) ** 2
    if zero_snr:
        sqrt_ab = np.sqrt(np.cumprod(1.0 - betas))
        first, last = sqrt_ab[0], sqrt_ab[-1]
        sqrt_ab = (sqrt_ab - last) * first / (first - last)
        ab = sqrt_ab**2
        betas = 1.0 - np.concatenate([ab[:1], ab[1:] / ab[:-1]])
    return np.cumprod(1.0 - betas)


@dataclass(frozen=True)
class Schedule:
    """Training/sampling schedule of one model: parameterisation, zero terminal SNR and dynamic
    rescale (``base_scale`` 1 = off)."""

    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    zero_snr: bool = False
    base_scale: float = 1.0
    turning_step: int = TURNING_STEP

    @classmethod
    def for_config(cls, config) -> "Schedule":
        """The schedule a model config names (``parameterization``, ``zero_terminal_snr``,
        ``use_dynamic_rescale`` / ``base_scale``)."""
        return cls(
            "epsilon" if config.parameterization == "eps" else "v_prediction",
            bool(config.zero_terminal_snr),
            float(config.base_scale) if config.use_dynamic_rescale else 1.0,
        )

    @classmethod
    def for_resolution(cls, res: str | int) -> "Schedule":
        """The schedule of a named config: 256, ``tiny`` and ``small`` epsilon; 512 and 1024
        v-prediction with zero terminal SNR and dynamic rescale (base scale 0.7 and 0.3)."""
        from .models.configs import get_config

        return cls.for_config(get_config(res))

    # -- tables ---------------------------------------------------------------------------------
    @property
    def alphas_cumprod(self) -> np.ndarray:
        """``alpha_bar_t`` for t = 0..999 (float64, a copy)."""
        return _alphas_cumprod(self.zero_snr).copy()

    @property
    def betas(self) -> np.ndarray:
        ab = self.alphas_cumprod
        return 1.0 - np.concatenate([ab[:1], ab[1:] / ab[:-1]])

    @property
    def dynamic_rescale(self) -> bool:
        return self.base_scale != 1.0

    def scale(self, t) -> np.ndarray:
        """Dynamic-rescale factor ``scale_arr[t]`` (official: ``linspace(1, base, 400)`` then
        ``base``); all ones when dynamic rescale is off."""
        t = np.asarray(t, dtype=np.int64)
        ramp = np.linspace(1.0, self.base_scale, self.turning_step)
        return np.where(t < self.turning_step, ramp[np.minimum(t, self.turning_step - 1)], self.base_scale)

    def timesteps(self, steps: int) -> list[int]:
        """DDIM timesteps, descending (official ``uniform_trailing``: 999, 959, ..., 39 for 25)."""
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        c = NUM_TRAIN_TIMESTEPS / steps
        ts = np.flip(np.round(np.arange(NUM_TRAIN_TIMESTEPS, 0, -c))).astype(np.int64) - 1
        return [int(t) for t in ts[::-1]]


def alpha_sigma(schedule: Schedule, t: torch.Tensor | int, like: torch.Tensor):
    """``sqrt(alpha_bar_t)`` and ``sqrt(1 - alpha_bar_t)`` shaped to broadcast against ``like``."""
    ab = torch.from_numpy(schedule.alphas_cumprod)[torch.as_tensor(t).long().cpu()]
    shape = (-1,) + (1,) * (like.ndim - 1) if ab.ndim else ()
    a, s = ab.sqrt().reshape(shape), (1 - ab).sqrt().reshape(shape)
    return a.to(like.device, like.dtype), s.to(like.device, like.dtype)


def rescale_z0(schedule: Schedule, z0: torch.Tensor, t) -> torch.Tensor:
    """Training-time dynamic rescale: ``z0 * scale(t)`` (the official ``LatentDiffusion.forward``)."""
    if not schedule.dynamic_rescale:
        return z0
    s = torch.from_numpy(schedule.scale(torch.as_tensor(t).cpu().numpy()))
    return z0 * s.reshape((-1,) + (1,) * (z0.ndim - 1) if s.ndim else ()).to(z0.device, z0.dtype)


def q_sample(schedule: Schedule, z0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
    """Forward diffusion ``alpha_t * z0 + sigma_t * noise``."""
    a, s = alpha_sigma(schedule, t, z0)
    return a * z0 + s * noise


def training_target(schedule: Schedule, z0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
    """What the network regresses: ``noise`` (epsilon) or ``v = alpha_t * noise - sigma_t * z0``."""
    if schedule.prediction_type == "epsilon":
        return noise
    a, s = alpha_sigma(schedule, t, z0)
    return a * noise - s * z0


def split_output(schedule: Schedule, z_t: torch.Tensor, out: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eps, z0)`` predicted from the model output at ``z_t`` (official ``p_sample_ddim``)."""
    a, s = alpha_sigma(schedule, t, z_t)
    if schedule.prediction_type == "epsilon":
        return out, (z_t - s * out) / a
    return a * out + s * z_t, a * z_t - s * out


def predicted_z0(schedule: Schedule, z_t: torch.Tensor, out: torch.Tensor, t) -> torch.Tensor:
    return split_output(schedule, z_t, out, t)[1]


def ddim_coefficients(schedule: Schedule, t: int, t_prev: int | None, eta: float) -> tuple[float, float, float]:
    """``(sqrt(a_prev), sqrt(max(1 - a_prev - sigma^2, 0)), sigma)`` of one DDIM step from ``t`` to
    ``t_prev`` (``None``: the last step, to ``alphas_cumprod[0]``), in the official arithmetic:
    ``alphas_cumprod`` held in float32, ``sigma`` computed in float64 from those values (with
    ``1 - a_t`` rounded in float32) and the step coefficients in float32. At the zero-SNR first
    step ``1 - a_prev - sigma^2`` is zero up to rounding; the clamp keeps it real."""
    ab32 = torch.from_numpy(schedule.alphas_cumprod).float()
    a_t = ab32[t]
    a_prev = ab32[0 if t_prev is None else t_prev]
    a_t64, a_prev64 = float(a_t), float(a_prev)
    one_minus_a_t = float(1 - a_t)  # float32 subtraction, as in the official code
    sigma64 = eta * math.sqrt((1 - a_prev64) / one_minus_a_t * (1 - a_t64 / a_prev64)) if one_minus_a_t > 0 else 0.0
    sigma = torch.tensor(sigma64, dtype=torch.float32)
    direction = (1.0 - a_prev - sigma**2).clamp(min=0).sqrt()
    return float(a_prev.sqrt()), float(direction), float(sigma)


def rescale_guidance(guided: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2024): match the per-sample std of the conditional output."""
    if phi == 0:
        return guided
    dims = tuple(range(1, guided.ndim))
    guided_std = guided.std(dim=dims, keepdim=True)
    # A sample whose guided output is constant has nothing to rescale (and 0/0 would be NaN).
    ratio = torch.where(
        guided_std > 0, cond.std(dim=dims, keepdim=True) / guided_std.clamp_min(1e-30), torch.ones_like(guided_std)
    )
    rescaled = guided * ratio
    return phi * rescaled + (1 - phi) * guided


def camera_cfg_weight(w: float, t: int, schedule: str = "constant") -> float:
    """Effective camera guidance weight at timestep ``t``: ``1 + (w - 1) * k(t)`` with ``k = 1``
    (constant) or ``k = cos((1 - t/999) * pi/2)`` (cosine: 1 at t = 999, 0 at t = 0; 0.7077 at 500)."""
    if schedule == "constant":
        return w
    if schedule == "cosine":
        k = math.cos((1.0 - t / (NUM_TRAIN_TIMESTEPS - 1)) * math.pi / 2)
        return 1.0 + (w - 1.0) * k
    raise ValueError(f"unknown camera CFG schedule {schedule!r} (constant or cosine)")


@dataclass
class NoiseShaping:
    """Scene-constrained noise shaping (RealCam-I2V section 3.3).

    ``z_preview``: latent of the preview video (frame 0 already the condition image's latent);
    ``mask``: latent mask broadcastable to the latents (1 where the preview is reliable); active
    at the steps with ``t >= t_ns`` (official ``noise_shaping_minimum_timesteps``).
    """

    z_preview: torch.Tensor
    mask: torch.Tensor
    t_ns: int = 900
    variant: Literal["noise", "z0"] = "noise"

    def active(self, t: int) -> bool:
        return t >= self.t_ns

    def shape_noise(
        self, schedule: Schedule, z_t: torch.Tensor, t: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``m * (alpha_t z_preview + sigma_t eps) + (1 - m) * z_t`` with fresh ``eps``."""
        eps = randn(z_t.shape, generator, z_t.device, z_t.dtype)
        m = self.mask.to(z_t)
        return m * q_sample(schedule, self.z_preview.to(z_t), t, eps) + (1 - m) * z_t

    def paste_z0(self, z0: torch.Tensor) -> torch.Tensor:
        m = self.mask.to(z0)
        return m * self.z_preview.to(z0) + (1 - m) * z0


def guided_output(predict: Predictor, z_t: torch.Tensor, t: int, cfg: SamplerConfig) -> torch.Tensor:
    """The official guidance: text-image CFG, camera CFG inside it (before the rescale), then
    guidance rescale against the conditional output. Without text-image CFG (``cfg == 1``) the
    conditional output is used as it is, and camera CFG does not apply (as in the official code)."""
    cond = predict(z_t, t, "cond")
    if cfg.cfg == 1.0:
        return cond
    uncond = predict(z_t, t, "uncond")
    out = uncond + cfg.cfg * (cond - uncond)
    if cfg.camera_cfg != 1.0:
        w = camera_cfg_weight(cfg.camera_cfg, t, cfg.camera_cfg_schedule)
        out = out + (w - 1.0) * (cond - predict(z_t, t, "no_camera"))
    if cfg.guidance_rescale > 0:
        out = rescale_guidance(out, cond, cfg.guidance_rescale)
    return out


def randn(shape, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    """Standard normal noise from ``generator`` (drawn on the generator's device)."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


def sample(
    predict: Predictor,
    shape: tuple[int, ...],
    schedule: Schedule,
    config: SamplerConfig,
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    noise_shaping: NoiseShaping | None = None,
    z_init: torch.Tensor | None = None,
    on_step: Callable[[int, int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """DDIM sampling from pure noise (or ``z_init``); returns the final latents ``z_0``.

    Random draws from ``generator``, in the official order: the initial noise, then per step the
    shaping noise (when shaping is active) and the step noise (always, whatever ``eta``)."""
    timesteps = schedule.timesteps(config.steps)
    z = randn(shape, generator, device, dtype) if z_init is None else z_init.to(device, dtype)
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else None
        shaping = noise_shaping if noise_shaping is not None and noise_shaping.active(t) else None
        if shaping is not None and shaping.variant == "noise":
            z = shaping.shape_noise(schedule, z, t, generator)
        out = guided_output(predict, z, t, config)
        eps, z0 = split_output(schedule, z, out, t)
        if schedule.dynamic_rescale and t_prev is not None:
            z0 = z0 * float(schedule.scale(t_prev) / schedule.scale(t))
        if shaping is not None and shaping.variant == "z0":
            z0 = shaping.paste_z0(z0)
        sqrt_a_prev, direction, sigma = ddim_coefficients(schedule, t, t_prev, config.eta)
        noise = randn(z.shape, generator, z.device, z.dtype)
        z = sqrt_a_prev * z0 + direction * eps + sigma * noise
        if on_step is not None:
            on_step(i, t, z)
    return z
