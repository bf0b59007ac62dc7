"""The paper's comparison: paired box plots of Dice and ASD per muscle, paired t-tests.

Input: for each method (e.g. "2D", "2.5D", "3D") the per-case, per-label score rows of
``evaluation.evaluate`` on the SAME held-out cases. Scores are paired by (case, label); a
muscle's left and right labels are pooled into one box per method, as the paper plots one
box per muscle. Each other method is tested against the reference method (default 2.5D)
with a two-sided paired t-test per muscle; marks: * p < 0.05, ** p < 0.01, *** p < 0.001.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from . import classes as C
from . import io as tio

METRICS = (("dice", "Dice"), ("asd_mm", "ASD (mm)"))


@dataclass(frozen=True)
class PairedTest:
    muscle: str
    metric: str
    method: str
    reference: str
    mean_method: float
    mean_reference: float
    n: int
    t: float
    p: float

    @property
    def mark(self) -> str:
        return significance_mark(self.p)


def significance_mark(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def paired_values(rows_by_method: dict[str, list[dict]], muscle: C.MuscleClass, metric: str) -> dict[str, np.ndarray]:
    """Per method, the metric values of ``muscle`` (both sides) on the (case, label) pairs
    that every method scored with a finite value and the ground truth contains."""
    labels = {muscle.label_value(s) for s in C.SIDES}
    keyed = {}
    for method, rows in rows_by_method.items():
        keyed[method] = {(r["case"], r["label_value"]): float(r[metric]) for r in rows
                         if r["label_value"] in labels and r["gt_voxels"] > 0}
    common = set.intersection(*(set(k) for k in keyed.values())) if keyed else set()
    common = sorted(k for k in common if all(np.isfinite(keyed[m][k]) for m in keyed))
    return {m: np.array([keyed[m][k] for k in common]) for m in keyed}


def paired_tests(rows_by_method: dict[str, list[dict]], reference: str = "2.5D") -> list[PairedTest]:
    if reference not in rows_by_method:
        raise ValueError(f"reference method {reference!r} not among {sorted(rows_by_method)}")
    out = []
    for muscle in C.CLASSES:
        for metric, _ in METRICS:
            values = paired_values(rows_by_method, muscle, metric)
            ref = values[reference]
            for method, vals in values.items():
                if method == reference:
                    continue
                if len(ref) >= 2 and np.any(vals - ref != 0):
                    t, p = stats.ttest_rel(vals, ref)
                else:  # fewer than two pairs, or identical values: no test possible
                    t, p = float("nan"), float("nan")
                out.append(PairedTest(muscle.name, metric, method, reference,
                                      float(vals.mean()) if len(vals) else float("nan"),
                                      float(ref.mean()) if len(ref) else float("nan"),
                                      len(ref), float(t), float(p)))
    return out


def markdown_table(rows_by_method: dict[str, list[dict]], tests: list[PairedTest]) -> str:
    methods = list(rows_by_method)
    head = "| muscle | metric | " + " | ".join(methods) + " | paired t-test vs " + tests[0].reference + " |" if tests else ""
    lines = [head, "| --- | --- | " + " | ".join("---" for _ in methods) + " | --- |"]
    for muscle in C.CLASSES:
        for metric, title in METRICS:
            values = paired_values(rows_by_method, muscle, metric)
            cells = [f"{values[m].mean():.3f}" if len(values[m]) else "–" for m in methods]
            t_cells = [f"{t.method}: p={t.p:.3g} {t.mark}" for t in tests
                       if t.muscle == muscle.name and t.metric == metric and np.isfinite(t.p)]
            lines.append(f"| {muscle.name} | {title} | " + " | ".join(cells) + " | " + "; ".join(t_cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows_by_method: dict[str, list[dict]], tests: list[PairedTest], path: str | Path,
         title: str = "") -> Path:
    """Paired box-and-whisker plots per muscle (Dice on top, ASD below), marks above pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(rows_by_method)
    colours = ["#999999", "#d55e00", "#0072b2", "#009e73"][: len(methods)]
    fig, axes = plt.subplots(len(METRICS), 1, figsize=(14, 7.5), sharex=True)
    width = 0.8 / len(methods)
    for ax, (metric, metric_title) in zip(axes, METRICS):
        for i, muscle in enumerate(C.CLASSES):
            values = paired_values(rows_by_method, muscle, metric)
            for j, method in enumerate(methods):
                x = i + (j - (len(methods) - 1) / 2) * width
                if len(values[method]):
                    box = ax.boxplot(values[method], positions=[x], widths=width * 0.85, patch_artist=True,
                                     showfliers=True, flierprops={"markersize": 2})
                    box["boxes"][0].set_facecolor(colours[j])
                    box["medians"][0].set_color("black")
            top = max((v.max() for v in values.values() if len(v)), default=0)
            marks = [f"{t.method}:{t.mark}" for t in tests
                     if t.muscle == muscle.name and t.metric == metric and t.mark]
            if marks:
                ax.text(i, top, "\n".join(marks), ha="center", va="bottom", fontsize=7)
        ax.set_ylabel(metric_title)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(C.CLASSES)))
    axes[-1].set_xticklabels([m.name for m in C.CLASSES], rotation=30, ha="right")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    axes[0].legend(handles, methods, loc="lower left", ncol=len(methods))
    reference = tests[0].reference if tests else ""
    fig.suptitle(title or f"Paired comparison per muscle (left and right pooled); t-tests vs {reference}")
    fig.tight_layout()
    with tio.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
