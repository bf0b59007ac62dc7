"""The body's own frame, found from its anatomy: surfaces in any frame -> LPS millimetres.

A surface folder may come in any coordinate frame (the Visible Human cryosection frame, a
scanner frame, a body lying the other way round, a mirrored export). Three landmark
directions fix the patient's frame:

- superior: from the distal-femur cartilage (condyles) to the femoral-head cartilage
  (sphere centre), averaged over the sides;
- anterior: from the distal-femur cartilage to the patella (bone, else cartilage),
  orthogonalised to superior;
- patient's left: from the Right side's structures to the Left side's (centroids of the
  structures present on both sides), orthogonalised to both.

LPS is x = patient's left, y = posterior, z = superior. When the estimated axes lie within
``SNAP_DEG`` of coordinate axes, the rotation is snapped to that exact signed permutation
(so a data set already aligned with its axes is only flipped, never tilted by a few degrees
of anatomy). When the Left structures lie on the side a right-handed frame calls right, the
data set is mirrored: the map is then a reflection and triangle winding is flipped.

A structure present on one side only is mirrored across the body's midsagittal plane
(``midplane``: from the centroids of the paired structures), not across a coordinate plane, so
it lands the same way however the body lay (for the Visible Human Female that plane is ~5 deg
off its cryosection x axis; mirrored Left thigh muscles match the Right ones far better).

The translation puts the femoral-head midpoint where the Visible Human Female's lands under
its reference placement (``VHF_STL_TO_LPS_SHIFT``), rounded to 0.5 mm, so the shared body lands
exactly where it always has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..io import InputError
from .anatomy import REQUIRED_LANDMARKS

Meshes = Mapping[tuple[str, str], np.ndarray]  # (side, canonical key) -> (n, 3, 3) triangles

HEAD = "cartilage_femurhead"
DISTAL = "cartilage_femurdistal"
PATELLA = ("bone_patella", "cartilage_patella")  # first present wins
SIDES = ("right", "left")
SNAP_DEG = 20.0
TRANSLATION_STEP_MM = 0.5
# Reference placement of the Visible Human Female: its STL (cryosection) frame -> LPS of the
# VHF knee CT is x and y flipped, then shifted by this (found by matching tibia and fibula
# cross sections with the knee CT, within 2-3 mm). Under it the VHF's femoral-head midpoint
# (mean of the two head-cartilage sphere centres) lands at VHF_HIP_CENTRE_LPS, where every
# body's hip centre is put.
VHF_STL_TO_LPS_SHIFT = (803.5, 698.0, 0.0)
VHF_HIP_CENTRE_LPS = (264.439, 244.033, 883.164)
# A femur (head centre to condyles) outside this range means the surfaces are not in mm.
FEMUR_LENGTH_RANGE_MM = (200.0, 700.0)


@dataclass(frozen=True)
class BodyFrame:
    """Map of a surface folder's frame into LPS: ``p_lps = rotation @ p + translation``."""

    rotation: np.ndarray  # (3, 3); rows are the LPS axes in file coordinates; det -1: mirrored
    translation: np.ndarray  # (3,) mm
    snapped: bool  # rotation is an exact signed axis permutation

    @property
    def mirrored(self) -> bool:
        """True when the map is a reflection (the data set is a mirror image)."""
        return bool(np.linalg.det(self.rotation) < 0)

    def apply(self, triangles: np.ndarray) -> np.ndarray:
        """Triangles (n, 3, 3) in file coordinates -> LPS, winding kept outward."""
        out = triangles @ self.rotation.T + self.translation
        return out[:, ::-1].copy() if self.mirrored else out


