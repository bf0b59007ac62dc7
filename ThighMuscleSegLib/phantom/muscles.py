"""Per-muscle atrophy and hypertrophy on the template grid, before the case is resampled.

Atrophy peels the muscle from its surface inwards (the lost rim becomes intermuscular fat);
hypertrophy grows it into the neighbouring intermuscular fat. Both keep the muscle's shape.
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


def apply_factors(labels: np.ndarray, factors: dict[int, float]) -> np.ndarray:
    out = labels.copy()
    for value, f in factors.items():
        where = np.nonzero(out == value)
        if len(where[0]) == 0 or abs(f - 1.0) < 0.03:
            continue
        lo = [max(int(w.min()) - MARGIN, 0) for w in where]
        hi = [min(int(w.max()) + MARGIN + 1, s) for w, s in zip(where, out.shape)]
        box = out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]  # a view: edits go into out
        m = box == value
        n = int(m.sum())
        if f < 1:
            depth = ndi.distance_transform_edt(m)
            thr = np.quantile(depth[m], 1.0 - f)
            box[m & (depth <= thr)] = INTERMUSCULAR_FAT
        else:
            free = box == INTERMUSCULAR_FAT
            dist = ndi.distance_transform_edt(~m)
            cand = dist[free]
            want = int((f - 1.0) * n)
            if cand.size and want > 0:
                thr = np.sort(cand)[min(want, cand.size) - 1]
                box[free & (dist <= thr) & (dist <= 4.0)] = value
    return out
