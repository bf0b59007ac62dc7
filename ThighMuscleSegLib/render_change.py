"""``change.png``: the volume change of each muscle against its smallest detectable change.

One row per muscle, the right and left thighs side by side: a bar of the volume change (%)
over the femur range both scans cover, the grey band ± that muscle's SDC around zero (a bar
inside it is "within measurement error", drawn pale), and the number at the bar's end.
"""

from __future__ import annotations

import math
from pathlib import Path

from . import classes as C
from .io import atomic_path
from .measure.change import BEYOND, ChangeReport


def write_change_png(report: ChangeReport, path: str | Path, title: str = "Change against the prior scan") -> Path:
    """Write the picture (PNG, 1400 × 800 pixels) atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    sides = [s for s in C.SIDES if s in report.alignments]
    fig = Figure(figsize=(14, 8), dpi=100)
    axes = fig.subplots(1, max(len(sides), 1), sharey=True, squeeze=False)[0]
    by = {(m.side, m.muscle): m for m in report.muscles}
    values = [abs(m.volume_change_percent) for m in report.muscles if math.isfinite(m.volume_change_percent)]
    values += [m.sdc.get("volume_percent", 0.0) for m in report.muscles]
    lim = max([5.0] + values) * 1.25
    names = [c.name for c in C.CLASSES]
    for ax, side in zip(axes, sides):
        a = report.alignments[side]
        for i, cls in enumerate(C.CLASSES):
            y = len(C.CLASSES) - 1 - i
            m = by.get((side, cls.key))
            if m is None:
                ax.text(0, y, "not in both scans", ha="center", va="center", fontsize=9, color="0.4")
                continue
            sdc = m.sdc.get("volume_percent")
            if sdc is not None:
                ax.fill_betweenx([y - 0.42, y + 0.42], -sdc, sdc, color="0.85", zorder=0)
            v = m.volume_change_percent
            if not math.isfinite(v):
                continue
            strong = m.verdict("volume_percent") == BEYOND or sdc is None
            colour = [c / 255 for c in cls.side_color(side)]
            ax.barh(y, v, height=0.6, color=colour, alpha=1.0 if strong else 0.35,
                    edgecolor="black" if strong else "none", zorder=2)
            ax.text(v + (0.02 if v >= 0 else -0.02) * lim, y, f"{v:+.1f} %  ({m.volume_change_cm3:+.0f} cm³)",
                    ha="left" if v >= 0 else "right", va="center", fontsize=9,
                    fontweight="bold" if strong and sdc is not None else "normal")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlim(-lim, lim)
        lo, hi = (a.percent(t) for t in a.common_mm)
        span = f"{lo:.0f}–{hi:.0f} % of the femur" if lo is not None else f"{a.common_mm[1] - a.common_mm[0]:.0f} mm"
        ax.set_title(f"{side.capitalize()} thigh: {span} (aligned at the {a.end} end)", fontsize=11)
        ax.set_xlabel("volume change over the common range (%)")
        ax.grid(axis="x", color="0.9", zorder=-1)
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels(names[::-1])
    note = "grey band: ± smallest detectable change (pale bars: within measurement error)"
    note += f"; {report.sdc_source}" if report.sdc_source else "; no repeatability table: changes not judged"
    fig.suptitle(title, fontsize=14)
    fig.text(0.5, 0.01, note, ha="center", fontsize=9, color="0.3")
    fig.subplots_adjust(left=0.14, right=0.98, top=0.9, bottom=0.1, wspace=0.08)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
