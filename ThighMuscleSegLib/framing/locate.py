"""Finding the thighs: body and bone masks on a coarse copy of the CT, the femoral shaft
of each leg slice by slice, the thigh range and the femur's long axis.

Everything here runs on a 4 mm axis-aligned copy of the CT (a few MB), so a 512 × 512 × 600
CT is searched in well under a second, whatever its voxel directions.

A slice belongs to the thigh of a side when that side of the body holds exactly one bone
cross-section (the femoral shaft) of a shaft-like area. Going up, the run ends where the
hip bones, trochanters or femoral neck make more or larger bone; going down, where the
condyles widen the bone or the patella appears. The longest run of such slices (a few
missing slices are bridged) is the thigh; its shaft centroids give the long axis.

A leg whose muscle touches the edge of the scanned field (the image border, or padding below
OUTSIDE_HU such as the reconstruction circle's) is cut at the side: what lies beyond was never
imaged, so its muscles' volumes come out too small. The slices where that happens are kept
(fat cut by the edge is not counted: it costs no muscle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

WORK_SPACING_MM = 4.0
BODY_HU = -400.0
BONE_HU = 180.0
MIN_LEG_AREA_CM2 = 25.0  # a leg cross-section is larger than this (the table, cables are not)
MIN_BONE_AREA_CM2 = 0.8
MAX_SHAFT_AREA_CM2 = 16.0
MIN_THIGH_MM = 80.0  # less femoral shaft than this is not a thigh worth framing
BRIDGE_MM = 12.0  # gaps this short inside a run are bridged
OUTSIDE_HU = -1500.0  # below any tissue or air: padding beyond the scanned field
LEAN_HU = -30.0  # above fat: muscle (or skin, vessels) where it meets the field's edge
EDGE_CONTACT_MM = 12.0  # lean tissue touching the field's edge over this length: the leg is cut
ONE_LEG_ASPECT = 1.4  # a lone cross-section narrower than this (width / depth) may be one leg, not two
TWO_FEMORA_MM = 60.0  # ... unless two of its bones lie this far apart across it: two touching legs


@dataclass
class SliceFinding:
    z_mm: float
    legs: int  # body cross-sections of leg size
    shaft: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)  # side -> x, y, z, area cm²
    bones: dict[str, int] = field(default_factory=dict)  # side -> number of bone cross-sections
    leg_centre: dict[str, tuple[float, float]] = field(default_factory=dict)  # side -> x, y of that leg
    midline_x: float | None = None
    edge_cut: set[str] = field(default_factory=set)  # sides whose muscle touches the scanned field's edge
    side_by_position: bool = False  # one leg, no other to compare with: its side comes from its x


@dataclass
class ThighRun:
    side: str
    z_lo: float
    z_hi: float
    points: np.ndarray  # (N, 3) LPS shaft centroids
    leg_centres: np.ndarray  # (N, 3) LPS centroids of the leg's body cross-section
    cut_below: bool  # the CT ends inside the thigh at the bottom
    cut_above: bool
    side_cut_z: list[float] = field(default_factory=list)  # slices where the field's edge cuts the leg
    side_by_position: bool = False  # the scan holds this leg alone: its side was read from its x

    @property
    def length_mm(self) -> float:
        return self.z_hi - self.z_lo


def working_copy(ct: sitk.Image, spacing_mm: float = WORK_SPACING_MM) -> sitk.Image:
    """The CT resampled onto an axis-aligned LPS grid of ``spacing_mm`` voxels (float32)."""
    size = np.array(ct.GetSize())
    corners = np.array([ct.TransformIndexToPhysicalPoint([int(c) for c in (i, j, k)])
                        for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    out_size = [int(v) for v in np.maximum(np.ceil((hi - lo) / spacing_mm) + 1, 1)]
    ref = sitk.Image(out_size, sitk.sitkFloat32)
    ref.SetSpacing([spacing_mm] * 3)
    ref.SetOrigin(tuple(lo))
    # Average what falls inside a coarse voxel, so thin cortex is not skipped by sampling.
    smoothed = sitk.SmoothingRecursiveGaussian(sitk.Cast(sitk.Shrink(ct, _shrink_factors(ct, spacing_mm)),
                                                         sitk.sitkFloat32), spacing_mm * 0.25)
    return sitk.Resample(smoothed, ref, sitk.Transform(), sitk.sitkLinear, 2 * OUTSIDE_HU, sitk.sitkFloat32)


def _shrink_factors(ct: sitk.Image, spacing_mm: float) -> list[int]:
    return [max(1, int(spacing_mm / s / 2)) for s in ct.GetSpacing()]


def analyse_slices(work: sitk.Image) -> list[SliceFinding]:
    """Per axial slice of the working copy: legs, and per side the bone cross-sections."""
    arr = sitk.GetArrayViewFromImage(work)  # (z, y, x)
    sp = work.GetSpacing()
    origin = np.array(work.GetOrigin())
    pixel_cm2 = sp[0] * sp[1] / 100.0
    findings, one_leg = [], []
    for k in range(arr.shape[0]):
        sl = arr[k]
        z = origin[2] + k * sp[2]
        body = ndimage.binary_opening(sl > BODY_HU, iterations=1)
        body = ndimage.binary_fill_holes(body)
        lab, n = ndimage.label(body)
        areas = ndimage.sum_labels(body, lab, range(1, n + 1)) * pixel_cm2 if n else np.array([])
        parts = [i + 1 for i, a in enumerate(areas) if a >= MIN_LEG_AREA_CM2]
        finding = SliceFinding(z, len(parts))
        if not parts:
            findings.append(finding)
            continue
        in_body = np.isin(lab, parts)
        ys, xs = np.nonzero(in_body)
        xs_mm = origin[0] + xs * sp[0]
        sections = _bone_sections(sl, in_body, origin, sp, z)
        midline = _midline(lab, parts, [b[0] for b in sections or ()], origin, sp)
        finding.midline_x = midline
        if midline is None:  # one leg: filed as the right one here, named in _name_lone_legs
            one_leg.append(finding)
            midline = np.inf
        finding.edge_cut = _sides_at_field_edge(sl, in_body, midline, origin[0], sp)
        for side, on_side in (("right", xs_mm < midline), ("left", xs_mm >= midline)):
            if on_side.sum() * pixel_cm2 >= MIN_LEG_AREA_CM2:
                finding.leg_centre[side] = (float(xs_mm[on_side].mean()),
                                            float(origin[1] + ys[on_side].mean() * sp[1]))
        if sections is not None:
            per_side: dict[str, list] = {"right": [], "left": []}
            for section in sections:
                per_side["right" if section[0] < midline else "left"].append(section)
            for side, bones in per_side.items():
                finding.bones[side] = len(bones)
                if len(bones) == 1 and bones[0][3] <= MAX_SHAFT_AREA_CM2 and side in finding.leg_centre:
                    finding.shaft[side] = bones[0]
        findings.append(finding)
    _name_lone_legs(one_leg, findings)
    return findings


def _bone_sections(sl: np.ndarray, in_body: np.ndarray, origin, sp, z: float) -> list[tuple] | None:
    """(x, y, z, area cm²) of each bone cross-section of at least MIN_BONE_AREA_CM2; None when
    the slice has no bone at all."""
    bone = (sl > BONE_HU) & in_body
    blab, n = ndimage.label(bone)
    if not n:
        return None
    areas = ndimage.sum_labels(bone, blab, range(1, n + 1)) * sp[0] * sp[1] / 100.0
    centres = ndimage.center_of_mass(bone, blab, range(1, n + 1))
    return [(origin[0] + cx * sp[0], origin[1] + cy * sp[1], z, float(area))
            for area, (cy, cx) in zip(areas, centres) if area >= MIN_BONE_AREA_CM2]


def _name_lone_legs(one_leg: list[SliceFinding], findings: list[SliceFinding]) -> None:
    """A slice holding a single leg filed it as the right one. It is the left one when it lies
    left of the gap between the legs in the slices that show both apart; with no such slice,
    when it lies at x > 0: patient x grows towards the patient's left, and scanners put x = 0
    near the middle of the table. (A trunk cut by the scan's edge has no trustworthy middle.)"""
    midlines = [f.midline_x for f in findings if f.legs >= 2 and f.midline_x is not None]
    reference = float(np.median(midlines)) if midlines else 0.0
    for f in one_leg:
        f.side_by_position = not midlines
        if "right" not in f.leg_centre or f.leg_centre["right"][0] < reference:
            continue
        for per_side in (f.shaft, f.bones, f.leg_centre):
            right, left = per_side.pop("right", None), per_side.pop("left", None)
            if right is not None:
                per_side["left"] = right
            if left is not None:
                per_side["right"] = left
        f.edge_cut = {"left" if s == "right" else "right" for s in f.edge_cut}


def _sides_at_field_edge(sl: np.ndarray, in_body: np.ndarray, midline_x: float, origin_x: float, sp) -> set[str]:
    edge = ndimage.binary_dilation(sl < OUTSIDE_HU)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    # Eroded once (the outside counting as lean), so a strip of skin grazing the edge is not muscle.
    lean = sl > LEAN_HU
    lean &= ndimage.binary_erosion(lean | (sl < OUTSIDE_HU), border_value=1)
    ys, xs = np.nonzero(edge & in_body & lean)
    right = origin_x + xs * sp[0] < midline_x
    sides = set()
    for side, count in (("right", right.sum()), ("left", (~right).sum())):
        if count * sp[0] >= EDGE_CONTACT_MM:
            sides.add(side)
    return sides


def _midline(lab: np.ndarray, parts: list[int], bone_xs: list[float], origin, sp) -> float | None:
    """x (mm) between the legs: the gap between two leg cross-sections, else the narrowest
    column of a single cross-section between its thirds (touching thighs), else its centre;
    None when the single cross-section is about as wide as deep: one leg alone."""
    xs_of = {p: np.nonzero((lab == p).any(axis=0))[0] for p in parts}
    if len(parts) >= 2:
        big = sorted(parts, key=lambda p: -len(np.nonzero(lab == p)[0]))[:2]
        a, b = sorted(big, key=lambda p: xs_of[p].mean())
        return float(origin[0] + (xs_of[a].max() + xs_of[b].min()) / 2 * sp[0])
    mask = lab == parts[0]
    cols = mask.sum(axis=0)
    xs = xs_of[parts[0]]
    if _one_leg(mask, bone_xs, sp):
        return None
    lo, hi = xs.min() + (xs.max() - xs.min()) // 3, xs.max() - (xs.max() - xs.min()) // 3
    if hi > lo:
        x = lo + int(np.argmin(cols[lo:hi + 1]))
        if cols[x] < 0.75 * cols[lo:hi + 1].max():  # a real waist between two thighs
            return float(origin[0] + x * sp[0])
    return float(origin[0] + xs.mean() * sp[0])


def _one_leg(mask: np.ndarray, bone_xs: list[float], sp) -> bool:
    """A lone cross-section about as wide as deep, whose bones (x in mm) do not lie side by side."""
    xs, ys = np.nonzero(mask.any(axis=0))[0], np.nonzero(mask.any(axis=1))[0]
    if (xs.max() - xs.min() + 1) * sp[0] >= ONE_LEG_ASPECT * (ys.max() - ys.min() + 1) * sp[1]:
        return False
    return not bone_xs or max(bone_xs) - min(bone_xs) < TWO_FEMORA_MM


def thigh_runs(findings: list[SliceFinding], z_step: float, z_limits: tuple[float, float]) -> dict[str, ThighRun]:
    """Per side, the longest run of shaft slices (gaps up to BRIDGE_MM bridged)."""
    runs = {}
    for side in ("right", "left"):
        idx = [i for i, f in enumerate(findings) if side in f.shaft]
        if not idx:
            continue
        groups, current = [], [idx[0]]
        for i in idx[1:]:
            if (i - current[-1]) * z_step <= BRIDGE_MM + 1e-6:
                current.append(i)
            else:
                groups.append(current)
                current = [i]
        groups.append(current)
        best = max(groups, key=lambda g: g[-1] - g[0])
        best = _trim_wide_ends(best, findings, side)
        pts = np.array([findings[i].shaft[side][:3] for i in best])
        legs = np.array([(*findings[i].leg_centre[side], findings[i].z_mm) for i in best])
        z_lo, z_hi = pts[:, 2].min(), pts[:, 2].max()
        side_cut = [findings[i].z_mm for i in best if side in findings[i].edge_cut]
        if len(side_cut) < 2:  # one slice is the coarse copy's blur, not a cut
            side_cut = []
        runs[side] = ThighRun(side, float(z_lo), float(z_hi), pts, legs,
                              cut_below=z_lo - z_limits[0] < 2 * z_step,
                              cut_above=z_limits[1] - z_hi < 2 * z_step,
                              side_cut_z=side_cut,
                              side_by_position=any(findings[i].side_by_position for i in best))
    return runs


def _trim_wide_ends(run: list[int], findings: list[SliceFinding], side: str) -> list[int]:
    """Grow from the middle of the run while the bone stays shaft-like: stop where it widens
    (condyles below; trochanters, neck and head above), so the axis is the shaft's."""
    areas = np.array([findings[i].shaft[side][3] for i in run])
    mid = len(run) // 2
    limit = 1.5 * np.median(areas[len(run) // 4: max(3 * len(run) // 4, len(run) // 4 + 1)])
    lo = hi = mid
    while lo > 0 and areas[lo - 1] <= limit:
        lo -= 1
    while hi < len(run) - 1 and areas[hi + 1] <= limit:
        hi += 1
    return run[lo: hi + 1]


def fit_axis(points: np.ndarray) -> np.ndarray:
    """Unit direction of the least-squares line through ``points`` (pointing superior)."""
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    d = vt[0]
    return d if d[2] >= 0 else -d
