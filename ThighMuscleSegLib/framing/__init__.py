"""Thigh framing (the paper's normalisation): find each thigh, split left from right, align
it with its femur, crop a fixed 256 × 256 × 360 mm field at 2 mm, mirror the left, and put
results back into the CT with the exact inverse.

``frame_thighs(ct)`` -> frames; ``to_grid`` / ``from_grid`` / ``map_to_ct`` move images
between the CT and the grid (``labels_and_map_to_ct``: labels and a map back in one pass).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..io import InputError
from . import locate as L
from .frame import GRID_SHAPE_ZYX, GRID_SPACING_MM, ThighFrame, frames_from_json, frames_to_json
from .resample import field_mask, from_grid, labels_and_map_to_ct, map_to_ct, to_grid
from .t_range import ct_t_range

__all__ = ["GRID_SHAPE_ZYX", "GRID_SPACING_MM", "NoThighError", "ThighFrame", "analysed_slices", "field_mask",
           "frame_thighs", "frames_from_json", "frames_to_json", "from_grid", "labels_and_map_to_ct", "map_to_ct",
           "notes_for_user", "reach_into_scan", "reading_frames", "to_grid"]

FIELD_MM = GRID_SHAPE_ZYX[0] * GRID_SPACING_MM
PROXIMAL_SHIFT_MM = 20.0  # the muscle bulk sits above the shaft's middle
ABOVE_SHAFT_MM = 100.0  # field top above a shaft top when the CT cuts the knee end
BELOW_SHAFT_MM = 60.0  # field bottom below a shaft bottom when the CT cuts the hip end
# Reach: the views read up to 60 mm beyond each end of the field where the scan goes on there,
# so the ends of the long muscles (sartorius, gracilis, hamstrings at the knee; sartorius and
# rectus femoris at the hip) are segmented too: 0-5.7 % (mean 2.1 %) of the true muscle of the
# 32 `make evaluate-model` phantoms lay outside the 360 mm fields, 98-100 % of it beyond their
# ends (scripts/field_length.py --outside-only, 2026-12-02). In steps of 30 mm so the views'
# slice shapes stay few (each new shape is one ONNX export); an end is read on when the scan
# holds at least 10 mm more along the field's axis.
REACH_MAX_MM = 60.0
REACH_STEP_MM = 30.0
REACH_MIN_SCAN_MM = 10.0


class NoThighError(InputError):
    """The CT holds no thigh that can be framed; the message says what it does hold."""


def frame_thighs(ct: sitk.Image, override: dict | None = None, progress=None) -> list[ThighFrame]:
    """One frame per thigh found (right first). ``override`` replaces the automatic search:
    ``{"z_range_mm": (lo, hi)}`` limits it to a superior-inferior range, or
    ``{"boxes": {"right": (x0, y0, z0, x1, y1, z1), ...}}`` gives each thigh's box in LPS mm."""
    if override and "boxes" in override:
        return _frames_from_boxes(override["boxes"])
    work = L.working_copy(ct)
    if progress is not None:
        progress.update("frame", 0.3, "looking for the femoral shafts")
    findings = L.analyse_slices(work)
    step = work.GetSpacing()[2]
    z_limits = (work.GetOrigin()[2], work.GetOrigin()[2] + step * (work.GetSize()[2] - 1))
    manual = bool(override and "z_range_mm" in override)
    if manual:
        lo, hi = sorted(float(v) for v in override["z_range_mm"])
        findings = [f for f in findings if lo <= f.z_mm <= hi]
        if not findings:
            raise NoThighError(f"the thigh range {lo:.0f}..{hi:.0f} mm lies outside the CT "
                               f"(z = {z_limits[0]:.0f}..{z_limits[1]:.0f} mm)")
    runs = L.thigh_runs(findings, step, z_limits)
    minimum = 2 * step if manual else L.MIN_THIGH_MM
    good = {s: r for s, r in runs.items() if r.length_mm >= minimum}
    if not good:
        raise NoThighError(describe(findings, runs, z_limits))
    frames = [_frame_for_run(r, manual) for s, r in sorted(good.items(), key=lambda kv: kv[0] != "right")]
    for frame in frames:
        frame.reach_mm = reach_into_scan(ct, frame)
    if len(frames) == 2:
        _set_split(frames, _midline_knots(findings))
    if progress is not None:
        progress.update("frame", 1.0, "found " + " and ".join(f"the {f.side} thigh" for f in frames))
    return frames


def reach_into_scan(ct: sitk.Image, frame: ThighFrame) -> tuple[float, float]:
    """How far the views read beyond the field's knee and hip ends (``REACH_MAX_MM``): where
    the CT holds the field's axis on beyond an end, in steps of ``REACH_STEP_MM``, else 0."""
    t_lo, t_hi = ct_t_range(ct, np.asarray(frame.centre, float), frame.linear()[:, 2], radius_mm=0.0)
    half = frame.length_mm / 2.0

    def reach(beyond: float) -> float:
        if beyond < REACH_MIN_SCAN_MM:
            return 0.0
        return min(REACH_MAX_MM, REACH_STEP_MM * np.ceil(beyond / REACH_STEP_MM))

    return reach(-half - t_lo), reach(t_hi - half)


def reading_frames(frames: list[ThighFrame]) -> list[ThighFrame]:
    """The frames the views read (each lengthened by its reach): what segmentations go back through."""
    return [f.reading() for f in frames]


def analysed_slices(frames: list[ThighFrame]) -> dict[str, slice]:
    """Side -> the slices of its reading frame that are the analysed field (what the quality
    flag's evidence and the clean-up's anchor look at)."""
    return {f.side: f.analysed_slices() for f in frames}


