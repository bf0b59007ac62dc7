"""Finding the femur's two ends along a thigh frame's axis.

The CT is resampled (linearly, as the search goes, ``_Column``) into a column aligned with the
frame: 1 mm steps along the axis t, 1 mm in the plane perpendicular to it. The femur's cross-section
is found in a seed plane (the bone nearest the frame's axis at the frame centre, or in the
CT's last plane towards the femur's middle when the CT does not reach the centre) and
followed plane by plane towards each end: the femur in the next plane is the bone
(``hu_ranges.FEMUR_BONE``) that overlaps it, filled (marrow and the fatty shaft inside the
cortex count as femur). Its end is

- where it vanishes (a clean joint space), or
- where it is bridged to the next bone (tibial plateau, acetabular roof; thick slices and
  partial volume close the thin joint space): near its end the cross-section (a condyle's or
  the head's cap) shrinks fast, and where it stops shrinking the neighbour has taken over.
  The tracked section may grow only GROWTH_MM per plane, so a bridged neighbour is entered
  slowly and cannot hide the shrinking cap.

An end whose last sections meet the CT's edge (its first or last slice, or the image's side)
is the scan's end, not the bone's: it is reported as not in the scan (None).

Known limit: with slices of ~5 mm the in-plane joint space of the hip (~3 mm) can close
below the head's top, and the end then found lies on the acetabular roof (a hand-made rod
with a 3 mm joint space: up to ~7 mm high; Testing/test_femur.py).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..framing.frame import ThighFrame, rotation_z_to
from ..framing.t_range import ct_t_range
from .hu_ranges import FEMUR_BONE

STEP_MM = 1.0  # along t and in the plane
SEARCH_HALF_WIDTH_MM = 80.0  # the column's half-width: the femoral head sits ~45 mm medial of the shaft
SEED_RADIUS_MM = 45.0  # the seed is the bone nearest the frame's axis within this distance
MIN_SECTION_MM2 = 30.0  # smaller bone specks (noise, calcifications) do not seed
MAX_TRACK_MM = 320.0  # an end is searched this far from its seed (a femur is 350-500 mm long)
SMOOTH_SIGMA_MM = 0.5  # against noise (up to ~30 HU SD); more would blur cortex across a 3 mm joint space
GROWTH_MM = 3.0  # the cross-section may grow this much outwards per plane (a surface >= ~18 deg to the plane)
CROP_PAD = int(round(GROWTH_MM / STEP_MM)) + 8  # pixels around the last section: its growth and hole-filling room
BLOCK_PLANES = 8  # planes resampled at a time as the search goes on (``_Column``)
END_FRACTION = 0.25  # the end zone: the cross-section below this share of its largest so far ...
MIN_SHRINK = 0.08  # ... shrinking by at least this share per plane (a bone cap); slower: a bridge
EDGE_VOXELS = 1.0  # a femur section this close to the CT's first or last voxel is cut by the scan ...
EDGE_CHECK_MM = 4.0  # ... when it is one of the last sections before the end found

_DISC = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), int(round(GROWTH_MM / STEP_MM)))


def _smooth(plane: np.ndarray) -> np.ndarray:
    """In-plane Gaussian against noise: only the planes (and boxes) the search visits."""
    return ndimage.gaussian_filter(plane, SMOOTH_SIGMA_MM / STEP_MM, mode="nearest")


def _box(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return (slice(max(rows[0] - pad, 0), rows[-1] + pad + 1), slice(max(cols[0] - pad, 0), cols[-1] + pad + 1))


class _Column:
    """The CT resampled into a frame-aligned column (t, v, u) from t_lo to t_hi, lazily: only
    the planes the search reaches and, after the seed plane, only a box around the femur
    (``BLOCK_PLANES`` planes at a time). The search stops at the femur's end, usually well
    before ``MAX_TRACK_MM``, and the femur fills a small part of each plane: resampling the
    whole column was most of the femur lines' time. Each voxel is the CT's linear
    interpolation at the same point as in a whole column (no float CT copy is made)."""

    def __init__(self, ct: sitk.Image, origin: np.ndarray, rot: np.ndarray, t_lo: float, t_hi: float):
        self.n_in = int(round(2 * SEARCH_HALF_WIDTH_MM / STEP_MM)) + 1
        self.n_t = max(int(np.floor((t_hi - t_lo) / STEP_MM)) + 1, 1)
        self.shape = (self.n_t, self.n_in, self.n_in)
        self.ct, self.rot = ct, rot
        self.start = origin + rot @ np.array([-SEARCH_HALF_WIDTH_MM, -SEARCH_HALF_WIDTH_MM, t_lo])
        self.geo = {"start": self.start, "rot": rot, "t_lo": t_lo}
        self._data = np.empty(self.shape, np.float32)
        self._filled = [None] * self.n_t  # per plane the (row0, row1, col0, col1) box resampled so far

    def plane(self, k: int) -> np.ndarray:
        """The whole plane ``k``."""
        if self._filled[k] != (0, self.n_in, 0, self.n_in):
            self._fill(k, (0, self.n_in, 0, self.n_in), step=1, planes=1)
        return self._data[k]

    def region(self, k: int, box: tuple[slice, slice], step: int) -> np.ndarray:
        """Plane ``k`` inside ``box``; a miss resamples the next planes in direction ``step``
        within the box grown by what the femur can grow over them (GROWTH_MM per plane)."""
        r0, r1 = max(box[0].start, 0), min(box[0].stop, self.n_in)
        c0, c1 = max(box[1].start, 0), min(box[1].stop, self.n_in)
        have = self._filled[k]
        if not (have and have[0] <= r0 and r1 <= have[1] and have[2] <= c0 and c1 <= have[3]):
            self._fill(k, (r0, r1, c0, c1), step)
        return self._data[k, r0:r1, c0:c1]

    def _fill(self, k: int, box: tuple[int, int, int, int], step: int, planes: int = BLOCK_PLANES) -> None:
        ks = [j for j in range(k, k + step * planes, step) if 0 <= j < self.n_t]
        pad = int(np.ceil(planes * GROWTH_MM / STEP_MM)) if planes > 1 else 0
        r0, r1, c0, c1 = max(box[0] - pad, 0), min(box[1] + pad, self.n_in), max(box[2] - pad, 0), min(box[3] + pad, self.n_in)
        for j in ks:  # keep what these planes hold already
            if self._filled[j]:
                h = self._filled[j]
                r0, r1, c0, c1 = min(r0, h[0]), max(r1, h[1]), min(c0, h[2]), max(c1, h[3])
        k_lo = min(ks)
        ref = sitk.Image([int(c1 - c0), int(r1 - r0), len(ks)], sitk.sitkFloat32)
        ref.SetSpacing([STEP_MM] * 3)
        ref.SetDirection(tuple(self.rot.ravel()))
        corner = self.start + self.rot @ (np.array([c0, r0, k_lo], float) * STEP_MM)
        ref.SetOrigin(tuple(float(v) for v in corner))
        block = sitk.Resample(self.ct, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
        self._data[k_lo:k_lo + len(ks), r0:r1, c0:c1] = sitk.GetArrayViewFromImage(block)
        for j in ks:
            self._filled[j] = (r0, r1, c0, c1)


def _seed(bone: np.ndarray, centre_uv: np.ndarray) -> np.ndarray | None:
    """The bone cross-section nearest ``centre_uv`` (index units) within SEED_RADIUS_MM, filled."""
    lab, n = ndimage.label(bone)
    if not n:
        return None
    areas = ndimage.sum_labels(bone, lab, range(1, n + 1))
    best, best_d = None, SEED_RADIUS_MM / STEP_MM
    for i, (cy, cx) in enumerate(ndimage.center_of_mass(bone, lab, range(1, n + 1))):
        d = float(np.hypot(cx - centre_uv[0], cy - centre_uv[1]))
        if areas[i] * STEP_MM**2 >= MIN_SECTION_MM2 and d < best_d:
            best, best_d = i + 1, d
    return None if best is None else ndimage.binary_fill_holes(lab == best)


def _follow(col: _Column, seed_k: int, step: int, centre_uv: np.ndarray) -> tuple[list[float], list]:
    """Areas (mm²) and masks of the femur cross-section from plane ``seed_k`` on in
    direction ``step`` (+1 / -1) until it vanishes or the column ends."""
    femur = _seed(FEMUR_BONE.contains(_smooth(col.plane(seed_k))), centre_uv)
    areas, masks = [], []
    k = seed_k
    while femur is not None and femur.any():
        areas.append(float(femur.sum()) * STEP_MM**2)
        masks.append(femur)
        k += step
        if not 0 <= k < col.n_t:
            break
        # Bone pieces overlapping the femur of the last plane, filled together (not the whole
        # plane filled, or an acetabulum ringing the head would swallow the joint space), and
        # kept within GROWTH_MM of it: a bone bridged to it (tibia, pelvis) is entered only
        # slowly, so the femur's shrinking cap still shows. Worked in a box around the last
        # section: the new one cannot leave it.
        box = _box(femur, CROP_PAD)
        bone = FEMUR_BONE.contains(_smooth(col.region(k, box, step)))
        last = femur[box]
        lab, _ = ndimage.label(bone)
        touching = np.unique(lab[last & bone])
        touching = touching[touching > 0]
        if not touching.size:
            break
        femur = np.zeros_like(femur)
        femur[box] = ndimage.binary_fill_holes(np.isin(lab, touching)) & ndimage.binary_dilation(last, _DISC)
    return areas, masks


def _end_index(areas: list[float]) -> int:
    """Index of the end plane in ``areas``. Towards its end the femur's cross-section (a
    condyle's or the head's cap) falls below END_FRACTION of its largest and keeps shrinking
    fast; where it stops shrinking, a bone bridged across the joint space has taken over."""
    a = np.asarray(areas, float)
    running_max = np.maximum.accumulate(a)
    for i in range(len(a)):
        if a[i] < END_FRACTION * running_max[i]:
            j = i
            while j + 1 < len(a) and a[j + 1] < (1.0 - MIN_SHRINK) * a[j]:
                j += 1
            return j
    return len(a) - 1


class _Edge:
    """Which column voxels lie at or beyond the CT's edge (within EDGE_VOXELS of its first or
    last voxel along any index axis): the CT's continuous index is affine in the column's."""

    def __init__(self, ct: sitk.Image, geo: dict, shape: tuple[int, ...]):
        rot, start = geo["rot"], geo["start"]

        def to_index(p: np.ndarray) -> np.ndarray:
            return np.array(ct.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in p)))

        self.i0 = to_index(start)
        self.steps = [to_index(start + rot[:, a] * STEP_MM) - self.i0 for a in range(3)]  # per u, v, k
        self.size = np.array(ct.GetSize(), float)
        nv, nu = shape[1], shape[2]
        self.v, self.u = np.meshgrid(np.arange(nv, dtype=np.float32), np.arange(nu, dtype=np.float32), indexing="ij")

    def plane(self, k: int) -> np.ndarray:
        out = np.zeros(self.v.shape, bool)
        for a in range(3):
            idx = self.i0[a] + k * self.steps[2][a] + self.u * self.steps[0][a] + self.v * self.steps[1][a]
            out |= (idx < EDGE_VOXELS) | (idx > self.size[a] - 1 - EDGE_VOXELS)
        return out


def _cut_by_edge(edge: _Edge, masks: list, seed_k: int, direction: int, first: int, last: int) -> bool:
    """Whether the femur's sections from ``first`` to ``last`` (or the footprint of the last
    one in the next planes) touch the CT's edge: then the CT, not the bone, ended it."""
    grown = lambda m: ndimage.binary_dilation(m, iterations=2)  # noqa: E731
    for i in range(max(first, 0), last + 1):
        if (grown(masks[i]) & edge.plane(seed_k + direction * i)).any():
            return True
    end = grown(masks[last])
    return any((end & edge.plane(seed_k + direction * (last + n))).any() for n in (1, 2))


