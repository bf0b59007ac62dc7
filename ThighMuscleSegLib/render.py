"""``report.png``: one picture of a segmentation for a radiologist.

Axial slices at three thigh levels, a coronal and a sagittal slice (CT in a soft-tissue
window, muscles in the class colours), a legend, right-vs-left volumes per muscle, where
the three views disagree, and an offscreen 3D surface rendering (see render_surfaces).
Slices are shown in radiological convention (patient's right on the image's left,
anterior up) whatever the CT's direction matrix: the arrays are only permuted and
flipped to the nearest LPS axes, never resampled.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from . import classes as C
from .io import InputError, same_geometry, write_bytes_atomically
from .measure import MuscleVolume, asymmetry_percent, label_histogram, voxel_volume_cm3

log = logging.getLogger(__name__)

WINDOW_HU = (40.0, 400.0)  # soft-tissue window: level, width
OVERLAY_ALPHA = 0.5
DISAGREE_RGB = np.array([255, 0, 255], np.float32)
NOTE_RGB = "#c00000"  # notes the reader must not miss (a thigh cut by the scan)


def _lps_view(arr_zyx: np.ndarray, direction, spacing) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A view of ``arr_zyx`` indexed [S, P, L] (nearest axes) and its spacing along (L, P, S)."""
    d = np.asarray(direction, float).reshape(3, 3)
    axes = [0, 0, 0]
    sp = [0.0, 0.0, 0.0]
    flips = []
    for i in range(3):  # image axis i (x, y, z) = numpy axis 2 - i
        a = int(np.argmax(np.abs(d[:, i])))
        axes[2 - a] = 2 - i
        sp[a] = float(spacing[i])
        if d[a, i] < 0:
            flips.append(2 - a)
    if sorted(axes) != [0, 1, 2]:
        raise InputError("the CT's direction matrix is too oblique to show in standard planes")
    view = np.transpose(arr_zyx, axes)
    for ax in flips:
        view = np.flip(view, ax)
    return view, (sp[0], sp[1], sp[2])


def _gray(ct: np.ndarray) -> np.ndarray:
    level, width = WINDOW_HU
    g = (ct.astype(np.float32) - (level - width / 2)) / width
    return np.clip(g, 0, 1)[..., None] * np.float32(255)


def _color_lut() -> np.ndarray:
    lut = np.zeros((256, 3), np.float32)
    for seg in C.segments():
        lut[seg.label_value] = seg.color
    return lut


