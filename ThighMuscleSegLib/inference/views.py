"""View reformats: the 3-channel 2D inputs of one view, gathered a batch at a time.

A view slices the grid along one axis (axial: z, coronal: y, sagittal: x). The input of
slice ``i`` stacks slices ``i + o`` for each channel offset ``o`` (in voxels; -2, 0, +2 at
2 mm for the paper's ±4 mm). Offsets beyond either end of the grid are clamped to the
end slice (edge replication): the missing neighbour is replaced by the nearest real
anatomy, which keeps every channel inside the intensity distribution the net was trained
on, whereas zero padding would invent an all-fat slice the net never saw.

Nothing here copies the volume per channel: each batch is one ``index_select`` of the
rows it needs, so a view costs one batch of memory, not three volumes.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..models.settings import VIEW_AXES


def view_axis(view: str) -> int:
    try:
        return VIEW_AXES[view]
    except KeyError:
        raise ValueError(f"unknown view {view!r}; views are {tuple(VIEW_AXES)}") from None


def gather_slices(volume: torch.Tensor, axis: int, start: int, stop: int,
                  offsets: Sequence[int]) -> torch.Tensor:
    """Inputs (B, C, H, W) for slices start..stop-1 along ``axis`` of a (z, y, x) volume.

    Channel c of slice i is slice clamp(i + offsets[c]) of the volume; H, W are the two
    remaining axes in their grid order (coronal: z, x; sagittal: z, y).
    """
    return gather_rows(volume, axis, torch.arange(start, stop, device=volume.device), offsets)


def gather_rows(volume: torch.Tensor, axis: int, rows: torch.Tensor, offsets: Sequence[int]) -> torch.Tensor:
    """``gather_slices`` for any slice indices ``rows`` (1-D), in their order (the lanes skip
    all-zero slices, so their batches are not consecutive)."""
    n = volume.shape[axis]
    index = (rows[:, None] + torch.as_tensor(list(offsets), device=volume.device)[None, :]).clamp_(0, n - 1)
    picked = volume.index_select(axis, index.reshape(-1)).movedim(axis, 0)  # (B*C, H, W)
    return picked.reshape(index.shape[0], index.shape[1], *picked.shape[1:])


def scatter_view(target: torch.Tensor, axis: int, start: int, batch_out: torch.Tensor) -> None:
    """Add a batch of per-slice maps (B, K, H, W) into a (K, z, y, x) volume, in place."""
    placed = batch_out.movedim(0, 1).movedim(1, axis + 1)  # (K, ...B at the view axis...)
    target.narrow(axis + 1, start, batch_out.shape[0]).add_(placed)


def place_slices(target: torch.Tensor, axis: int, start: int, batch_map: torch.Tensor) -> None:
    """Write per-slice maps (B, H, W) into a (z, y, x) volume, in place."""
    target.narrow(axis, start, batch_map.shape[0]).copy_(batch_map.movedim(0, axis))