def notes_for_user(frames: list[ThighFrame]) -> list[str]:
    """What the user must be told about a result: each frame's notes, and a thigh not found."""
    notes = [n for f in frames for n in f.notes]
    found = {f.side for f in frames}
    if len(found) == 1 and all(f.found == "auto" for f in frames):
        missing = "left" if "right" in found else "right"
        notes.append(f"no {missing} thigh was found (outside the scan, or its femur cut by the scan's edge): "
                     f"only the {found.pop()} thigh is segmented")
    return notes


def _frame_for_run(run: L.ThighRun, manual: bool) -> ThighFrame:
    axis = L.fit_axis(run.points)
    on_axis = run.points.mean(axis=0)
    s = (run.points - on_axis) @ axis
    s_lo, s_hi = float(s.min()), float(s.max())
    notes = []
    if run.cut_below and not run.cut_above:
        centre_s = s_hi + ABOVE_SHAFT_MM - FIELD_MM / 2
        notes.append(f"the CT cuts the {run.side} thigh at its knee end (z = {run.z_lo:.0f} mm)")
    elif run.cut_above and not run.cut_below:
        centre_s = s_lo - BELOW_SHAFT_MM + FIELD_MM / 2
        notes.append(f"the CT cuts the {run.side} thigh at its hip end (z = {run.z_hi:.0f} mm)")
    else:
        centre_s = (s_lo + s_hi) / 2 + PROXIMAL_SHIFT_MM
        if run.cut_below:
            notes.append(f"the CT cuts the {run.side} thigh at both ends")
    if run.side_cut_z:
        notes.append(_side_cut_note(run))
    if run.side_by_position:
        x = float(run.leg_centres[:, 0].mean())
        notes.append(f"the scan holds one leg only: it was taken as the {run.side} thigh because it lies at "
                     f"x = {x:.0f} mm (the patient's left is +x); if that is wrong, so are the sides of the labels")
    # In-plane: centre the field on the leg, not the femur (the femur sits off-centre).
    offsets = run.leg_centres - on_axis
    offsets -= np.outer(offsets @ axis, axis)
    centre = on_axis + centre_s * axis + offsets.mean(axis=0)
    return ThighFrame(run.side, tuple(float(v) for v in centre), tuple(float(v) for v in axis),
                      (run.z_lo, run.z_hi), "manual" if manual else "auto", notes)


def _side_cut_note(run: L.ThighRun) -> str:
    lo, hi = min(run.side_cut_z), max(run.side_cut_z)
    share = 100 * len(run.side_cut_z) / len(run.points)
    return (f"the edge of the scanned field cuts the side of the {run.side} thigh in {share:.0f} % of the slices along its femur "
            f"(z = {lo:.0f}..{hi:.0f} mm): muscle outside the image is missing and its volumes are too small")


def _midline_knots(findings: list[L.SliceFinding]) -> list[tuple[float, float]]:
    """(z, x) of the gap between the legs, slice by slice, median-smoothed over 5 slices:
    a V-shaped gap (abducted legs) is followed, not cut by one plane."""
    pts = np.array([(f.z_mm, f.midline_x) for f in findings if f.midline_x is not None])
    if len(pts) == 0:
        return []
    xs = pts[:, 1].copy()
    for i in range(len(xs)):
        xs[i] = np.median(pts[max(0, i - 2): i + 3, 1])
    return [(float(z), float(x)) for z, x in zip(pts[:, 0], xs)]


def _set_split(frames: list[ThighFrame], knots: list[tuple[float, float]]) -> None:
    """Each thigh keeps the voxels on its side of the midline, even where the legs touch."""
    if not knots:  # manual boxes: halfway between the two fields
        mid_x = (frames[0].centre[0] + frames[1].centre[0]) / 2
        knots = [(-1e6, mid_x), (1e6, mid_x)]
    for f in frames:
        f.split_midline = list(knots)


def _frames_from_boxes(boxes: dict) -> list[ThighFrame]:
    frames = []
    for side in ("right", "left"):
        if side not in boxes:
            continue
        x0, y0, z0, x1, y1, z1 = (float(v) for v in boxes[side])
        centre = ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2)
        frames.append(ThighFrame(side, centre, (0.0, 0.0, 1.0), (min(z0, z1), max(z0, z1)), "manual",
                                 ["box given by the user; axis along the CT's z"]))
    if not frames:
        raise InputError("boxes must name 'right' and/or 'left'")
    if len(frames) == 2:
        _set_split(frames, [])
    return frames


def describe(findings: list[L.SliceFinding], runs: dict, z_limits) -> str:
    """What the CT shows, for the 'no thigh' message."""
    lo, hi = z_limits
    seen = ", ".join(f"{r.length_mm:.0f} mm of femoral shaft on the {s}" for s, r in runs.items()) \
        or "no femoral shaft"
    legs = [f.legs for f in findings]
    if not legs or max(legs) == 0:
        region = "no body cross-section of leg size"
    elif sum(1 for n in legs if n >= 2) > 0.5 * len(legs):
        multi = sum(1 for f in findings if max(f.bones.values() or [0]) >= 2)
        region = "two separate legs with two bones each (below the thigh: knee or lower leg)" \
            if multi > 0.3 * len(findings) else "two separate legs"
    else:
        region = "a single body cross-section (the trunk or pelvis)"
    return (f"no thigh found: the CT covers z = {lo:.0f}..{hi:.0f} mm and shows {region}, with {seen}; "
            f"a thigh needs at least {L.MIN_THIGH_MM:.0f} mm of femoral shaft. Give a CT from hip to knee, "
            "or set the thigh range by hand (--thigh-range).")
