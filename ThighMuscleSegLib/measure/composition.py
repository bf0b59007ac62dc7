"""Muscle composition per muscle and side: volume, mean and SD of HU, and the IMAT, LAMA and NAMA
shares (``hu_ranges``), and the same for the muscle groups of each thigh (``classes.GROUPS``).

Everything is summed from four numbers per label value (voxels, HU sum, HU² sum, voxels per HU
range), accumulated a slab of the CT at a time on the labelled voxels only, so a whole
512 × 512 × 1000 CT costs a few tens of MB beyond itself. A group's numbers are sums of its
members' (its mean and SD are those of all its voxels together, not a mean of means).

HU are integers in CT; a resampled (float) CT is rounded to the nearest HU before the ranges
are applied, so that no value falls between two inclusive ranges (e.g. -29.6). The mean and SD
use the values as they are. The SD is the population SD of the muscle's voxel values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .. import classes as C
from ..io import InputError, same_geometry
from .hu_ranges import QUALITY_RANGES
from .volumes import NUM_LABELS, voxel_volume_cm3

_SLAB_VOXELS = 1 << 20  # voxels per slab: the float64 copies of one slab stay ~10 MB


@dataclass(frozen=True)
class MuscleComposition:
    """One muscle (or group, ``label_value`` None) on one side."""

    label_value: int | None  # CT label value 1-20; None for a group row
    muscle: str  # class key, or group key (classes.GROUPS)
    side: str
    name: str
    voxels: int
    volume_cm3: float
    mean_hu: float  # nan when empty
    sd_hu: float  # population SD of the voxel values; nan when empty
    imat_cm3: float
    imat_percent: float  # of volume_cm3; nan when empty
    lama_cm3: float
    lama_percent: float
    nama_cm3: float
    nama_percent: float


@dataclass
class CompositionSums:
    """Per label value 0..20: voxels, HU sum, HU² sum and voxels in each quality range."""

    voxels: np.ndarray  # int64 (21,)
    hu_sum: np.ndarray  # float64 (21,)
    hu_sq_sum: np.ndarray  # float64 (21,)
    range_voxels: dict[str, np.ndarray]  # HURange.key -> int64 (21,)
    voxel_cm3: float


def sums_from_slabs(table, voxel_cm3: float) -> CompositionSums:
    """The same sums from a ``slabs.SlabTable`` that holds every labelled voxel (each labelled
    side had its femur line): no second pass over the volume. Counts are exact; the HU sums are
    the same numbers added in another order (a few units in the last place)."""
    per = lambda name: table.per_label(name, NUM_LABELS)  # noqa: E731
    return CompositionSums(per("voxels"), per("hu_sum"), per("hu_sq_sum"),
                           {rng.key: per(f"{rng.key}_voxels") for rng in QUALITY_RANGES}, voxel_cm3)


def composition_sums(ct: sitk.Image, labels: sitk.Image, within: np.ndarray | None = None) -> CompositionSums:
    """The sums every composition number is made from, one pass over the volume by slabs of z.

    ``within``: optional bool array of the CT's (z, y, x) shape; only voxels where it is True count.
    """
    if not same_geometry(ct, labels):
        raise InputError("the CT and the label map have different geometry (size, spacing, origin or direction): "
                         "resample the labels onto the CT first")
    lab = sitk.GetArrayViewFromImage(labels)
    if lab.dtype != np.uint8:
        raise InputError(f"the label map must be uint8 (it is {lab.dtype}); values 0, right 1-10, left 11-20")
    hu_arr = sitk.GetArrayViewFromImage(ct)
    if within is not None and tuple(within.shape) != lab.shape:
        raise InputError(f"the mask 'within' has shape {tuple(within.shape)}, the CT {lab.shape} (z, y, x)")
    n_ranges = len(QUALITY_RANGES)
    counts = np.zeros((256, n_ranges + 1), np.int64)  # per label: voxels in no range, in range 1, 2, 3
    s = np.zeros(256)
    q = np.zeros(256)
    whole_hu = np.issubdtype(hu_arr.dtype, np.integer)
    per_slice = max(1, lab[0].size)
    step = max(1, _SLAB_VOXELS // per_slice)
    for z0 in range(0, lab.shape[0], step):
        lv = lab[z0:z0 + step].reshape(-1)
        keep = lv != 0
        if within is not None:
            keep &= np.asarray(within[z0:z0 + step], bool).reshape(-1)
        if not keep.any():
            continue
        lv = lv[keep]
        hu = hu_arr[z0:z0 + step].reshape(-1)[keep].astype(np.float64)
        s += np.bincount(lv, weights=hu, minlength=256)
        q += np.bincount(lv, weights=hu * hu, minlength=256)
        whole = hu if whole_hu else np.rint(hu)
        code = lv.astype(np.intp) * (n_ranges + 1)  # one bincount for the voxels and all ranges
        for k, rng in enumerate(QUALITY_RANGES, 1):  # the ranges are disjoint
            code[rng.contains(whole)] += k
        counts += np.bincount(code, minlength=256 * (n_ranges + 1)).reshape(256, n_ranges + 1)
    n = counts.sum(axis=1)
    r = {rng.key: counts[:, k] for k, rng in enumerate(QUALITY_RANGES, 1)}
    unknown = [int(v) for v in np.flatnonzero(n[NUM_LABELS:]) + NUM_LABELS]
    if unknown:
        raise InputError(f"label values {unknown} are not in the class table (0, right 1-10, left 11-20)")
    return CompositionSums(n[:NUM_LABELS], s[:NUM_LABELS], q[:NUM_LABELS],
                           {k: v[:NUM_LABELS] for k, v in r.items()}, voxel_volume_cm3(labels))


def _row(sums: CompositionSums, values: tuple[int, ...], label_value: int | None, muscle: str, side: str,
         name: str) -> MuscleComposition:
    idx = list(values)
    n = int(sums.voxels[idx].sum())
    s, q = float(sums.hu_sum[idx].sum()), float(sums.hu_sq_sum[idx].sum())
    mean = s / n if n else math.nan
    sd = math.sqrt(max(q / n - mean * mean, 0.0)) if n else math.nan
    shares = {}
    for rng in QUALITY_RANGES:
        k = int(sums.range_voxels[rng.key][idx].sum())
        shares[f"{rng.key}_cm3"] = k * sums.voxel_cm3
        shares[f"{rng.key}_percent"] = 100.0 * k / n if n else math.nan
    return MuscleComposition(label_value, muscle, side, name, n, n * sums.voxel_cm3, mean, sd, **shares)


def rows_from_sums(sums: CompositionSums) -> list[MuscleComposition]:
    """One row per muscle and side, right 1-10 then left 11-20 (the order of volumes.csv)."""
    return [_row(sums, (seg.label_value,), seg.label_value, seg.muscle.key, seg.side, seg.name)
            for seg in C.segments()]


def group_rows_from_sums(sums: CompositionSums, sides: tuple[str, ...] = C.SIDES) -> list[MuscleComposition]:
    """One row per group (``classes.GROUPS``) and side: its members' voxels together."""
    return [_row(sums, g.label_values(side), None, g.key, side, g.side_name(side))
            for side in sides for g in C.GROUPS]


def muscle_composition(ct: sitk.Image, labels: sitk.Image, within: np.ndarray | None = None
                       ) -> list[MuscleComposition]:
    """Per muscle and side (label values 1..20, in that order): voxels, volume, mean and SD of HU,
    IMAT / LAMA / NAMA volume and % of the muscle volume. ``within``: see :func:`composition_sums`."""
    return rows_from_sums(composition_sums(ct, labels, within))


def group_composition(ct: sitk.Image, labels: sitk.Image, within: np.ndarray | None = None
                      ) -> list[MuscleComposition]:
    """The group rows of both sides (quadriceps, hamstrings, adductor group, all ten)."""
    return group_rows_from_sums(composition_sums(ct, labels, within))
