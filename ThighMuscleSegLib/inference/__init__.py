"""Inference on one framed thigh: view reformats, batched prediction, fusion, clean-up."""

from .agreement import ClassStats, class_stats
from .cleanup import keep_largest_components
from .device import resolve_device
from .predict import DEFAULT_BATCH_SIZE, ThighPrediction, ViewOutputs, fuse_and_clean, infer_views, predict_thigh
from .views import gather_slices
from .voting import FUSIONS, disagreement, fuse, mean_fusion, vote

__all__ = ["ClassStats", "DEFAULT_BATCH_SIZE", "FUSIONS", "ThighPrediction", "ViewOutputs", "class_stats",
           "disagreement", "fuse", "fuse_and_clean", "gather_slices", "infer_views", "keep_largest_components",
           "mean_fusion", "predict_thigh", "resolve_device", "vote"]
