"""Tissue map on the scanner grid -> CT (HU) and labels: fat, skin, table, blur, noise."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .hounsfield import TISSUE_HU
from .template import CARTILAGE, CORTEX, INTERMUSCULAR_FAT, MARROW, OTHER_MUSCLE, SHAFT_MARROW

SUBCUT_FAT, SKIN, TABLE = 40, 41, 42
NOISE_BANK = 8


def _lut(rng: np.random.Generator, params: dict) -> tuple[np.ndarray, np.ndarray]:
    mean = np.full(256, TISSUE_HU["air"][0], np.float32)
    sd = np.zeros(256, np.float32)
    fat, fat_sd = TISSUE_HU["fat"]
    mus, mus_sd = TISSUE_HU["muscle"]
    level = float(rng.normal(0.0, 4.0))  # scanner / patient offset of soft tissue
    infiltration = {}
    for v in range(1, 21):
        f = params["muscle_volume_factor"][str(v)]
        ff = float(np.clip(0.02 + 0.45 * max(0.0, 1.0 - f) + rng.uniform(0, 0.05), 0, 0.4))
        infiltration[str(v)] = round(ff, 3)
        mean[v] = (1 - ff) * (mus + level + rng.normal(0, 3)) + ff * fat
        sd[v] = mus_sd + 40 * ff  # fatty streaks make atrophic muscle grainier
    params["fat_infiltration"] = infiltration
    table = {OTHER_MUSCLE: "muscle", CORTEX: "cortical_bone", MARROW: "marrow", CARTILAGE: "cartilage",
             INTERMUSCULAR_FAT: "fat", SHAFT_MARROW: "shaft_marrow", SUBCUT_FAT: "fat", SKIN: "skin",
             TABLE: "table"}
    for code, name in table.items():
        mean[code], sd[code] = TISSUE_HU[name]
        if name in ("muscle", "fat", "skin"):
            mean[code] += level
    return mean, sd


def _smooth_1d(rng: np.random.Generator, n: int, amp: float, corr: float) -> np.ndarray:
    x = ndi.gaussian_filter1d(rng.standard_normal(n + 1), max(corr, 1.0), mode="wrap")[:n]
    return amp * x / max(float(np.abs(x).max()), 1e-6)


def _noise(rng: np.random.Generator, shape, sigma_px: float) -> np.ndarray:
    """Correlated unit noise: a small bank of filtered slices, shifted and flipped per slice."""
    nz, ny, nx = shape
    bank = ndi.gaussian_filter(rng.standard_normal((NOISE_BANK, ny, nx)).astype(np.float32),
                               (0, sigma_px, sigma_px))
    bank /= bank.std()
    out = np.empty(shape, np.float32)
    picks = rng.integers(0, NOISE_BANK, nz)
    shifts = rng.integers(0, max(ny, nx), (nz, 2))
    flips = rng.integers(0, 2, (nz, 2)).astype(bool)
    for k in range(nz):
        s = np.roll(bank[picks[k]], tuple(shifts[k]), axis=(0, 1))
        out[k] = s[::-1 if flips[k, 0] else 1, ::-1 if flips[k, 1] else 1]
    return out


def _legs_touching(code: np.ndarray, labels: np.ndarray) -> bool:
    zs = np.nonzero(((labels >= 1) & (labels <= 20)).any(axis=(1, 2)))[0]
    if zs.size < 3:
        return False
    lower = zs[: max(1, int(0.6 * zs.size))]  # below the crotch: the distal 60 % of the thigh
    for k in lower[:: max(1, lower.size // 12)]:
        body = (code[k, ::2, ::2] != 0) & (code[k, ::2, ::2] != TABLE)
        lab, _ = ndi.label(body)
        lk = labels[k, ::2, ::2]
        right = set(np.unique(lab[(lk >= 1) & (lk <= 10)])) - {0}
        left = set(np.unique(lab[lk >= 11])) - {0}
        if right & left:
            return True
    return False


def compose(rng: np.random.Generator, tissue: np.ndarray, depth: np.ndarray, spacing, params: dict,
            full_shape, offset) -> tuple[np.ndarray, np.ndarray]:
    """Template tissue codes + envelope depth (mm) in a box of the CT grid (at ``offset``,
    z, y, x) -> the whole CT (int16 HU) and labels (uint8) of ``full_shape``."""
    nz, ny, nx = tissue.shape
    oz, oy, ox = (int(v) for v in offset)
    base = float(rng.uniform(5.0, 32.0))
    skin = float(rng.uniform(1.2, 2.5))
    thick = base * (1.0 + _smooth_1d(rng, nz, 0.3, 60.0 / spacing[2])[:, None, None]
                    + _smooth_1d(rng, ny, 0.2, 40.0 / spacing[1])[None, :, None]
                    + _smooth_1d(rng, nx, 0.2, 40.0 / spacing[0])[None, None, :])
    code = tissue
    outside = code == 0
    code[outside & (depth < thick)] = SKIN
    code[outside & (depth < thick - skin)] = SUBCUT_FAT
    del thick, outside
    mean, sd = _lut(rng, params)
    ct_box = mean[code]
    ct_box += sd[code] * _noise(rng, code.shape, 1.2)
    labels = np.zeros(full_shape, np.uint8)
    labels[oz:oz + nz, oy:oy + ny, ox:ox + nx] = np.where(code <= 20, code, 0)
    params.update({"subcutaneous_fat_mm": round(base, 2), "skin_mm": round(skin, 2),
                   "legs_touching": bool(_legs_touching(code, labels[oz:oz + nz, oy:oy + ny, ox:ox + nx]))})
    # Blur only the box: outside it there is air and the table, which blur does not change
    # much (the box has a margin of fat-free air around the body).
    blur = float(rng.uniform(0.4, 0.9))
    for axis in (1, 2):  # in-plane only: the slice profile is already in the slice thickness
        ct_box = ndi.gaussian_filter1d(ct_box, blur / spacing[2 - axis],
                                       axis=axis, truncate=2.5)
    ct = np.full(full_shape, TISSUE_HU["air"][0], np.float32)
    ct[oz:oz + nz, oy:oy + ny, ox:ox + nx] = ct_box
    del ct_box
    _add_table(ct, code, oy, spacing, params)
    noise_sd = float(rng.uniform(6.0, 18.0))
    ct += noise_sd * _noise(rng, ct.shape, 0.8)
    params.update({"blur_mm": round(blur, 3), "noise_hu": round(noise_sd, 2)})
    np.clip(ct, -1024, 3071, out=ct)
    return ct.astype(np.int16), labels  # truncation instead of rounding: +-0.5 HU, far below noise


def _add_table(ct: np.ndarray, code: np.ndarray, oy: int, spacing, params: dict) -> None:
    """A slightly curved carbon-fibre slab under the body's back (+y in LPS)."""
    nz, ny, nx = ct.shape
    rows = np.nonzero((code != 0).any(axis=(0, 2)))[0]
    if not rows.size:
        return
    top = oy + rows.max() + 1 + int(round(2.0 / spacing[1]))
    xs = (np.arange(nx) - nx / 2) * spacing[0]
    edge = top - (0.0006 * xs ** 2 / spacing[1]).astype(int)
    yy = np.arange(ny)[:, None]
    slab = (yy >= edge[None]) & (yy < edge[None] + max(2, int(10 / spacing[1]))) & (np.abs(xs) < 240)[None]
    if slab.any():
        ct[:, slab] = TISSUE_HU["table"][0]
        params["table_top_y_mm"] = round(float(top * spacing[1]), 1)
