"""Change against a prior scan, matched along each femur, so a shorter scan is never atrophy.

A muscle's volume depends on how much of the thigh a CT holds: a prior scan that stops 4 cm
higher holds less of every muscle. So every number is compared over the same stretch of bone:

1. Per side, the two femur lines (``femur.FemurLine``: t in mm along the femur axis) are
   aligned at a femur end both scans hold, the hip end first (the top of the femoral head: on
   phantom rescans of one body, 1.7-5 mm slices, it lay 20-25 mm above the true head centre
   every time, while the knee end's offset from the condyles varied by 10-15 mm and was often
   not found; ``make repeatability`` pilot, 2026-12-02), else the knee end:
   ``t_current = t_prior + shift``. An adult's femur does not change length: nothing is scaled.
2. The common range is where both scans' ``covered_mm`` (the CT and the segmented field) meet,
   in the current scan's t. Each 2 mm slab (``slabs``) counts with the share of its thickness
   that lies inside it, so the two sums cover exactly the same millimetres.
3. Per muscle and side, over the common range: volume (cm³), mean HU, IMAT % (``hu_ranges``),
   and the cross-sectional area (slab volume / slab thickness, linear between slab centres) at
   25 / 50 / 75 % of the femur length (from the scan that holds both ends; levels outside the
   common range are left empty).
4. Each change is set against that muscle's smallest detectable change (``repeatability``:
   SDC = 1.96 · √2 · SEM from phantom rescans) and marked "within measurement error" when
   smaller.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import classes as C
from ..io import InputError
from .femur import FemurLine
from .slabs import SlabTable

CSA_LEVELS_PERCENT = (25, 50, 75)
FEMUR_ENDS = ("hip", "knee")  # the order in which the scans are aligned (see the module docstring)
LENGTH_MISMATCH_MM = 10.0  # both scans hold both ends, yet the femur lengths differ by more: say so
WITHIN = "within measurement error"
BEYOND = "beyond measurement error"
NO_SDC = "no SDC"
METRICS = ("volume_percent",) + tuple(f"csa{p}_percent" for p in CSA_LEVELS_PERCENT) + ("mean_hu", "imat_pp")
RERUN = "re-run thighseg segment with this version"
DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "repeatability.json"  # made by make repeatability


class ChangeError(InputError):
    """The two results cannot be compared; the message says why and what to do."""


@dataclass(frozen=True)
class ResultTables:
    """What the comparison needs of one result: each side's femur line and the slabs."""

    lines: dict[str, FemurLine]
    slabs: SlabTable
    source: str = ""


@dataclass(frozen=True)
class Alignment:
    """One side's two scans on the current scan's femur coordinate t (mm)."""

    side: str
    end: str  # "knee" | "hip": the femur end both scans hold
    shift_mm: float  # t_current = t_prior + shift_mm
    common_mm: tuple[float, float]  # the t range both scans cover, in the current scan's t
    knee_t_mm: float | None  # the knee end in the current scan's t (from either scan)
    length_mm: float | None  # femur length (from a scan that holds both ends)

    def percent(self, t_mm: float) -> float | None:
        """Level of t in % of the femur length (0 knee, 100 hip), when the length is known."""
        if self.knee_t_mm is None or not self.length_mm:
            return None
        return 100.0 * (t_mm - self.knee_t_mm) / self.length_mm

    def t_at(self, percent: float) -> float | None:
        if self.knee_t_mm is None or not self.length_mm:
            return None
        return self.knee_t_mm + percent / 100.0 * self.length_mm


