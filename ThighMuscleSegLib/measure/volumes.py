"""Muscle volumes, mean HU and left/right asymmetry of a CT-space label map.

Asymmetry of a muscle (the same number on its right and its left row):

    asymmetry_percent = 100 * (R - L) / ((R + L) / 2)

with R and L its right and left volumes in cm³: positive when the right muscle is larger,
0 when equal, ±200 when one side is missing, empty when both are.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import classes as C
from ..io import InputError, same_geometry
from .csv_rows import number, read_rows, write_dataclass_rows

NUM_LABELS = 2 * C.NUM_MUSCLES + 1
_SLAB_VOXELS = 1 << 20  # bincount copies each slab as int64 / float64: keep it small


@dataclass(frozen=True)
class MuscleVolume:
    """One muscle on one side (one row of volumes.csv)."""

    label_value: int
    muscle: str  # class key, e.g. "vastus_lateralis"
    side: str  # "right" | "left"
    name: str  # display name, e.g. "Right vastus lateralis"
    voxels: int
    volume_cm3: float
    mean_hu: float  # nan when the muscle has no voxels
    asymmetry_percent: float  # see module docstring; nan when both sides are empty
    confidence: float = math.nan  # quality flag (ThighMuscleSegLib.quality): 0..1, nan when not assessed
    quality: str = ""  # "ok" | "check"; empty when not assessed (a side that was not segmented)


@dataclass(frozen=True)
class VolumeChange:
    """A muscle's change since a prior segmentation: current - prior."""

    label_value: int
    muscle: str
    side: str
    name: str
    prior_cm3: float
    current_cm3: float
    change_cm3: float
    change_percent: float  # 100 * change / prior; nan when the prior volume is 0


def label_counts(arr: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Voxels per value 0..255 of a uint8 array (with ``weights`` of the same shape: their sum
    per value), a slab at a time: bincount copies its input as int64 (and the weights as
    float64), and for a whole CT (8 bytes a voxel, ~0.7 GB) that copy costs more than the count."""
    flat = arr.reshape(-1)
    w = None if weights is None else weights.reshape(-1)
    counts = np.zeros(256, np.int64 if w is None else np.float64)
    for start in range(0, flat.size, _SLAB_VOXELS):
        stop = start + _SLAB_VOXELS
        counts += np.bincount(flat[start:stop], weights=None if w is None else w[start:stop], minlength=256)
    return counts


def label_histogram(ct: sitk.Image | None, labels: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Voxel count and HU sum per label value 0..20."""
    lab = sitk.GetArrayViewFromImage(labels)
    if lab.dtype != np.uint8:
        raise InputError(f"the label map must be uint8 (it is {lab.dtype}); values 0, right 1-10, left 11-20")
    counts = label_counts(lab)
    unknown = [int(v) for v in np.flatnonzero(counts[NUM_LABELS:]) + NUM_LABELS]
    if unknown:
        raise InputError(f"label values {unknown} are not in the class table (0, right 1-10, left 11-20)")
    sums = np.zeros(256) if ct is None else label_counts(lab, sitk.GetArrayViewFromImage(ct))
    return counts[:NUM_LABELS], sums[:NUM_LABELS]


def voxel_volume_cm3(image: sitk.Image) -> float:
    """Physical volume of one voxel; a direction matrix is a rotation, so only spacing counts."""
    return float(np.prod(image.GetSpacing())) / 1000.0


def asymmetry_percent(right_cm3: float, left_cm3: float) -> float:
    mean = (right_cm3 + left_cm3) / 2.0
    return 100.0 * (right_cm3 - left_cm3) / mean if mean > 0 else math.nan


def muscle_volumes(ct: sitk.Image, labels: sitk.Image) -> list[MuscleVolume]:
    """One row per muscle and side (right 1-10 then left 11-20) from the CT and its label map."""
    if not same_geometry(ct, labels):
        raise InputError("the CT and the label map have different geometry (size, spacing, origin or direction): "
                         "resample the labels onto the CT first")
    counts, sums = label_histogram(ct, labels)
    return volume_rows(counts, sums, voxel_volume_cm3(labels))


def volume_rows(counts: np.ndarray, hu_sums: np.ndarray, voxel_cm3: float) -> list[MuscleVolume]:
    """``muscle_volumes``' rows from the voxel count and HU sum per label value 0..20 (e.g. a
    ``composition.CompositionSums``' ``voxels`` and ``hu_sum``: one pass over the CT for both)."""
    cm3 = np.asarray(counts) * voxel_cm3
    sums = hu_sums
    rows = []
    for seg in C.segments():
        v = seg.label_value
        right, left = seg.muscle.label_value("right"), seg.muscle.label_value("left")
        rows.append(MuscleVolume(
            label_value=v, muscle=seg.muscle.key, side=seg.side, name=seg.name,
            voxels=int(counts[v]), volume_cm3=float(cm3[v]),
            mean_hu=float(sums[v] / counts[v]) if counts[v] else math.nan,
            asymmetry_percent=asymmetry_percent(float(cm3[right]), float(cm3[left]))))
    return rows


CSV_COLUMNS = tuple(f.name for f in fields(MuscleVolume))
# Columns a volumes.csv must have to be read (older files have no quality columns).
REQUIRED_COLUMNS = CSV_COLUMNS[:CSV_COLUMNS.index("confidence")]


def write_volumes_csv(rows: list[MuscleVolume], path: str | os.PathLike) -> Path:
    """Write ``volumes.csv`` atomically: columns ``CSV_COLUMNS``, empty cells for undefined numbers."""
    return write_dataclass_rows(rows, CSV_COLUMNS, path)


def read_volumes_csv(path: str | os.PathLike) -> list[MuscleVolume]:
    """Rows of a ``volumes.csv`` written by ``write_volumes_csv`` (e.g. a prior study's)."""
    return [MuscleVolume(int(r["label_value"]), r["muscle"], r["side"], r["name"], int(r["voxels"]),
                         number(r["volume_cm3"]), number(r["mean_hu"]), number(r["asymmetry_percent"]),
                         number(r.get("confidence")), r.get("quality") or "")
            for r in read_rows(path, REQUIRED_COLUMNS, "volumes.csv")]


def compare_with_prior(current_rows: list[MuscleVolume], prior_rows: list[MuscleVolume]) -> list[VolumeChange]:
    """Per muscle and side, matched by label value: change in cm³ and in % of the prior volume."""
    prior = {r.label_value: r for r in prior_rows}
    out = []
    for cur in current_rows:
        old = prior.get(cur.label_value)
        if old is None:
            continue
        change = cur.volume_cm3 - old.volume_cm3
        out.append(VolumeChange(cur.label_value, cur.muscle, cur.side, cur.name, old.volume_cm3, cur.volume_cm3,
                                change, 100.0 * change / old.volume_cm3 if old.volume_cm3 > 0 else math.nan))
    return out
