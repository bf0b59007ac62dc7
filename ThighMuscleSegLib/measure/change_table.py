"""``change.csv``: one row per muscle and side of a ``ChangeReport`` (docs/outputs.md)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from ..io import atomic_path
from .change import CSA_LEVELS_PERCENT, ChangeReport, MuscleChange

_CSA = [c for p in CSA_LEVELS_PERCENT for c in (f"csa{p}_prior_cm2", f"csa{p}_current_cm2", f"csa{p}_change_percent",
                                                f"csa{p}_sdc_percent", f"csa{p}_verdict")]
CSV_COLUMNS = ("side", "muscle", "label_value", "aligned_at", "common_from_mm", "common_to_mm", "common_from_percent",
               "common_to_percent", "volume_prior_cm3", "volume_current_cm3", "volume_change_cm3",
               "volume_change_percent", "volume_sdc_percent", "volume_verdict", *_CSA, "mean_hu_prior",
               "mean_hu_current", "mean_hu_change", "mean_hu_sdc", "mean_hu_verdict", "imat_prior_percent",
               "imat_current_percent", "imat_change_pp", "imat_sdc_pp", "imat_verdict")


def _num(v: float | None, digits: int = 3) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def row(report: ChangeReport, m: MuscleChange) -> dict[str, str]:
    """The CSV row of one muscle (strings, empty where a number is undefined)."""
    a = report.alignments[m.side]
    r = {"side": m.side, "muscle": m.muscle, "label_value": str(m.label_value), "aligned_at": a.end,
         "common_from_mm": _num(a.common_mm[0], 1), "common_to_mm": _num(a.common_mm[1], 1),
         "common_from_percent": _num(a.percent(a.common_mm[0]), 1),
         "common_to_percent": _num(a.percent(a.common_mm[1]), 1),
         "volume_prior_cm3": _num(m.volume_prior_cm3), "volume_current_cm3": _num(m.volume_current_cm3),
         "volume_change_cm3": _num(m.volume_change_cm3), "volume_change_percent": _num(m.volume_change_percent, 2),
         "volume_sdc_percent": _num(m.sdc.get("volume_percent"), 2), "volume_verdict": m.verdict("volume_percent")}
    for p in CSA_LEVELS_PERCENT:
        key = f"csa{p}_percent"
        r.update({f"csa{p}_prior_cm2": _num(m.csa_prior_cm2[p]), f"csa{p}_current_cm2": _num(m.csa_current_cm2[p]),
                  f"csa{p}_change_percent": _num(m.csa_change_percent(p), 2),
                  f"csa{p}_sdc_percent": _num(m.sdc.get(key), 2), f"csa{p}_verdict": m.verdict(key)})
    r.update({"mean_hu_prior": _num(m.mean_hu_prior, 2), "mean_hu_current": _num(m.mean_hu_current, 2),
              "mean_hu_change": _num(m.mean_hu_change, 2), "mean_hu_sdc": _num(m.sdc.get("mean_hu"), 2),
              "mean_hu_verdict": m.verdict("mean_hu"), "imat_prior_percent": _num(m.imat_prior_percent, 2),
              "imat_current_percent": _num(m.imat_current_percent, 2), "imat_change_pp": _num(m.imat_change_pp, 2),
              "imat_sdc_pp": _num(m.sdc.get("imat_pp"), 2), "imat_verdict": m.verdict("imat_pp")})
    return r


def write_change_csv(report: ChangeReport, path: str | os.PathLike) -> Path:
    """``change.csv`` (atomically), rows in class-table order, right side first."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            w.writeheader()
            for m in report.muscles:
                w.writerow(row(report, m))
    return Path(path)


def read_change_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a ``change.csv`` (strings, by column name)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
