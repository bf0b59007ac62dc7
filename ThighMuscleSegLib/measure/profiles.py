"""Cross-sectional area (CSA) profiles of each muscle along its femur.

A slab's volume divided by its thickness is the muscle's mean area on planes perpendicular
to the femur axis over that slab, whatever the tilt of the femur against the CT's axes (for
a cylinder along the axis: exactly its cross-section, πr²). The profile takes it at 0 to
100 % of the femur length (0 % the knee end, 100 % the hip end), every 1 %: the mean over
``WINDOW_MM`` of slabs around each slab centre, interpolated linearly between them. Levels
the CT and the segmented field (with its reach) do not both cover (``FemurLine.covered_mm``)
have no area (empty cells), never 0: a muscle the scan did not reach is not absent. When the
CT lacks an end of the femur there is no length: the profile is given by t along the axis at
the slab centres, with the level empty.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .. import classes as C
from .csv_rows import number, read_rows, write_dataclass_rows
from .femur import FemurLine
from .slabs import SlabTable

LEVELS_PERCENT = tuple(float(p) for p in range(0, 101))
# A profile value is the muscle's volume over this length of the axis / the length: slabs of
# 2 mm alias against CT slices of up to 5 mm (a slab holding one slice centre or two), and a
# window spanning more than a slice evens that out. A cylinder's value stays exactly πr².
WINDOW_MM = 6.0
SUMMARY_LEVELS = (25, 50, 75)


@dataclass(frozen=True)
class ProfileRow:
    """One row of profiles.csv."""

    side: str
    muscle: str
    label_value: int
    level_percent: float  # nan when the femur length is unknown
    t_mm: float  # along the side's femur line
    area_cm2: float  # nan where the CT or the field does not cover this level


CSV_COLUMNS = tuple(f.name for f in fields(ProfileRow))


def _slab_csa(rows: SlabTable, centres: np.ndarray) -> np.ndarray:
    """Area (cm²) of each slab centred at ``centres``: volume / thickness, 0 where no voxel."""
    area = np.zeros(len(centres))
    if len(rows):
        idx = np.rint((rows.t_mm - centres[0]) / rows.slab_mm).astype(int)
        ok = (idx >= 0) & (idx < len(centres))
        np.add.at(area, idx[ok], rows.volume_cm3[ok] / (rows.slab_mm / 10.0))
    return area


def _window_slabs(slab_mm: float) -> int:
    """Slabs averaged for one profile value: an odd count spanning at least WINDOW_MM."""
    n = max(1, math.ceil(WINDOW_MM / slab_mm - 1e-9))
    return n if n % 2 else n + 1


def _window_mean(area: np.ndarray, n: int) -> np.ndarray:
    """Centred moving mean over ``n`` slabs; nan where the window leaves the covered slabs."""
    out = np.full(len(area), np.nan)
    if len(area) >= n:
        out[n // 2: len(area) - n // 2] = np.convolve(area, np.ones(n) / n, mode="valid")
    return out


def _covered_centres(line: FemurLine, slab_mm: float) -> np.ndarray:
    """Centres of the slabs lying wholly inside the covered range."""
    lo, hi = line.covered_mm
    first = math.ceil((lo + slab_mm / 2) / slab_mm - 1e-9)
    last = math.floor((hi - slab_mm / 2) / slab_mm + 1e-9)
    return np.arange(first, last + 1) * slab_mm


def csa_profiles(slabs: SlabTable, lines: dict[str, FemurLine]) -> list[ProfileRow]:
    """Profile rows of every muscle of each side that has a femur line."""
    out = []
    for seg in C.segments():
        line = lines.get(seg.side)
        if line is None:
            continue
        centres = _covered_centres(line, slabs.slab_mm)
        area = _window_mean(_slab_csa(slabs.select(seg.label_value), centres), _window_slabs(slabs.slab_mm))
        centres, area = centres[~np.isnan(area)], area[~np.isnan(area)]
        if line.length_mm is not None and line.length_mm > 0:
            levels = np.array(LEVELS_PERCENT)
            t = line.t_at_percent(levels)
        else:
            levels = np.full(len(centres), np.nan)
            t = centres
        if len(centres):
            inside = (t >= centres[0] - 1e-9) & (t <= centres[-1] + 1e-9)
            values = np.where(inside, np.interp(t, centres, area), np.nan)
        else:
            values = np.full(len(t), np.nan)
        out += [ProfileRow(seg.side, seg.muscle.key, seg.label_value, float(p), float(tt), float(a))
                for p, tt, a in zip(levels, t, values)]
    return out


def profile_summary(profiles: list[ProfileRow]) -> dict[int, dict[str, float]]:
    """label value -> CSA at 25 / 50 / 75 % of the femur length, the largest CSA and its level
    (nan where unknown: a level not covered, or no femur length)."""
    out: dict[int, dict[str, float]] = {}
    by_label: dict[int, list[ProfileRow]] = {}
    for r in profiles:
        by_label.setdefault(r.label_value, []).append(r)
    for value, rows in by_label.items():
        at = {r.level_percent: r.area_cm2 for r in rows if not math.isnan(r.level_percent)}
        summary = {f"csa_{p}_cm2": float(at.get(float(p), math.nan)) for p in SUMMARY_LEVELS}
        known = [r for r in rows if not math.isnan(r.area_cm2)]
        best = max(known, key=lambda r: r.area_cm2, default=None)
        summary["csa_max_cm2"] = math.nan if best is None else best.area_cm2
        summary["csa_max_percent"] = math.nan if best is None else best.level_percent
        out[value] = summary
    return out


def write_profiles_csv(rows: list[ProfileRow], path: str | os.PathLike) -> Path:
    """``profiles.csv`` (atomically): columns ``CSV_COLUMNS``, empty cells where unknown."""
    return write_dataclass_rows(rows, CSV_COLUMNS, path)


def read_profiles_csv(path: str | os.PathLike) -> list[ProfileRow]:
    """The rows of a ``profiles.csv`` written by ``write_profiles_csv``."""
    return [ProfileRow(r["side"], r["muscle"], int(r["label_value"]), number(r["level_percent"]), number(r["t_mm"]),
                       number(r["area_cm2"])) for r in read_rows(path, CSV_COLUMNS, "profiles.csv")]