@dataclass
class MuscleChange:
    side: str
    muscle: str  # class key
    label_value: int
    volume_prior_cm3: float
    volume_current_cm3: float
    csa_prior_cm2: dict[int, float]  # level % -> area (nan outside the common range)
    csa_current_cm2: dict[int, float]
    mean_hu_prior: float
    mean_hu_current: float
    imat_prior_percent: float
    imat_current_percent: float
    sdc: dict[str, float] = field(default_factory=dict)  # metric -> smallest detectable change

    @property
    def volume_change_cm3(self) -> float:
        return self.volume_current_cm3 - self.volume_prior_cm3

    @property
    def volume_change_percent(self) -> float:
        return _percent(self.volume_prior_cm3, self.volume_current_cm3)

    def csa_change_percent(self, level: int) -> float:
        return _percent(self.csa_prior_cm2[level], self.csa_current_cm2[level])

    @property
    def mean_hu_change(self) -> float:
        return self.mean_hu_current - self.mean_hu_prior

    @property
    def imat_change_pp(self) -> float:
        """IMAT share change in percentage points."""
        return self.imat_current_percent - self.imat_prior_percent

    def change(self, metric: str) -> float:
        if metric == "volume_percent":
            return self.volume_change_percent
        if metric == "mean_hu":
            return self.mean_hu_change
        if metric == "imat_pp":
            return self.imat_change_pp
        return self.csa_change_percent(int(metric[3:-len("_percent")]))

    def verdict(self, metric: str) -> str:
        """Whether the change in ``metric`` is beyond this muscle's smallest detectable change."""
        value, sdc = self.change(metric), self.sdc.get(metric)
        if sdc is None or not math.isfinite(value):
            return NO_SDC if math.isfinite(value) else ""
        return WITHIN if abs(value) < sdc else BEYOND


@dataclass
class ChangeReport:
    alignments: dict[str, Alignment]
    muscles: list[MuscleChange]
    notes: list[str] = field(default_factory=list)
    sdc_source: str = ""

    def beyond(self, metric: str = "volume_percent") -> list[MuscleChange]:
        return [m for m in self.muscles if m.verdict(metric) == BEYOND]

    def summary(self) -> str:
        """One line: the ranges compared and the volume changes beyond measurement error."""
        ranges = []
        for side, a in self.alignments.items():
            lo, hi = (a.percent(t) for t in a.common_mm)
            span = f"{lo:.0f}-{hi:.0f} % of the femur" if lo is not None else \
                f"{a.common_mm[1] - a.common_mm[0]:.0f} mm of the femur"
            ranges.append(f"{side} {span} (aligned at the {a.end} end)")
        moved = self.beyond()
        if not self.muscles:
            said = "no muscle in both scans"
        elif not any(m.sdc for m in self.muscles):
            said = "no repeatability table: changes not judged"
        elif not moved:
            said = f"all {len(self.muscles)} muscle volumes within measurement error"
        else:
            said = f"{len(moved)} of {len(self.muscles)} muscle volumes changed beyond measurement error: " + ", ".join(
                f"{m.side} {m.muscle.replace('_', ' ')} {m.volume_change_percent:+.1f} % "
                f"(SDC {m.sdc['volume_percent']:.1f} %)" for m in moved)
        return "compared over " + "; ".join(ranges) + ": " + said


def _percent(before: float, after: float) -> float:
    if not math.isfinite(before) or not math.isfinite(after) or before <= 0:
        return math.nan
    return 100.0 * (after - before) / before


def align(side: str, prior: FemurLine, current: FemurLine) -> Alignment:
    """The two femur lines of a side aligned at a femur end both hold, and their common range."""
    shift = end = None
    for name in FEMUR_ENDS:
        p, c = getattr(prior, f"{name}_end_mm"), getattr(current, f"{name}_end_mm")
        if p is not None and c is not None:
            shift, end = c - p, name
            break
    if shift is None:
        raise ChangeError(f"the {side} thigh: no femur end is in both scans (prior: {_ends(prior)}; current: "
                          f"{_ends(current)}), so the scans cannot be matched along the femur; compare scans that "
                          "both hold the knee or both hold the hip")
    lo = max(current.covered_mm[0], prior.covered_mm[0] + shift)
    hi = min(current.covered_mm[1], prior.covered_mm[1] + shift)
    if hi <= lo:
        raise ChangeError(f"the {side} thigh: the two scans cover no common part of the femur (aligned at the {end} "
                          f"end, prior t {prior.covered_mm[0] + shift:.0f}..{prior.covered_mm[1] + shift:.0f} mm, "
                          f"current {current.covered_mm[0]:.0f}..{current.covered_mm[1]:.0f} mm)")
    length = current.length_mm if current.length_mm is not None else prior.length_mm
    if current.knee_end_mm is not None:
        knee = current.knee_end_mm
    elif prior.knee_end_mm is not None:
        knee = prior.knee_end_mm + shift
    else:
        knee = None if length is None else current.hip_end_mm - length
    return Alignment(side, end, round(shift, 3), (round(lo, 3), round(hi, 3)), knee, length)


