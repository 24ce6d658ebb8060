"""``realcam poses`` on synthetic clips with known cameras, depth and (for dynamic clips) motion masks,
rendered along the bundled RealEstate10K trajectories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from realcam_cli.app import app
from stages.core import cameras as cam
from stages.core.video import read_image, write_image
from stages.evaluate.metrics import ate_aligned
from stages.poses import pipeline as pp
from stages.poses import sfm
from stages.settings import PosesSettings
from stages.train.data import load_clips

runner = CliRunner()
SIZE = "192x128"
CLIP = "0f47577ab3441480"


@pytest.fixture(scope="module")
def static_clip(tmp_path_factory, pose_files):
    root = tmp_path_factory.mktemp("poses_static")
    poses = next(p for p in pose_files if p.stem == CLIP)
    res = runner.invoke(
        app, ["synth", "--poses", str(poses), "--out", str(root / "ds"), "--size", SIZE, "--scale", "1"]
    )
    assert res.exit_code == 0, res.output
    videos = root / "videos"
    videos.mkdir()
    (videos / CLIP).symlink_to(root / "ds" / "frames" / CLIP)  # a folder of timestamped frames
    return root


def _truth(root: Path, clip: str = CLIP):
    cams = cam.read_re10k(root / "ds" / "cameras" / f"{clip}.txt")
    return cams, cam.relative_poses(cams.c2w, reference=0)


def test_static_clip_metric_cameras_focal_and_factor(static_clip, tmp_path):
    out = tmp_path / "dataset"
    args = ["poses", str(static_clip / "videos"), "--out", str(out), "--fps", "30", "--mask-method", "none"]
    res = runner.invoke(app, [*args, "--depth", str(static_clip / "ds" / "depth_gt"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output
    table = pd.read_parquet(out / pp.POSES_TABLE).set_index("clip_id")
    row = table.loc[CLIP]
    assert row["status"] == "ok" and row["registered"] == 16 and bool(row["kept"])
    cams, truth = _truth(static_clip)
    est = cam.read_re10k(out / "cameras" / f"{CLIP}.txt")
    assert np.array_equal(est.timestamps, cams.timestamps)
    # focal length within 2 % (the synthetic camera has square pixels)
    assert abs(est.intrinsics[0, 0] / cams.intrinsics[0, 0] - 1) < 0.02
    # metric: the estimated path has the true scale (within 2 %) and shape (ATE, no scale fitted)
    c2w = cam.relative_poses(est.c2w, reference=0)
    extent = lambda p: np.linalg.norm(p[:, :3, 3], axis=1).max()
    assert abs(extent(c2w) / extent(truth) - 1) < 0.02
    ate = ate_aligned(c2w, truth)
    assert ate["ate_trans"] < 0.02 * extent(truth) and ate["ate_rot_deg"] < 1.0
    assert abs(ate["ate_scale"] - 1) < 0.02
    # the dataset is what train takes: keep.parquet, metric cameras, frames
    clips, skipped = load_clips(out, out)
    assert [c.clip_id for c in clips] == [CLIP] and not skipped
    assert len(list((out / "masks" / CLIP).glob("*.png"))) == 16
    # re-running skips the clip
    res = runner.invoke(app, [*args, "--depth", str(static_clip / "ds" / "depth_gt")])
    assert res.exit_code == 0 and "1 skipped as done earlier" in res.output, res.output


def test_a_video_is_sampled_at_the_requested_rate(static_clip, tmp_path):
    from stages.core.video import write_clip_video

    cams, _ = _truth(static_clip)
    frames = np.stack([read_image(static_clip / "ds" / "frames" / CLIP / f"{t}.png") for t in cams.timestamps])
    ts = cams.timestamps - cams.timestamps[0]
    video = write_clip_video(tmp_path / "clip.mp4", frames, ts)
    got, stamps = pp.sample_frames(video, fps=2.0, input_fps=30)
    assert np.allclose(np.diff(stamps), 500_000, atol=1)
    for g, t in zip(got, stamps):  # each sample is the clip's frame nearest to its time
        assert np.array_equal(g, frames[np.argmin(np.abs(ts - t))])


def test_fragmented_clip_is_rejected_with_the_reason(static_clip, tmp_path):
    src = static_clip / "ds" / "frames" / CLIP
    broken = tmp_path / "videos" / "broken"
    broken.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, f in enumerate(sorted(src.glob("*.png"))):
        image = read_image(f)
        if i in (5, 6):  # two frames of unrelated noise: never registered
            image = rng.integers(0, 255, image.shape, dtype=np.uint8)
        write_image(broken / f.name, image)
    s = PosesSettings(fps=30, mask_method="none", min_registered=1.0, depth_dir=str(static_clip / "ds" / "depth_gt"))
    result = pp.pose_clip("broken", broken, s.check(), static_clip / "ds" / "depth_gt" / f"{CLIP}.npz")
    assert result.row["status"] == pp.REJECTED and "registered" in result.row["reason"]
    noise = {int(sorted(src.glob("*.png"))[i].stem) for i in (5, 6)}
    assert noise <= {int(t) for t in result.row["unregistered"].split()}  # the frames that did not register


def test_sampson_distance_and_fundamental_matrix_of_known_motion():
    rng = np.random.default_rng(1)
    k = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])
    c2w_i = np.eye(4)
    c2w_j = np.eye(4)
    c2w_j[:3, 3] = [0.3, 0.05, 0.1]
    pts = rng.uniform([-1, -1, 3], [1, 1, 6], (50, 3))
    x_i = cam.project(pts, cam.invert_pose(c2w_i), k)[0]
    x_j = cam.project(pts, cam.invert_pose(c2w_j), k)[0]
    f = sfm.fundamental(k, c2w_i, c2w_j)
    assert np.abs(sfm.sampson(x_i, x_j, f)).max() < 1e-6
    moved = x_j + np.array([0.0, 5.0])  # off the epipolar lines (motion along y, baseline along x)
    assert np.median(sfm.sampson(x_i, moved, f)) > 2.0


def _tiny_segformer(folder: Path) -> Path:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    labels = {0: "wall", 1: "person;individual;someone", 2: "car;auto;automobile", 3: "floor;flooring"}
    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 1],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        num_labels=4,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def test_segmentation_masks_are_the_moving_classes(tmp_path):
    import torch
    import torch.nn.functional as F
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from stages.poses.segment import dynamic_ids, segment_masks

    folder = _tiny_segformer(tmp_path / "seg")
    assert dynamic_ids({0: "wall", 1: "person;individual", 2: "car, auto", 3: "sky"}) == [1, 2]
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 56, 3), dtype=np.uint8)
    masks = segment_masks(frames, str(folder))
    processor = AutoImageProcessor.from_pretrained(folder)
    net = AutoModelForSemanticSegmentation.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = net(**processor(images=list(frames), return_tensors="pt")).logits
    labels = F.interpolate(logits, size=(40, 56), mode="bilinear", align_corners=False).argmax(1).numpy()
    assert np.array_equal(masks, np.isin(labels, [1, 2]))
    videos = tmp_path / "videos" / "clip"
    videos.mkdir(parents=True)
    write_image(videos / "0.png", frames[0])
    res = runner.invoke(app, ["poses", str(videos.parent), "--out", str(tmp_path / "o"), "--mask-model", str(tmp_path)])
    assert res.exit_code == 2 and "cannot load the segmentation model" in res.output, res.output
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def dynamic_clip(tmp_path_factory, pose_files):
    root = tmp_path_factory.mktemp("poses_dynamic")
    poses = next(p for p in pose_files if p.stem == CLIP)
    args = ["synth", "--poses", str(poses), "--out", str(root / "ds"), "--size", SIZE, "--scale", "1", "--dynamic"]
    res = runner.invoke(app, [*args, "--moving-share", "0.3", "0.4"])
    assert res.exit_code == 0, res.output
    (root / "videos").mkdir()
    (root / "videos" / CLIP).symlink_to(root / "ds" / "frames" / CLIP)
    return root


def _ate(root: Path, out: Path) -> tuple[float, float, float]:
    """(ATE as a share of the true extent, metric factor error, focal error) of a posed clip."""
    cams, truth = _truth(root)
    est = cam.read_re10k(out / "cameras" / f"{CLIP}.txt")
    keep = np.isin(cams.timestamps, est.timestamps)
    truth = cam.relative_poses(cams.c2w[keep], reference=0)
    c2w = cam.relative_poses(est.c2w, reference=0)
    extent = np.linalg.norm(truth[:, :3, 3], axis=1).max()
    factor = np.linalg.norm(c2w[:, :3, 3], axis=1).max() / extent - 1
    return ate_aligned(c2w, truth)["ate_trans"] / extent, factor, est.intrinsics[0, 0] / cams.intrinsics[0, 0] - 1


def test_masks_make_dynamic_clips_accurate_and_the_geometric_masks_find_the_movers(dynamic_clip, tmp_path):
    ds = dynamic_clip / "ds"
    common = ["--fps", "30", "--depth", str(ds / "depth_gt"), "--workers", "1"]
    results = {}
    for way, extra in (("truth", ["--masks", str(ds / "masks"), "--dilate", "2"]), ("none", ["--mask-method", "none"])):
        res = runner.invoke(app, ["poses", str(dynamic_clip / "videos"), "--out", str(tmp_path / way), *common, *extra])
        assert res.exit_code == 0, res.output
        results[way] = _ate(dynamic_clip, tmp_path / way)
    ate, factor, focal = results["truth"]
    assert ate < 0.01 and abs(factor) < 0.02 and abs(focal) < 0.02, results
    assert ate < results["none"][0], results  # the moving boxes mislead SfM without masks
    # the built-in geometric masks overlap the true ones
    s = PosesSettings(fps=30, mask_method="geometric", depth_dir=str(ds / "depth_gt")).check()
    got = pp.pose_clip(CLIP, ds / "frames" / CLIP, s, ds / "depth_gt" / f"{CLIP}.npz")
    truth = np.stack([read_image(ds / "masks" / CLIP / f"{t}.png") for t in got.timestamps])
    truth = (truth if truth.ndim == 3 else truth[..., 0]) > 0
    iou = (got.masks & truth).sum() / (got.masks | truth).sum()
    assert iou > 0.3, iou
