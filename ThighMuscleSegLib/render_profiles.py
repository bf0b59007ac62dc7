"""``profiles.png``: each muscle's cross-sectional area along the femur, right against left.

One small panel per muscle (the class table's order), area (cm²) against the level in % of
the femur length (knee end 0 %, hip end 100 %). When a side's femur length is unknown (an
end outside the scan) every panel is drawn against t along the femur axis instead (mm from
the frame centre, each side on its own axis), and the picture says so.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from . import classes as C
from .io import write_bytes_atomically
from .measure.profiles import ProfileRow

NOTE_COLOR = "#c00000"


def _series(rows: list[ProfileRow], value: int, by_percent: bool) -> tuple[np.ndarray, np.ndarray]:
    pick = [r for r in rows if r.label_value == value]
    x = np.array([r.level_percent if by_percent else r.t_mm for r in pick], float)
    y = np.array([r.area_cm2 for r in pick], float)
    return x, y


def write_profiles_png(rows: list[ProfileRow], path: str | os.PathLike, *, title: str = "",
                       notes: list[str] | tuple[str, ...] = ()) -> Path:
    """Write the profile picture (PNG, 1500 × 650 pixels) atomically."""
    return write_bytes_atomically(profiles_png(rows, title=title, notes=notes), path)


def profiles_png(rows: list[ProfileRow], *, title: str = "", notes: list[str] | tuple[str, ...] = ()) -> bytes:
    """The bytes of ``write_profiles_png``'s picture (what a forked drawing process sends back)."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    sides = [s for s in C.SIDES if any(r.side == s for r in rows)]
    no_length = [s for s in sides if all(math.isnan(r.level_percent) for r in rows if r.side == s)]
    by_percent = not no_length
    notes = list(notes)
    if no_length:
        notes.insert(0, f"femur length unknown ({' and '.join(no_length)}: an end of the femur is not in the scan): "
                        "areas by t along the femur axis (mm from the field centre), not by % of the femur length")
    fig = Figure(figsize=(15, 6.5))
    axes = fig.subplots(2, 5, sharex=by_percent)
    for ax, muscle in zip(axes.ravel(), C.CLASSES):
        for side, style in zip(C.SIDES, ("-", "--")):
            if side not in sides:
                continue
            x, y = _series(rows, muscle.label_value(side), by_percent)
            rgb = np.array(muscle.side_color(side)) / 255.0
            ax.plot(x, y, style, color=rgb, lw=1.5, label=side)
        ax.set_title(muscle.name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if by_percent:
            ax.set_xlim(0, 100)
    for ax in axes[1]:
        ax.set_xlabel("level (% of femur length, knee → hip)" if by_percent else "t along the femur axis (mm)",
                      fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("area (cm²)", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title or "Cross-sectional area along the femur (right solid, left dashed)", fontsize=11)
    for n, note in enumerate(notes[:2]):
        fig.text(0.5, 0.925 - 0.03 * n, note, ha="center", fontsize=8, color=NOTE_COLOR)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.09, top=0.85 - 0.02 * min(len(notes), 2), hspace=0.35,
                        wspace=0.25)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    return png.getvalue()
