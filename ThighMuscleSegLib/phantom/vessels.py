"""Femoral vessels and metal implants painted into a copy of the template (tissue codes only:
the thigh-muscle labels never change, so a vessel is background to the model, as in a real CT).

The superficial femoral artery and vein run down the thigh in the fat under the sartorius,
between the vastus medialis and the adductors (the adductor canal), from the groin to about a
quarter of the femur above the knee, where they pass behind the femur. Each slice's vessel
centre is the intermuscular-fat voxel nearest to a point between those three muscles.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..classes import LEFT_OFFSET
from .template import CORTEX, INTERMUSCULAR_FAT, MARROW, SHAFT_MARROW, Template

ARTERY, VEIN, METAL = 35, 36, 37
ARTERY_RADIUS_MM, VEIN_RADIUS_MM = 3.5, 4.5
SARTORIUS, VASTUS_MEDIALIS, ADDUCTORS = 1, 5, 7


def _centroid(mask: np.ndarray) -> np.ndarray | None:
    yy, xx = np.nonzero(mask)
    return np.array([yy.mean(), xx.mean()]) if yy.size else None


def vessel_path(t: Template, side: str) -> list[tuple[int, float, float]]:
    """(slice, row, column) of the artery's centre on the template grid, smoothed along z."""
    off = LEFT_OFFSET if side == "left" else 0
    knee = t.landmarks[side]["condyles"][2]
    hip = t.landmarks[side]["head"][2]
    k0 = int((knee + 0.25 * (hip - knee) - t.origin[2]) / t.spacing)
    k1 = int((hip - 0.08 * (hip - knee) - t.origin[2]) / t.spacing)
    ks, pts = [], []
    for k in range(max(k0, 0), min(k1, t.labels.shape[0])):
        sl = t.labels[k]
        cs = [_centroid(sl == v + off) for v in (SARTORIUS, VASTUS_MEDIALIS, ADDUCTORS)]
        if any(c is None for c in cs):
            continue
        target = 0.5 * cs[0] + 0.25 * cs[1] + 0.25 * cs[2]
        fat = np.argwhere(sl == INTERMUSCULAR_FAT)
        if not len(fat):
            continue
        ks.append(k)
        pts.append(fat[np.argmin(((fat - target) ** 2).sum(1))])
    if len(ks) < 5:
        return []
    p = ndi.median_filter(np.asarray(pts, float), size=(7, 1), mode="nearest")
    p = ndi.gaussian_filter1d(p, 2.0, axis=0, mode="nearest")
    return [(k, float(r), float(c)) for k, (r, c) in zip(ks, p)]


def paint_vessels(labels: np.ndarray, t: Template) -> np.ndarray:
    """A copy of ``labels`` with both legs' femoral artery and vein (vein just behind the
    artery) painted over intermuscular fat only."""
    out = labels.copy()
    yy, xx = np.mgrid[0:labels.shape[1], 0:labels.shape[2]]
    for side in ("right", "left"):
        for k, r, c in vessel_path(t, side):
            fat = out[k] == INTERMUSCULAR_FAT
            d_art = np.hypot(yy - r, xx - c) * t.spacing
            d_vein = np.hypot(yy - (r + 4.0 / t.spacing), xx - c) * t.spacing  # +y: posterior
            out[k][fat & (d_vein <= VEIN_RADIUS_MM)] = VEIN
            out[k][fat & (d_art <= ARTERY_RADIUS_MM)] = ARTERY
    return out


def paint_metal(labels: np.ndarray, t: Template, where: str, side: str) -> np.ndarray:
    """A hip stem (femoral head to 12 cm down the shaft) or a knee replacement (the condyles)
    of metal, in place of that femur's bone."""
    out = labels.copy()
    mark = t.landmarks[side]["head" if where == "hip" else "condyles"]
    z_lo, z_hi = (mark[2] - 120.0, mark[2] + 30.0) if where == "hip" else (mark[2] - 25.0, mark[2] + 35.0)
    k0, k1 = (int((z - t.origin[2]) / t.spacing) for z in (z_lo, z_hi))
    # Columns of this femur only (head, neck and shaft top; the sacrum stays bone).
    x_c = (t.landmarks[side]["head"][0] + t.landmarks[side]["shaft_top"][0]) / 2
    c0, c1 = (int(round((x - t.origin[0]) / t.spacing)) for x in (x_c - 70.0, x_c + 70.0))
    cols = slice(max(c0, 0), max(c1, 0))
    block = out[max(k0, 0):max(k1, 0), :, cols]
    bone = np.isin(block, (CORTEX, MARROW, SHAFT_MARROW))
    if where == "hip":  # the stem fills the canal; the head and neck are solid metal
        block[bone & (block != CORTEX)] = METAL
        top = int((mark[2] - 40.0 - z_lo) / t.spacing)
        block[max(top, 0):][bone[max(top, 0):]] = METAL
    else:
        block[bone] = METAL
    return out
