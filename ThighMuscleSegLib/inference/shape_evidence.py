"""What one thigh's result looks like, muscle by muscle: evidence for the quality flag that the
views' agreement cannot give.

When all three views make the same mistake they agree, and ``agreement`` sees a confident
result. What is left to see is the result itself against the image it was drawn on, on the
model grid (2 mm, the femur along z):

- ``area_step``: the largest change of the muscle's cross-section area between neighbouring
  slices, over its median area. Muscles taper smoothly; a part of a muscle eroded, moved or
  lost over some slices starts and ends with a step.
- ``centroid_step``: the largest jump of the cross-section's centre between neighbouring slices
  (voxels), where both sections hold at least a quarter of the median area (the tapering ends
  wander and are left out). A misplaced stretch of muscle jumps.
- ``unclaimed_rim``: the share of the one-voxel in-plane rim around the muscle that no muscle
  holds and that reads as muscle (``MUSCLE_HU``): a muscle drawn too small leaves its own edge
  outside it; a right one ends at fat, bone or its neighbour.
- ``foreign_tissue``: the share of the muscle's voxels that read as fat or bone
  (``FOREIGN_HU``): a muscle drawn over the subcutaneous fat or the femur.
- ``angle``, ``radius``: where the muscle lies around the femur (the field's axis): the
  area-weighted circular mean direction of its sections' centres (radians, atan2 of y and x
  of the grid), and their mean distance from the axis over the radius of a disc as large as
  all muscle of the slice. Not signs of failure themselves: the quality flag compares them
  with where the muscle lies in other bodies (quality_positions.py), which catches two
  muscles swapped consistently by every view.

Each is 0 for a smooth, well-placed result. Without the grid's HU (a caller that has none)
the two image features are NaN, which the flag reads as "no evidence".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Skeletal muscle reads -29..150 HU (Mitsiopoulos et al. 1998, J Appl Physiol 85:115; the range
# of most body-composition CT work); the lower bound is raised to -10 HU here so that a 2 mm
# voxel half filled by a thin fat septum (about -25 HU) is not taken for muscle.
MUSCLE_HU = (-10.0, 150.0)
# Clearly not muscle: fat (below -50 HU; adipose tissue -190..-30, Mitsiopoulos 1998, less the
# partial volume of a muscle border) or bone (above 300 HU: cortex, not marrow).
FOREIGN_HU = (-50.0, 300.0)
MIN_SECTION_SHARE = 0.25  # of the median area: sections the centroid step considers

_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class ShapeStats:
    """Per model class 0..K-1 of one thigh (arrays of length K; NaN where the class is absent)."""

    area_step: np.ndarray
    centroid_step: np.ndarray
    unclaimed_rim: np.ndarray
    foreign_tissue: np.ndarray
    angle: np.ndarray
    radius: np.ndarray


def shape_stats(labels: np.ndarray, grid_hu: np.ndarray | None, num_classes: int) -> ShapeStats:
    """The four measures of every muscle class of ``labels`` (model ids, (z, y, x)); ``grid_hu``:
    the framed CT on the same grid, or None."""
    out = {name: np.full(num_classes, np.nan) for name in ("area_step", "centroid_step", "unclaimed_rim",
                                                           "foreign_tissue", "angle", "radius")}
    boxes = ndimage.find_objects(labels, max_label=num_classes - 1)
    muscle_area = (labels > 0).sum(axis=(1, 2)).astype(np.float64)
    for k, box in enumerate(boxes, start=1):
        if box is None:
            continue
        box = _padded(box, labels.shape)
        mask = labels[box] == k
        out["area_step"][k], out["centroid_step"][k] = _profile_steps(mask)
        out["angle"][k], out["radius"][k] = _position(mask, box, labels.shape, muscle_area[box[0]])
        if grid_hu is not None:
            hu = grid_hu[box]
            out["unclaimed_rim"][k] = _unclaimed_rim(mask, labels[box] == 0, hu)
            out["foreign_tissue"][k] = float(((hu[mask] < FOREIGN_HU[0]) | (hu[mask] > FOREIGN_HU[1])).mean())
    return ShapeStats(**out)


def _padded(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The bounding box grown by one voxel in-plane (where the rim lies)."""
    z, y, x = box
    return (z, slice(max(y.start - 1, 0), min(y.stop + 1, shape[1])),
            slice(max(x.start - 1, 0), min(x.stop + 1, shape[2])))


def _profile_steps(mask: np.ndarray) -> tuple[float, float]:
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    present = area > 0
    median = float(np.median(area[present]))
    if area.size < 2:
        return 0.0, 0.0
    area_step = float(np.abs(np.diff(area)).max()) / median
    ys = np.arange(mask.shape[1], dtype=np.float64)
    xs = np.arange(mask.shape[2], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (mask.sum(axis=2) * ys).sum(axis=1) / area
        cx = (mask.sum(axis=1) * xs).sum(axis=1) / area
    big = area >= MIN_SECTION_SHARE * median
    pairs = big[1:] & big[:-1]
    if not pairs.any():
        return area_step, 0.0
    jumps = np.hypot(np.diff(cy), np.diff(cx))[pairs]
    return area_step, float(jumps.max())


def _position(mask: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...],
              muscle_area: np.ndarray) -> tuple[float, float]:
    """(angle, relative radius) of the muscle around the field's axis (see the module docstring)."""
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    present = area > 0
    a = area[present]
    dy = (mask.sum(axis=2) * np.arange(box[1].start, box[1].stop)).sum(axis=1)[present] / a - (shape[1] - 1) / 2
    dx = (mask.sum(axis=1) * np.arange(box[2].start, box[2].stop)).sum(axis=1)[present] / a - (shape[2] - 1) / 2
    dist = np.hypot(dy, dx)
    with np.errstate(invalid="ignore", divide="ignore"):
        angle = float(np.arctan2((a * dy / dist).sum(), (a * dx / dist).sum())) if (dist > 0).all() else 0.0
    thigh_radius = np.sqrt(muscle_area[present] / np.pi)
    return angle, float((a * dist / thigh_radius).sum() / a.sum())


def _unclaimed_rim(mask: np.ndarray, background: np.ndarray, hu: np.ndarray) -> float:
    rim = ndimage.binary_dilation(mask, _IN_PLANE) & ~mask
    total = int(rim.sum())
    if total == 0:
        return 0.0
    muscle_like = (hu >= MUSCLE_HU[0]) & (hu <= MUSCLE_HU[1])
    return float((rim & background & muscle_like).sum()) / total
