"""The spatial part of a case: template -> patient by leg pose, elastic warp, scale, shift.

Only the backward map (CT point -> template point) is evaluated densely (resampling pulls
values from the template); the few landmarks that must go forward (femur axis) are mapped by
inverting it with a fixed-point iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

ELASTIC_LATTICE_MM = 50.0
FINE_LATTICE_MM = 25.0  # a population body's second, finer warp: muscle-sized shape changes


def _rot(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _axis_rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    u = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    t = np.radians(deg)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def leg_rotation(side: str, abduction: float, rotation: float, flexion: float,
                 leg_axis: np.ndarray = np.array([0.0, 0.0, -1.0])) -> np.ndarray:
    """Rotation of one leg about its hip (LPS). Abduction moves the knee laterally (-x for
    the right leg, +x for the left), rotation turns the leg about its own mechanical axis
    (hip to knee), flexion brings the knee forward (-y)."""
    sign = 1.0 if side == "right" else -1.0
    # About y: x' = cos*x - sin*z, so a positive angle moves a knee below the hip (z<0) to +x.
    abd = _rot(1, -sign * abduction)
    rot = _axis_rotation(leg_axis, sign * rotation)
    flex = _rot(0, -flexion)  # about x: y' = cos*y - sin*z; knee below hip goes to -y
    return rot @ abd @ flex


@dataclass
class Repose:
    """A rescan's new leg pose: each leg of the first scan's CT turned rigidly about its hip (a
    blend at the hip, as the pose itself) and the table moved, so the body itself (the elastic
    warps, the bow, the scale, all fixed in the first scan's space) stays exactly as it was."""

    rotations: dict  # side -> 3x3 rotation in CT space (first scan -> rescan)
    hips: dict  # side -> hip centre in the first scan's CT (mm)
    shift: np.ndarray  # CT translation, first scan -> rescan
    blend_mm: float = 14.0

    def _weight(self, p: np.ndarray, side: str) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(np.clip((p[:, 2] - (self.hips[side][2] - 25.0)) / self.blend_mm, -50, 50)))

    def _pick(self, p: np.ndarray, cand: dict, side: str | None) -> np.ndarray:
        if side is not None:
            return cand[side]
        mid = (self.hips["right"][0] + self.hips["left"][0]) / 2.0
        return np.where((p[:, 0] < mid)[:, None], cand["right"], cand["left"])

    def to_first(self, p: np.ndarray, side: str | None = None) -> np.ndarray:
        """Rescan CT points -> the first scan's CT points."""
        q = np.asarray(p, float) - self.shift
        cand = {s: q + self._weight(q, s)[:, None] * ((q - h) @ self.rotations[s] + h - q)
                for s, h in self.hips.items() if side in (None, s)}
        return self._pick(q, cand, side)

    def from_first(self, p: np.ndarray) -> np.ndarray:
        """The first scan's CT points -> rescan CT points (the blend makes it approximate)."""
        p = np.asarray(p, float)
        cand = {s: p + self._weight(p, s)[:, None] * ((p - h) @ self.rotations[s].T + h - p)
                for s, h in self.hips.items()}
        return self._pick(p, cand, None) + self.shift


