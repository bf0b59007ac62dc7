"""Inference on one framed thigh: view reformats, batched prediction, fusion, clean-up."""

from .cleanup import keep_largest_components
from .device import resolve_device
from .predict import DEFAULT_BATCH_SIZE, ThighPrediction, predict_thigh
from .views import gather_slices
from .voting import FUSIONS, disagreement, fuse, mean_fusion, vote

__all__ = ["DEFAULT_BATCH_SIZE", "FUSIONS", "ThighPrediction", "disagreement", "fuse", "gather_slices",
           "keep_largest_components", "mean_fusion", "predict_thigh", "resolve_device", "vote"]
