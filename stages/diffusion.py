"""Diffusion schedule, DDIM sampling with guidance, and scene-constrained noise shaping.

SPEC.md sections 5 and 6. The noise schedule and the DDIM update come from ``diffusers``
(``DDIMScheduler``); this module adds what DynamiCrafter/RealCam-I2V do around it:

- schedule: LDM "linear" betas 0.00085..0.012 over 1000 steps (``scaled_linear`` in diffusers:
  ``linspace(sqrt(b0), sqrt(b1))**2``); epsilon-prediction at 256, v-prediction with zero terminal
  SNR at 512/1024; trailing timestep spacing at sampling;
- text-image classifier-free guidance (default 7.5) with guidance rescale (default 0.7);
- camera CFG: ``(w - 1) * (out_cond - out_cond_without_camera)``, constant or cosine-decayed;
- noise shaping: at every step with ``t > t_NS``, before the model call,
  ``z_t = m * (alpha_t * z_preview + sigma_t * eps) + (1 - m) * z_t`` with fresh ``eps``;
  the earlier variant pastes the preview onto the predicted ``z_0`` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from diffusers import DDIMScheduler

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012

#: ``predict(z_t, t, variant)`` returns the model output (epsilon or v) for a batch of latents at
#: integer timestep ``t``; ``variant`` is ``"cond"`` (all conditions), ``"uncond"`` (no text and no
#: image) or ``"no_camera"`` (all conditions but the camera).
Predictor = Callable[[torch.Tensor, int, str], torch.Tensor]


class DDIM(DDIMScheduler):
    """diffusers' DDIM with the ancestral variance clamped just below ``1 - alpha_bar_prev``.

    Mathematically ``sigma_t^2 <= 1 - alpha_bar_prev`` always; with zero terminal SNR and
    ``eta = 1`` the first step (``alpha_bar_t = 0``) makes them equal, and float rounding then
    puts a negative number under diffusers' square root (NaN latents). The clamp keeps a 1e-6
    relative margin, which changes nothing else measurable.
    """

    def _get_variance(self, timestep, prev_timestep):
        variance = super()._get_variance(timestep, prev_timestep)
        alpha_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        return torch.minimum(variance, (1 - alpha_prev) * (1 - 1e-6))


@dataclass(frozen=True)
class Schedule:
    """Training/sampling schedule of one model resolution."""

    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    zero_snr: bool = False

    @classmethod
    def for_config(cls, config) -> "Schedule":
        """The schedule a model config names (its ``parameterization`` and ``zero_terminal_snr``)."""
        return cls("epsilon" if config.parameterization == "eps" else "v_prediction",
                   bool(config.zero_terminal_snr))

    @classmethod
    def for_resolution(cls, res: str | int) -> "Schedule":
        """The schedule of a named config: 256, ``tiny`` and ``small`` epsilon; 512 and 1024
        v-prediction with zero terminal SNR."""
        from .models.configs import get_config

        return cls.for_config(get_config(res))

    def scheduler(self) -> DDIM:
        return DDIM(
            num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END,
            beta_schedule="scaled_linear", prediction_type=self.prediction_type,
            rescale_betas_zero_snr=self.zero_snr, timestep_spacing="trailing",
            clip_sample=False, set_alpha_to_one=True, steps_offset=0,
        )


def alpha_sigma(scheduler: DDIMScheduler, t: torch.Tensor | int, like: torch.Tensor):
    """``sqrt(alpha_bar_t)`` and ``sqrt(1 - alpha_bar_t)`` shaped to broadcast against ``like``."""
    ab = scheduler.alphas_cumprod.to(like.device, torch.float64)[torch.as_tensor(t, device=like.device).long()]
    shape = (-1,) + (1,) * (like.ndim - 1) if ab.ndim else ()
    return ab.sqrt().reshape(shape).to(like.dtype), (1 - ab).sqrt().reshape(shape).to(like.dtype)


def q_sample(scheduler: DDIMScheduler, z0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
    """Forward diffusion ``alpha_t * z0 + sigma_t * noise``."""
    a, s = alpha_sigma(scheduler, t, z0)
    return a * z0 + s * noise


def training_target(scheduler: DDIMScheduler, z0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
    """What the network regresses: ``noise`` (epsilon) or ``v = alpha_t * noise - sigma_t * z0``."""
    if scheduler.config.prediction_type == "epsilon":
        return noise
    a, s = alpha_sigma(scheduler, t, z0)
    return a * noise - s * z0


def predicted_z0(scheduler: DDIMScheduler, z_t: torch.Tensor, out: torch.Tensor, t) -> torch.Tensor:
    a, s = alpha_sigma(scheduler, t, z_t)
    if scheduler.config.prediction_type == "epsilon":
        return (z_t - s * out) / a
    return a * z_t - s * out


def rescale_guidance(guided: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2024): match the per-sample std of the conditional output."""
    if phi == 0:
        return guided
    dims = tuple(range(1, guided.ndim))
    guided_std = guided.std(dim=dims, keepdim=True)
    # A sample whose guided output is constant has nothing to rescale (and 0/0 would be NaN).
    ratio = torch.where(guided_std > 0, cond.std(dim=dims, keepdim=True) / guided_std.clamp_min(1e-30),
                        torch.ones_like(guided_std))
    rescaled = guided * ratio
    return phi * rescaled + (1 - phi) * guided


