"""Soft multi-class Dice loss (the paper's loss)."""

from __future__ import annotations

import torch


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over classes.

    logits (N, K, *spatial), target (N, *spatial) int64 class ids. Sums run over the whole
    batch, so a class absent from one slice does not dominate; ``eps`` keeps classes absent
    from the batch (and not predicted) near Dice 1 instead of 0/0.
    """
    k = logits.shape[1]
    probs = torch.softmax(logits.float(), dim=1)
    onehot = torch.nn.functional.one_hot(target, k).movedim(-1, 1).float()
    dims = (0,) + tuple(range(2, logits.ndim))
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * inter + eps) / (denom + eps)).mean()
