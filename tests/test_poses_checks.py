"""Trajectory checks, types and balancing of the ``poses`` stage (stages/poses/checks.py): fragmented
and shaky SfM trajectories are rejected, smooth real RealEstate10K ones pass, every trajectory
preset gets its type, and the balance caps each type from a seed."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from stages.core.cameras import read_re10k
from stages.core.errors import RealcamError
from stages.core.trajectory import PRESETS, preset_trajectory
from stages.poses import checks as pc

ROOT = Path(__file__).resolve().parents[1]
POSE_FILES = sorted((ROOT / "examples" / "data" / "poses").glob("*.txt"))
SHARED = ROOT.parent / "shared" / "data" / "realestate10k_poses"
REAL_FILES = POSE_FILES + sorted(SHARED.glob("*.txt"))

#: The label of each preset kind (trajectory.PRESETS' first field).
KIND_TYPE = {
    "none": "static",
    "pan": "pan",
    "tilt": "tilt",
    "roll": "roll",
    "dolly": "dolly",
    "truck": "truck",
    "pedestal": "pedestal",
    "orbit-y": "orbit",
    "orbit-x": "orbit",
}
#: Preset kinds moving in one plane: two of them may make an orbit, a pan, ... (see trajectory_type).
PLANES = ({"pan", "truck", "orbit-y"}, {"tilt", "pedestal", "orbit-x"})


def real_c2w() -> list[tuple[str, np.ndarray]]:
    return [(p.stem, read_re10k(p).c2w) for p in REAL_FILES]


def one_line_error(fn, *args, match: str, **kwargs) -> RealcamError:
    with pytest.raises(RealcamError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


# ----------------------------------------------------------------------------------------------
# Fragmentation
# ----------------------------------------------------------------------------------------------
def test_fragmentation_passes_one_model_with_enough_frames():
    assert pc.fragmentation(np.ones(10, bool), 1, 0.8) is None
    reg = np.ones(10, bool)
    reg[[0, 9]] = False
    assert pc.fragmentation(reg, 1, 0.8) is None  # exactly 80 %
    assert pc.fragmentation(np.array([1, 0, 1, 1]), 1, 0.5) is None  # 0/1 integers


def test_fragmentation_reasons():
    reg = np.zeros(10, bool)
    reg[:3] = True
    assert pc.fragmentation(reg, 1, 0.8) == "fragmented: 3 of 10 frames registered (30% < 80%)"
    assert pc.fragmentation(np.ones(10, bool), 2, 0.8) == "fragmented: SfM split the clip into 2 models"
    both = pc.fragmentation(reg, 3, 0.8)
    assert "3 models" in both and "3 of 10" in both and "\n" not in both
    assert pc.fragmentation(np.zeros(10, bool), 1, 0.8).startswith("SfM failed: no model")
    assert pc.fragmentation(np.ones(10, bool), 0, 0.0).startswith("SfM failed: no model")


def test_fragmentation_bad_input():
    one_line_error(pc.fragmentation, np.ones((2, 5), bool), 1, 0.8, match="1-D mask")
    one_line_error(pc.fragmentation, np.ones(0, bool), 1, 0.8, match="non-empty")
    one_line_error(pc.fragmentation, np.array([0, 2]), 1, 0.8, match="booleans")
    one_line_error(pc.fragmentation, np.array(["a", "b"]), 1, 0.8, match="booleans")
    one_line_error(pc.fragmentation, np.ones(3, bool), -1, 0.8, match="n_models")
    one_line_error(pc.fragmentation, np.ones(3, bool), 1, 1.5, match="min_registered")
    one_line_error(pc.fragmentation, np.ones(3, bool), 1, float("nan"), match="min_registered")


# ----------------------------------------------------------------------------------------------
# Shakiness
# ----------------------------------------------------------------------------------------------
def test_real_trajectories_are_not_shaky():
    assert len(REAL_FILES) >= 6
    for name, c2w in real_c2w():
        assert pc.shakiness(c2w) is None, name
        assert pc.shakiness(c2w[::-1]) is None, name  # played backwards
        assert pc.shakiness(c2w[::2]) is None, name  # half the frame rate


def test_steady_presets_have_no_jerk_and_pass():
    for name, (kind, _, _) in PRESETS.items():
        c2w = preset_trajectory(name, None, 16).c2w
        m = pc.step_jerks(c2w)
        assert m["step_t"].shape == m["step_r"].shape == (15,)
        assert m["jerk_t"].shape == m["jerk_r"].shape == (14,)
        np.testing.assert_allclose(m["jerk_r"], 0, atol=1e-6)
        if kind.startswith("orbit"):  # the step turns with the camera: a chord of the step's circle
            chord = 2 * m["step_t"][0] * np.sin(np.radians(m["step_r"][0]) / 2)
            np.testing.assert_allclose(m["jerk_t"], chord, rtol=1e-9)
        else:
            np.testing.assert_allclose(m["jerk_t"], 0, atol=1e-9)
        assert pc.shakiness(c2w) is None, name
    for spec in ("pan-left+dolly-in", "orbit-right+pedestal-up", "tilt-up+truck-left"):
        assert pc.shakiness(preset_trajectory(spec, None, 16, easing="ease-in-out").c2w) is None, spec


def test_displaced_frame_is_shaky():
    """One frame moved by 10 median steps, first, middle or last, in six directions."""
    directions = np.vstack([np.eye(3), -np.eye(3)])
    for name, c2w in real_c2w():
        step = np.median(pc.step_jerks(c2w)["step_t"])
        for i in (0, len(c2w) // 2, len(c2w) - 1):
            for d in directions:
                bad = c2w.copy()
                bad[i, :3, 3] += 10 * step * d
                reason = pc.shakiness(bad)
                assert reason is not None and "jumps" in reason, (name, i, d)


def test_rotation_jump_is_shaky():
    """One inner frame turned by 10 degrees about each of its axes (and a diagonal)."""
    axes = [*np.eye(3), np.array([1.0, 1.0, 1.0]) / np.sqrt(3)]
    for name, c2w in real_c2w():
        for i in (len(c2w) // 3, len(c2w) // 2):
            for axis in axes:
                bad = c2w.copy()
                bad[i, :3, :3] = bad[i, :3, :3] @ Rotation.from_rotvec(np.radians(10) * axis).as_matrix()
                reason = pc.shakiness(bad)
                assert reason is not None and "turns" in reason, (name, i, axis)


def test_noise_and_gentle_starts_are_not_shaky():
    rng = np.random.default_rng(3)

    def jitter(c2w, deg, metres):
        out = c2w.copy()
        for p in out:
            p[:3, :3] = p[:3, :3] @ Rotation.from_rotvec(np.radians(deg) * rng.normal(size=3)).as_matrix()
            p[:3, 3] += metres * rng.normal(size=3)
        return out

    still = preset_trajectory("stationary", None, 16).c2w
    assert pc.shakiness(jitter(still, 0.2, 0.0)) is None  # rotation noise under the degree floor
    assert pc.shakiness(jitter(preset_trajectory("pan-left", 30, 16).c2w, 0.1, 0.001)) is None
    assert pc.shakiness(jitter(preset_trajectory("dolly-in", 1.0, 16).c2w, 0.1, 0.002)) is None
    # Still for 10 frames, then a dolly: the start from rest is no jump.
    go = preset_trajectory("dolly-in", 0.6, 7).c2w
    assert pc.shakiness(np.concatenate([np.repeat(go[:1], 9, axis=0), go])) is None
    # ... and the same for a pan speeding up from a standstill to 4 deg per frame.
    pan = preset_trajectory("pan-right", 24, 7).c2w
    assert pc.shakiness(np.concatenate([np.repeat(pan[:1], 9, axis=0), pan])) is None
    # Fewer than three frames have no jerk to judge.
    assert pc.shakiness(still[:2]) is None and pc.shakiness(still[:1]) is None


def test_shake_k_controls_the_limit():
    c2w = preset_trajectory("truck-right", 1.5, 16).c2w.copy()
    c2w[8, :3, 3] += (0, 0.3, 0)  # 3 median steps off the path: a jerk of 6 steps
    assert "jumps at frame 8" in pc.shakiness(c2w)
    assert pc.shakiness(c2w, k=7.0) is None
    one_line_error(pc.shakiness, c2w, k=1.0, match="k")
    one_line_error(pc.shakiness, c2w, k=float("nan"), match="k")


@pytest.mark.parametrize("fn", [pc.shakiness, pc.trajectory_type, pc.step_jerks])
def test_bad_poses_are_one_line_errors(fn):
    good = preset_trajectory("pan-left", None, 8).c2w
    one_line_error(fn, good[0], match="shape")
    one_line_error(fn, good[:, :3, :], match="shape")
    one_line_error(fn, np.zeros((0, 4, 4)), match="shape")
    one_line_error(fn, "poses", match="array|shape")
    bad = good.copy()
    bad[3, 0, 3] = np.nan
    one_line_error(fn, bad, match="non-finite")
    bad = good.copy()
    bad[2, :3, 0] *= -1
    one_line_error(fn, bad, match="reflection")
    bad = good.copy()
    bad[2, 3, 0] = 1.0
    one_line_error(fn, bad, match="last row")


# ----------------------------------------------------------------------------------------------
# Trajectory types
# ----------------------------------------------------------------------------------------------
def test_every_preset_gets_its_type_at_the_default_magnitude():
    for name, (kind, _, _) in PRESETS.items():
        c2w = preset_trajectory(name, None, 16).c2w
        assert pc.trajectory_type(c2w) == KIND_TYPE[kind], name
        assert pc.trajectory_type(c2w, centre_depth=2.0) == KIND_TYPE[kind], name


@pytest.mark.parametrize("factor", [0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("depth", [1.0, 2.0, 4.0])
def test_every_preset_gets_its_type_at_other_magnitudes_and_depths(factor, depth):
    for name, (kind, _, default) in PRESETS.items():
        c2w = preset_trajectory(name, factor * default, 16, centre_depth=depth).c2w
        assert pc.trajectory_type(c2w, centre_depth=depth) == KIND_TYPE[kind], (name, factor, depth)
        # Scale-free given the depth in the poses' units (SfM's scale is arbitrary).
        scaled = c2w.copy()
        scaled[:, :3, 3] *= 37.0
        assert pc.trajectory_type(scaled, centre_depth=37.0 * depth) == KIND_TYPE[kind], (name, factor, depth)


def test_type_ignores_frame_count_easing_and_return_paths():
    for name, (kind, _, _) in PRESETS.items():
        for kwargs in ({"n_frames": 2}, {"n_frames": 49, "easing": "ease-in-out"}, {"n_frames": 17, "loop": True}):
            c2w = preset_trajectory(name, None, **kwargs).c2w
            assert pc.trajectory_type(c2w) == KIND_TYPE[kind], (name, kwargs)
    assert pc.trajectory_type(np.eye(4)[None]) == "static"


def test_small_motions_are_static():
    small = [("pan-left", 1.5), ("tilt-up", 1.0), ("roll-cw", 1.9), ("dolly-in", 0.05), ("truck-left", 0.06)]
    for spec, magnitude in small:
        assert pc.trajectory_type(preset_trajectory(spec, magnitude, 16).c2w) == "static", spec
    # With the scene centre far away, 0.3 m is little; close by, it is a pedestal move.
    c2w = preset_trajectory("pedestal-up", 0.3, 16).c2w
    assert pc.trajectory_type(c2w, centre_depth=10.0) == "static"
    assert pc.trajectory_type(c2w, centre_depth=1.0) == "pedestal"
    assert pc.trajectory_type(c2w, centre_depth=1.0, static_deg=20.0) == "static"


def test_two_part_presets_are_complex_across_planes():
    """Parts in different planes (or one along the view) at the default magnitudes are complex;
    the documented exception: a pan with a pedestal move of a quarter of its angle is a pan."""
    names = [n for n in PRESETS if n != "stationary"]
    seen = Counter()
    for a, b in itertools.permutations(names, 2):
        ka, kb = PRESETS[a][0], PRESETS[b][0]
        if ka == kb:
            continue
        label = pc.trajectory_type(preset_trajectory(f"{a}+{b}", None, 16).c2w)
        seen[label] += 1
        if {ka, kb} == {"pan", "pedestal"}:
            assert label == "pan", (a, b)
        elif not any({ka, kb} <= plane for plane in PLANES):
            assert label == "complex", (a, b)
        else:
            assert label in {"orbit", "pan", "complex"}, (a, b)
    assert seen["complex"] > 200
    for spec in ("pan-left+dolly-in", "pan-left+tilt-up", "truck-right+pedestal-up"):
        assert pc.trajectory_type(preset_trajectory(spec, None, 16).c2w) == "complex", spec
    # A truck against the pan keeps a point ahead in view: that is an orbit.
    assert pc.trajectory_type(preset_trajectory("pan-left+truck-right", None, 16).c2w) == "orbit"
    # A truck with the pan does not; a dolly towards an orbit's centre changes its distance; a roll
    # turns about the view.
    for spec in ("pan-right+truck-right", "orbit-left+dolly-in", "orbit-left+roll-cw"):
        assert pc.trajectory_type(preset_trajectory(spec, None, 16).c2w) == "complex", spec


def test_real_trajectories_get_a_type():
    labels = {name: pc.trajectory_type(c2w) for name, c2w in real_c2w()}
    assert set(labels.values()) <= set(pc.TYPES)
    # Regression: walk-throughs that turn while walking are complex; 0f47577ab3441480 backs away
    # along its view (1.4 m, turning 8 deg).
    assert labels["0f47577ab3441480"] == "dolly"
    assert Counter(labels[p.stem] for p in POSE_FILES) == {"complex": 5, "dolly": 1}


def test_type_bad_options():
    c2w = preset_trajectory("pan-left", None, 8).c2w
    one_line_error(pc.trajectory_type, c2w, centre_depth=0.0, match="centre_depth")
    one_line_error(pc.trajectory_type, c2w, centre_depth=float("inf"), match="centre_depth")
    one_line_error(pc.trajectory_type, c2w, static_deg=-1, match="static_deg")
    one_line_error(pc.trajectory_type, c2w, dominance=0.5, match="dominance")


# ----------------------------------------------------------------------------------------------
# Balancing
# ----------------------------------------------------------------------------------------------
#: A long tail like CameraCtrl II's Figure 1 (before balancing).
LONG_TAIL = ["complex"] * 400 + ["dolly"] * 250 + ["pan"] * 120 + ["orbit"] * 60 + ["truck"] * 30 + ["static"] * 8


def shuffled(labels, seed=0):
    return list(np.random.default_rng(seed).permutation(np.asarray(labels, dtype=object)))


def test_balance_count_cap():
    types = shuffled(LONG_TAIL)
    keep = pc.balance(types, 100, seed=1)
    assert keep.dtype == bool and keep.shape == (len(types),)
    kept = Counter(t for t, k in zip(types, keep) if k)
    assert kept == {"complex": 100, "dolly": 100, "pan": 100, "orbit": 60, "truck": 30, "static": 8}
    # A whole float above 1 is a count too.
    np.testing.assert_array_equal(pc.balance(types, 100.0, seed=1), keep)


def test_balance_share_cap():
    types = shuffled(LONG_TAIL)
    full = Counter(types)
    for cap in (0.2, 0.3, 0.4):
        keep = pc.balance(types, cap, seed=2)
        kept = Counter(t for t, k in zip(types, keep) if k)
        total = sum(kept.values())
        assert max(kept.values()) <= cap * total + 1e-9, cap
        # The rare types are all kept, the capped ones share one count, the largest that fits.
        c = max(kept.values())
        assert all(kept[t] == n for t, n in full.items() if n <= c)
        assert all(kept[t] == c for t, n in full.items() if n > c)
        assert c < max(full.values()) and c + 1 > cap * sum(min(n, c + 1) for n in full.values())
    assert pc.balance(types, 1.0, seed=2).all()  # a share of 100 %: no cap
    assert pc.balance(types, 0.9, seed=2).all()  # no type is over 90 %
    assert pc.balance(types, 0.45, seed=2).sum() < len(types)  # complex is 46 %


def test_balance_is_deterministic_and_per_type():
    types = shuffled(LONG_TAIL)
    a = pc.balance(types, 0.25, seed=7)
    np.testing.assert_array_equal(a, pc.balance(tuple(types), 0.25, seed=7))
    assert not np.array_equal(a, pc.balance(types, 0.25, seed=8))
    # Which clips of one type are kept depends on the seed, the type and its clips alone.
    pans = [t for t in types if t == "pan"]
    alone = pc.balance(pans + ["dolly"] * 10, 50, seed=7)[: len(pans)]
    mixed = pc.balance(types, 50, seed=7)
    np.testing.assert_array_equal(mixed[[i for i, t in enumerate(types) if t == "pan"]], alone)


def test_balance_unreachable_share_keeps_types_equal():
    keep = pc.balance(["a"] * 10 + ["b"] * 4, 0.3, seed=0)  # two types cannot each be <= 30 %
    assert keep[:10].sum() == 4 and keep[10:].all()


def test_balance_edge_cases_and_errors():
    assert pc.balance([], 0.5, 0).shape == (0,)
    assert pc.balance(["pan"] * 5, 1, 0).sum() == 1
    assert pc.balance(["pan"] * 5, 0.5, 0).all()  # one type is all of anything kept: nothing to cut
    one_line_error(pc.balance, ["pan"], 0, 0, match="cap")
    one_line_error(pc.balance, ["pan"], -0.2, 0, match="cap")
    one_line_error(pc.balance, ["pan"], float("nan"), 0, match="cap")
    one_line_error(pc.balance, ["pan"], 2.5, 0, match="whole")
    one_line_error(pc.balance, ["pan"], True, 0, match="cap")
    one_line_error(pc.balance, ["pan", 3], 0.5, 0, match="strings")
    one_line_error(pc.balance, ["pan"], 0.5, -1, match="seed")
