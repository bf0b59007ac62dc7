"""Per-muscle atrophy and hypertrophy on the template grid, before the case is resampled.

Atrophy peels the muscle from its surface inwards (the lost rim becomes intermuscular fat);
hypertrophy grows it into the neighbouring intermuscular fat and, for a population body
(``into_neighbours``), into the touching thigh muscles of its side too, so relative sizes and
borders change while neighbours stay in contact. ``add_septa`` thickens the fat between
touching muscles.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .template import INTERMUSCULAR_FAT

MARGIN = 6  # voxels around a muscle's bounding box


def draw_factors(rng: np.random.Generator) -> dict[int, float]:
    """Volume factor per CT label 1-20: mostly near 1, some severe atrophy, some hypertrophy."""
    factors = {}
    for value in range(1, 21):
        u = rng.uniform()
        if u < 0.12:
            factors[value] = float(rng.uniform(0.35, 0.6))  # severe atrophy
        elif u < 0.3:
            factors[value] = float(rng.uniform(0.6, 0.9))
        elif u < 0.45:
            factors[value] = float(rng.uniform(1.08, 1.25))
        else:
            factors[value] = float(rng.uniform(0.92, 1.08))
    return factors


def apply_factors(labels: np.ndarray, factors: dict[int, float], into_neighbours: bool = False,
                  min_change: float = 0.03) -> np.ndarray:
    """Each muscle peeled or grown to ``factors[value]`` times its voxels; factors within
    ``min_change`` of 1 leave the muscle as it is."""
    out = labels.copy()
    objects = ndi.find_objects(np.where(labels <= 20, labels, 0))
    for value, f in factors.items():
        if value > len(objects) or objects[value - 1] is None or abs(f - 1.0) < min_change:
            continue
        sl = tuple(slice(max(s.start - MARGIN, 0), min(s.stop + MARGIN, n))
                   for s, n in zip(objects[value - 1], out.shape))
        box = out[sl].copy()  # contiguous, so that flat indices address it; written back below
        m = box == value
        n = int(m.sum())
        if f < 1:
            depth = ndi.distance_transform_edt(m)
            where = np.flatnonzero(m)
            order = np.argsort(depth.ravel()[where] + _jitter(where), kind="stable")
            box.ravel()[where[order[: int(round((1.0 - f) * n))]]] = INTERMUSCULAR_FAT
        else:
            room = box == INTERMUSCULAR_FAT
            if into_neighbours:  # the thigh muscles of the same side give way too
                first = 1 if value <= 10 else 11
                room |= (box >= first) & (box < first + 10) & (box != value)
            free = np.flatnonzero(room)
            dist = ndi.distance_transform_edt(~m).ravel()[free]
            free, dist = free[dist <= 4.0], dist[dist <= 4.0]  # grow at most 4 voxels (8 mm)
            order = np.argsort(dist + _jitter(free), kind="stable")
            box.ravel()[free[order[: int(round((f - 1.0) * n))]]] = value
        out[sl] = box
    return out


def _jitter(flat_index: np.ndarray) -> np.ndarray:
    """A deterministic irregular tie-break in [0, 0.5): voxels at the same distance from the
    surface are taken in a scattered order, so the change is uneven like real atrophy."""
    return ((flat_index * 0.6180339887) % 1.0) * 0.5


def add_septa(labels: np.ndarray, voxels: int) -> np.ndarray:
    """Intermuscular fat septa between touching thigh muscles: 1 takes one voxel (2 mm) from
    the higher-valued muscle of each touching pair, 2 takes it from both (4 mm)."""
    if voxels <= 0:
        return labels
    out = labels.copy()
    muscle = (labels >= 1) & (labels <= 20)
    touch = np.zeros(labels.shape, bool)
    for axis in range(3):
        for step in (1, -1):
            nb = np.roll(labels, step, axis=axis)
            other = muscle & (nb >= 1) & (nb <= 20) & (nb != labels)
            touch |= other & ((nb < labels) if voxels == 1 else True)
    out[touch] = INTERMUSCULAR_FAT
    return out
