"""The frame of one thigh: CT physical space (LPS, mm) <-> the model grid.

The grid is 128 × 128 × 180 voxels of 2 mm (256 × 256 × 360 mm), stored (z, y, x). Grid
point coordinates are centred on the field: ``g = (index - (size - 1) / 2) * 2 mm``, in
(x, y, z) order. A frame maps them into the CT by ``p = centre + R · M · g`` where R is a
rotation that takes the grid's z axis onto the femur's long axis (pointing superior) while
turning the in-plane axes as little as possible, and M mirrors x for the left thigh (so a
left thigh looks like a right one). The inverse is ``g = Mᵀ Rᵀ (p - centre)``, exact by
construction: both directions use the same matrix.

The views read a little more than the analysed field where the scan goes on: ``reach_mm``
(knee end, hip end) lengthens it along the femur (``reading()``), so the ends of the long
muscles beyond 360 mm are segmented too; the quality flag, ``frames.json``'s field and
``--scope field`` stay with the 360 mm field (``docs/framing.md``, "Reach").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

GRID_SHAPE_ZYX = (180, 128, 128)
GRID_SPACING_MM = 2.0


def rotation_z_to(axis: np.ndarray) -> np.ndarray:
    """The smallest rotation taking (0, 0, 1) onto ``axis`` (Rodrigues)."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    if a[2] < 0:
        a = -a
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(z, a)
    s, c = np.linalg.norm(v), float(a @ z)
    if s < 1e-12:
        return np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * ((1 - c) / s**2)


@dataclass
class ThighFrame:
    side: str  # "right" | "left"
    centre: tuple[float, float, float]  # LPS mm: the field's centre
    axis: tuple[float, float, float]  # unit vector, the femur's long axis (superior)
    z_range_mm: tuple[float, float]  # CT z range of the thigh that placed the field
    found: str = "auto"  # "auto" | "manual"
    notes: list[str] = field(default_factory=list)
    # (z, x) knots of the midline between the legs (LPS mm): the right thigh owns x < midline(z).
    split_midline: list[tuple[float, float]] = field(default_factory=list)
    grid_shape: tuple[int, int, int] = GRID_SHAPE_ZYX
    spacing_mm: float = GRID_SPACING_MM
    # mm read beyond the field's knee (grid z low) and hip (grid z high) ends: whole slices
    reach_mm: tuple[float, float] = (0.0, 0.0)

    @property
    def mirror(self) -> bool:
        return self.side == "left"

    def linear(self) -> np.ndarray:
        """R · M: grid point coordinates (mm) -> CT directions."""
        m = np.diag([-1.0, 1.0, 1.0]) if self.mirror else np.eye(3)
        return rotation_z_to(np.array(self.axis)) @ m

    def grid_origin(self) -> np.ndarray:
        """Grid point coordinate (x, y, z mm) of voxel (0, 0, 0)."""
        size_xyz = np.array(self.grid_shape[::-1], float)
        return -(size_xyz - 1) / 2 * self.spacing_mm

    def grid_points_to_ct(self, g: np.ndarray) -> np.ndarray:
        """(N, 3) grid point coordinates -> (N, 3) CT LPS points."""
        return np.asarray(g) @ self.linear().T + np.array(self.centre)

    def ct_to_grid_points(self, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p) - np.array(self.centre)) @ self.linear()

    def index_to_ct(self, ijk: np.ndarray) -> np.ndarray:
        """(N, 3) grid indices (x, y, z order) -> CT LPS points."""
        return self.grid_points_to_ct(self.grid_origin() + np.asarray(ijk, float) * self.spacing_mm)

    def corners_ct(self) -> np.ndarray:
        size = np.array(self.grid_shape[::-1]) - 1
        ijk = np.array([[i, j, k] for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])], float)
        return self.index_to_ct(ijk)

    def on_this_side(self, p: np.ndarray) -> np.ndarray:
        """Whether CT points are on this thigh's side of the midline between the legs."""
        p = np.asarray(p, float)
        if not self.split_midline:
            return np.ones(len(p), bool)
        knots = np.array(self.split_midline)
        mid = np.interp(p[:, 2], knots[:, 0], knots[:, 1])
        return p[:, 0] < mid if self.side == "right" else p[:, 0] >= mid

    @property
    def length_mm(self) -> float:
        """The field's length along the femur axis (the grid's z; 360 mm unless made otherwise)."""
        return self.grid_shape[0] * self.spacing_mm

    def reach_slices(self) -> tuple[int, int]:
        """Grid slices read beyond the knee and the hip end of the field."""
        return tuple(int(round(r / self.spacing_mm)) for r in self.reach_mm)

    def reading(self) -> "ThighFrame":
        """The frame the views read: this field lengthened by ``reach_mm`` along the grid's z
        axis (its centre moved by half the difference), with no reach of its own. Its slices
        ``analysed_slices()`` are this frame's field, voxel for voxel."""
        below, above = self.reach_slices()
        if below == above == 0:
            return self
        z_dir = self.linear()[:, 2]  # the grid's z axis in the CT
        centre = np.array(self.centre) + z_dir * (above - below) * self.spacing_mm / 2.0
        shape = (self.grid_shape[0] + below + above,) + tuple(self.grid_shape[1:])
        return replace(self, centre=tuple(float(v) for v in centre), grid_shape=shape, reach_mm=(0.0, 0.0))

    def analysed_slices(self) -> slice:
        """This field's slices within the grid of ``reading()``."""
        below = self.reach_slices()[0]
        return slice(below, below + self.grid_shape[0])

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ThighFrame":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict) -> "ThighFrame":
        d = dict(d)
        d["centre"], d["axis"], d["z_range_mm"] = tuple(d["centre"]), tuple(d["axis"]), tuple(d["z_range_mm"])
        d["grid_shape"] = tuple(d["grid_shape"])
        d["split_midline"] = [tuple(v) for v in d.get("split_midline", [])]
        d["reach_mm"] = tuple(float(v) for v in d.get("reach_mm", (0.0, 0.0)))  # absent before 2026-12
        return cls(**d)

    def axis_angle_deg(self, direction) -> float:
        """Angle between this frame's axis and another direction (sign ignored)."""
        a, b = np.array(self.axis), np.asarray(direction, float)
        cos = abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
        return float(np.degrees(np.arccos(min(cos, 1.0))))


def frames_to_json(frames: list[ThighFrame], **extra) -> str:
    """``frames.json``: the frames of a CT (what ``thighseg frame`` and ``segment`` write)."""
    return json.dumps({**extra, "frames": [asdict(f) for f in frames]}, indent=2)


def frames_from_json(text: str) -> list[ThighFrame]:
    return [ThighFrame.from_dict(d) for d in json.loads(text)["frames"]]
