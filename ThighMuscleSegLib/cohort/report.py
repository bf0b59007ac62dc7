"""``cohort_report.png``: one page on a whole cohort.

Top left: each muscle's volume (cm³) over the segmented cases, right and left side by side (box
with the cases as points). Top right: each muscle's left/right asymmetry (%, positive = right
larger), the cases as points. Bottom: the counts, the failed cases with their messages and the
flagged cases (muscles whose quality flag says ``check``, or notes such as a thigh cut by the scan),
as many as fit; the full lists are in ``cohort.csv``.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from .. import classes as C
from ..io import atomic_path
from .table import flat

MAX_LISTED = 14


def _values(rows: list[dict], column: str) -> np.ndarray:
    out = []
    for r in rows:
        v = r.get(column)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(float(v)):
            out.append(float(v))
    return np.asarray(out, float)


def write_cohort_report(path: str | Path, rows: list[dict], title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from .. import __version__

    flat_rows = [flat(r) for r in sorted(rows, key=lambda r: r["case_id"])]
    ok = [r for r in flat_rows if r.get("status") in ("done", "skipped")]
    failed = [r for r in flat_rows if r.get("status") == "failed"]
    flagged = [r for r in ok if r.get("flagged") or r.get("notes")]
    fig = Figure(figsize=(18, 11), dpi=100)
    grid = fig.add_gridspec(2, 2, height_ratios=(1.35, 1), width_ratios=(1.5, 1), hspace=0.32, wspace=0.16,
                            left=0.05, right=0.98, top=0.91, bottom=0.04)
    fig.suptitle(title or f"ThighMuscleSeg {__version__}: cohort of {len(flat_rows)} case(s) - "
                 f"{len(ok)} segmented, {len(failed)} failed, {len(flagged)} flagged", fontsize=15)
    rng = np.random.default_rng(0)

    ax = fig.add_subplot(grid[0, 0])
    positions, data, colours = [], [], []
    for i, m in enumerate(C.CLASSES):
        for j, side in enumerate(C.SIDES):
            positions.append(i * 3 + j)
            data.append(_values(ok, f"{side}_{m.key}_volume_cm3"))
            colours.append(np.asarray(m.side_color(side)) / 255)
    _boxes(ax, data, positions, colours, rng)
    ax.set_xticks([i * 3 + 0.5 for i in range(len(C.CLASSES))], [m.name for m in C.CLASSES], rotation=25,
                  ha="right")
    ax.set_ylabel("volume (cm³)")
    ax.set_title("Muscle volumes: right (light) and left (dark) of each muscle")
    ax.grid(axis="y", alpha=0.3)

    ax = fig.add_subplot(grid[0, 1])
    data = [_values(ok, f"right_{m.key}_asymmetry_percent") for m in C.CLASSES]
    _boxes(ax, data, list(range(len(C.CLASSES))), [np.asarray(m.color) / 255 for m in C.CLASSES], rng,
           vertical=False)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(C.CLASSES)), [m.name for m in C.CLASSES])
    ax.invert_yaxis()
    ax.set_xlabel("asymmetry 100·(R−L)/mean (%)")
    ax.set_title("Left/right asymmetry (positive: right larger)")
    ax.grid(axis="x", alpha=0.3)

    for k, (heading, listed, say) in enumerate((
            (f"Failed cases ({len(failed)})", failed, lambda r: r.get("error") or "no message"),
            (f"Flagged cases ({len(flagged)})", flagged, _flag_text))):
        ax = fig.add_subplot(grid[1, k])
        ax.axis("off")
        ax.set_title(heading, loc="left", fontsize=13, color="#b00000" if listed else "black")
        lines = []
        for r in listed[:MAX_LISTED]:
            lines.append(textwrap.shorten(f"{r['case_id']}: {say(r)}", width=125 if k == 0 else 90,
                                          placeholder=" ..."))
        if len(listed) > MAX_LISTED:
            lines.append(f"... and {len(listed) - MAX_LISTED} more (cohort.csv)")
        ax.text(0, 1, "\n".join(lines) if lines else "none", va="top", ha="left", family="monospace", fontsize=9.5,
                transform=ax.transAxes)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def _flag_text(r: dict) -> str:
    parts = []
    if r.get("flagged"):
        parts.append("check " + str(r["flagged"]).replace(",", ", ").replace("_", " "))
    if r.get("notes"):
        parts.append(str(r["notes"]))
    return "; ".join(parts)


def _boxes(ax, data, positions, colours, rng, vertical: bool = True) -> None:
    filled = [(d, p, c) for d, p, c in zip(data, positions, colours) if d.size]
    if filled:
        kw = {"orientation": "vertical" if vertical else "horizontal"}
        try:
            bp = ax.boxplot([d for d, _, _ in filled], positions=[p for _, p, _ in filled], widths=0.7,
                            patch_artist=True, showfliers=False, **kw)
        except TypeError:  # matplotlib before 3.10
            bp = ax.boxplot([d for d, _, _ in filled], positions=[p for _, p, _ in filled], widths=0.7,
                            patch_artist=True, showfliers=False, vert=vertical)
        for patch, (_, _, c) in zip(bp["boxes"], filled):
            patch.set_facecolor((*c, 0.45))
            patch.set_edgecolor(c * 0.7)
        for d, p, c in filled:
            jitter = p + rng.uniform(-0.22, 0.22, d.size)
            xy = (jitter, d) if vertical else (d, jitter)
            ax.scatter(*xy, s=9, color=c * 0.8, alpha=0.8, zorder=3)
    else:
        ax.text(0.5, 0.5, "no segmented case yet", ha="center", va="center", transform=ax.transAxes)
