"""A follow-up scan of a phantom body: the same person scanned again, or changed.

A case is one body (``population.draw_body(seed)``, plus the case stream's body-shape draws:
elastic warp, scale, the template body's muscle factors) seen by one scanner draw (leg pose,
table position, field of view and its length, pixel and slice size, noise, blur, blanket,
vessel contrast). A follow-up keeps the body and changes what is asked:

- ``rescan`` K > 0: the K-th rescan: a new scanner draw from its own stream
  ``(seed, RESCAN_STREAM, K)``; the body, its muscles, fat, attenuation and any implant stay.
  The new leg pose turns each leg of the first scan rigidly about its hip (``deform.Repose``):
  drawn as a new pose of the template instead, the elastic warps (fixed in space) would fall
  on other anatomy and change the muscles by several per cent.
- ``shrink``: CT label value -> percent of that muscle's volume lost: once the body's muscles
  are made (sizes, septa), the muscle is peeled from its surface inwards by p % of its
  template voxels, the rim turning into intermuscular fat; no other muscle changes (a
  neighbour growing into the space would blur what changed). The true new volume is what
  labels.nii.gz holds: resampling onto a new scanner grid adds its own +-1-3 %.
- ``cut_field``: "hip" / "knee" -> mm removed from that end of the scanned field (rounded up
  to whole slices; the remaining slices keep their positions and thickness).

``FollowUp()`` (rescan 0, nothing shrunk or cut) is the original case, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..classes import SIDES, by_key

RESCAN_STREAM = 0x5CA7  # the rescans' random streams: (seed, RESCAN_STREAM, K)
FIELD_ENDS = ("hip", "knee")
KEPT_ON_RESCAN = ("metal", "metal_side")  # an implant is the body's, not the scanner's


@dataclass(frozen=True)
class FollowUp:
    rescan: int = 0
    shrink: dict[int, float] = field(default_factory=dict)  # CT label value -> percent lost
    cut_field: dict[str, float] = field(default_factory=dict)  # "hip" | "knee" -> mm

    def __post_init__(self) -> None:
        if self.rescan < 0:
            raise ValueError("rescan must be 0 (the first scan) or more")
        for v, p in self.shrink.items():
            if not 1 <= int(v) <= 20 or not 0.0 <= float(p) < 100.0:
                raise ValueError(f"shrink: label 1-20 by 0-100 %, not {v} by {p}")
        for end, mm in self.cut_field.items():
            if end not in FIELD_ENDS or float(mm) < 0.0:
                raise ValueError(f"cut_field: hip or knee by >= 0 mm, not {end} by {mm}")

    @property
    def is_original(self) -> bool:
        return self.rescan == 0 and not any(self.shrink.values()) and not any(self.cut_field.values())

    def to_params(self) -> dict:
        return {"rescan": self.rescan, "shrink_percent": {str(k): v for k, v in sorted(self.shrink.items())},
                "cut_field_mm": dict(sorted(self.cut_field.items()))}


def scan_rng(seed: int, follow: FollowUp, case_rng: np.random.Generator) -> np.random.Generator:
    """The scanner draw's stream: the case's own for the first scan, else the rescan's."""
    return case_rng if follow.rescan == 0 else np.random.default_rng([int(seed), RESCAN_STREAM, follow.rescan])


def rescan_appearance(rng: np.random.Generator, appearance: dict) -> dict:
    """A new scanner and scene for the same body (``population.draw_appearance``), keeping its implant."""
    from .population import draw_appearance

    new = draw_appearance(rng)
    new.update({k: appearance[k] for k in KEPT_ON_RESCAN if k in appearance})
    return new


def shrink_labels(labels: np.ndarray, follow: FollowUp) -> np.ndarray:
    """The template-grid labels with each shrunk muscle peeled by its percent (only it changes)."""
    from .muscles import apply_factors

    factors = {int(v): 1.0 - float(p) / 100.0 for v, p in follow.shrink.items() if p > 0}
    return apply_factors(labels, factors, min_change=0.0) if factors else labels


def cut_slices(follow: FollowUp, thick_mm: float) -> tuple[int, int]:
    """(slices removed at the knee end = bottom, slices removed at the hip end = top)."""
    k = int(np.ceil(follow.cut_field.get("knee", 0.0) / thick_mm - 1e-9))
    h = int(np.ceil(follow.cut_field.get("hip", 0.0) / thick_mm - 1e-9))
    return k, h


def parse_shrink(specs: list[str]) -> dict[int, float]:
    """``[right:|left:]MUSCLE=PERCENT`` (both sides without a side) -> label value -> percent."""
    out: dict[int, float] = {}
    for spec in specs:
        name, sep, pct = spec.partition("=")
        side, _, key = name.rpartition(":")
        if not sep or (side and side not in SIDES):
            raise ValueError(f"--shrink {spec!r}: use [right:|left:]MUSCLE=PERCENT, e.g. vastus_lateralis=10")
        try:
            cls, percent = by_key(key.strip()), float(pct)
        except (KeyError, ValueError) as e:
            raise ValueError(f"--shrink {spec!r}: {e}") from None
        for s in ([side] if side else SIDES):
            out[cls.label_value(s)] = percent
    return out


def parse_cut(specs: list[str]) -> dict[str, float]:
    """``hip=MM`` / ``knee=MM`` -> end -> mm."""
    out: dict[str, float] = {}
    for spec in specs:
        end, sep, mm = spec.partition("=")
        try:
            if not sep or end not in FIELD_ENDS:
                raise ValueError
            out[end] = float(mm)
        except ValueError:
            raise ValueError(f"--cut-field {spec!r}: use hip=MM or knee=MM, e.g. knee=40") from None
    return out
