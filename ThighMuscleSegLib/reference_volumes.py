"""Published adult thigh-muscle volumes: what a plausible muscle volume is.

Used by the quality flag (``ThighMuscleSegLib.quality``: a volume far outside the range is a
sign of a failed segmentation) and meant to be the one copy for the phantom checks too
(``phantom/reference.py`` re-exports them).

Means (cm³) of healthy young adults from MRI: Handsfield GG, Meyer CH, Hart JM, Abel MF,
Blemker SS. "Relationships of 35 lower limb muscles to height and body mass quantified using
MRI." J Biomech 2014;47(3):631-638, doi:10.1016/j.jbiomech.2013.12.002 (Table 1; values
rounded, as recalled without access to the paper: check them before relying on them).
Adults span small elderly women (the Visible Human Female was 59) to large men, so the
plausible range is taken as 0.4x to 2.0x the young-adult mean.
"""

from __future__ import annotations

# Class key -> young-adult mean volume, cm³ (merged classes are sums of their parts).
ADULT_MEAN_CM3 = {
    "sartorius": 170.0,
    "rectus_femoris": 230.0,
    "vastus_lateralis": 550.0,
    "vastus_intermedius": 390.0,
    "vastus_medialis": 400.0,
    "gracilis": 105.0,
    "adductors": 770.0,  # magnus ~480 + longus ~175 + brevis ~115
    "biceps_femoris": 265.0,  # long head ~170 + short head ~95
    "semitendinosus": 195.0,
    "semimembranosus": 235.0,
}
RANGE_FACTORS = (0.4, 2.0)


def reference_share(key: str) -> float:
    """The muscle class's share of the ten classes' summed young-adult mean volume."""
    return ADULT_MEAN_CM3[key] / sum(ADULT_MEAN_CM3.values())


def plausible_range_cm3(key: str) -> tuple[float, float]:
    """(low, high) plausible adult volume of the muscle class ``key``, cm³."""
    mean = ADULT_MEAN_CM3[key]
    return mean * RANGE_FACTORS[0], mean * RANGE_FACTORS[1]
