"""Quality flag: per muscle and side, a confidence that the segmentation is right, and a verdict.

Fourteen features per muscle and side (each 0 for a perfect, certain result; docs/quality.md):

==================== ===========================================================================
``view_disagreement`` 1 − mean over the views of the Dice between the view's own mask of the
                      muscle and the result's (inference/agreement.py)
``low_margin``        1 − the mean probability margin (winner − runner-up of the views' mean
                      softmax) over the muscle's voxels
``removed_share``     share of the fused muscle that the largest-component clean-up removed
``volume_deviation``  how far (natural log) the volume (cm³, volumes.csv) lies outside the
                      plausible adult range (reference_volumes.py); 0 inside it, at most 3
``asymmetry``         |left/right asymmetry| / 200 % (0 when only one thigh was segmented)
``share_deviation``   |ln| of the muscle's share of its thigh's muscle volume over the share its
                      young-adult mean has of theirs (reference_volumes.py)
``area_step``         largest change of cross-section area between neighbouring slices / median
``centroid_step``     largest jump of the cross-section's centre between neighbouring slices
``unclaimed_rim``     share of the rim around the muscle that reads as muscle but no muscle holds
``foreign_tissue``    share of the muscle's voxels that read as fat or bone
``edge_share``        share of the muscle's voxels within 10 mm of where the image ends (the
                      scan's end, or the field's): a muscle cut there to a sliver
``position_offset``   how many spreads the muscle lies, around the femur, from where it lies in
                      other bodies (quality_positions.py)
``layout_offset``     median over the other muscles beside it of how many spreads each lies,
                      relative to this one, from where it lies in other bodies (the layout that
                      two close neighbours swapped turn over; quality_positions.py)
``flipped_share``     the largest share, over the muscles beside it, of the slices on which
                      their layout is turned over (a swap over part or all of their length)
==================== ===========================================================================

The last eight look at the result itself on the model grid (inference/shape_evidence.py): what
is left to see when all three views agree on the same mistake.

They are combined by one logistic model, ``p = 1 / (1 + exp(-(b + Σ w_i (f_i − μ_i) / σ_i)))``,
the probability that the muscle's Dice is below the calibration's target (0.80);
``confidence = 1 − p``; a muscle is ``check`` when its confidence is below the calibrated
threshold, else ``ok``. A muscle with no voxels on a segmented thigh is always ``check``
(confidence 0). The coefficients, the threshold and how they were fitted (cases, model, command,
ROC numbers) live in one file, ``data/quality_calibration.json``, written by
``thighseg calibrate-quality ... --install`` (quality_calibration.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from . import classes as C
from .io import InputError
from .measure import MuscleVolume, asymmetry_percent
from .quality_positions import flipped_share, muscle_layout_offset, position_offset
from .reference_volumes import plausible_range_cm3, reference_share

FEATURES = ("view_disagreement", "low_margin", "removed_share", "volume_deviation", "asymmetry",
            "share_deviation", "area_step", "centroid_step", "unclaimed_rim", "foreign_tissue", "edge_share",
            "position_offset", "layout_offset", "flipped_share")
MAX_VOLUME_DEVIATION = 3.0  # e^3 = 20x outside the range: anything beyond is equally wrong
# Caps of the open-ended features: beyond them a muscle is equally wrong, and a logistic model
# must not be ruled by one extreme sample.
MAX_SHARE_DEVIATION = 3.0
MAX_AREA_STEP = 2.0  # twice the median section between two slices
MAX_CENTROID_STEP = 10.0  # voxels (20 mm on the 2 mm grid)
OK, CHECK = "ok", "check"
CALIBRATION_PATH = Path(__file__).resolve().parent / "data" / "quality_calibration.json"


@dataclass(frozen=True)
class Calibration:
    """The logistic model and its threshold (one JSON file; see the module docstring)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float
    threshold: float  # a muscle whose confidence is below this is flagged "check"
    target_dice: float = 0.80
    fitted: dict = field(default_factory=dict)  # provenance and ROC numbers (informative)

    def logit(self, features: dict[str, float]) -> float:
        z = self.intercept
        for name, mu, sd, w in zip(self.features, self.mean, self.scale, self.weights):
            z += w * (float(features[name]) - mu) / sd
        return z

    def confidence(self, features: dict[str, float]) -> float:
        """1 − P(Dice < target | features)."""
        z = self.logit(features)
        return 1.0 / (1.0 + math.exp(z)) if z > -700 else 1.0

    def to_dict(self) -> dict:
        return {"features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                "weights": list(self.weights), "intercept": self.intercept, "threshold": self.threshold,
                "target_dice": self.target_dice, "fitted": self.fitted}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        cal = cls(tuple(d["features"]), tuple(map(float, d["mean"])), tuple(map(float, d["scale"])),
                  tuple(map(float, d["weights"])), float(d["intercept"]), float(d["threshold"]),
                  float(d.get("target_dice", 0.80)), dict(d.get("fitted", {})))
        unknown = set(cal.features) - set(FEATURES)
        if unknown or not (len(cal.features) == len(cal.mean) == len(cal.scale) == len(cal.weights)):
            raise ValueError(f"not a quality calibration: features {sorted(unknown)} unknown or lengths differ")
        return cal


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The calibration in ``path``, by default the library's own (read once)."""
    return _load(str(Path(path).resolve()) if path else str(CALIBRATION_PATH))