@dataclass
class Deformation:
    hips: dict  # side -> hip centre (template mm)
    rotations: dict  # side -> 3x3 forward rotation
    midline_x: float
    centre: np.ndarray  # scale centre (template mm)
    scale: np.ndarray  # (sx, sy, sz)
    shift: np.ndarray  # world -> CT physical
    lattice: np.ndarray  # (3, nz, ny, nx) elastic displacement, mm (backward)
    lattice_origin: np.ndarray
    blend_mm: float = 14.0
    fine: np.ndarray | None = None  # (3, nz, ny, nx) finer elastic displacement, mm (or None)
    fine_origin: np.ndarray | None = None
    bow: tuple[float, float, float] | None = None  # (amplitude mm, knee z, hip z): anterior bow
    repose: Repose | None = None  # a rescan's new pose and table position
    _coefficients: list | None = None
    _fine_coefficients: list | None = None

    def _leg_weight(self, q: np.ndarray, side: str) -> np.ndarray:
        """0 above the hip, 1 below it: the pelvis stays, the leg turns about the hip."""
        hip = self.hips[side]
        return 1.0 / (1.0 + np.exp(np.clip((q[:, 2] - (hip[2] - 25.0)) / self.blend_mm, -50, 50)))

    def elastic(self, w: np.ndarray) -> np.ndarray:
        if self._coefficients is None:  # cubic spline coefficients, computed once
            self._coefficients = _spline(self.lattice)
        out = _lattice_at(self._coefficients, (w - self.lattice_origin) / ELASTIC_LATTICE_MM)
        if self.fine is not None:
            if self._fine_coefficients is None:
                self._fine_coefficients = _spline(self.fine)
            out += _lattice_at(self._fine_coefficients, (w - self.fine_origin) / FINE_LATTICE_MM)
        if self.bow is not None:  # the thigh bowed forwards (-y) with its femur, most at mid-shaft
            amp, knee_z, hip_z = self.bow
            t = np.clip((w[:, 2] - knee_z) / max(hip_z - knee_z, 1.0), 0.0, 1.0)
            out[:, 1] -= amp * np.sin(np.pi * t)
        return out

    def backward(self, p: np.ndarray, side: str | None = None) -> np.ndarray:
        """(n, 3) CT physical mm -> (n, 3) template mm, as seen by the ``side`` leg's map (a
        smooth map of the whole space); without ``side`` each point takes the map of the leg
        whose inverse pose lands it on that leg's side of the midline."""
        if self.repose is not None:
            p = self.repose.to_first(p, side)
        w = np.asarray(p, float) - self.shift
        w = self.centre + (w - self.centre) / self.scale
        q = w - self.elastic(w)
        cand = {}
        for s, hip in self.hips.items():
            if side in (None, s):
                weight = self._leg_weight(q, s)[:, None]
                unposed = hip + (q - hip) @ self.rotations[s]  # R^T (q - hip) for row vectors
                cand[s] = q + weight * (unposed - q)
        if side is not None:
            return cand[side]
        use_right = cand["right"][:, 0] < self.midline_x
        return np.where(use_right[:, None], cand["right"], cand["left"])

    def forward(self, q: np.ndarray, iterations: int = 60, tol_mm: float = 1e-3) -> np.ndarray:
        """(n, 3) template mm -> CT physical mm, by inverting ``backward``."""
        q = np.asarray(q, float)
        p = self.shift + self.centre + (q - self.centre) * self.scale
        if self.repose is not None:  # start from the first scan's point, re-posed
            repose, self.repose = self.repose, None
            try:
                p = repose.from_first(self.forward(q, iterations, tol_mm))
            finally:
                self.repose = repose
        for _ in range(iterations):
            err = q - self.backward(p)
            p = p + err * self.scale
            if np.abs(err).max() < tol_mm:
                break
        return p


def _spline(lattice: np.ndarray) -> list[np.ndarray]:
    return [ndi.spline_filter(lattice[c], order=3, mode="nearest") for c in range(3)]


def _lattice_at(coefficients: list[np.ndarray], idx: np.ndarray) -> np.ndarray:
    return np.stack([ndi.map_coordinates(coefficients[c], idx[:, ::-1].T, order=3, mode="nearest",
                                         prefilter=False) for c in range(3)], 1)


def _random_lattice(rng: np.random.Generator, extent_mm: np.ndarray, spacing_mm: float, amp: float) -> np.ndarray:
    shape = tuple(int(v) for v in np.ceil(extent_mm[::-1] / spacing_mm) + 3)
    lattice = np.stack([ndi.gaussian_filter(rng.standard_normal(shape), 0.7) for _ in range(3)])
    return lattice * (amp / max(float(np.abs(lattice).max()), 1e-6))


