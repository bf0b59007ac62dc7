"""``measurements.csv``: per muscle and side, and per muscle group of each thigh, the composition
(``composition``), the volume / height², the cross-sectional areas along the femur (``profiles``)
and, on each thigh's all-muscles row, the subcutaneous fat area at mid-thigh (``subcutaneous``).

Rows: the 20 muscle rows (``kind`` ``muscle``, label values 1-20, the order of ``volumes.csv``),
then the group rows (``kind`` ``group``, no label value) of the right thigh, then of the left, in
the order of ``classes.GROUPS``. Columns are named with their unit; an undefined number is an
empty cell; columns are only ever added at the end (find them by name).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import classes as C
from .csv_rows import read_rows, write_dataclass_rows
from .composition import CompositionSums, MuscleComposition, composition_sums, group_rows_from_sums, rows_from_sums
from .subcutaneous import subcutaneous_fat_area_cm2

NAN = math.nan
CSA_KEYS = ("csa_25_cm2", "csa_50_cm2", "csa_75_cm2", "csa_max_cm2", "csa_max_percent")
MID_THIGH_PERCENT = 50.0  # of the femur length, from the knee end
PLANE_FEMUR = "femur_50_percent"  # subcutaneous fat plane: perpendicular to the femur at 50 % of its length
PLANE_FRAME = "frame_centre"  # ... or, the femur length unknown, through the frame centre on its axis


@dataclass(frozen=True)
class MeasurementRow:
    """One row of measurements.csv (see docs/outputs.md for each column)."""

    kind: str  # "muscle" | "group"
    label_value: int | None  # 1-20 for a muscle; None for a group
    muscle: str  # class key, or group key (classes.GROUPS)
    side: str
    name: str
    voxels: int
    volume_cm3: float
    volume_per_height2_cm3_m2: float
    mean_hu: float
    sd_hu: float
    imat_cm3: float
    imat_percent: float
    lama_cm3: float
    lama_percent: float
    nama_cm3: float
    nama_percent: float
    csa_25_cm2: float = NAN
    csa_50_cm2: float = NAN
    csa_75_cm2: float = NAN
    csa_max_cm2: float = NAN
    csa_max_percent: float = NAN  # level of the maximum, % of the femur length from the knee end
    subcutaneous_fat_cm2: float = NAN  # the all-muscles row of each thigh only
    subcutaneous_fat_plane: str = ""  # PLANE_FEMUR | PLANE_FRAME; empty where not measured
    height_cm: float = NAN


MEASUREMENT_COLUMNS = tuple(f.name for f in fields(MeasurementRow))
_TEXT = {"kind", "muscle", "side", "name", "subcutaneous_fat_plane"}
REQUIRED = MEASUREMENT_COLUMNS[:MEASUREMENT_COLUMNS.index("csa_25_cm2")]


def per_height2(volume_cm3: float, height_cm: float | None) -> float:
    """Volume / height² in cm³/m²; nan when the height is unknown."""
    if height_cm is None or not math.isfinite(height_cm) or height_cm <= 0:
        return NAN
    return volume_cm3 / (height_cm / 100.0) ** 2


def _from_composition(row: MuscleComposition, height_cm: float | None) -> MeasurementRow:
    c = asdict(row)
    return MeasurementRow(kind="muscle" if row.label_value is not None else "group",
                          volume_per_height2_cm3_m2=per_height2(row.volume_cm3, height_cm),
                          height_cm=NAN if height_cm is None else float(height_cm), **c)


def group_csa(csa: dict[int, dict], side: str, group: C.MuscleGroup) -> dict:
    """A group's CSA at 25 / 50 / 75 %: the sum of its members' (when all have one). Its maximum
    needs the group's own profile, not the members' maxima, so it is left out here."""
    out = {}
    for key in CSA_KEYS[:3]:
        values = [(csa.get(v) or {}).get(key, NAN) for v in group.label_values(side)]
        values = [NAN if v is None else float(v) for v in values]
        out[key] = float(sum(values)) if values and all(math.isfinite(v) for v in values) else NAN
    return out


def group_profile_summary(profiles) -> dict[tuple[str, str], dict]:
    """(side, group key) -> CSA at 25 / 50 / 75 %, the largest CSA and its level, from the group's
    own profile: at each point of the profile (its t along the femur, the same for every muscle of
    a side) the sum of its members' areas (``profiles.ProfileRow`` rows; a point where a member's
    area is unknown is unknown for the group). As for a muscle, the maximum is found without the
    femur length too (its level is then unknown)."""
    area: dict[tuple[str, float], dict[int, float]] = {}
    level: dict[tuple[str, float], float] = {}
    for r in profiles:
        key = (r.side, round(float(r.t_mm), 3))
        area.setdefault(key, {})[int(r.label_value)] = float(r.area_cm2)
        level[key] = float(r.level_percent)
    out = {}
    for side in C.SIDES:
        points = [key for key in area if key[0] == side]
        for g in C.GROUPS:
            values = g.label_values(side)
            profile = {key: sum(area[key].get(v, NAN) for v in values) for key in points}
            at_level = {level[key]: a for key, a in profile.items() if not math.isnan(level[key])}
            summary = {f"csa_{p}_cm2": at_level.get(float(p), NAN) for p in (25, 50, 75)}
            known = {key: a for key, a in profile.items() if math.isfinite(a)}
            best = max(known, key=known.get, default=None)
            summary["csa_max_cm2"] = NAN if best is None else known[best]
            summary["csa_max_percent"] = NAN if best is None else level[best]
            out[(side, g.key)] = summary
    return out


def subcutaneous_plane(frame, line=None) -> tuple[np.ndarray, np.ndarray, str]:
    """Point, normal and name of the plane the subcutaneous fat is measured on: perpendicular to
    the femur at 50 % of its length when the femur line knows both ends, else through the frame
    centre perpendicular to the frame's femur axis."""
    if line is not None and line.length_mm is not None:
        return np.asarray(line.point_at_percent(MID_THIGH_PERCENT), float), np.asarray(line.axis, float), PLANE_FEMUR
    return np.asarray(frame.centre, float), np.asarray(frame.axis, float), PLANE_FRAME


