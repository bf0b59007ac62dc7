"""Published adult thigh-muscle volumes, to check that phantoms are plausible: the one copy
lives in ``ThighMuscleSegLib.reference_volumes`` (the quality flag reads it too)."""

from __future__ import annotations

from ..reference_volumes import ADULT_MEAN_CM3, RANGE_FACTORS, plausible_range_cm3

__all__ = ["ADULT_MEAN_CM3", "RANGE_FACTORS", "plausible_range_cm3"]
