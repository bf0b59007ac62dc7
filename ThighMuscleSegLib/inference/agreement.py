"""Per-class evidence of how sure the views were about one thigh's result (for the quality flag).

For each model class k (0 background, 1-10 the muscles) of one framed thigh:

- ``voxels``: voxels of k in the result (after clean-up);
- ``fused_voxels``: voxels of k after fusion, before clean-up (so ``1 - voxels/fused_voxels`` is
  the share the largest-component clean-up removed);
- ``view_dice``: the mean over the views of the Dice overlap between that view's own argmax
  mask of k and the result's mask of k (1 = every view drew exactly the result);
- ``margin``: the mean, over the result's voxels of k, of the probability margin
  ``p(result label) - max_{j != result label} p(j)``, with p the views' mean softmax
  probability (1 = every view was certain; near 0 or negative = a coin toss).

Beside them, ``shape`` (``shape_evidence``): how the result itself looks, slice to slice and
against the image it was drawn on (what is left to see when the views agree on a mistake).

All four are cheap: one joint histogram per view and one chunked pass over the summed
probabilities (11 x 16 slices at a time), never a copy of the whole probability volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .shape_evidence import ShapeStats, shape_stats

CHUNK_SLICES = 16


@dataclass(frozen=True)
class ClassStats:
    """Per model class 0..K-1 of one thigh (arrays of length K)."""

    voxels: np.ndarray  # int64
    fused_voxels: np.ndarray  # int64
    view_dice: np.ndarray  # float64, nan where neither the views nor the result hold the class
    margin: np.ndarray  # float64, nan where the result holds no voxel of the class
    n_views: int
    shape: ShapeStats | None = None

    def removed_share(self, k: int) -> float:
        fused = int(self.fused_voxels[k])
        return (fused - int(self.voxels[k])) / fused if fused else 0.0


def _joint(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """k x k joint histogram of two uint8 label volumes (rows: a, columns: b)."""
    counts = np.zeros(k * k, np.int64)
    fa, fb = a.reshape(-1), b.reshape(-1)
    step = 1 << 20
    for s in range(0, fa.size, step):
        counts += np.bincount(fa[s:s + step].astype(np.int64) * k + fb[s:s + step], minlength=k * k)[:k * k]
    return counts.reshape(k, k)


def class_stats(view_labels: Sequence[np.ndarray] | Mapping[str, np.ndarray], prob_sum: np.ndarray,
                fused: np.ndarray, labels: np.ndarray, grid_hu: np.ndarray | None = None) -> ClassStats:
    """Statistics of ``labels`` (the cleaned result) against the views that made it.

    ``prob_sum``: (K, z, y, x) float32 softmax probabilities summed over the views;
    ``fused``: the labels before clean-up; ``grid_hu``: the framed CT the views saw (for the
    image evidence of ``shape_evidence``; None: those two measures are NaN)."""
    views = list(view_labels.values()) if isinstance(view_labels, Mapping) else list(view_labels)
    k = prob_sum.shape[0]
    n = max(len(views), 1)
    result = np.bincount(labels.reshape(-1), minlength=k)[:k].astype(np.int64)
    fused_counts = np.bincount(fused.reshape(-1), minlength=k)[:k].astype(np.int64)
    dice_sum = np.zeros(k)
    for view in views:
        joint = _joint(view, labels, k)
        denom = joint.sum(axis=1) + joint.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            dice_sum += np.where(denom > 0, 2.0 * np.diag(joint) / denom, np.nan)
    view_dice = dice_sum / n if views else np.full(k, np.nan)
    margin_sum = np.zeros(k)
    for z0 in range(0, labels.shape[0], CHUNK_SLICES):
        z = slice(z0, z0 + CHUNK_SLICES)
        p = prob_sum[:, z] / n  # a copy: the runner-up is found by blanking the winner
        lab = labels[z].astype(np.intp)[None]
        win = np.take_along_axis(p, lab, axis=0)[0]
        np.put_along_axis(p, lab, -np.inf, axis=0)
        margin = win - p.max(axis=0)
        margin_sum += np.bincount(labels[z].reshape(-1), weights=margin.reshape(-1), minlength=k)[:k]
    with np.errstate(invalid="ignore", divide="ignore"):
        margin_mean = np.where(result > 0, margin_sum / np.maximum(result, 1), np.nan)
    return ClassStats(result, fused_counts, view_dice, margin_mean, len(views), shape_stats(labels, grid_hu, k))