def _ends(line: FemurLine) -> str:
    held = [n for n in FEMUR_ENDS if getattr(line, f"{n}_end_mm") is not None]
    return " and ".join(f"the {n} end" for n in held) if held else "neither end"


def slab_weights(t_mm: np.ndarray, slab_mm: float, lo: float, hi: float) -> np.ndarray:
    """Share of each slab (centre t, thickness slab_mm) inside [lo, hi]."""
    a = np.clip(np.minimum(t_mm + slab_mm / 2, hi) - np.maximum(t_mm - slab_mm / 2, lo), 0.0, None)
    return a / slab_mm


def area_at(table: SlabTable, t_mm: float) -> float:
    """Cross-sectional area (cm²) of one label's slabs at t: slab volume / slab thickness,
    linear between slab centres (a slab without voxels has none)."""
    if not len(table):
        return 0.0
    n = np.rint(table.t_mm / table.slab_mm).astype(np.int64)
    dense = np.zeros(int(n.max() - n.min()) + 3)
    dense[n - n.min() + 1] = table.volume_cm3 / (table.slab_mm / 10.0)
    centres = (np.arange(dense.size) + n.min() - 1) * table.slab_mm
    return float(np.interp(t_mm, centres, dense))


@dataclass(frozen=True)
class _Sums:
    volume_cm3: float
    mean_hu: float
    imat_percent: float


def _sums(table: SlabTable, shift: float, lo: float, hi: float) -> _Sums:
    w = slab_weights(table.t_mm + shift, table.slab_mm, lo, hi)
    voxels = float((w * table.voxels).sum())
    if voxels <= 0:
        return _Sums(0.0, math.nan, math.nan)
    return _Sums(float((w * table.volume_cm3).sum()), float((w * table.hu_sum).sum()) / voxels,
                 100.0 * float((w * table.imat_voxels).sum()) / voxels)


def compare(prior: ResultTables, current: ResultTables, sdc: dict | None = None,
            sdc_source: str = "") -> ChangeReport:
    """Per muscle and side, prior against current over the femur range both scans cover.
    ``sdc``: muscle key -> metric -> smallest detectable change (``load_sdc``)."""
    sides = [s for s in C.SIDES if s in prior.lines and s in current.lines]
    if not sides:
        raise ChangeError(f"no thigh is in both results (prior: {', '.join(prior.lines) or 'none'}; current: "
                          f"{', '.join(current.lines) or 'none'})")
    sdc = sdc or {}
    alignments, notes, errors = {}, [], []
    for s in sides:  # a side that cannot be matched is left out with its reason; none at all is an error
        try:
            alignments[s] = align(s, prior.lines[s], current.lines[s])
        except ChangeError as e:
            errors.append(str(e))
    if not alignments:
        raise ChangeError("; ".join(errors))
    notes += [f"not compared: {e}" for e in errors]
    muscles = []
    for side, a in alignments.items():
        lp, lc = prior.lines[side].length_mm, current.lines[side].length_mm
        if lp is not None and lc is not None and abs(lp - lc) > LENGTH_MISMATCH_MM:
            notes.append(f"the {side} femur measures {lp:.0f} mm in the prior scan and {lc:.0f} mm in the current "
                         "one: check that both are the same thigh and that its ends were found")
        if a.length_mm is None:
            notes.append(f"the {side} femur length is unknown (no scan holds both ends): no CSA at matched levels")
        for cls in C.CLASSES:
            v = cls.label_value(side)
            tp, tc = prior.slabs.select(v), current.slabs.select(v)
            if not len(tp) and not len(tc):
                continue
            sp, sc = _sums(tp, a.shift_mm, *a.common_mm), _sums(tc, 0.0, *a.common_mm)
            csa_p, csa_c = {}, {}
            for level in CSA_LEVELS_PERCENT:
                t = a.t_at(level)
                inside = t is not None and a.common_mm[0] <= t <= a.common_mm[1]
                csa_p[level] = area_at(tp, t - a.shift_mm) if inside else math.nan
                csa_c[level] = area_at(tc, t) if inside else math.nan
            muscles.append(MuscleChange(side, cls.key, v, sp.volume_cm3, sc.volume_cm3, csa_p, csa_c, sp.mean_hu,
                                        sc.mean_hu, sp.imat_percent, sc.imat_percent, dict(sdc.get(cls.key, {}))))
    return ChangeReport(alignments, muscles, notes, sdc_source)


