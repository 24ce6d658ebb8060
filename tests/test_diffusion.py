import math

import numpy as np
import pytest
import torch

from stages import diffusion as dif


def test_schedule_matches_ldm_linear_betas():
    sch = dif.Schedule.for_resolution(256).scheduler()
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000) ** 2
    np.testing.assert_allclose(sch.betas.numpy(), betas, rtol=1e-5)
    assert sch.config.prediction_type == "epsilon"
    zsnr = dif.Schedule.for_resolution(512).scheduler()
    assert zsnr.config.prediction_type == "v_prediction"
    assert float(zsnr.alphas_cumprod[-1]) == 0.0  # zero terminal SNR
    zsnr.set_timesteps(25)
    assert zsnr.timesteps[0] == 999 and zsnr.timesteps[-1] == 39  # trailing spacing


@pytest.mark.parametrize("res", [256, 512])
def test_training_target_and_z0_are_consistent(res):
    sch = dif.Schedule.for_resolution(res).scheduler()
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(3, 4, 2, 5, 5, generator=g, dtype=torch.float64)
    noise = torch.randn(z0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([10, 500, 990])
    z_t = dif.q_sample(sch, z0, t, noise)
    target = dif.training_target(sch, z0, noise, t)
    torch.testing.assert_close(dif.predicted_z0(sch, z_t, target, t), z0)


def _point_mass_predictor(schedule, x_star, calls=None):
    """The exact denoiser of a data distribution concentrated on x_star."""
    sch = schedule.scheduler()

    def predict(z, t, variant):
        if calls is not None:
            calls.append(variant)
        a, s = dif.alpha_sigma(sch, t, z)
        eps = (z - a * x_star) / s
        return eps if schedule.prediction_type == "epsilon" else a * eps - s * x_star

    return predict


@pytest.mark.parametrize("res,eta", [(256, 0.0), (256, 1.0), (512, 1.0)])
def test_sampler_recovers_point_mass(res, eta):
    schedule = dif.Schedule.for_resolution(res)
    x_star = torch.linspace(-1, 1, 2 * 4 * 3 * 3, dtype=torch.float64).reshape(1, 2, 4, 3, 3)
    z = dif.sample(_point_mass_predictor(schedule, x_star), x_star.shape, schedule,
                   dif.SamplerConfig(steps=25, eta=eta, cfg=1.0), dtype=torch.float64,
                   generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, x_star, atol=1e-6, rtol=0)


def test_sampler_draws_the_right_gaussian():
    """With the exact denoiser of N(mu, s^2), ancestral DDIM (eta=1) converges to that distribution.

    Zero terminal SNR makes the start (pure noise at t=999) exact; the remaining error is the
    step discretisation, which must shrink as the step count grows.
    """
    mu, std = 0.7, 0.4
    schedule = dif.Schedule.for_resolution(512)
    sch = schedule.scheduler()

    def predict(z, t, variant):
        a, s = dif.alpha_sigma(sch, t, z)
        z0 = mu + a * std ** 2 / (a ** 2 * std ** 2 + s ** 2) * (z - a * mu)  # E[z0 | z_t]
        eps = (z - a * z0) / s
        return a * eps - s * z0

    errors = []
    for steps in (25, 100, 250):
        z = dif.sample(predict, (40000,), schedule, dif.SamplerConfig(steps=steps, eta=1.0, cfg=1.0),
                       dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        assert abs(z.mean().item() - mu) < 0.01
        errors.append(abs(z.std().item() - std) / std)
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_guidance_and_camera_cfg():
    cond = torch.tensor([[1.0, 2.0, 3.0]])
    uncond = torch.tensor([[0.0, 1.0, 1.0]])
    no_cam = torch.tensor([[1.0, 1.0, 1.0]])
    outs = {"cond": cond, "uncond": uncond, "no_camera": no_cam}
    calls = []

    def predict(z, t, variant):
        calls.append(variant)
        return outs[variant]

    plain = dif.guided_output(predict, cond, 500, dif.SamplerConfig(cfg=7.5, guidance_rescale=0.0))
    torch.testing.assert_close(plain, uncond + 7.5 * (cond - uncond))
    assert calls == ["cond", "uncond"]  # camera CFG 1.0 adds no pass
    calls.clear()
    full = dif.guided_output(predict, cond, 500, dif.SamplerConfig(cfg=7.5, guidance_rescale=1.0))
    assert full.std().item() == pytest.approx(cond.std().item())
    rescaled = dif.guided_output(predict, cond, 500, dif.SamplerConfig(cfg=7.5, guidance_rescale=0.7))
    torch.testing.assert_close(rescaled, 0.7 * full + 0.3 * plain)
    calls.clear()
    cam = dif.guided_output(predict, cond, 500, dif.SamplerConfig(cfg=1.0, camera_cfg=3.0))
    torch.testing.assert_close(cam, cond + 2.0 * (cond - no_cam))
    assert calls == ["cond", "no_camera"]
    assert dif.camera_cfg_weight(3.0, 1000, "cosine") == pytest.approx(3.0)
    assert dif.camera_cfg_weight(3.0, 0, "cosine") == pytest.approx(1.0)
    assert dif.camera_cfg_weight(3.0, 500, "cosine") == pytest.approx(2.0)


def test_noise_shaping_formula_and_steps():
    schedule = dif.Schedule.for_resolution(256)
    sch = schedule.scheduler()
    z_prev = torch.full((1, 4, 2, 4, 4), 0.5, dtype=torch.float64)
    mask = torch.zeros(1, 1, 2, 4, 4, dtype=torch.float64)
    mask[..., :2, :] = 1
    ns = dif.NoiseShaping(z_prev, mask, t_ns=900)
    z_t = torch.randn(1, 4, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    shaped = ns.shape_noise(sch, z_t, 950, torch.Generator().manual_seed(5))
    eps = torch.randn(z_t.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a, s = dif.alpha_sigma(sch, 950, z_t)
    expected = mask * (a * z_prev + s * eps) + (1 - mask) * z_t
    torch.testing.assert_close(shaped, expected)
    torch.testing.assert_close(shaped[..., 2:, :], z_t[..., 2:, :])  # outside the mask untouched
    assert ns.active(901) and not ns.active(900)

    # In the sampler: the model sees shaped latents exactly at the steps with t > t_NS.
    seen = []
    x_star = torch.zeros(1, 4, 2, 4, 4, dtype=torch.float64)
    base = _point_mass_predictor(schedule, x_star)

    def predict(z, t, variant):
        seen.append(t)
        return base(z, t, variant)

    dif.sample(predict, x_star.shape, schedule, dif.SamplerConfig(steps=25, cfg=1.0), dtype=torch.float64,
               generator=torch.Generator().manual_seed(0), noise_shaping=ns)
    assert [t for t in seen if ns.active(t)] == [999, 959, 919]


def test_noise_shaping_pulls_masked_region_to_preview():
    """With a denoiser that does not know the scene, shaping at high noise steers the masked area."""
    schedule = dif.Schedule.for_resolution(256)
    shape = (1, 4, 2, 8, 8)
    target = torch.full(shape, 1.0, dtype=torch.float64)
    predict = _point_mass_predictor(schedule, torch.zeros(shape, dtype=torch.float64))
    sch = schedule.scheduler()

    def blend(z, t, variant):  # a denoiser that follows its input's content partially
        a, s = dif.alpha_sigma(sch, t, z)
        z0 = 0.5 * z / a.clamp(min=1e-3) if t < 999 else torch.zeros_like(z)
        return (z - a * z0) / s

    mask = torch.ones(shape, dtype=torch.float64)
    off = dif.sample(blend, shape, schedule, dif.SamplerConfig(steps=25, cfg=1.0), dtype=torch.float64,
                     generator=torch.Generator().manual_seed(0))
    on = dif.sample(blend, shape, schedule, dif.SamplerConfig(steps=25, cfg=1.0), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0),
                    noise_shaping=dif.NoiseShaping(target, mask, t_ns=800))
    assert (on - target).abs().mean() < (off - target).abs().mean()
    assert predict is not None


def test_guidance_rescale_of_a_constant_output_is_finite():
    zero = torch.zeros(2, 4, 3, 3)
    out = dif.rescale_guidance(zero, zero, 0.7)
    assert torch.equal(out, zero)
