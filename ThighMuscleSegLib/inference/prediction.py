"""What inference hands on: one thigh's prediction (any architecture) and the 2D views' raw outputs.

Its own module so that every way of predicting (``predict``: 2D / 2.5D views, ``sliding3d``:
the 3D baseline) builds the same result without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .agreement import ClassStats


@dataclass
class ThighPrediction:
    labels: np.ndarray  # uint8 (z, y, x), model ids 0..10, after clean-up
    fused_labels: np.ndarray  # uint8, the fused labels before clean-up
    disagreement: np.ndarray  # uint8, views whose vote differs from fused_labels (0..n_views)
    confidence: np.ndarray  # float16, mean probability of the fused label over the views
    view_labels: dict[str, np.ndarray]  # uint8 argmax of each view
    fusion: str
    device: str
    seconds: dict[str, float] = field(default_factory=dict)  # per view, fuse, clean
    stats: ClassStats | None = None  # per class: views' agreement with the result (quality flag)


@dataclass
class ViewOutputs:
    """What the nets said about one thigh, before fusion (``fuse_and_clean`` makes the result)."""

    view_labels: dict[str, np.ndarray]  # uint8 argmax of each view
    prob_sum: np.ndarray  # float32 (K, z, y, x): softmax probabilities summed over the views
    device: str
    seconds: dict[str, float] = field(default_factory=dict)
    grid_hu: np.ndarray | None = None  # the framed CT (HU) the views saw: the quality flag's image evidence
