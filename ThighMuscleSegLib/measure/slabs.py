"""Per-slab statistics along each femur: what every along-the-femur number is summed from.

For each side and muscle, the labelled voxels are binned into slabs of ``SLAB_MM`` along the
thigh's femur line (a voxel belongs to the slab of its centre's t; slab n holds
t in [(n - 0.5), (n + 0.5)) · SLAB_MM and is written with its centre t = n · SLAB_MM). Per
slab: voxels, volume, the sum and the sum of squares of HU (so means and SDs of any range of
slabs follow exactly), and the voxels in the IMAT / LAMA / NAMA ranges (``hu_ranges``; a float
CT rounded to whole HU for them first, as ``composition`` does).

Summing a muscle's slabs gives its whole volume exactly; a slab's volume divided by its
thickness is the muscle's mean cross-sectional area over it, on planes perpendicular to the
femur (``profiles``). Only labelled voxels are touched, a block of CT slices at a time.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import classes as C
from ..io import InputError, atomic_path, same_geometry
from .csv_rows import read_rows
from .femur import FemurLine
from .hu_ranges import QUALITY_RANGES
from .volumes import NUM_LABELS, voxel_volume_cm3

SLAB_MM = 2.0
_BLOCK_VOXELS = 1 << 22  # CT slices handled at once: ~4 M voxels (their indices cost 8 bytes each)
COUNT_COLUMNS = ("voxels", "imat_voxels", "lama_voxels", "nama_voxels")
CSV_COLUMNS = ("side", "muscle", "label_value", "t_mm", "slab_mm", "voxels", "volume_cm3", "hu_sum", "hu_sq_sum",
               "imat_voxels", "lama_voxels", "nama_voxels")


@dataclass
class SlabTable:
    """One row per (label value, slab) holding voxels; arrays of equal length, sorted by label then t."""

    slab_mm: float
    label_value: np.ndarray  # int, 1..20
    t_mm: np.ndarray  # slab centre along that side's femur line
    voxels: np.ndarray  # int
    volume_cm3: np.ndarray
    hu_sum: np.ndarray
    hu_sq_sum: np.ndarray
    imat_voxels: np.ndarray
    lama_voxels: np.ndarray
    nama_voxels: np.ndarray

    def __len__(self) -> int:
        return int(self.label_value.size)

    def select(self, label_value: int) -> "SlabTable":
        """The rows of one label value."""
        keep = self.label_value == int(label_value)
        return SlabTable(self.slab_mm, *(getattr(self, name)[keep] for name in _ARRAYS))

    def label_values(self) -> list[int]:
        return sorted(int(v) for v in np.unique(self.label_value))

    def per_label(self, name: str, labels: int) -> np.ndarray:
        """Column ``name`` summed over each label's slabs: an array indexed by label value 0..labels-1."""
        values = getattr(self, name)
        return np.bincount(self.label_value, weights=values, minlength=labels)[:labels].astype(values.dtype)

    def volume_by_label(self) -> dict[int, float]:
        """label value -> its total volume (cm³)."""
        return {v: float(self.volume_cm3[self.label_value == v].sum()) for v in self.label_values()}


_ARRAYS = ("label_value", "t_mm", "voxels", "volume_cm3", "hu_sum", "hu_sq_sum", "imat_voxels", "lama_voxels",
           "nama_voxels")


def _index_to_t(image: sitk.Image, line: FemurLine) -> tuple[float, np.ndarray]:
    """t = t0 + (i, j, k) · dt: t of a voxel centre is affine in its index (x, y, z order)."""
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    step = direction * np.array(image.GetSpacing(), float)  # columns: LPS step per index
    axis = np.asarray(line.axis, float)
    t0 = float((np.array(image.GetOrigin(), float) - np.asarray(line.origin, float)) @ axis)
    return t0, step.T @ axis


