"""The t range (mm along a thigh's femur axis) that a CT's slices cover.

In ``framing`` because the field's reach beyond its ends (``framing.frame_thighs``) needs it;
the femur line (``measure.femur``) and the search for the femur's ends use it too.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

# The thigh's half-width around its axis: the cross-section that must lie inside the CT's
# slice range for a level to count as covered (mid-thigh circumference ~50-60 cm, radius
# ~80-95 mm, e.g. NHANES anthropometry; muscle lies well inside that).
THIGH_RADIUS_MM = 90.0


def ct_t_range(ct: sitk.Image, origin: np.ndarray, axis: np.ndarray,
               radius_mm: float = THIGH_RADIUS_MM) -> tuple[float, float]:
    """t range over which a disc of ``radius_mm`` perpendicular to the axis lies inside the
    CT's slice range (its index axis closest to the femur axis; the in-plane extent is left
    to the field-edge checks of framing, a leg cut at its side is still covered)."""
    direction = np.array(ct.GetDirection(), float).reshape(3, 3)
    spacing = np.array(ct.GetSpacing(), float)
    k = int(np.argmax(np.abs(direction.T @ axis)))  # the slice axis
    d = direction[:, k]
    n = ct.GetSize()[k]
    # Slice coordinate s(p) = (p - ct_origin) · d / spacing_k, the CT holding s in [-0.5, n - 0.5].
    o = np.array(ct.GetOrigin(), float)
    s0 = (origin - o) @ d / spacing[k]
    ds = axis @ d / spacing[k]
    in_plane = d - (d @ axis) * axis
    reach = radius_mm * np.linalg.norm(in_plane) / spacing[k]  # the disc's spread in s
    lo_s, hi_s = -0.5 + reach, n - 0.5 - reach
    if hi_s < lo_s or abs(ds) < 1e-9:
        return (0.0, 0.0)
    a, b = sorted(((lo_s - s0) / ds, (hi_s - s0) / ds))
    return float(a), float(b)
