"""The ``evaluate`` stage (docs/method.md#camera-metrics): SfM pose estimation of videos (``sfm``), camera
metrics (``metrics``), FVD (``fvd``), synchronization of re-rendered videos with their sources (``sync``,
docs/method.md#synchronization-metrics) and the stage entry ``evaluate`` (``run``)."""

from .metrics import METRIC_COLUMNS, ate_aligned, camera_metrics, cammc, rot_err, trans_err, umeyama
from .run import PER_TRIAL, PER_VIDEO, SUMMARY, evaluate, evaluate_video, find_samples, summarize
from .sfm import SfmTrial, estimate_poses

__all__ = [
    "METRIC_COLUMNS",
    "PER_TRIAL",
    "PER_VIDEO",
    "SUMMARY",
    "SfmTrial",
    "ate_aligned",
    "camera_metrics",
    "cammc",
    "estimate_poses",
    "evaluate",
    "evaluate_video",
    "find_samples",
    "rot_err",
    "summarize",
    "trans_err",
    "umeyama",
]
