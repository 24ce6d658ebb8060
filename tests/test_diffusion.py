"""The diffusion arithmetic against the official DynamiCrafter / RealCam-I2V code (numbers from its
configs and samplers; docs/fidelity.md) and against exact denoisers with known answers."""

import math

import numpy as np
import pytest
import torch

from stages import diffusion as dif


def test_schedule_matches_ldm_linear_betas():
    sch = dif.Schedule.for_resolution(256)
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000) ** 2
    np.testing.assert_allclose(sch.betas, betas, rtol=1e-12)
    assert sch.prediction_type == "epsilon" and not sch.dynamic_rescale
    zsnr = dif.Schedule.for_resolution(512)
    assert zsnr.prediction_type == "v_prediction"
    assert zsnr.alphas_cumprod[-1] == 0.0  # zero terminal SNR
    assert zsnr.alphas_cumprod[0] == pytest.approx(1 - 0.00085, rel=1e-12)  # first alpha unchanged


def test_trailing_timesteps_are_the_official_ones():
    """``make_ddim_timesteps('uniform_trailing')``: ``round(arange(1000, 0, -1000/S))[::-1] - 1``."""
    sch = dif.Schedule.for_resolution(256)
    assert sch.timesteps(25) == list(range(999, 0, -40))
    assert sch.timesteps(50)[:3] == [999, 979, 959] and sch.timesteps(50)[-1] == 19
    # 30 steps do not divide 1000: gaps of 33 and 34, which diffusers' `t - 1000 // S` misses
    ts = sch.timesteps(30)
    assert len(ts) == 30 and ts[:4] == [999, 966, 932, 899] and ts[-1] == 32
    assert sorted(set(np.diff(ts))) == [-34, -33]


def test_dynamic_rescale_factors_of_the_official_configs():
    """``scale_arr = concat(linspace(1, base, 400), full(1000, base))`` with base 0.7 (512) and 0.3
    (1024, DynamiCrafter's config); 256 has none."""
    s512, s1024 = dif.Schedule.for_resolution(512), dif.Schedule.for_resolution(1024)
    assert s512.base_scale == 0.7 and s1024.base_scale == 0.3
    assert dif.Schedule.for_resolution(256).scale([0, 500, 999]).tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(
        s512.scale([0, 1, 200, 399, 400, 999]), [1.0, 1 - 0.3 / 399, 1 - 0.3 * 200 / 399, 0.7, 0.7, 0.7], rtol=1e-12
    )
    np.testing.assert_allclose(s1024.scale([200, 959]), [1 - 0.7 * 200 / 399, 0.3], rtol=1e-12)
    assert s512.scale(200) == pytest.approx(0.849624, abs=1e-6)


