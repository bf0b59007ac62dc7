"""Tissue map on the scanner grid -> CT (HU) and labels: fat, skin, table, blur, noise."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .hounsfield import TISSUE_HU
from .template import CARTILAGE, CORTEX, INTERMUSCULAR_FAT, MARROW, OTHER_MUSCLE, SHAFT_MARROW
from .vessels import ARTERY, METAL, VEIN

SUBCUT_FAT, SKIN, TABLE, BLANKET = 40, 41, 42, 43
METAL_HU = 3071.0
BLANKET_HU = (-750.0, 60.0)  # folded cotton: mostly air
NOISE_BANK = 8
SLAB_SLICES = 16  # slices per unit of work: a few MB each, many units per core


def _lut(rng: np.random.Generator, params: dict, body=None) -> tuple[np.ndarray, np.ndarray]:
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
    if body is not None:  # the body's own muscle attenuation (fat infiltration), vessels, metal
        for v in range(1, 21):
            hu = body.muscle_hu[v]
            mean[v] = hu + level
            sd[v] = mus_sd + 0.35 * max(0.0, 50.0 - hu)  # fatty muscle is grainier
            infiltration[str(v)] = round(float(np.clip((mus - hu) / (mus - fat), 0, 1)), 3)
        mean[OTHER_MUSCLE] = float(np.mean(list(body.muscle_hu.values()))) + level
        app = body.appearance
        mean[ARTERY], sd[ARTERY] = app["artery_hu"], 10.0
        mean[VEIN], sd[VEIN] = app["vein_hu"], 10.0
        mean[METAL], sd[METAL] = METAL_HU, 0.0
        mean[BLANKET], sd[BLANKET] = BLANKET_HU
    else:
        mean[ARTERY], sd[ARTERY] = mean[VEIN], sd[VEIN] = TISSUE_HU["muscle"]
    return mean, sd


def _smooth_1d(rng: np.random.Generator, n: int, amp: float, corr: float) -> np.ndarray:
    x = ndi.gaussian_filter1d(rng.standard_normal(n + 1), max(corr, 1.0), mode="wrap")[:n]
    return amp * x / max(float(np.abs(x).max()), 1e-6)


class NoiseBank:
    """Correlated unit noise, drawn once and handed out slice by slice: a small bank of
    filtered slices, each CT slice a shifted and flipped copy of one of them (never a whole
    noise volume in memory)."""

    def __init__(self, rng: np.random.Generator, shape, sigma_px: float):
        nz, ny, nx = shape
        self.bank = ndi.gaussian_filter(rng.standard_normal((NOISE_BANK, ny, nx)).astype(np.float32),
                                        (0, sigma_px, sigma_px))
        self.bank /= self.bank.std()
        self.picks = rng.integers(0, NOISE_BANK, nz)
        self.shifts = rng.integers(0, max(ny, nx), (nz, 2))
        self.flips = rng.integers(0, 2, (nz, 2)).astype(bool)

    def slice(self, k: int) -> np.ndarray:
        s = np.roll(self.bank[self.picks[k]], tuple(self.shifts[k]), axis=(0, 1))
        return s[::-1 if self.flips[k, 0] else 1, ::-1 if self.flips[k, 1] else 1]


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
            full_shape, offset, body=None) -> tuple[np.ndarray, np.ndarray]:
    """Template tissue codes + envelope depth (mm) in a box of the CT grid (at ``offset``,
    z, y, x) -> the whole CT (int16 HU) and labels (uint8) of ``full_shape``.

    Every random number is drawn first, in a fixed order; the voxels are then computed in
    slabs of slices on all cores (each slab's work is independent: the blur is in-plane), so
    the result is the same for a seed whatever the number of cores."""
    nz, ny, nx = tissue.shape
    oz, oy, ox = (int(v) for v in offset)
    base = float(rng.uniform(5.0, 32.0))
    skin = float(rng.uniform(1.2, 2.5))
    if body is not None:
        base = body.subcutaneous_fat_mm
    blanket = body is not None and body.appearance["blanket"]
    ramps = (_smooth_1d(rng, nz, 0.3, 60.0 / spacing[2])[:, None, None],
             _smooth_1d(rng, ny, 0.2, 40.0 / spacing[1])[None, :, None],
             _smooth_1d(rng, nx, 0.2, 40.0 / spacing[0])[None, None, :])
    code = tissue
    _in_slabs(nz, lambda z: _skin_and_fat(code[z], depth[z], base * (1.0 + ramps[0][z] + ramps[1] + ramps[2]),
                                          skin, blanket))
    mean, sd = _lut(rng, params, body)
    texture = NoiseBank(rng, code.shape, 1.2)
    labels = np.zeros(full_shape, np.uint8)
    labels[oz:oz + nz, oy:oy + ny, ox:ox + nx] = np.where(code <= 20, code, 0)
    params.update({"subcutaneous_fat_mm": round(base, 2), "skin_mm": round(skin, 2),
                   "legs_touching": bool(_legs_touching(code, labels[oz:oz + nz, oy:oy + ny, ox:ox + nx]))})
    blur = float(rng.uniform(0.4, 0.9))
    table = _table_mask(code, oy, full_shape, spacing, params)
    noise_sd = float(rng.uniform(6.0, 18.0))
    grain = 0.8
    if body is not None:
        blur, noise_sd, grain = (body.appearance[k] for k in ("blur_mm", "noise_hu", "noise_grain_px"))
    noise = NoiseBank(rng, full_shape, grain)
    streaks = _metal_streaks(rng, code, (oy, ox)) if body is not None else {}
    params.update({"blur_mm": round(blur, 3), "noise_hu": round(noise_sd, 2)})
    ct = np.empty(full_shape, np.int16)

    def hounsfield(z: slice) -> None:
        out = np.full((z.stop - z.start,) + tuple(full_shape[1:]), TISSUE_HU["air"][0], np.float32)
        zb = slice(max(z.start - oz, 0), min(z.stop - oz, nz))  # the same slices inside the box
        if zb.start < zb.stop:
            box = mean[code[zb]]
            box += sd[code[zb]] * np.stack([texture.slice(k) for k in range(zb.start, zb.stop)])
            # Blur only the box, in-plane (the slice profile is already in the slice
            # thickness); outside it there is air and the table, which blur barely changes.
            for axis in (1, 2):
                box = ndi.gaussian_filter1d(box, blur / spacing[2 - axis], axis=axis, truncate=2.5)
            out[zb.start + oz - z.start:zb.stop + oz - z.start, oy:oy + ny, ox:ox + nx] = box
        if table is not None:
            out[:, table] = TISSUE_HU["table"][0]
        for k in range(z.start, z.stop):
            if k - oz in streaks:
                out[k - z.start] += streaks[k - oz](full_shape[1:])
        out += noise_sd * np.stack([noise.slice(k) for k in range(z.start, z.stop)])
        np.clip(out, -1024, 3071, out=out)
        ct[z] = out  # truncation instead of rounding: +-0.5 HU, far below noise

    _in_slabs(full_shape[0], hounsfield)
    return ct, labels


def _skin_and_fat(code: np.ndarray, depth: np.ndarray, thick: np.ndarray, skin: float,
                  blanket: bool = False) -> None:
    outside = code == 0
    if blanket:  # a blanket over the front of the legs (-y), a few mm off the skin
        rows = np.arange(code.shape[1])[None, :, None]
        front = rows < np.median(np.nonzero((code != 0).any(axis=(0, 2)))[0]) if (code != 0).any() else rows < 0
        code[outside & front & (depth >= thick + 2.0) & (depth < thick + 8.0)] = BLANKET
    code[outside & (depth < thick)] = SKIN
    code[outside & (depth < thick - skin)] = SUBCUT_FAT


def _metal_streaks(rng: np.random.Generator, code: np.ndarray, offset_yx) -> dict:
    """Box slice -> a function of the slice shape giving streak HU: bright and dark lines
    through the metal's centre, as beam hardening and photon starvation draw them."""
    zs = np.nonzero((code == METAL).any(axis=(1, 2)))[0]
    if not zs.size:
        return {}
    n = int(rng.integers(3, 7))
    angles, amps = rng.uniform(0, np.pi, n), rng.uniform(150.0, 600.0, n) * rng.choice([-1, 1], n)
    width = float(rng.uniform(1.5, 4.0))
    out = {}
    for k in zs:
        yy, xx = np.nonzero(code[k] == METAL)
        cy, cx = yy.mean() + offset_yx[0], xx.mean() + offset_yx[1]

        def streak(shape, cy=cy, cx=cx):
            y, x = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
            img = np.zeros(shape, np.float32)
            r = np.hypot(y - cy, x - cx)
            for a, amp in zip(angles, amps):
                perp = np.abs((x - cx) * np.sin(a) - (y - cy) * np.cos(a))
                img += amp * np.exp(-(perp / width) ** 2) * np.exp(-r / 150.0)
            return img
        out[int(k)] = streak
    return out


def _in_slabs(n: int, work, slab: int = SLAB_SLICES) -> None:
    """``work(slice)`` over slabs of ``n`` slices, on all cores (NumPy and SciPy release the
    GIL in the heavy loops); exceptions propagate."""
    slabs = [slice(z, min(z + slab, n)) for z in range(0, n, slab)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for f in [pool.submit(work, z) for z in slabs]:
            f.result()


def _table_mask(code: np.ndarray, oy: int, full_shape, spacing, params: dict) -> np.ndarray | None:
    """(y, x) mask of a slightly curved carbon-fibre slab under the body's back (+y in LPS)."""
    _, ny, nx = full_shape
    rows = np.nonzero((code != 0).any(axis=(0, 2)))[0]
    if not rows.size:
        return None
    top = oy + rows.max() + 1 + int(round(2.0 / spacing[1]))
    xs = (np.arange(nx) - nx / 2) * spacing[0]
    edge = top - (0.0006 * xs ** 2 / spacing[1]).astype(int)
    yy = np.arange(ny)[:, None]
    slab = (yy >= edge[None]) & (yy < edge[None] + max(2, int(10 / spacing[1]))) & (np.abs(xs) < 240)[None]
    if not slab.any():
        return None
    params["table_top_y_mm"] = round(float(top * spacing[1]), 1)
    return slab
