"""View reformats: the 3-channel 2D inputs of one view, gathered a batch at a time.

A view slices the grid along one axis (axial: z, coronal: y, sagittal: x). The input of
slice ``i`` stacks slices ``i + o`` for each channel offset ``o`` (in voxels; -2, 0, +2 at
2 mm for the paper's ±4 mm). Offsets beyond either end of the grid are clamped to the
end slice (edge replication): the missing neighbour is replaced by the nearest real
anatomy, which keeps every channel inside the intensity distribution the net was trained
on, whereas zero padding would invent an all-fat slice the net never saw.

Nothing here copies the volume per channel: each batch is one ``np.take`` of the
rows it needs, so a view costs one batch of memory, not three volumes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..models.settings import VIEW_AXES


def view_axis(view: str) -> int:
    try:
        return VIEW_AXES[view]
    except KeyError:
        raise ValueError(f"unknown view {view!r}; views are {tuple(VIEW_AXES)}") from None


def gather_slices(volume: np.ndarray, axis: int, start: int, stop: int, offsets: Sequence[int]) -> np.ndarray:
    """Inputs (B, C, H, W) for slices start..stop-1 along ``axis`` of a (z, y, x) volume.

    Channel c of slice i is slice clamp(i + offsets[c]) of the volume; H, W are the two
    remaining axes in their grid order (coronal: z, x; sagittal: z, y).
    """
    return gather_rows(volume, axis, np.arange(start, stop), offsets)


def gather_rows(volume: np.ndarray, axis: int, rows: np.ndarray, offsets: Sequence[int]) -> np.ndarray:
    """``gather_slices`` for any slice indices ``rows`` (1-D), in their order (the lanes skip
    all-zero slices, so their batches are not consecutive). A new C-contiguous array."""
    n = volume.shape[axis]
    index = np.clip(np.asarray(rows)[:, None] + np.asarray(offsets)[None, :], 0, n - 1)
    picked = np.moveaxis(np.take(volume, index.reshape(-1), axis=axis), axis, 0)  # (B*C, H, W)
    return np.ascontiguousarray(picked).reshape(index.shape[0], index.shape[1], *picked.shape[1:])