def sphere_fit(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through (n, 3) points: centre and radius (centred for conditioning)."""
    mean = points.mean(0)
    p = points - mean
    a = np.c_[2 * p, np.ones(len(p))]
    sol = np.linalg.lstsq(a, (p ** 2).sum(1), rcond=None)[0]
    centre = sol[:3]
    return centre + mean, float(np.sqrt(max(sol[3] + centre @ centre, 0.0)))


def _centroid(tri: np.ndarray) -> np.ndarray:
    return tri.reshape(-1, 3).mean(0)


def head_centres(meshes: Meshes) -> dict[str, np.ndarray]:
    """Femoral-head centre (sphere fitted to the head cartilage) of each side that has one."""
    return {s: sphere_fit(meshes[(s, HEAD)].reshape(-1, 3))[0] for s in SIDES if (s, HEAD) in meshes}


def _patella(meshes: Meshes, side: str) -> np.ndarray | None:
    for key in PATELLA:
        if (side, key) in meshes:
            return _centroid(meshes[(side, key)])
    return None


def _require(meshes: Meshes) -> None:
    """InputError naming each landmark structure that is absent on both sides."""
    keys = {k for _, k in meshes}
    missing = [name for name, alts in REQUIRED_LANDMARKS.items() if not keys & set(alts)]
    if missing:
        raise InputError("cannot find the body's frame: missing on both sides: " + "; ".join(missing))


def _mean_difference(to: dict[str, np.ndarray], frm: dict[str, np.ndarray]) -> np.ndarray:
    """Mean of ``to - frm`` over the sides that have both, else the difference of the means."""
    both = [s for s in SIDES if s in to and s in frm]
    if both:
        return np.mean([to[s] - frm[s] for s in both], 0)
    return np.mean(list(to.values()), 0) - np.mean(list(frm.values()), 0)


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-6:
        raise InputError(f"cannot find the body's frame: the {what} direction is undefined")
    return v / n


def femur_length(meshes: Meshes) -> float:
    """Mean head-centre to distal-cartilage distance over the sides (mm); checks the units."""
    distal = {s: _centroid(meshes[(s, DISTAL)]) for s in SIDES if (s, DISTAL) in meshes}
    length = float(np.linalg.norm(_mean_difference(head_centres(meshes), distal)))
    lo, hi = FEMUR_LENGTH_RANGE_MM
    if not lo <= length <= hi:
        raise InputError(f"femur length (femoral head to condyles) is {length:.1f} units, not "
                         f"{lo:.0f}-{hi:.0f} mm: are the surfaces in millimetres?")
    return length


def body_axes(meshes: Meshes) -> np.ndarray:
    """Estimated LPS axes in file coordinates, as rows (left, posterior, superior); may be a
    reflection (det -1) when the data set is mirrored."""
    _require(meshes)
    femur_length(meshes)
    distal = {s: _centroid(meshes[(s, DISTAL)]) for s in SIDES if (s, DISTAL) in meshes}
    patella = {s: p for s in SIDES if (p := _patella(meshes, s)) is not None}
    sup = _unit(_mean_difference(head_centres(meshes), distal), "superior")
    ant = _mean_difference(patella, distal)
    ant = _unit(ant - (ant @ sup) * sup, "anterior")
    post = -ant
    left_est = midplane(meshes)[0]
    left = np.cross(post, sup)  # right-handed LPS: x = y cross z
    if left_est @ left < 0:
        left = -left  # mirrored data set: the Left files lie on the right-handed frame's right
    return np.stack([left, post, sup])


def _pairs(meshes: Meshes) -> list[str]:
    return [k for (s, k) in meshes if s == "right" and ("left", k) in meshes]


def midplane(meshes: Meshes) -> tuple[np.ndarray, np.ndarray]:
    """The body's midsagittal plane (unit normal towards the patient's left, a point on it) from
    the centroids of the structures present on both sides. It follows the anatomy, not the
    frame's axes, so a structure mirrored across it lands the same way however the body lay."""
    pairs = _pairs(meshes)
    if not pairs:
        raise InputError("cannot tell the patient's left from right: no structure is present "
                         "on both the Left and the Right side")
    left = np.array([_centroid(meshes[("left", k)]) for k in pairs])
    right = np.array([_centroid(meshes[("right", k)]) for k in pairs])
    return _unit((left - right).mean(0), "left-right"), ((left + right) / 2).mean(0)


def mirror(triangles: np.ndarray, normal: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Triangles reflected across the plane (``normal``, ``point``), winding kept outward."""
    d = (triangles - point) @ normal
    return (triangles - 2 * d[..., None] * normal)[:, ::-1].copy()


def snap_rotation(axes: np.ndarray, tol_deg: float = SNAP_DEG) -> tuple[np.ndarray, bool]:
    """The exact signed axis permutation nearest ``axes`` when every row is within ``tol_deg``
    of its coordinate axis (and the permutation is one), else ``axes`` unchanged."""
    idx = np.abs(axes).argmax(1)
    if len(set(idx.tolist())) < 3:
        return axes, False
    snapped = np.zeros((3, 3))
    snapped[np.arange(3), idx] = np.sign(axes[np.arange(3), idx])
    cos = np.abs(axes[np.arange(3), idx]) / np.linalg.norm(axes, axis=1)
    if np.all(np.degrees(np.arccos(np.clip(cos, -1, 1))) <= tol_deg):
        return snapped, True
    return axes, False


def find_frame(meshes: Meshes) -> BodyFrame:
    """The map of the folder's frame into LPS, from the anatomy's landmarks (file frame)."""
    rotation, snapped = snap_rotation(body_axes(meshes))
    hip = np.mean(list(head_centres(meshes).values()), 0)
    shift = np.asarray(VHF_HIP_CENTRE_LPS) - rotation @ hip
    shift = np.round(shift / TRANSLATION_STEP_MM) * TRANSLATION_STEP_MM
    return BodyFrame(rotation, shift, snapped)
