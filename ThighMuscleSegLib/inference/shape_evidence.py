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
- ``edge_share``: the share of the muscle's voxels within ``EDGE_SLICES`` of where the grid's
  image ends (the end of the scan, or of the field when the scan goes on): a muscle cut there
  to a sliver is scored against its whole length and small pieces score badly.
- ``angle``, ``radius``: where the muscle lies around the femur (the field's axis): the
  area-weighted circular mean direction of its sections' centres (radians, atan2 of y and x
  of the grid), and their mean distance from the axis over the radius of a disc as large as
  all muscle of the slice. Not signs of failure themselves: the quality flag compares them
  with where the muscle lies in other bodies (quality_positions.py), which catches two
  muscles swapped consistently by every view.
- ``pair_angle``, ``pair_radius`` (K x K): where muscle j lies relative to muscle i, over the
  slices both fill (at least ``MIN_SHARED_SLICES``): the circular mean of the difference of
  their directions around the axis and the mean difference of their relative distances.
  Unlike the place of one muscle, this does not move when the whole thigh is rotated or
  its muscles are all larger or smaller: it is the layout (vastus intermedius always deeper
  than vastus lateralis, at every level), which two close neighbours swapped turn over.
- ``section_angle``, ``section_radius`` (K x slices): the same per slice, for each muscle's
  sections that are not tapering ends (NaN elsewhere): where a swap over part of a muscle
  turns the layout over slice by slice (quality_positions.flipped_share).

Each is 0 for a smooth, well-placed result. Without the grid's HU (a caller that has none)
the two image features are NaN, which the flag reads as "no evidence".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..framing.resample import AIR_HU  # what framing.to_grid gives where the CT has no voxel

# Skeletal muscle reads -29..150 HU (Mitsiopoulos et al. 1998, J Appl Physiol 85:115; the range
# of most body-composition CT work); the lower bound is raised to -10 HU here so that a 2 mm
# voxel half filled by a thin fat septum (about -25 HU) is not taken for muscle.
MUSCLE_HU = (-10.0, 150.0)
# Clearly not muscle: fat (below -50 HU; adipose tissue -190..-30, Mitsiopoulos 1998, less the
# partial volume of a muscle border) or bone (above 300 HU: cortex, not marrow).
FOREIGN_HU = (-50.0, 300.0)
MIN_SECTION_SHARE = 0.25  # of the median area: sections the centroid step and the layout consider
MIN_SHARED_SLICES = 5  # 10 mm: two muscles side by side over less say nothing about their layout
EDGE_SLICES = 5  # 10 mm from the end of the image

_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)
_PER_CLASS = ("area_step", "centroid_step", "unclaimed_rim", "foreign_tissue", "edge_share", "angle", "radius")


@dataclass(frozen=True)
class ShapeStats:
    """Per model class 0..K-1 of one thigh (arrays of length K, the pair arrays K x K; NaN where
    a class is absent)."""

    area_step: np.ndarray
    centroid_step: np.ndarray
    unclaimed_rim: np.ndarray
    foreign_tissue: np.ndarray
    edge_share: np.ndarray
    angle: np.ndarray
    radius: np.ndarray
    pair_angle: np.ndarray  # [i, j]: direction of j minus direction of i (radians)
    pair_radius: np.ndarray  # [i, j]: relative distance of j minus that of i
    section_angle: np.ndarray  # [k, z]: direction of muscle k's section on slice z
    section_radius: np.ndarray  # [k, z]: its relative distance


@dataclass(frozen=True)
class _Sections:
    """One muscle's cross-sections along the whole grid: area (voxels), and the centre's
    direction and relative distance from the field's axis (NaN on slices without it)."""

    area: np.ndarray
    cy: np.ndarray  # grid rows
    cx: np.ndarray
    angle: np.ndarray
    radius: np.ndarray
    big: np.ndarray  # slices whose section is at least MIN_SECTION_SHARE of the median (not a tapering end)


def shape_stats(labels: np.ndarray, grid_hu: np.ndarray | None, num_classes: int) -> ShapeStats:
    """The measures of the module docstring for every muscle class of ``labels`` (model ids,
    (z, y, x)); ``grid_hu``: the framed CT on the same grid, or None."""
    out = {name: np.full(num_classes, np.nan) for name in _PER_CLASS}
    boxes = ndimage.find_objects(labels, max_label=num_classes - 1)
    thigh_radius = np.sqrt((labels > 0).sum(axis=(1, 2)) / np.pi)
    edge = _edge_slices(grid_hu, labels.shape[0])
    sections: dict[int, _Sections] = {}
    for k, box in enumerate(boxes, start=1):
        if box is None:
            continue
        box = _padded(box, labels.shape)
        mask = labels[box] == k
        sections[k] = sec = _sections(mask, box, labels.shape, thigh_radius)
        out["area_step"][k], out["centroid_step"][k] = _profile_steps(sec)
        out["angle"][k], out["radius"][k] = _position(sec)
        out["edge_share"][k] = float(sec.area[edge].sum() / sec.area.sum())
        if grid_hu is not None:
            hu = grid_hu[box]
            out["unclaimed_rim"][k] = _unclaimed_rim(mask, labels[box] == 0, hu)
            out["foreign_tissue"][k] = float(((hu[mask] < FOREIGN_HU[0]) | (hu[mask] > FOREIGN_HU[1])).mean())
    pair_angle, pair_radius = _layout(sections, num_classes)
    section_angle, section_radius = np.full((2, num_classes, labels.shape[0]), np.nan)
    for k, sec in sections.items():
        section_angle[k, sec.big], section_radius[k, sec.big] = sec.angle[sec.big], sec.radius[sec.big]
    return ShapeStats(**out, pair_angle=pair_angle, pair_radius=pair_radius, section_angle=section_angle,
                      section_radius=section_radius)


