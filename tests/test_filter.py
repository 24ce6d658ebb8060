"""The quantile filter against a hand-computed example; metric cameras exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.core import cameras as cam
from stages.core.errors import RealcamError
from stages.filter import condition_factor, quantile_rule, run_filter


def _clips(maxima, minima, status=None):
    n = len(maxima)
    return pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(n)],
            "scale": np.sqrt(np.multiply(maxima, minima)),
            "scale_max": maxima,
            "scale_min": minima,
            "status": status or ["ok"] * n,
            "reason": [""] * n,
        }
    )


def test_quantile_rule_hand_computed():
    # maxima 1..11 (shuffled): quantile 0.1 = 1 + 0.1*10 = 2.0, quantile 0.9 = 10.0 (linear)
    # -> 1.0 is below 2.0 (max_low), 11.0 above 10.0 (max_high); 2.0 and 10.0 sit on the bounds: kept.
    maxima = [5.0, 1.0, 11.0, 2.0, 10.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0]
    # minima 0.1..1.1 in a different order: the clip with max 5.0 has the lowest min (0.1 < 0.2).
    minima = [0.1, 0.5, 0.6, 0.3, 1.1, 0.4, 0.7, 0.8, 0.9, 1.0, 0.2]
    rules = quantile_rule(_clips(maxima, minima), q=0.1)
    assert rules.tolist() == ["min_low", "max_low", "max_high", "", "min_high", "", "", "", "", "", ""]


def test_quantile_rule_both_rules_and_failed_clips():
    maxima = [1.0, 2.0, 3.0, 4.0, np.nan]
    minima = [0.5, 1.0, 1.5, 2.0, np.nan]
    rules = quantile_rule(_clips(maxima, minima, ["ok"] * 4 + ["failed"]), q=0.02)
    # q=0.02 over 4 values: lo = 1 + 0.06*1 = 1.06 -> clip 0 low on both; hi = 3.94 -> clip 3 high on both
    assert rules.tolist() == ["max_low;min_low", "", "", "max_high;min_high", "no_scale"]


def test_quantile_out_of_range():
    with pytest.raises(RealcamError):
        quantile_rule(_clips([1.0], [1.0]), q=0.6)


def test_condition_factor_fallback():
    frames = pd.DataFrame({"frame": [0, 1, 2], "scale": [np.nan, 2.0, 3.0]})
    assert condition_factor(frames, 2.5, 0) == 2.5
    assert condition_factor(frames, 2.5, 2) == 3.0


def test_run_filter_metric_cameras(tmp_path, pose_files):
    ds = tmp_path / "ds"
    ids = [p.stem for p in pose_files]
    for p in pose_files:
        (ds / "cameras").mkdir(parents=True, exist_ok=True)
        (ds / "cameras" / p.name).write_text(p.read_text())
    n = len(ids)
    maxima = np.array([2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    clips = pd.DataFrame(
        {
            "clip_id": ids,
            "scale": maxima - 0.5,
            "scale_max": maxima,
            "scale_min": maxima - 1,
            "scale_spread": 0.1,
            "n_frames": 16,
            "n_points": 100,
            "status": "ok",
            "reason": "",
        }
    )
    clips.loc[2, ["scale", "scale_max", "scale_min", "status"]] = [np.nan, np.nan, np.nan, "failed"]
    frames = pd.DataFrame(
        {
            "clip_id": np.repeat(ids, 2),
            "frame": np.tile([0, 1], n),
            "timestamp": 0,
            "scale": np.repeat(maxima - 0.25, 2),
            "n_points": 50,
        }
    )
    frames.loc[frames["clip_id"] == ids[3], "scale"] = [np.nan, 9.0]  # frame 0 without factor
    scales = tmp_path / "scales"
    scales.mkdir()
    clips.to_parquet(scales / "clips.parquet")
    frames.to_parquet(scales / "frames.parquet")
    keep, dropped = run_filter(scales, ds, tmp_path / "out", quantile=0.02)
    assert sorted(keep["clip_id"]) == sorted([ids[1], ids[3], ids[4]])
    rule = dict(zip(dropped["clip_id"], dropped["rule"]))
    assert rule[ids[0]] == "max_low;min_low" and rule[ids[5]] == "max_high;min_high"
    assert rule[ids[2]].startswith("no_scale")
    factors = dict(zip(keep["clip_id"], keep["scale"]))
    assert factors[ids[1]] == 3.0 - 0.25  # frame 0's factor
    assert factors[ids[3]] == 5.0 - 0.5  # clip median: frame 0 has none
    table = pd.read_parquet(tmp_path / "out" / "cameras.parquet")
    for cid in keep["clip_id"]:
        src = cam.read_re10k(ds / "cameras" / f"{cid}.txt")
        out = cam.read_re10k(tmp_path / "out" / "cameras" / f"{cid}.txt")
        np.testing.assert_array_equal(out.w2c[:, :3, :3], src.w2c[:, :3, :3])
        np.testing.assert_allclose(out.w2c[:, :3, 3], src.w2c[:, :3, 3] * factors[cid], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(out.c2w[:, :3, 3], src.c2w[:, :3, 3] * factors[cid], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(out.intrinsics, src.intrinsics)
        rows = table[table["clip_id"] == cid]
        np.testing.assert_allclose(rows[["t1", "t2", "t3"]].to_numpy(), src.w2c[:, :3, 3] * factors[cid], rtol=1e-15)
        np.testing.assert_array_equal(rows["r12"].to_numpy(), src.w2c[:, 0, 1])
    assert not (tmp_path / "out" / "cameras" / f"{ids[0]}.txt").exists()
