"""Inference on one framed thigh: view reformats, batched prediction, fusion, clean-up.

The work runs views -> nets -> vote -> clean. Imports flow one way (Testing/test_import_graph.py
checks that the library has no import cycle): ``predict`` (the entry point, the 2D views' nets)
uses ``views``, ``device``, ``sliding3d`` (3D models) and ``fusion``; ``fusion`` uses ``voting``,
``cleanup`` and ``agreement``; all build ``prediction.ThighPrediction``, which imports no step
(only agreement's ClassStats).
"""

from .agreement import ClassStats, class_stats
from .cleanup import keep_largest_components
from .device import resolve_device
from .fusion import fuse_and_clean
from .predict import DEFAULT_BATCH_SIZE, infer_views, predict_thigh
from .prediction import ThighPrediction, ViewOutputs
from .views import gather_slices
from .voting import FUSIONS, disagreement, fuse, mean_fusion, vote

__all__ = ["ClassStats", "DEFAULT_BATCH_SIZE", "FUSIONS", "ThighPrediction", "ViewOutputs", "class_stats",
           "disagreement", "fuse", "fuse_and_clean", "gather_slices", "infer_views", "keep_largest_components",
           "mean_fusion", "predict_thigh", "resolve_device", "vote"]