@lru_cache(maxsize=4)
def _load(path: str) -> Calibration:
    try:
        return Calibration.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise InputError(f"the quality calibration {path} is missing: reinstall, or run "
                         "`thighseg calibrate-quality DATA --out DIR --install`") from None
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path} is not a quality calibration ({err})") from None


@dataclass(frozen=True)
class MuscleQuality:
    label_value: int
    muscle: str  # class key
    side: str
    confidence: float  # 0..1: 1 − the calibrated probability that Dice < target
    quality: str  # "ok" | "check"
    features: dict  # FEATURES -> value
    missing: bool = False  # no voxel of the muscle on a segmented thigh

    @property
    def name(self) -> str:
        return C.by_key(self.muscle).side_name(self.side)


def volume_deviation(key: str, volume_cm3: float) -> float:
    lo, hi = plausible_range_cm3(key)
    v = max(float(volume_cm3), 1e-3)
    return min(max(0.0, math.log(lo / v), math.log(v / hi)), MAX_VOLUME_DEVIATION)


def share_deviation(key: str, volume_cm3: float, thigh_cm3: float) -> float:
    """|ln| of the muscle's share of its thigh's muscle volume over its reference share: a
    muscle swapped with a neighbour, or half lost, changes its share even in a body whose
    muscles are all small or all large."""
    if thigh_cm3 <= 0:
        return 0.0
    share = max(float(volume_cm3), 1e-3) / thigh_cm3
    return min(abs(math.log(share / reference_share(key))), MAX_SHARE_DEVIATION)


def _shape(stats, name: str, model_id: int, cap: float = 1.0) -> float:
    value = float(getattr(stats.shape, name)[model_id]) if stats.shape is not None else math.nan
    return 0.0 if math.isnan(value) else min(value, cap)  # NaN: no evidence (no image, no muscle)


def _position_offset(stats, model_id: int, key: str) -> float:
    if stats.shape is None:
        return 0.0
    return position_offset(key, float(stats.shape.angle[model_id]), float(stats.shape.radius[model_id]))


def muscle_features(stats, model_id: int, key: str, volume_cm3: float, other_side_cm3: float | None,
                    thigh_cm3: float = 0.0) -> dict:
    """The fourteen features of one muscle; ``stats`` is the thigh's inference.agreement.ClassStats,
    ``thigh_cm3`` the volume of all muscles of its thigh (0: unknown, no share feature)."""
    dice, margin = float(stats.view_dice[model_id]), float(stats.margin[model_id])
    asym = 0.0 if other_side_cm3 is None else asymmetry_percent(volume_cm3, other_side_cm3)
    return {"view_disagreement": 1.0 if math.isnan(dice) else 1.0 - dice,
            "low_margin": 1.0 if math.isnan(margin) else 1.0 - margin,
            "removed_share": stats.removed_share(model_id),
            "volume_deviation": volume_deviation(key, volume_cm3),
            "asymmetry": 0.0 if math.isnan(asym) else abs(asym) / 200.0,
            "share_deviation": share_deviation(key, volume_cm3, thigh_cm3),
            "area_step": _shape(stats, "area_step", model_id, MAX_AREA_STEP),
            "centroid_step": _shape(stats, "centroid_step", model_id, MAX_CENTROID_STEP),
            "unclaimed_rim": _shape(stats, "unclaimed_rim", model_id),
            "foreign_tissue": _shape(stats, "foreign_tissue", model_id),
            "edge_share": _shape(stats, "edge_share", model_id),
            "position_offset": _position_offset(stats, model_id, key),
            "layout_offset": 0.0 if stats.shape is None else muscle_layout_offset(stats.shape, key),
            "flipped_share": 0.0 if stats.shape is None else flipped_share(stats.shape, key)}