def _t_extent(ct: sitk.Image, origin: np.ndarray, axis: np.ndarray) -> tuple[float, float]:
    size = np.array(ct.GetSize()) - 1
    corners = np.array([ct.TransformIndexToPhysicalPoint([int(c) for c in (i, j, k)])
                        for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])])
    t = (corners - origin) @ axis
    return float(t.min()), float(t.max())


def _one_end(ct: sitk.Image, origin: np.ndarray, rot: np.ndarray, t_seed: float, direction: int,
             t_limit: float) -> float | None:
    """t of the femur's end from ``t_seed`` towards ``direction`` (-1 knee, +1 hip), or None."""
    lo, hi = sorted((t_seed, t_limit))
    if hi - lo < 2 * STEP_MM:
        return None
    col = _Column(ct, origin, rot, lo, hi)
    centre_uv = np.array([SEARCH_HALF_WIDTH_MM, SEARCH_HALF_WIDTH_MM]) / STEP_MM
    seed_k = 0 if direction > 0 else col.shape[0] - 1
    areas, masks = _follow(col, seed_k, direction, centre_uv)
    if not areas:
        return None
    i = _end_index(areas)
    if i == col.n_t - 1:  # still bone in the column's last plane: no end within MAX_TRACK_MM or the CT
        return None
    if _cut_by_edge(_Edge(ct, col.geo, col.shape), masks, seed_k, direction, i - int(EDGE_CHECK_MM / STEP_MM), i):
        return None
    return float(lo + (seed_k + direction * i) * STEP_MM + direction * 0.5 * STEP_MM)