def _draw_pose(rng: np.random.Generator, landmarks: dict, hips: dict) -> tuple[dict, dict]:
    pose, rotations = {}, {}
    for side in ("right", "left"):
        pose[side] = {"abduction_deg": float(rng.uniform(-5.0, 12.0)),
                      "rotation_deg": float(rng.uniform(-20.0, 20.0)),
                      "flexion_deg": float(rng.uniform(-3.0, 10.0))}
        axis = np.asarray(landmarks[side]["condyles"], float) - hips[side]
        rotations[side] = leg_rotation(side, *pose[side].values(), leg_axis=axis)
    return pose, rotations


def _draw_shift(rng: np.random.Generator) -> np.ndarray:
    return np.round(rng.uniform([-250, -250, -900], [250, 250, 900]), 1)


def make_deformation(rng: np.random.Generator, landmarks: dict, centre: np.ndarray,
                     extent_mm: np.ndarray, params: dict, body=None,
                     pose_rng: np.random.Generator | None = None) -> Deformation:
    """Draw pose, scale, elastic field and shift into ``params`` and return the deformation.
    ``pose_rng`` (a rescan of the same body): the leg pose and table shift are drawn again from
    it, after ``rng`` has made all its usual draws, so the body's shape stays as it was."""
    hips = {s: np.asarray(landmarks[s]["head"], float) for s in ("right", "left")}
    midline = float((hips["right"][0] + hips["left"][0]) / 2)
    pose, rotations = _draw_pose(rng, landmarks, hips)
    girth = rng.uniform(0.85, 1.15)
    scale = np.array([girth * rng.uniform(0.95, 1.05), girth * rng.uniform(0.95, 1.05),
                      rng.uniform(0.85, 1.15)])
    amp = float(rng.uniform(2.0, 8.0))
    lattice = _random_lattice(rng, extent_mm, ELASTIC_LATTICE_MM, amp)
    lat_origin = centre - extent_mm / 2 - ELASTIC_LATTICE_MM
    shift = _draw_shift(rng)
    deform = Deformation(hips, rotations, midline, centre, scale, shift, lattice, lat_origin)
    if body is not None:  # the drawn body's size, finer warp and femoral bow replace the template's
        deform.scale = np.array([body.girth_scale[0], body.girth_scale[1], body.length_scale])
        body_rng = np.random.default_rng([int(params.get("seed", 0)), 0xF1E1D])
        deform.fine = _random_lattice(body_rng, extent_mm, FINE_LATTICE_MM, body.fine_warp_mm)
        deform.fine_origin = centre - extent_mm / 2 - FINE_LATTICE_MM
        knee_z = float(np.mean([landmarks[s]["condyles"][2] for s in hips]))
        hip_z = float(np.mean([hips[s][2] for s in hips]))
        deform.bow = (body.femur_bow_mm, knee_z, hip_z)
    if pose_rng is not None and pose_rng is not rng:  # a rescan: the same body, re-posed and moved
        pose, shift = _repose(deform, pose_rng, landmarks, hips, pose, shift)
    params.update({"pose": pose, "scale": deform.scale.round(4).tolist(), "elastic_amplitude_mm": round(amp, 2),
                   "physical_shift_mm": shift.tolist()})
    return deform


def _repose(deform: Deformation, rng: np.random.Generator, landmarks: dict, hips: dict, pose: dict,
            shift: np.ndarray) -> tuple[dict, np.ndarray]:
    """Give ``deform`` a new pose and table shift drawn from ``rng`` as a ``Repose`` of its first
    scan (each leg turned from its first pose to the new one about its hip): the elastic warps,
    fixed in space, would otherwise fall on other anatomy and change the muscles."""
    new_pose, new_rot = _draw_pose(rng, landmarks, hips)
    new_shift = _draw_shift(rng)
    hips_ct = dict(zip(hips, deform.forward(np.array([hips[s] for s in hips]))))
    turn = {s: new_rot[s] @ deform.rotations[s].T for s in hips}
    deform.repose = Repose(turn, hips_ct, new_shift - shift)
    return new_pose, new_shift