def _edge_slices(grid_hu: np.ndarray | None, depth: int) -> np.ndarray:
    """Slices within EDGE_SLICES of the first and last the image covers (the grid's own ends
    without an image)."""
    covered = np.ones(depth, bool) if grid_hu is None else (grid_hu != AIR_HU).any(axis=(1, 2))
    edge = np.zeros(depth, bool)
    if covered.any():
        first, last = int(covered.argmax()), depth - 1 - int(covered[::-1].argmax())
        edge[max(first - EDGE_SLICES, 0):first + EDGE_SLICES] = True
        edge[max(last - EDGE_SLICES + 1, 0):last + EDGE_SLICES + 1] = True
    return edge


def _padded(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The bounding box grown by one voxel in-plane (where the rim lies)."""
    z, y, x = box
    return (z, slice(max(y.start - 1, 0), min(y.stop + 1, shape[1])),
            slice(max(x.start - 1, 0), min(x.stop + 1, shape[2])))


def _sections(mask: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...],
              thigh_radius: np.ndarray) -> _Sections:
    """``mask`` (the muscle inside ``box``) as sections along all ``shape[0]`` slices."""
    area = np.zeros(shape[0])
    cy, cx = np.full(shape[0], np.nan), np.full(shape[0], np.nan)
    z = box[0]
    area[z] = mask.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        cy[z] = (mask.sum(axis=2) * np.arange(box[1].start, box[1].stop)).sum(axis=1) / area[z]
        cx[z] = (mask.sum(axis=1) * np.arange(box[2].start, box[2].stop)).sum(axis=1) / area[z]
        dy, dx = cy - (shape[1] - 1) / 2, cx - (shape[2] - 1) / 2
        radius = np.hypot(dy, dx) / thigh_radius
    big = area >= MIN_SECTION_SHARE * float(np.median(area[area > 0]))
    return _Sections(area, cy, cx, np.arctan2(dy, dx), radius, big)


def _profile_steps(sec: _Sections) -> tuple[float, float]:
    present = sec.area > 0
    area = sec.area[present.argmax():len(present) - present[::-1].argmax()]  # the muscle's own slices
    if area.size < 2:
        return 0.0, 0.0
    area_step = float(np.abs(np.diff(area)).max()) / float(np.median(area[area > 0]))
    pairs = sec.big[1:] & sec.big[:-1]
    if not pairs.any():
        return area_step, 0.0
    jumps = np.hypot(np.diff(sec.cy), np.diff(sec.cx))[pairs]
    return area_step, float(jumps.max())


def _position(sec: _Sections) -> tuple[float, float]:
    """(angle, relative radius) of the muscle around the field's axis (see the module docstring)."""
    present = sec.area > 0
    a, angle, radius = sec.area[present], sec.angle[present], sec.radius[present]
    mean_angle = float(np.arctan2((a * np.sin(angle)).sum(), (a * np.cos(angle)).sum()))
    return mean_angle, float((a * radius).sum() / a.sum())


def _layout(sections: dict[int, _Sections], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """pair_angle, pair_radius (see the module docstring)."""
    pair_angle, pair_radius = np.full((2, num_classes, num_classes), np.nan)
    for i, si in sections.items():
        for j, sj in sections.items():
            if j <= i:
                continue
            shared = si.big & sj.big
            if shared.sum() < MIN_SHARED_SLICES:
                continue
            turn = sj.angle[shared] - si.angle[shared]
            pair_angle[i, j] = float(np.arctan2(np.sin(turn).mean(), np.cos(turn).mean()))
            pair_radius[i, j] = float((sj.radius[shared] - si.radius[shared]).mean())
            pair_angle[j, i], pair_radius[j, i] = -pair_angle[i, j], -pair_radius[i, j]
    return pair_angle, pair_radius


def _unclaimed_rim(mask: np.ndarray, background: np.ndarray, hu: np.ndarray) -> float:
    rim = ndimage.binary_dilation(mask, _IN_PLANE) & ~mask
    total = int(rim.sum())
    if total == 0:
        return 0.0
    muscle_like = (hu >= MUSCLE_HU[0]) & (hu <= MUSCLE_HU[1])
    return float((rim & background & muscle_like).sum()) / total