def feature_rows(stats_by_side: dict, volumes_cm3: dict[int, float]) -> list[tuple]:
    """(label value, class key, side, features, missing) of each muscle of each segmented side
    (right first). ``stats_by_side``: side -> ClassStats of that thigh; ``volumes_cm3``: CT label
    value -> cm³ (volumes.csv)."""
    rows = []
    for side in C.SIDES:
        stats = stats_by_side.get(side)
        if stats is None:
            continue
        other = "left" if side == "right" else "right"
        thigh_cm3 = sum(volumes_cm3.get(m.label_value(side), 0.0) for m in C.CLASSES)
        for muscle in C.CLASSES:
            value = muscle.label_value(side)
            other_cm3 = volumes_cm3.get(muscle.label_value(other), 0.0) if other in stats_by_side else None
            feats = muscle_features(stats, muscle.model_id, muscle.key, volumes_cm3.get(value, 0.0), other_cm3,
                                    thigh_cm3)
            rows.append((value, muscle.key, side, feats, int(stats.voxels[muscle.model_id]) == 0))
    return rows


def assess(stats_by_side: dict, volumes_cm3: dict[int, float],
           calibration: Calibration | None = None) -> list[MuscleQuality]:
    """Per muscle of each segmented side (right first): features, confidence, verdict."""
    cal = calibration or load_calibration()
    out = []
    for value, key, side, feats, missing in feature_rows(stats_by_side, volumes_cm3):
        conf = 0.0 if missing else cal.confidence(feats)
        out.append(MuscleQuality(value, key, side, conf, CHECK if missing or conf < cal.threshold else OK,
                                 feats, missing))
    return out


def thigh_verdicts(qualities: list[MuscleQuality]) -> dict[str, dict]:
    """Per segmented side: the verdict sentence, the muscles to check and every muscle's flag."""
    out: dict[str, dict] = {}
    for side in C.SIDES:
        rows = [q for q in qualities if q.side == side]
        if not rows:
            continue
        flagged = [q for q in rows if q.quality == CHECK]
        out[side] = {"verdict": verdict_text(side, flagged, len(rows)), "to_check": [q.muscle for q in flagged],
                     "muscles": {q.muscle: {"quality": q.quality, "confidence": round(q.confidence, 3)}
                                 for q in rows}}
    return out


MAX_NAMED = 4  # a verdict names at most this many muscles (it must fit on one line of the report)


def verdict_text(side: str, flagged: list[MuscleQuality], total: int) -> str:
    """E.g. "right thigh: 2 muscles to check (sartorius, gracilis (missing))"."""
    if not flagged:
        return f"{side} thigh: all {total} muscles ok"
    names = [C.by_key(q.muscle).name.lower() + (" (missing)" if q.missing else "") for q in flagged]
    if len(names) > MAX_NAMED:
        names = names[:MAX_NAMED - 1] + [f"{len(names) - MAX_NAMED + 1} more"]
    noun = "muscle" if len(flagged) == 1 else "muscles"
    return f"{side} thigh: {len(flagged)} {noun} to check ({', '.join(names)})"


def with_quality(volumes: list[MuscleVolume], qualities: list[MuscleQuality]) -> list[MuscleVolume]:
    """volumes.csv rows with their ``confidence`` and ``quality`` filled in (sides not segmented
    keep them empty)."""
    by_value = {q.label_value: q for q in qualities}
    return [replace(v, confidence=by_value[v.label_value].confidence, quality=by_value[v.label_value].quality)
            if v.label_value in by_value else v for v in volumes]
