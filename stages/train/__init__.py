"""``train``: the dataset of metric-scale clips and the DeepSpeed loop that fits the camera modules."""

from .data import ClipDataset, RankBatches, load_clips
from .loop import TrainConfig, train

__all__ = ["ClipDataset", "RankBatches", "TrainConfig", "load_clips", "train"]