def test_training_scales_z0_and_targets_are_consistent():
    sch = dif.Schedule.for_resolution(512)
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(3, 4, 2, 5, 5, generator=g, dtype=torch.float64)
    noise = torch.randn(z0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([10, 200, 990])
    scaled = dif.rescale_z0(sch, z0, t)
    factors = torch.tensor([1 - 0.3 * 10 / 399, 1 - 0.3 * 200 / 399, 0.7], dtype=torch.float64)
    torch.testing.assert_close(scaled, z0 * factors[:, None, None, None, None])
    z_t = dif.q_sample(sch, scaled, t, noise)
    target = dif.training_target(sch, scaled, noise, t)
    a, s = dif.alpha_sigma(sch, t, z0)
    torch.testing.assert_close(target, a * noise - s * scaled)  # v of the scaled z0
    torch.testing.assert_close(dif.predicted_z0(sch, z_t, target, t), scaled)
    assert torch.equal(dif.rescale_z0(dif.Schedule.for_resolution(256), z0, t), z0)


def test_ddim_step_coefficients_official_arithmetic():
    sch = dif.Schedule.for_resolution(256)
    ab = sch.alphas_cumprod
    # the last step goes to alphas_cumprod[0] (not 1) and adds eta noise
    sqrt_prev, direction, sigma = dif.ddim_coefficients(sch, 39, None, 1.0)
    assert sqrt_prev == pytest.approx(math.sqrt(1 - 0.00085), rel=1e-6)
    expected_sigma = math.sqrt((1 - ab[0]) / (1 - ab[39]) * (1 - ab[39] / ab[0]))
    assert sigma == pytest.approx(expected_sigma, rel=1e-4) and sigma > 0  # float32 alphas, as official
    assert direction == pytest.approx(math.sqrt(1 - ab[0] - expected_sigma**2), rel=1e-4)
    assert dif.ddim_coefficients(sch, 39, None, 0.0)[2] == 0.0
    # zero-SNR first step: sigma^2 = 1 - a_prev, the direction term vanishes (clamped, never NaN)
    z = dif.Schedule.for_resolution(512)
    sqrt_prev, direction, sigma = dif.ddim_coefficients(z, 999, 959, 1.0)
    a_prev = z.alphas_cumprod[959]
    assert sigma == pytest.approx(math.sqrt(1 - a_prev), rel=1e-6)
    assert 0 <= direction < 1e-3 and not math.isnan(direction)


def _point_mass_predictor(schedule, x_star, calls=None):
    """The exact denoiser of a data distribution concentrated on x_star."""

    def predict(z, t, variant):
        if calls is not None:
            calls.append(variant)
        a, s = dif.alpha_sigma(schedule, t, z)
        if float(s) == 1.0:  # zero SNR at t = 999: z is pure noise, eps = z
            eps = z.clone()
        else:
            eps = (z - a * x_star) / s
        return eps if schedule.prediction_type == "epsilon" else a * eps - s * x_star

    return predict


@pytest.mark.parametrize("res,eta", [(256, 0.0), (256, 1.0), (512, 1.0)])
def test_sampler_recovers_point_mass(res, eta):
    """With the exact denoiser the sampler ends at x_star noised to t = 0: the official last step
    goes to ``alphas_cumprod[0] = 1 - 0.00085``, not 1, so ``z = sqrt(a0) x* + sqrt(1 - a0) n`` with
    ``n`` standard normal."""
    schedule = dif.Schedule("epsilon" if res == 256 else "v_prediction", res != 256)
    x_star = torch.linspace(-1, 1, 4000, dtype=torch.float64).reshape(1, 4, 10, 10, 10)
    z = dif.sample(
        _point_mass_predictor(schedule, x_star),
        x_star.shape,
        schedule,
        dif.SamplerConfig(steps=25, eta=eta, cfg=1.0),
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(0),
    )
    a0 = 1 - 0.00085
    n = (z - math.sqrt(a0) * x_star) / math.sqrt(1 - a0)
    assert abs(float(n.mean())) < 0.1 and abs(float(n.std()) - 1) < 0.1
    assert (z - x_star).abs().max() < 6 * math.sqrt(1 - a0)


def test_sampler_draws_the_right_gaussian():
    """With the exact denoiser of N(mu, s^2), ancestral DDIM (eta=1) converges to that distribution.

    Zero terminal SNR makes the start (pure noise at t=999) exact; the remaining error is the
    step discretisation, which must shrink as the step count grows.
    """
    mu, std = 0.7, 0.4
    schedule = dif.Schedule("v_prediction", True)  # the 512 schedule without dynamic rescale

    def predict(z, t, variant):
        a, s = dif.alpha_sigma(schedule, t, z)
        z0 = mu + a * std**2 / (a**2 * std**2 + s**2) * (z - a * mu)  # E[z0 | z_t]
        eps = (z - a * z0) / s
        return a * eps - s * z0

    errors = []
    for steps in (25, 100, 250):
        z = dif.sample(
            predict,
            (40000,),
            schedule,
            dif.SamplerConfig(steps=steps, eta=1.0, cfg=1.0),
            dtype=torch.float64,
            generator=torch.Generator().manual_seed(1),
        )
        assert abs(z.mean().item() - mu) < 0.01
        errors.append(abs(z.std().item() - std) / std)
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_dynamic_rescale_in_sampling_is_the_scale_ratio():
    """Each step multiplies the predicted z0 by scale(t_prev) / scale(t) (official ``p_sample_ddim``
    with ``ddim_scale_arr_prev``); checked on one step with a denoiser that always predicts z0 = c."""
    schedule = dif.Schedule.for_resolution(512)
    c = torch.full((1, 4, 1, 2, 2), 0.5, dtype=torch.float64)
    seen = {}

    def predict(z, t, variant):  # v that makes the predicted z0 exactly c
        a, s = dif.alpha_sigma(schedule, t, z)
        return (a * z - c) / s if float(s) > 0 else -c

    def on_step(i, t, z):
        seen[t] = z.clone()

    z = dif.sample(
        predict,
        c.shape,
        schedule,
        dif.SamplerConfig(steps=25, eta=0.0, cfg=1.0),
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(0),
        on_step=on_step,
    )
    # step 359 -> 319 (below the turning step): the z0 carried into z_319 is c * scale(319) / scale(359)
    ratio = (1 - 0.3 * 319 / 399) / (1 - 0.3 * 359 / 399)
    assert ratio == pytest.approx(1.04119, abs=1e-5)
    ab = schedule.alphas_cumprod
    a319, s319 = math.sqrt(ab[319]), math.sqrt(1 - ab[319])
    z359 = seen[399]  # the latents the step at t = 359 starts from
    a359, s359 = math.sqrt(ab[359]), math.sqrt(1 - ab[359])
    eps = (z359 - a359 * c) / s359
    expected = a319 * c * ratio + s319 * eps
    torch.testing.assert_close(seen[359], expected, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(z).all()


def test_guidance_and_camera_cfg_follow_the_official_order():
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
    full = dif.guided_output(predict, cond, 500, dif.SamplerConfig(cfg=7.5, guidance_rescale=1.0))
    assert full.std().item() == pytest.approx(cond.std().item())
    rescaled = dif.guided_output(predict, cond, 500, dif.SamplerConfig(cfg=7.5, guidance_rescale=0.7))
    torch.testing.assert_close(rescaled, 0.7 * full + 0.3 * plain)
    # camera CFG is added before the rescale (the rescale then acts on the sum)
    calls.clear()
    cam = dif.guided_output(predict, cond, 500, dif.SamplerConfig(cfg=7.5, guidance_rescale=0.7, camera_cfg=3.0))
    summed = uncond + 7.5 * (cond - uncond) + 2.0 * (cond - no_cam)
    torch.testing.assert_close(cam, dif.rescale_guidance(summed, cond, 0.7))
    assert calls == ["cond", "uncond", "no_camera"]
    # without text-image CFG the official sampler does not apply camera CFG at all
    calls.clear()
    assert torch.equal(dif.guided_output(predict, cond, 500, dif.SamplerConfig(cfg=1.0, camera_cfg=3.0)), cond)
    assert calls == ["cond"]


def test_camera_cfg_cosine_schedule_is_the_official_one():
    """``scheduler_weight = cos((1 - t/999) * pi/2)``: 1.354 at t = 500 for w = 1.5."""
    assert dif.camera_cfg_weight(1.5, 500, "cosine") == pytest.approx(1.3538, abs=1e-4)
    assert dif.camera_cfg_weight(1.5, 999, "cosine") == pytest.approx(1.5)
    assert dif.camera_cfg_weight(1.5, 0, "cosine") == pytest.approx(1.0)
    assert dif.camera_cfg_weight(1.5, 500, "constant") == 1.5
    with pytest.raises(ValueError):
        dif.camera_cfg_weight(1.5, 500, "linear")


def _shaped_steps(t_ns, steps=25):
    schedule = dif.Schedule.for_resolution(256)
    x_star = torch.zeros(1, 4, 2, 4, 4, dtype=torch.float64)
    mask = torch.ones(1, 1, 2, 4, 4, dtype=torch.float64)
    seen = []
    base = _point_mass_predictor(schedule, x_star)

    def predict(z, t, variant):
        seen.append(t)
        return base(z, t, variant)

    ns = dif.NoiseShaping(torch.full_like(x_star, 0.5), mask, t_ns=t_ns)
    dif.sample(
        predict,
        x_star.shape,
        schedule,
        dif.SamplerConfig(steps=steps, cfg=1.0),
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(0),
        noise_shaping=ns,
    )
    return [t for t in seen if ns.active(t)]


def test_noise_shaping_starts_where_the_official_sampler_does():
    """Official: shape at every step with ``t >= t_NS`` (``noise_shaping_minimum_timesteps``)."""
    assert _shaped_steps(999) == [999]  # the official shapes the first step at t_NS = 999
    assert _shaped_steps(900) == [999, 959, 919]
    assert _shaped_steps(919) == [999, 959, 919]  # a t_NS on a sampled step includes it
    assert _shaped_steps(1000) == []


def test_noise_shaping_formula():
    schedule = dif.Schedule.for_resolution(256)
    z_prev = torch.full((1, 4, 2, 4, 4), 0.5, dtype=torch.float64)
    mask = torch.zeros(1, 1, 2, 4, 4, dtype=torch.float64)
    mask[..., :2, :] = 1
    ns = dif.NoiseShaping(z_prev, mask, t_ns=900)
    z_t = torch.randn(1, 4, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    shaped = ns.shape_noise(schedule, z_t, 950, torch.Generator().manual_seed(5))
    eps = torch.randn(z_t.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a, s = dif.alpha_sigma(schedule, 950, z_t)
    expected = mask * (a * z_prev + s * eps) + (1 - mask) * z_t
    torch.testing.assert_close(shaped, expected)
    torch.testing.assert_close(shaped[..., 2:, :], z_t[..., 2:, :])  # outside the mask untouched
    assert ns.active(900) and not ns.active(899)


def test_noise_shaping_pulls_masked_region_to_preview():
    """With a denoiser that does not know the scene, shaping at high noise steers the masked area."""
    schedule = dif.Schedule.for_resolution(256)
    shape = (1, 4, 2, 8, 8)
    target = torch.full(shape, 1.0, dtype=torch.float64)

    def blend(z, t, variant):  # a denoiser that follows its input's content partially
        a, s = dif.alpha_sigma(schedule, t, z)
        z0 = 0.5 * z / a.clamp(min=1e-3) if t < 999 else torch.zeros_like(z)
        return (z - a * z0) / s

    mask = torch.ones(shape, dtype=torch.float64)
    off = dif.sample(
        blend,
        shape,
        schedule,
        dif.SamplerConfig(steps=25, cfg=1.0),
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(0),
    )
    on = dif.sample(
        blend,
        shape,
        schedule,
        dif.SamplerConfig(steps=25, cfg=1.0),
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(0),
        noise_shaping=dif.NoiseShaping(target, mask, t_ns=800),
    )
    assert (on - target).abs().mean() < (off - target).abs().mean()


def test_random_draws_follow_the_official_order():
    """x_T first, then per step the shaping noise (when active) and the step noise, whatever eta:
    the same seed gives the same noise as the official sampler's global-generator sequence."""
    schedule = dif.Schedule.for_resolution(256)
    shape = (1, 4, 1, 2, 2)
    outs = []

    def predict(z, t, variant):
        outs.append((t, z.clone()))
        return torch.zeros_like(z)

    dif.sample(
        predict,
        shape,
        schedule,
        dif.SamplerConfig(steps=3, eta=0.0, cfg=1.0),
        generator=torch.Generator().manual_seed(9),
        noise_shaping=dif.NoiseShaping(torch.zeros(shape), torch.ones(shape), t_ns=999),
    )
    g = torch.Generator().manual_seed(9)
    x_t = torch.randn(shape, generator=g)
    shaping_eps = torch.randn(shape, generator=g)
    a, s = dif.alpha_sigma(schedule, 999, x_t)
    torch.testing.assert_close(outs[0][1], s * shaping_eps)  # preview 0 noised with the 2nd draw
    assert not torch.equal(outs[0][1], x_t)


def test_guidance_rescale_of_a_constant_output_is_finite():
    zero = torch.zeros(2, 4, 3, 3)
    out = dif.rescale_guidance(zero, zero, 0.7)
    assert torch.equal(out, zero)
