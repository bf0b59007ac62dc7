"""Fusing the views: winner-takes-all voting (the paper) or mean probability, and disagreement.

Voting rule, exactly: each view votes for its own argmax class at the voxel. The class
with the most votes wins. A tie between the top-voted classes (with three views: all
three differ) goes to the tied class with the highest probability summed over all views;
without probabilities it goes to the first view's (axial) vote. Implemented as one
argmax of ``votes * (n_views + 1) + summed_probability``: the summed probability is
below n_views + 1, so it can only decide between classes with equal votes, and a class
with no vote can never win.

Mean fusion: the argmax of the probability summed over the views (same as the mean).

Disagreement: per voxel, the number of views whose vote differs from the fused label
before clean-up (0 = all agree .. n_views), uint8.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

FUSIONS = ("vote", "mean")
CHUNK_SLICES = 16  # z-slices per step: bounds the (classes x chunk) float32 score buffer


def vote(view_labels: Sequence[np.ndarray], num_classes: int,
         prob_sum: np.ndarray | None = None) -> np.ndarray:
    """Winner-takes-all labels (uint8) from per-view labels; ``prob_sum`` is (K, z, y, x)."""
    labels = _check_views(view_labels)
    n = len(labels)
    out = np.empty(labels[0].shape, np.uint8)
    for z0 in range(0, out.shape[0], CHUNK_SLICES):
        z = slice(z0, z0 + CHUNK_SLICES)
        score = np.zeros((num_classes,) + labels[0][z].shape, np.float32)
        for k in range(num_classes):
            votes = sum((lab[z] == k).astype(np.float32) for lab in labels)
            score[k] = votes * (n + 1)
            if prob_sum is not None:
                score[k] += prob_sum[k, z]
            else:
                score[k] += 0.5 * (labels[0][z] == k)  # ties go to the first view
        out[z] = score.argmax(axis=0)
    return out


def mean_fusion(prob_sum: np.ndarray) -> np.ndarray:
    """Labels (uint8) of the highest mean probability over the views."""
    out = np.empty(prob_sum.shape[1:], np.uint8)
    for z0 in range(0, out.shape[0], CHUNK_SLICES):
        out[z0:z0 + CHUNK_SLICES] = prob_sum[:, z0:z0 + CHUNK_SLICES].argmax(axis=0)
    return out


def fuse(view_labels: Sequence[np.ndarray], prob_sum: np.ndarray, fusion: str = "vote") -> np.ndarray:
    if fusion == "vote":
        return vote(view_labels, prob_sum.shape[0], prob_sum)
    if fusion == "mean":
        return mean_fusion(prob_sum)
    raise ValueError(f"fusion must be one of {FUSIONS}, not {fusion!r}")


def disagreement(view_labels: Sequence[np.ndarray], fused: np.ndarray) -> np.ndarray:
    """Number of views (uint8) whose label differs from ``fused`` at each voxel."""
    labels = _check_views(view_labels)
    out = np.zeros(fused.shape, np.uint8)
    for lab in labels:
        out += lab != fused
    return out


def _check_views(view_labels: Sequence[np.ndarray]) -> list[np.ndarray]:
    labels = [np.asarray(v) for v in view_labels]
    if not labels:
        raise ValueError("no view labels to fuse")
    if any(v.shape != labels[0].shape for v in labels):
        raise ValueError(f"view label volumes differ in shape: {[v.shape for v in labels]}")
    return labels