def load_result(folder: str | Path) -> ResultTables:
    """The femur lines (frames.json) and slabs (slabs.csv) of a ``segment`` result folder or a
    ``batch`` case folder (the same files)."""
    from .femur import femur_lines_from_frames_json
    from .slabs import read_slabs_csv

    d = Path(folder)
    if not d.is_dir():
        raise ChangeError(f"{d} is not a folder: give the output folder of thighseg segment (or a batch case folder)")
    frames, slabs = d / "frames.json", d / "slabs.csv"
    if not frames.is_file():
        raise ChangeError(f"{d} holds no frames.json: it is not a thighseg segment result")
    if not slabs.is_file():
        raise ChangeError(f"{d} holds no slabs.csv (written by an older thighseg): {RERUN}")
    try:
        lines = femur_lines_from_frames_json(json.loads(frames.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as e:
        raise ChangeError(f"{frames} cannot be read ({e}): {RERUN}") from None
    if not lines:
        raise ChangeError(f"{frames} holds no femur lines (written by an older thighseg): {RERUN}")
    return ResultTables(lines, read_slabs_csv(slabs), str(d))


def tables_from_images(ct: sitk.Image, labels: sitk.Image, frames: list) -> ResultTables:
    """The femur lines and slabs of an in-memory result (what ``segment`` computes and writes)."""
    from .femur import femur_lines
    from .slabs import slab_table

    lines = femur_lines(ct, frames)
    return ResultTables(lines, slab_table(ct, labels, lines))


def compare_images(prior_ct: sitk.Image, prior_labels: sitk.Image, prior_frames: list,
                   current_ct: sitk.Image, current_labels: sitk.Image, current_frames: list,
                   sdc: dict | None = None, sdc_source: str = "") -> ChangeReport:
    """``compare`` on two in-memory results (CT, CT-space labels, ThighFrames each), e.g. the
    Slicer module's *Compare with prior*; ``sdc=None`` uses the bundled repeatability table."""
    if sdc is None:
        sdc, sdc_source = load_sdc()
    return compare(tables_from_images(prior_ct, prior_labels, prior_frames),
                   tables_from_images(current_ct, current_labels, current_frames), sdc, sdc_source)


def load_sdc(path: str | Path | None = None) -> tuple[dict[str, dict[str, float]], str]:
    """(muscle key -> metric -> SDC, a sentence naming the table) from a repeatability.json
    (default: the bundled one, docs/repeatability.md); ({}, "") when there is none (changes
    are then not judged)."""
    p = Path(path) if path is not None else DATA_FILE
    if not p.is_file():
        return {}, ""
    data = json.loads(p.read_text(encoding="utf-8"))
    sdc = {m: {k: float(v) for k, v in metrics.items() if v is not None}
           for m, metrics in data.get("sdc", {}).items()}
    return sdc, f"{p.name}: {data.get('pairs', '?')} phantom rescan pairs, {data.get('date', '?')}"