def _blend(ct: np.ndarray, lab: np.ndarray, lut: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
    rgb = np.repeat(_gray(ct), 3, axis=-1)
    on = lab > 0
    rgb[on] = (1 - OVERLAY_ALPHA) * rgb[on] + OVERLAY_ALPHA * lut[lab[on]]
    if extra is not None:
        rgb[extra] = 0.2 * rgb[extra] + 0.8 * DISAGREE_RGB
    return rgb.astype(np.uint8)


def _show(ax, rgb: np.ndarray, width_mm: float, height_mm: float, title: str, marks: tuple[str, str]) -> None:
    ax.imshow(rgb, extent=(0, width_mm, height_mm, 0), interpolation="antialiased")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    for x, ha, text in ((0.02, "left", marks[0]), (0.98, "right", marks[1])):
        ax.text(x, 0.5, text, transform=ax.transAxes, color="white", ha=ha, va="center", fontsize=9, weight="bold")


class _Planes:
    """Where to cut (axial levels, coronal, sagittal index) and what to show (crop box)."""

    def __init__(self, lab: np.ndarray, spacing: tuple[float, float, float], margin_mm: float = 30.0):
        coarse = lab[::4]  # choosing planes needs no full-resolution pass
        nz, ny, nx = lab.shape
        zs = np.flatnonzero(lab.reshape(nz, -1).max(axis=1))
        any_plane = coarse.max(axis=0) > 0
        ys = np.flatnonzero(any_plane.any(axis=1))
        xs = np.flatnonzero(any_plane.any(axis=0))
        if zs.size == 0 or ys.size == 0:
            zs, ys, xs = np.array([0, nz - 1]), np.array([0, ny - 1]), np.array([0, nx - 1])
        self.levels = [int(zs[0] + f * (zs[-1] - zs[0])) for f in (0.8, 0.5, 0.2)]  # proximal, mid, distal
        right_plane = ((coarse >= 1) & (coarse <= C.NUM_MUSCLES)).any(axis=0)
        rxs = np.flatnonzero(right_plane.any(axis=0)) if right_plane.any() else xs
        self.coronal = int(np.round(ys.mean()))
        self.sagittal = int(np.round(rxs.mean()))

        def box(idx, n, sp):
            m = int(margin_mm / sp)
            return slice(max(int(idx[0]) - m, 0), min(int(idx[-1]) + m + 1, n))

        self.x, self.y, self.z = box(xs, nx, spacing[0]), box(ys, ny, spacing[1]), box(zs, nz, spacing[2])

    @staticmethod
    def size_mm(sl: slice, sp: float) -> float:
        return (sl.stop - sl.start) * sp


def _volume_rows(labels: sitk.Image, volumes: list[MuscleVolume] | None) -> dict[int, float]:
    if volumes is not None:
        return {r.label_value: r.volume_cm3 for r in volumes}
    counts, _ = label_histogram(None, labels)
    return {v: float(counts[v]) * voxel_volume_cm3(labels) for v in range(1, 2 * C.NUM_MUSCLES + 1)}


def _quality_flags(volumes: list[MuscleVolume] | None) -> dict[int, str]:
    """Label value -> "ok" | "check" of the rows that were assessed (quality.py)."""
    return {r.label_value: r.quality for r in volumes or () if r.quality}


def check_marks(flags: dict[int, str]) -> dict[str, str]:
    """Class key -> the red mark drawn beside the muscle ("check R", "check L", "check R+L")."""
    marks = {}
    for c in C.CLASSES:
        sides = [s[0].upper() for s in C.SIDES if flags.get(c.label_value(s)) == "check"]
        if sides:
            marks[c.key] = "check " + "+".join(sides)
    return marks


def _draw_volumes(ax, cm3: dict[int, float], flags: dict[int, str] | None = None) -> None:
    y = np.arange(C.NUM_MUSCLES)
    right = [cm3.get(c.label_value("right"), 0.0) for c in C.CLASSES]
    left = [cm3.get(c.label_value("left"), 0.0) for c in C.CLASSES]
    ax.barh(y - 0.2, right, 0.4, color=[np.array(c.side_color("right")) / 255 for c in C.CLASSES], label="right")
    ax.barh(y + 0.2, left, 0.4, color=[np.array(c.side_color("left")) / 255 for c in C.CLASSES],
            hatch="///", edgecolor="white", linewidth=0, label="left")
    ax.set_yticks(y, [c.name for c in C.CLASSES], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("cm³ (right plain, left hatched)\nasymmetry = 100·(R−L)/mean(R,L)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    top = max(right + left + [1.0])
    ax.set_xlim(0, top * 1.45)
    for i, (r, l) in enumerate(zip(right, left)):
        asym = asymmetry_percent(r, l)
        text = f"{r:.0f} / {l:.0f}" + ("" if np.isnan(asym) else f"  {asym:+.0f}%")
        ax.text(max(r, l) + top * 0.02, i, text, va="center", fontsize=7)
    marks = check_marks(flags or {})
    if marks:  # the quality flag: these muscles need a look before their volumes are used
        ax.set_yticks(y, [f"{marks[c.key]}  {c.name}" if c.key in marks else c.name for c in C.CLASSES], fontsize=8)
        for label, c in zip(ax.get_yticklabels(), C.CLASSES):
            if c.key in marks:
                label.set_color(NOTE_RGB)
                label.set_fontweight("bold")
    ax.set_title("Volume R / L (cm³), asymmetry %" + (f"\n{len(marks)} to check (red)" if marks else ""),
                 fontsize=9, color=NOTE_RGB if marks else "black")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _draw_legend(ax) -> None:
    from matplotlib.patches import Rectangle

    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(C.NUM_MUSCLES + 0.5, -1.2)
    ax.text(0.04, -0.6, "R", fontsize=8, ha="center", weight="bold")
    ax.text(0.16, -0.6, "L", fontsize=8, ha="center", weight="bold")
    for i, c in enumerate(C.CLASSES):
        for x, side in ((0.0, "right"), (0.12, "left")):
            ax.add_patch(Rectangle((x, i - 0.35), 0.09, 0.7, color=np.array(c.side_color(side)) / 255))
        ax.text(0.25, i, c.name, va="center", fontsize=9)


def _draw_surfaces(ax, lab_spl: np.ndarray, spacing: tuple[float, float, float]) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    try:
        from .render_surfaces import render_muscle_surfaces

        ax.imshow(render_muscle_surfaces(lab_spl, spacing))
        ax.set_title("3D, anterior view", fontsize=10)
    except Exception as e:  # noqa: BLE001 - the report must still be written
        log.warning("3D panel left out: %s", e)
        ax.text(0.5, 0.5, f"3D view unavailable:\n{type(e).__name__}: {str(e)[:120]}", ha="center",
                va="center", fontsize=8, wrap=True, transform=ax.transAxes)


def write_report_png(ct: sitk.Image, labels: sitk.Image, path: str | os.PathLike, *,
                     disagreement: sitk.Image | None = None, volumes: list[MuscleVolume] | None = None,
                     title: str = "", notes: list[str] | tuple[str, ...] = ()) -> Path:
    """Write the one-page report picture (PNG, 1800 × 1050 pixels) atomically. ``notes``
    (e.g. a thigh cut by the scan, a thigh with muscles to check) are printed under the title in
    red, two at most; muscles whose ``volumes`` row has ``quality == "check"`` get a red mark
    beside their volume bars."""
    return write_bytes_atomically(report_png(ct, labels, disagreement=disagreement, volumes=volumes, title=title,
                                             notes=notes), path)


def report_png(ct: sitk.Image, labels: sitk.Image, *, disagreement: sitk.Image | None = None,
               volumes: list[MuscleVolume] | None = None, title: str = "",
               notes: list[str] | tuple[str, ...] = (), later: Callable[[], tuple] | None = None) -> bytes:
    """The bytes of ``write_report_png``'s picture (what a forked drawing process sends back).
    ``later``: where the volumes and notes are still being measured, a call that waits for
    them, ``(volumes, notes)``; everything else is drawn before it is called."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    for other, name in ((labels, "label map"), (disagreement, "disagreement map")):
        if other is not None and not same_geometry(ct, other):
            raise InputError(f"the {name} does not have the CT's geometry: resample it onto the CT first")
    ct_v, sp = _lps_view(sitk.GetArrayViewFromImage(ct), ct.GetDirection(), ct.GetSpacing())
    lab_v, _ = _lps_view(sitk.GetArrayViewFromImage(labels), ct.GetDirection(), ct.GetSpacing())
    dis_v = None
    if disagreement is not None:
        dis_v, _ = _lps_view(sitk.GetArrayViewFromImage(disagreement), ct.GetDirection(), ct.GetSpacing())
    planes = _Planes(lab_v, sp)
    lut = _color_lut()
    s_min = min(ct.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in (0, ct.GetSize()[2] - 1))
    px, py, pz = planes.x, planes.y, planes.z
    w_mm, h_mm, d_mm = planes.size_mm(px, sp[0]), planes.size_mm(py, sp[1]), planes.size_mm(pz, sp[2])

    fig = Figure(figsize=(18, 10.5), dpi=100)
    grid = fig.add_gridspec(2, 5, width_ratios=[1, 1, 1, 1.15, 1.25], left=0.01, right=0.99, top=0.92,
                            bottom=0.06, wspace=0.06, hspace=0.14)
    for col, (level, name) in enumerate(zip(planes.levels, ("proximal", "mid", "distal"))):
        _show(fig.add_subplot(grid[0, col]), _blend(ct_v[level, py, px], lab_v[level, py, px], lut), w_mm, h_mm,
              f"Axial, {name} thigh (z = {s_min + level * sp[2]:.0f} mm)", ("R", "L"))
    flip_z = slice(pz.stop - 1, pz.start - 1 if pz.start > 0 else None, -1)  # superior at the top
    _show(fig.add_subplot(grid[1, 0]), _blend(ct_v[flip_z, planes.coronal, px], lab_v[flip_z, planes.coronal, px],
                                              lut), w_mm, d_mm, "Coronal", ("R", "L"))
    _show(fig.add_subplot(grid[1, 1]), _blend(ct_v[flip_z, py, planes.sagittal], lab_v[flip_z, py, planes.sagittal],
                                              lut), h_mm, d_mm, "Sagittal, right thigh", ("A", "P"))
    ax = fig.add_subplot(grid[1, 2])
    if dis_v is not None:
        mid = planes.levels[1]
        _show(ax, _blend(ct_v[mid, py, px], lab_v[mid, py, px], lut, dis_v[mid, py, px] > 0), w_mm, h_mm,
              "Views disagree (magenta), mid thigh", ("R", "L"))
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no disagreement map given", ha="center", va="center", fontsize=9)
    _draw_surfaces(fig.add_subplot(grid[:, 3]), lab_v, sp)
    side = grid[:, 4].subgridspec(2, 2, height_ratios=[0.8, 1.2], width_ratios=[0.42, 1], hspace=0.15)
    _draw_legend(fig.add_subplot(side[0, :]))
    if later is not None:
        volumes, notes = later()
    _draw_volumes(fig.add_subplot(side[1, 1]), _volume_rows(labels, volumes), _quality_flags(volumes))

    header = title or "ThighMuscleSeg"
    if dis_v is not None:
        labelled = max(int(np.count_nonzero(lab_v[::2])), 1)
        share = 100.0 * np.count_nonzero((dis_v[::2] > 0) & (lab_v[::2] > 0)) / labelled
        header += f"   ·   views disagree on {share:.1f}% of labelled voxels"
    fig.suptitle(header, fontsize=13, x=0.01, ha="left")
    for row, note in enumerate(notes[:2]):
        fig.text(0.01, 0.955 - 0.022 * row, "Note: " + note, ha="left", va="top", fontsize=10, color=NOTE_RGB)
    fig.text(0.01, 0.01, "Research use only. Automatic segmentation: check before use.", ha="left", fontsize=8,
             color="gray")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    return png.getvalue()