def measurement_rows(ct: sitk.Image, labels: sitk.Image, frames=(), *, height_cm: float | None = None,
                     lines: dict | None = None, csa: dict[int, dict] | None = None,
                     group_csa_values: dict[tuple[str, str], dict] | None = None,
                     within: np.ndarray | None = None, profiles=None,
                     sums: CompositionSums | None = None) -> list[MeasurementRow]:
    """The rows of measurements.csv for a CT and its label map.

    ``frames``: the thighs' ``framing.ThighFrame`` (the subcutaneous fat is measured for each);
    ``lines``: side -> ``femur.FemurLine`` (the plane at 50 % of the femur); ``csa``: label value ->
    ``profiles.profile_summary`` values; ``group_csa_values``: (side, group key) -> the same for a
    group (else its 25 / 50 / 75 % are its members' sums); ``within``: see ``composition_sums``;
    ``profiles``: ``profiles.ProfileRow`` rows, from which ``csa`` and ``group_csa_values`` are
    made when they are not given; ``sums``: the ``composition_sums`` of ``ct`` and ``labels``
    when the caller has them already (``within`` is then ignored).
    """
    sums = sums if sums is not None else composition_sums(ct, labels, within)
    if profiles is not None:
        from .profiles import profile_summary

        csa = profile_summary(profiles) if csa is None else csa
        group_csa_values = group_profile_summary(profiles) if group_csa_values is None else group_csa_values
    csa = csa or {}
    rows = []
    for comp in rows_from_sums(sums):
        values = {k: _num(v) for k, v in (csa.get(comp.label_value) or {}).items() if k in CSA_KEYS}
        rows.append(replace(_from_composition(comp, height_cm), **values))
    groups = {g.key: g for g in C.GROUPS}
    fat = {}
    for frame in frames:
        point, normal, plane = subcutaneous_plane(frame, (lines or {}).get(frame.side))
        fat[frame.side] = (subcutaneous_fat_area_cm2(ct, labels, point, normal, side=frame.side, frame=frame), plane)
    for comp in group_rows_from_sums(sums):
        row = _from_composition(comp, height_cm)
        given = (group_csa_values or {}).get((comp.side, comp.muscle))
        values = given if given is not None else group_csa(csa, comp.side, groups[comp.muscle])
        row = replace(row, **{k: _num(v) for k, v in values.items() if k in CSA_KEYS})
        if comp.muscle == "all_muscles" and comp.side in fat:
            row = replace(row, subcutaneous_fat_cm2=fat[comp.side][0], subcutaneous_fat_plane=fat[comp.side][1])
        rows.append(row)
    return rows


def _num(v) -> float:
    return NAN if v is None or v == "" else float(v)


def write_measurements_csv(rows: list[MeasurementRow], path: str | os.PathLike) -> Path:
    """Write ``measurements.csv`` atomically (columns ``MEASUREMENT_COLUMNS``, three decimals)."""
    return write_dataclass_rows(rows, MEASUREMENT_COLUMNS, path)


def read_measurements_csv(path: str | os.PathLike) -> list[MeasurementRow]:
    """The rows of a ``measurements.csv``; columns a later version added are ignored, ones an
    earlier version lacked (after the composition columns) read as empty."""
    out = []
    for r in read_rows(path, REQUIRED, "measurements.csv"):
        kw = {}
        for name in MEASUREMENT_COLUMNS:
            text = r.get(name) or ""
            if name in _TEXT:
                kw[name] = text
            elif name in ("label_value", "voxels"):
                kw[name] = int(text) if text else (None if name == "label_value" else 0)
            else:
                kw[name] = _num(text)
        out.append(MeasurementRow(**kw))
    return out