def camera_cfg_weight(w: float, t: int, schedule: str = "constant") -> float:
    """Camera guidance weight at timestep ``t``: constant, or cosine-decayed to 1 as ``t -> 0``."""
    if schedule == "constant":
        return w
    if schedule == "cosine":
        return 1.0 + (w - 1.0) * 0.5 * (1.0 - math.cos(math.pi * t / NUM_TRAIN_TIMESTEPS))
    raise ValueError(f"unknown camera CFG schedule {schedule!r} (constant or cosine)")


@dataclass
class NoiseShaping:
    """Scene-constrained noise shaping (RealCam-I2V section 3.3).

    ``z_preview``: latent of the preview video (frame 0 already the condition image's latent);
    ``mask``: latent mask broadcastable to the latents (1 where the preview is reliable).
    """

    z_preview: torch.Tensor
    mask: torch.Tensor
    t_ns: int = 900
    variant: Literal["noise", "z0"] = "noise"

    def active(self, t: int) -> bool:
        return t > self.t_ns

    def shape_noise(self, scheduler: DDIMScheduler, z_t: torch.Tensor, t: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """``m * (alpha_t z_preview + sigma_t eps) + (1 - m) * z_t`` with fresh ``eps``."""
        eps = torch.randn(z_t.shape, generator=generator, device=z_t.device, dtype=z_t.dtype)
        m = self.mask.to(z_t)
        return m * q_sample(scheduler, self.z_preview.to(z_t), t, eps) + (1 - m) * z_t

    def paste_z0(self, z0: torch.Tensor) -> torch.Tensor:
        m = self.mask.to(z0)
        return m * self.z_preview.to(z0) + (1 - m) * z0


@dataclass
class SamplerConfig:
    steps: int = 25
    eta: float = 1.0
    cfg: float = 7.5
    guidance_rescale: float = 0.7
    camera_cfg: float = 1.0
    camera_cfg_schedule: str = "constant"


def guided_output(predict: Predictor, z_t: torch.Tensor, t: int, cfg: SamplerConfig) -> torch.Tensor:
    """Text-image CFG with rescale, plus camera CFG when its weight is not 1."""
    cond = predict(z_t, t, "cond")
    out = cond
    if cfg.cfg != 1.0:
        uncond = predict(z_t, t, "uncond")
        out = uncond + cfg.cfg * (cond - uncond)
        out = rescale_guidance(out, cond, cfg.guidance_rescale)
    w = camera_cfg_weight(cfg.camera_cfg, t, cfg.camera_cfg_schedule)
    if w != 1.0:
        out = out + (w - 1.0) * (cond - predict(z_t, t, "no_camera"))
    return out


def sample(predict: Predictor, shape: tuple[int, ...], schedule: Schedule, config: SamplerConfig,
           *, generator: torch.Generator | None = None, device: str | torch.device = "cpu",
           dtype: torch.dtype = torch.float32, noise_shaping: NoiseShaping | None = None,
           z_init: torch.Tensor | None = None,
           on_step: Callable[[int, int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """DDIM sampling from pure noise (or ``z_init``); returns the final latents ``z_0``."""
    scheduler = schedule.scheduler()
    scheduler.set_timesteps(config.steps, device=device)
    z = (torch.randn(shape, generator=generator, device=device, dtype=dtype) if z_init is None
         else z_init.to(device, dtype))
    for i, t_tensor in enumerate(scheduler.timesteps):
        t = int(t_tensor)
        if noise_shaping is not None and noise_shaping.active(t) and noise_shaping.variant == "noise":
            z = noise_shaping.shape_noise(scheduler, z, t, generator)
        out = guided_output(predict, z, t, config)
        if noise_shaping is not None and noise_shaping.active(t) and noise_shaping.variant == "z0":
            # Earlier variant: paste the preview onto the predicted z_0, re-derive the output.
            z0 = noise_shaping.paste_z0(predicted_z0(scheduler, z, out, t))
            out = _output_from_z0(scheduler, z, z0, t)
        variance_noise = None
        if config.eta > 0:
            variance_noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        z = scheduler.step(out, t, z, eta=config.eta, variance_noise=variance_noise).prev_sample
        if on_step is not None:
            on_step(i, t, z)
    return z


def _output_from_z0(scheduler: DDIMScheduler, z_t: torch.Tensor, z0: torch.Tensor, t: int) -> torch.Tensor:
    """The model output (epsilon or v) that corresponds to ``z0`` at ``z_t`` (``sigma_t > 0``)."""
    a, s = alpha_sigma(scheduler, t, z_t)
    eps = (z_t - a * z0) / s
    return eps if scheduler.config.prediction_type == "epsilon" else a * eps - s * z0
