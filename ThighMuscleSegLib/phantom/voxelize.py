"""Closed triangle surfaces -> voxel masks by ray parity along z (numpy only).

For every voxel column (x, y) a ray along +z crosses the surface; a voxel centre is inside
when an odd number of crossings lie below it. Column centres are nudged by a tiny offset so
that rays never pass exactly through mesh vertices or edges (which would count twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NUDGE = (1.234e-4, 2.345e-4)


@dataclass(frozen=True)
class Grid:
    origin: tuple[float, float, float]  # x, y, z of voxel (0, 0, 0) centre, mm
    spacing: float  # isotropic, mm
    shape: tuple[int, int, int]  # z, y, x

    def index_of(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) xyz mm -> continuous (n, 3) xyz voxel indices."""
        return (np.asarray(points) - np.asarray(self.origin)) / self.spacing


def voxelize(triangles: np.ndarray, grid: Grid) -> np.ndarray:
    """Boolean (z, y, x) mask of the voxels inside the closed surface ``triangles`` (n, 3, 3) mm."""
    nz, ny, nx = grid.shape
    t = grid.index_of(triangles.reshape(-1, 3)).reshape(-1, 3, 3)
    t[..., 0] -= _NUDGE[0]
    t[..., 1] -= _NUDGE[1]
    lo = np.ceil(t[..., :2].min(axis=1)).astype(np.int64)  # first column centre inside bbox
    hi = np.floor(t[..., :2].max(axis=1)).astype(np.int64)
    count = np.clip(hi - lo + 1, 0, None)
    ncand = count[:, 0] * count[:, 1]
    keep = ncand > 0
    t, lo, count, ncand = t[keep], lo[keep], count[keep], ncand[keep]
    tri = np.repeat(np.arange(len(t)), ncand)
    local = np.arange(ncand.sum()) - np.repeat(np.cumsum(ncand) - ncand, ncand)
    cx = lo[tri, 0] + local % count[tri, 0]
    cy = lo[tri, 1] + local // count[tri, 0]
    a, b, c = t[tri, 0], t[tri, 1], t[tri, 2]
    # Barycentric coordinates of the column centre in the triangle's xy projection.
    v0x, v0y = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    v1x, v1y = c[:, 0] - a[:, 0], c[:, 1] - a[:, 1]
    px, py = cx - a[:, 0], cy - a[:, 1]
    den = v0x * v1y - v1x * v0y
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)
    u = (px * v1y - v1x * py) / den
    v = (v0x * py - px * v0y) / den
    inside = ok & (u >= 0) & (v >= 0) & (u + v <= 1)
    z = a[:, 2] + u * (b[:, 2] - a[:, 2]) + v * (c[:, 2] - a[:, 2])
    cx, cy, z = cx[inside], cy[inside], z[inside]
    inb = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
    cx, cy, z = cx[inb], cy[inb], z[inb]
    zi = np.clip(np.ceil(z), 0, nz).astype(np.int64)  # first voxel centre above the crossing
    toggles = np.zeros((nz + 1, ny, nx), np.int32)
    np.add.at(toggles, (zi, cy, cx), 1)
    return (np.cumsum(toggles[:nz], axis=0) % 2).astype(bool)
