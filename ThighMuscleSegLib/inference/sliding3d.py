"""The 3D U-Net baseline: sliding-window inference over the whole thigh grid.

Patches of ``settings.patch_shape`` (shrunk to the grid where the grid is smaller) step
by half a patch; each patch's softmax is weighted by a separable Gaussian (sigma = 1/8 of
the patch side) so voxels near a patch border, which see less context, count less. The
weighted sum is divided by the summed weights, then argmax. Memory: one float32
(classes x grid) accumulator (130 MB at full grid) plus one patch of activations.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..models.model_file import Model
from ..models.settings import VOLUME_VIEW
from . import cleanup
from .agreement import class_stats
from .device import autocast_for
from .prediction import ThighPrediction

OVERLAP = 0.5


def window_starts(size: int, patch: int, overlap: float = OVERLAP) -> list[int]:
    """Patch start positions covering 0..size, the last one flush with the end."""
    if patch >= size:
        return [0]
    step = max(1, int(patch * (1.0 - overlap)))
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def gaussian_weights(patch: tuple[int, ...], device: torch.device) -> torch.Tensor:
    weights = torch.ones((), device=device)
    for n in patch:
        r = torch.arange(n, device=device, dtype=torch.float32) - (n - 1) / 2
        g = torch.exp(-0.5 * (r / max(n / 8.0, 1e-3)) ** 2)
        weights = weights[..., None] * (g / g.max())
    return weights.clamp_(min=1e-3)  # no voxel may end with zero weight


def predict_volume_3d(volume: torch.Tensor, model: Model, dev: torch.device, progress=None,
                      clean: bool = True) -> ThighPrediction:
    """ThighPrediction of the 3D baseline from a windowed (z, y, x) volume on ``dev``."""
    t0 = time.perf_counter()
    settings = model.settings
    net = model.net(VOLUME_VIEW).to(dev).eval()
    patch = tuple(min(p, s) for p, s in zip(settings.patch_shape, volume.shape))
    weights = gaussian_weights(patch, dev)
    acc = torch.zeros((settings.num_classes,) + tuple(volume.shape), dtype=torch.float32, device=dev)
    norm = torch.zeros(tuple(volume.shape), dtype=torch.float32, device=dev)
    corners = [(z, y, x) for z in window_starts(volume.shape[0], patch[0])
               for y in window_starts(volume.shape[1], patch[1])
               for x in window_starts(volume.shape[2], patch[2])]
    for n, corner in enumerate(corners):
        box = tuple(slice(c, c + p) for c, p in zip(corner, patch))
        with autocast_for(dev):
            logits = net(volume[box][None, None])
        acc[(slice(None),) + box] += logits.float().softmax(dim=1)[0] * weights
        norm[box] += weights
        if progress is not None:
            progress.update("infer", (n + 1) / len(corners), f"3D patch {n + 1}/{len(corners)}")
    acc /= norm
    best, raw = acc.max(dim=0)
    raw_np = raw.to(torch.uint8).cpu().numpy()
    seconds = {VOLUME_VIEW: time.perf_counter() - t0}
    t0 = time.perf_counter()
    labels = cleanup.keep_largest_components(raw_np) if clean else raw_np.copy()
    seconds["clean"] = time.perf_counter() - t0
    stats = class_stats({VOLUME_VIEW: raw_np}, acc.cpu().numpy(), raw_np, labels)  # one "view"
    return ThighPrediction(labels, raw_np, np.zeros(raw_np.shape, np.uint8),
                           best.to(torch.float16).cpu().numpy(), {VOLUME_VIEW: raw_np},
                           "none", str(dev), seconds, stats)
