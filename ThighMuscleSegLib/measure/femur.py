"""The femur line of one thigh: the frame's femur axis, with the femur's two ends on it.

``t`` (mm) is the position along the frame's long axis (towards the hip) measured from the
frame centre: ``t = (p - centre) · axis``. Along it lie the distal end of the femoral
condyles (the knee end) and the top of the femoral head (the hip end), each found only when
the CT holds it (``femur_ends``), and the t range the CT and the thigh's segmented field (the
analysed field with its reach, ``framing.ThighFrame.reach_mm``) both cover. Every along-the-femur number (slabs, CSA profiles, the prior comparison) uses it, and
``thighseg segment`` stores it in ``frames.json`` so later commands need no CT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..framing.frame import ThighFrame
from .femur_ends import femur_ends
from ..framing.t_range import ct_t_range


@dataclass(frozen=True)
class FemurLine:
    side: str  # "right" | "left"
    origin: tuple[float, float, float]  # LPS mm: the frame centre (t = 0)
    axis: tuple[float, float, float]  # unit LPS vector, towards the hip (the frame's femur axis)
    knee_end_mm: float | None  # t of the distal end of the femoral condyles; None when not in the scan
    hip_end_mm: float | None  # t of the top of the femoral head; None when not in the scan
    covered_mm: tuple[float, float]  # t range covered by the CT AND this thigh's segmented field (with its reach)

    def t_mm(self, points_lps: np.ndarray) -> np.ndarray:
        """(N, 3) LPS points -> (N,) their t along the axis."""
        return (np.asarray(points_lps, float) - np.asarray(self.origin)) @ np.asarray(self.axis)

    @property
    def length_mm(self) -> float | None:
        """Knee end to hip end along the axis, when the CT holds both."""
        if self.knee_end_mm is None or self.hip_end_mm is None:
            return None
        return self.hip_end_mm - self.knee_end_mm

    def percent(self, t_mm) -> np.ndarray:
        """Level in % of the femur length: 0 at the knee end, 100 at the hip end."""
        length = self.length_mm
        if length is None:
            raise ValueError(f"the {self.side} femur length is unknown: the CT does not hold both of its ends")
        return 100.0 * (np.asarray(t_mm, float) - self.knee_end_mm) / length

    def t_at_percent(self, percent) -> np.ndarray:
        """t (mm) of a level in % of the femur length (the inverse of ``percent``)."""
        length = self.length_mm
        if length is None:
            raise ValueError(f"the {self.side} femur length is unknown: the CT does not hold both of its ends")
        return self.knee_end_mm + np.asarray(percent, float) / 100.0 * length

    def point_at_percent(self, percent: float) -> np.ndarray:
        """LPS point on the axis at ``percent`` of the femur length."""
        return np.asarray(self.origin) + float(self.t_at_percent(percent)) * np.asarray(self.axis)

    def to_dict(self) -> dict:
        return {"side": self.side, "origin": list(self.origin), "axis": list(self.axis),
                "knee_end_mm": self.knee_end_mm, "hip_end_mm": self.hip_end_mm,
                "covered_mm": list(self.covered_mm), "length_mm": self.length_mm}

    @classmethod
    def from_dict(cls, d: dict) -> "FemurLine":
        num = lambda v: None if v is None else float(v)  # noqa: E731
        return cls(str(d["side"]), tuple(float(v) for v in d["origin"]), tuple(float(v) for v in d["axis"]),
                   num(d.get("knee_end_mm")), num(d.get("hip_end_mm")),
                   tuple(float(v) for v in d["covered_mm"]))


def field_t_range(frame: ThighFrame) -> tuple[float, float]:
    """t range of what the frame's views segmented: its field (its long side, centred on the
    frame centre) and the reach beyond its knee and hip ends (the grid's z runs along the axis)."""
    below, above = frame.reach_mm
    return -frame.length_mm / 2.0 - below, frame.length_mm / 2.0 + above


def covered_range(ct: sitk.Image, frame: ThighFrame) -> tuple[float, float]:
    """t range covered by both the CT and what the frame's views segmented (empty: (x, x))."""
    origin, axis = np.asarray(frame.centre, float), _unit(frame.axis)
    c_lo, c_hi = ct_t_range(ct, origin, axis)
    f_lo, f_hi = field_t_range(frame)
    lo, hi = max(c_lo, f_lo), min(c_hi, f_hi)
    return (round(lo, 2), round(hi, 2)) if hi > lo else (round(lo, 2), round(lo, 2))


def _unit(v) -> np.ndarray:
    a = np.asarray(v, float)
    return a / np.linalg.norm(a)


def find_femur(ct: sitk.Image, frame: ThighFrame) -> FemurLine:
    """The femur line of ``frame``'s thigh in ``ct``: its ends where the CT holds them."""
    knee, hip = femur_ends(ct, frame)
    rnd = lambda v: None if v is None or not math.isfinite(v) else round(float(v), 2)  # noqa: E731
    return FemurLine(frame.side, tuple(float(v) for v in frame.centre), tuple(float(v) for v in _unit(frame.axis)),
                     rnd(knee), rnd(hip), covered_range(ct, frame))


def femur_lines(ct: sitk.Image, frames: list[ThighFrame]) -> dict[str, FemurLine]:
    """side -> FemurLine for each frame."""
    return {f.side: find_femur(ct, f) for f in frames}


def femur_lines_from_frames_json(data: dict) -> dict[str, FemurLine]:
    """The femur lines stored in a parsed ``frames.json`` (``{"femur": {side: dict}}``);
    empty when the file predates them."""
    return {side: FemurLine.from_dict(d) for side, d in (data.get("femur") or {}).items()}
