"""The measurement's repeatability: each muscle's smallest detectable change (SDC).

The same phantom body is scanned twice (``thighseg phantom --rescan``: new leg pose, table
position, field of view and its length, pixel size, slice thickness, noise), both scans are
segmented with the model, and ``change.compare`` measures the change between them, which
for an unchanged body is measurement error alone. Per muscle (both sides pooled) and metric:
SD of the repeat difference, SEM = SD / √2, SDC = 1.96 · √2 · SEM (Weir, J Strength Cond Res
19:231-240, 2005: SEM from the SD of test-retest differences and the 95 % minimal difference;
de Vet et al., Health Qual Life Outcomes 4:54, 2006, call it the smallest detectable change).
The same change computed on the phantoms' true labels shows the part that is the phantom's own
(resampling the body onto each scanner grid).

``python -m ThighMuscleSegLib.measure.repeatability --out DIR --seed S --bodies N [--install]``
(``make repeatability``) writes DIR/repeatability.json and DIR/repeatability.md; ``--install``
copies them to ``ThighMuscleSegLib/data/repeatability.json`` (the table ``thighseg change``
uses) and ``docs/repeatability.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import classes as C
from .change import DATA_FILE, METRICS, ChangeReport, load_sdc  # noqa: F401 (load_sdc: re-exported)

DOC_FILE = Path(__file__).resolve().parents[2] / "docs" / "repeatability.md"
Z95 = 1.96


def differences(reports: list[ChangeReport]) -> dict[str, dict[str, list[float]]]:
    """muscle key -> metric -> the repeat differences of every pair and side (finite ones)."""
    out: dict[str, dict[str, list[float]]] = {c.key: {m: [] for m in METRICS} for c in C.CLASSES}
    for report in reports:
        for m in report.muscles:
            for metric in METRICS:
                v = m.change(metric)
                if math.isfinite(v):
                    out[m.muscle][metric].append(float(v))
    return out


def statistics(diffs: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """muscle -> metric -> n, mean (bias), sd, sem, sdc of the repeat differences."""
    out = {}
    for muscle, metrics in diffs.items():
        out[muscle] = {}
        for metric, values in metrics.items():
            v = np.asarray(values, float)
            sd = float(v.std(ddof=1)) if v.size >= 2 else None
            sem = None if sd is None else sd / math.sqrt(2.0)
            out[muscle][metric] = {"n": int(v.size), "mean": round(float(v.mean()), 3) if v.size else None,
                                   "sd": None if sd is None else round(sd, 3),
                                   "sem": None if sem is None else round(sem, 3),
                                   "sdc": None if sem is None else round(Z95 * math.sqrt(2.0) * sem, 3)}
    return out


def sdc_table(stats: dict) -> dict[str, dict[str, float | None]]:
    """muscle -> metric -> SDC: what ``load_sdc`` reads back."""
    return {m: {k: s["sdc"] for k, s in metrics.items()} for m, metrics in stats.items()}


UNITS = {"volume_percent": "%", "mean_hu": "HU", "imat_pp": "pp"}


def markdown(data: dict) -> str:
    """docs/repeatability.md from the repeatability.json contents."""
    seg, truth = data["statistics"], data.get("truth_statistics", {})
    lines = ["# Repeatability: each muscle's smallest detectable change", "",
             "Phantom results: how much the measurement itself moves between two scans of an unchanged "
             "phantom body, not clinical accuracy. `thighseg change` marks a change smaller than the SDC "
             "below as \"within measurement error\".", "",
             "## Method", "", data["method"], "",
             f"- command: `{data['command']}`", f"- date: {data['date']}; machine: {data['machine']}",
             f"- model: {data['model']}", f"- bodies: {data['pairs']} pairs, seeds {data['seeds']}; "
             f"{data['seconds']:.0f} s in all", "",
             "## Volume over the common femur range (both sides pooled)", "",
             "| muscle | n | mean diff % | SD % | SEM % | **SDC %** | true labels: SD % |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for c in C.CLASSES:
        s, t = seg[c.key]["volume_percent"], truth.get(c.key, {}).get("volume_percent", {})
        lines.append(f"| {c.name} | {s['n']} | {_f(s['mean'])} | {_f(s['sd'])} | {_f(s['sem'])} | **{_f(s['sdc'])}** "
                     f"| {_f(t.get('sd'))} |")
    lines += ["", "## Other measures: SDC (segmented)", "",
              "CSA SDCs in % explode where a muscle's area at that level is near zero in some scans (e.g. "
              "the adductors at 25 %, biceps femoris at 75 %): there, read a CSA change in cm² or not at all; "
              "the volume over the common range is the number to follow.", "",
              "| muscle | " + " | ".join(f"{k} ({UNITS.get(k, '%')})" for k in METRICS[1:]) + " |",
              "| --- |" + " --- |" * (len(METRICS) - 1)]
    for c in C.CLASSES:
        lines.append(f"| {c.name} | " + " | ".join(_f(seg[c.key][k]["sdc"]) for k in METRICS[1:]) + " |")
    lines += ["", "CSA: area on the plane perpendicular to the femur at 25 / 50 / 75 % of its length (a level "
              "outside the range both scans cover is not compared); mean HU and IMAT (-190 to -30 HU, "
              "percentage points of the muscle volume) over the common range.", ""]
    lines += ["## What it does not cover", "",
              "Phantom bodies, the bundled model, scanner draws of one generator: a real patient's "
              "repositioning (knee flexion, soft tissue pressed against the table), real scanners and "
              "reconstruction kernels, and real segmentation errors can be larger. A pair whose field stops "
              "within the thigh (\"partial\") has its frame's femur axis fitted over less bone; such pairs "
              "show the largest differences (see Pairs). A few pairs carry gross failures of one scan's segmentation "
              "or of the femur matching (the largest differences under Pairs, some in the true labels too); they "
              "widen the SD, so for a typical pair the SDC is conservative. With few pairs the SDC itself is uncertain (an SD "
              "from n differences has a relative standard error of about 1/sqrt(2(n-1))).", ""]
    if data.get("pair_notes"):
        lines += ["## Pairs", ""] + [f"- {n}" for n in data["pair_notes"]] + [""]
    return "\n".join(lines)


def _f(v) -> str:
    return "" if v is None else f"{v:.2f}"
