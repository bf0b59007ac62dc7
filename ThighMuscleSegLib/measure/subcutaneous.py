"""Subcutaneous fat area of one thigh on a plane (e.g. perpendicular to the femur at mid-thigh).

Subcutaneous fat lies between the skin and the deep fascia (fascia lata), which wraps the thigh
muscles as one sleeve; intermuscular fat lies inside that sleeve, between the muscles. On CT the
fascia is not visible, and Goodpaster et al. (J Appl Physiol 89:104, 2000) traced it by hand at
mid-thigh. Here it is approximated by the **convex hull of the thigh's muscles** on the plane:
the sleeve is close to convex in cross-section, the fat in the clefts between muscles lies inside
the hull and counts as intermuscular, and what lies between the hull and the skin is the
subcutaneous layer. The muscles' own outline would instead count the fat in every cleft (and
the femoral vessels' fat) as subcutaneous. The hull errs the other way only where the sleeve is
concave (deep medial clefts, a thin thigh whose sartorius stands off): a small share of
subcutaneous fat is then counted as intermuscular, so the area is, if anything, low.

Counted on the plane: pixels of adipose HU (``hu_ranges.ADIPOSE``, rounded to whole HU) that
carry no muscle label, lie outside the hull, and belong to this thigh's body cross-section: the
connected parts of the body (HU above the framing's body threshold) that hold this thigh's
muscles; where the two thighs touch, each pixel goes to the nearer of the two hulls (and, with
a ``frame``, only pixels on its side of the midline between the legs count). The CT and labels are
sampled on the plane by nearest neighbour: the ranges classify measured voxel values, and linear
interpolation would make adipose-range values at every air–skin and fat–muscle edge.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .. import classes as C
from ..framing.locate import BODY_HU, OUTSIDE_HU
from .hu_ranges import ADIPOSE

HALF_WIDTH_MM = 200.0  # the plane sampled: 400 × 400 mm around the point holds any thigh


def plane_basis(normal_lps) -> np.ndarray:
    """3 × 3 matrix whose columns are u, v, n: n the unit normal, (u, v, n) right-handed, u as
    close to the patient's left (LPS x) as n allows (else to posterior)."""
    n = np.asarray(normal_lps, float)
    n = n / np.linalg.norm(n)
    seed = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = seed - (seed @ n) * n
    u /= np.linalg.norm(u)
    return np.column_stack([u, np.cross(n, u), n])


def sample_plane(image: sitk.Image, point_lps, normal_lps, step_mm: float, half_width_mm: float = HALF_WIDTH_MM,
                 default: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``image`` on the plane by nearest neighbour: the (N, N) values (rows along v, columns along
    u) and the (N, N, 3) LPS points of the pixels."""
    basis = plane_basis(normal_lps)
    size = int(round(2 * half_width_mm / step_mm)) + 1
    half = (size - 1) / 2 * step_mm
    origin = np.asarray(point_lps, float) - half * basis[:, 0] - half * basis[:, 1]
    ref = sitk.Image([size, size, 1], sitk.sitkUInt8)
    ref.SetSpacing((step_mm, step_mm, step_mm))
    ref.SetOrigin(tuple(origin))
    ref.SetDirection(tuple(basis.ravel()))
    pixel = sitk.sitkFloat32 if image.GetPixelID() != sitk.sitkUInt8 else sitk.sitkUInt8
    out = sitk.Resample(image, ref, sitk.Transform(), sitk.sitkNearestNeighbor, default, pixel)
    values = sitk.GetArrayFromImage(out)[0]
    k = np.arange(size) * step_mm
    pts = origin + k[None, :, None] * basis[:, 0] + k[:, None, None] * basis[:, 1]
    return values, pts


def _hull(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import convex_hull_image

    # Pixel centres, not corners: the corners' hull would reach half a pixel beyond the muscle
    # all round and take a ring of subcutaneous pixels with it.
    return (convex_hull_image(mask, offset_coordinates=False) | mask) if mask.sum() >= 3 else mask.copy()


def _side_at_point(lab: np.ndarray) -> str | None:
    """The side whose muscle pixel is nearest the plane's centre (the point, on the femur)."""
    ys, xs = np.nonzero(lab)
    if ys.size == 0:
        return None
    c = (np.array(lab.shape) - 1) / 2
    i = int(np.argmin((ys - c[0]) ** 2 + (xs - c[1]) ** 2))
    return C.split_label_value(int(lab[ys[i], xs[i]]))[1]


def subcutaneous_fat_area_cm2(ct: sitk.Image, labels: sitk.Image, point_lps, normal_lps, side: str | None = None,
                              frame=None, step_mm: float | None = None,
                              half_width_mm: float = HALF_WIDTH_MM) -> float:
    """Subcutaneous fat area (cm²) of one thigh on the plane through ``point_lps`` with normal
    ``normal_lps`` (see the module docstring for what counts). ``side``: the thigh ("right" /
    "left"); None takes the side whose muscle is nearest the point. ``frame``: that thigh's
    ``framing.ThighFrame`` (its midline split is applied). ``step_mm``: the plane's pixel size
    (default: the CT's in-plane spacing, at least 0.5 mm). nan when this thigh has no muscle on
    the plane."""
    if step_mm is None:
        step_mm = max(0.5, float(min(ct.GetSpacing()[:2])))
    hu, pts = sample_plane(ct, point_lps, normal_lps, step_mm, half_width_mm, default=OUTSIDE_HU)
    lab, _ = sample_plane(labels, point_lps, normal_lps, step_mm, half_width_mm, default=0)
    side = side or _side_at_point(lab)
    if side is None:
        return float("nan")
    other = "left" if side == "right" else "right"
    own_values = [m.label_value(side) for m in C.CLASSES]
    muscle = np.isin(lab, own_values)
    if not muscle.any():
        return float("nan")
    hull = _hull(muscle)
    body_parts, _ = ndimage.label(hu > BODY_HU)
    touched = np.unique(body_parts[muscle])
    body = np.isin(body_parts, touched[touched > 0])
    other_muscle = np.isin(lab, [m.label_value(other) for m in C.CLASSES])
    if other_muscle.any():
        # Where the thighs touch, a pixel belongs to the thigh whose muscle hull is nearer.
        other_hull = _hull(other_muscle)
        body &= ndimage.distance_transform_edt(~hull) <= ndimage.distance_transform_edt(~other_hull)
    if frame is not None:
        body &= frame.on_this_side(pts.reshape(-1, 3)).reshape(body.shape)
    fat = body & ~hull & (lab == 0) & ADIPOSE.contains(np.rint(hu))
    return float(fat.sum()) * step_mm * step_mm / 100.0