def slab_table(ct: sitk.Image, labels: sitk.Image, lines: dict[str, FemurLine],
               slab_mm: float = SLAB_MM) -> SlabTable:
    """The slabs of every labelled muscle of a side that has a femur line."""
    if not same_geometry(ct, labels):
        raise InputError("the CT and the label map have different geometry: resample the labels onto the CT first")
    lab = sitk.GetArrayViewFromImage(labels)
    if lab.dtype != np.uint8:
        raise InputError(f"the label map must be uint8 (it is {lab.dtype}); values 0, right 1-10, left 11-20")
    hu = sitk.GetArrayViewFromImage(ct)
    whole_hu = np.issubdtype(hu.dtype, np.integer)
    nz, ny, nx = lab.shape
    sides = [side for side in ("right", "left") if side in lines]
    geometry = [_index_to_t(labels, lines[side]) for side in sides]
    # Each side's slabs within what the CT's corners reach along its line: one dense table
    # (label value x slab) of counts and sums, no per-slab bookkeeping.
    corners = np.array(list(np.ndindex(2, 2, 2)), float) * (np.array([nx, ny, nz]) - 1)
    reach = np.concatenate([t0 + corners @ dt for t0, dt in geometry]) if sides else np.zeros(1)
    lo = int(np.floor(reach.min() / slab_mm + 0.5)) - 1
    n_slabs = int(np.floor(reach.max() / slab_mm + 0.5)) + 2 - lo
    sums = np.zeros((len(_SUMS), NUM_LABELS * n_slabs))
    side_of = np.full(NUM_LABELS, -1, np.int8)  # label value -> index into ``sides``; -1: no line, not counted
    for n, side in enumerate(sides):
        side_of[np.arange(1, 1 + C.NUM_MUSCLES) + (0 if side == "right" else C.NUM_MUSCLES)] = n
    per_block = max(1, _BLOCK_VOXELS // max(ny * nx, 1))
    for k0 in range(0, nz, per_block):
        flat, values = _labelled(lab[k0:k0 + per_block])
        if not flat.size:
            continue
        if values.max() >= NUM_LABELS:
            raise InputError(f"label values above {NUM_LABELS - 1} are not in the class table")
        which = side_of[values]
        if (which < 0).any():
            keep = which >= 0
            flat, values, which = flat[keep], values[keep], which[keep]
        t = _t_of_voxels(flat, k0, ny, nx, geometry, which)
        slab = np.floor(t / slab_mm + 0.5).astype(np.int64) - lo
        h = hu[k0:k0 + per_block].reshape(-1)[flat].astype(np.float64)
        _accumulate(sums, values.astype(np.int64) * n_slabs + slab, h, h if whole_hu else np.rint(h))
    return _table(sums.reshape(len(_SUMS), NUM_LABELS, n_slabs), lo, slab_mm, voxel_volume_cm3(labels))


_SUMS = ("voxels", "hu_sum", "hu_sq_sum", *(f"{r.key}_voxels" for r in QUALITY_RANGES))


def _labelled(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices and values of a block's labelled voxels. Found eight bytes at a time first:
    the blocks are nine-tenths background, so this halves the time of one ``flatnonzero``."""
    flat = block.reshape(-1)
    if flat.size % 8 or flat.ctypes.data % 8:  # not whole aligned words: one plain pass
        found = np.flatnonzero(flat)
        return found, flat[found]
    words = np.flatnonzero(flat.view(np.uint64))
    octets = flat.reshape(-1, 8)[words]
    inside = np.flatnonzero(octets)
    return words[inside >> 3] * 8 + (inside & 7), octets.reshape(-1)[inside]


def _t_of_voxels(flat: np.ndarray, k0: int, ny: int, nx: int, geometry: list, which: np.ndarray) -> np.ndarray:
    """t along its side's femur line of each voxel (flat index in a block starting at slice k0):
    t = (t0 + j dt_j + k dt_k) + i dt_i, the bracket looked up per image row and side."""
    row = flat // nx
    i = flat - row * nx
    rows = int(row.max()) + 1
    k, j = np.divmod(np.arange(rows), ny)
    base = np.stack([t0 + j * dt[1] + (k + k0) * dt[2] for t0, dt in geometry])  # (sides, rows)
    step = np.array([dt[0] for _, dt in geometry])
    if len(geometry) == 1:
        return base[0][row] + i * step[0]
    return base.reshape(-1)[row + which.astype(np.int64) * rows] + i * step[which]


def _accumulate(sums: np.ndarray, key: np.ndarray, hu: np.ndarray, whole: np.ndarray) -> None:
    """Add (voxels, hu_sum, hu_sq_sum, imat, lama, nama) per key (label x slab) with one
    bincount each; ``whole``: the HU rounded, for the ranges."""
    size = sums.shape[1]
    sums[0] += np.bincount(key, minlength=size)
    sums[1] += np.bincount(key, weights=hu, minlength=size)
    sums[2] += np.bincount(key, weights=hu * hu, minlength=size)
    for row, r in enumerate(QUALITY_RANGES, 3):
        sums[row] += np.bincount(key[r.contains(whole)], minlength=size)


def _table(sums: np.ndarray, lo: int, slab_mm: float, voxel_cm3: float) -> SlabTable:
    """The rows (label, slab) holding voxels of the dense sums (named as ``_SUMS``, label x slab)."""
    value, slab = np.nonzero(sums[0])  # row-major: sorted by label, then t
    col = {name: sums[n][value, slab] for n, name in enumerate(_SUMS)}
    voxels = col["voxels"].astype(np.int64)
    return SlabTable(slab_mm, value.astype(np.int64), (slab + lo) * slab_mm, voxels, voxels * voxel_cm3,
                     col["hu_sum"], col["hu_sq_sum"], *(col[f"{r.key}_voxels"].astype(np.int64)
                                                         for r in QUALITY_RANGES))


def write_slabs_csv(table: SlabTable, path: str | os.PathLike) -> Path:
    """``slabs.csv`` (atomically): one row per side, muscle and slab holding voxels."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            for n in range(len(table)):
                v = int(table.label_value[n])
                muscle, side = C.split_label_value(v)
                w.writerow([side, muscle.key, v, f"{table.t_mm[n]:.3f}", f"{table.slab_mm:g}", int(table.voxels[n]),
                            f"{table.volume_cm3[n]:.6f}", f"{table.hu_sum[n]:.1f}", f"{table.hu_sq_sum[n]:.1f}",
                            int(table.imat_voxels[n]), int(table.lama_voxels[n]), int(table.nama_voxels[n])])
    return Path(path)


def read_slabs_csv(path: str | os.PathLike) -> SlabTable:
    """The table of a ``slabs.csv`` written by ``write_slabs_csv``."""
    rows = read_rows(path, CSV_COLUMNS, "slabs.csv")
    slab = float(rows[0]["slab_mm"]) if rows else SLAB_MM
    if any(not math.isclose(float(r["slab_mm"]), slab) for r in rows):
        raise InputError(f"{Path(path).name} mixes slab thicknesses")
    col = lambda name, kind: np.array([kind(r[name]) for r in rows], dtype=kind)  # noqa: E731
    return SlabTable(slab, col("label_value", int), col("t_mm", float), col("voxels", int), col("volume_cm3", float),
                     col("hu_sum", float), col("hu_sq_sum", float), col("imat_voxels", int),
                     col("lama_voxels", int), col("nama_voxels", int))