def femur_ends(ct: sitk.Image, frame: ThighFrame) -> tuple[float | None, float | None]:
    """(knee end t, hip end t) along ``frame``'s axis; None where the CT does not hold it."""
    axis = np.asarray(frame.axis, float)
    axis /= np.linalg.norm(axis)
    origin = np.asarray(frame.centre, float)
    rot = rotation_z_to(axis)
    if rot[:, 2] @ axis < 0:  # rotation_z_to keeps z upwards: turn it round about x
        rot = rot @ np.diag([1.0, -1.0, -1.0])
    t_lo, t_hi = _t_extent(ct, origin, axis)
    t_lo, t_hi = t_lo + STEP_MM, t_hi - STEP_MM
    # The seed plane: at the frame centre, or where the axis itself leaves the CT's slices.
    line_lo, line_hi = ct_t_range(ct, origin, axis, radius_mm=0.0)
    if line_hi - line_lo < 4 * STEP_MM:
        return None, None
    seed = float(np.clip(0.0, line_lo + 2 * STEP_MM, line_hi - 2 * STEP_MM))
    knee = _one_end(ct, origin, rot, seed, -1, max(t_lo, seed - MAX_TRACK_MM)) if seed > t_lo else None
    hip = _one_end(ct, origin, rot, seed, +1, min(t_hi, seed + MAX_TRACK_MM)) if seed < t_hi else None
    return knee, hip
