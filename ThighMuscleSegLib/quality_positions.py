"""Where each muscle lies around the femur in other bodies: the quality flag's position prior.

Two muscles swapped by all three views agree with each other and keep their shapes and sizes
(a swap of neighbours of similar volume); what gives them away is that each now lies where
the other should. ``inference/shape_evidence`` measures a muscle's direction and relative
distance around the field's axis (the femur; left thighs mirrored, so both sides share one
prior); this module holds their mean and spread over phantoms of many bodies, and
``position_offset`` says how many spreads a result lies from them. Close neighbours (vastus
lateralis and intermedius, semitendinosus and semimembranosus) lie within a spread of each
other's place, so the prior also holds the layout: where each muscle lies relative to each
other one (``shape_evidence``'s pair measures), which such a swap turns over, and
``layout_offset`` says how far a result's layout lies from it, ``flipped_share`` on how many
of the slices two muscles share their layout is turned over.

The prior is built from ground truth, never from predictions, on phantoms used for nothing
else (``make muscle-positions``: 12 bodies of the adult population, seeds 90000-90011, and 4
of the one template body, seeds 9000-9003) and installed as ``data/muscle_positions.json``::

    python -m ThighMuscleSegLib.quality_positions CASES... --out FILE [--install]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import classes as C
from .inference.shape_evidence import MIN_SHARED_SLICES, shape_stats
from .io import InputError

POSITIONS_PATH = Path(__file__).resolve().parent / "data" / "muscle_positions.json"
MAX_POSITION_OFFSET = 10.0  # spreads: beyond this a muscle is equally misplaced
MIN_ANGLE_SD = 0.05  # radians (3°): a floor, so that a prior from few bodies is not over-sure
MIN_RADIUS_SD = 0.05
MIN_FLIP_SPREADS = 3.0  # a layout nearer than this to its mirror image cannot be told turned over
# Only muscles side by side around the femur (directions less than 90° apart) can be told turned
# over slice by slice: a pair across the thigh (150° apart) has its mirror image 60° away through
# ±180°, within what one slice's section centres wander; measured in the template body's own
# ground truth, such pairs "turned over" on up to 60 % of their slices.
MAX_FLIP_ANGLE = math.pi / 2
MAX_PRIOR_FLIPS = 0.02  # a pair turned over on more of its slices in the prior's own thighs varies by level
MIN_PAIR_SHARE = 0.5  # a pair side by side in fewer of the prior's thighs has no layout to compare with


def position_offset(key: str, angle: float, radius: float, prior: dict | None = None) -> float:
    """Distance, in spreads, of a muscle's (angle, radius) from where it lies in other bodies
    (0 when unknown: no prior for the class, or no position)."""
    prior = load_positions() if prior is None else prior
    p = prior.get(key)
    if p is None or not (math.isfinite(angle) and math.isfinite(radius)):
        return 0.0
    return _spreads(angle, radius, p)


def layout_offset(key: str, pair_angle: dict[str, float], pair_radius: dict[str, float],
                  pairs: dict | None = None) -> float:
    """Median distance, in spreads, of where the other muscles lie relative to muscle ``key``
    (``pair_angle``/``pair_radius``: other class key -> shape_evidence's pair measures from
    ``key`` to it) from that layout in other bodies; 0 when no pair can be compared."""
    pairs = load_pairs() if pairs is None else pairs
    offsets = []
    for other, d_angle in pair_angle.items():
        p = pairs.get(pair_key(key, other))
        d_radius = pair_radius.get(other, math.nan)
        if p is None or not (math.isfinite(d_angle) and math.isfinite(d_radius)):
            continue
        sign = 1.0 if key < other else -1.0  # the prior holds the pair in one direction
        offsets.append(_spreads(sign * d_angle, sign * d_radius, p))
    # The median: a muscle that moved is off against every other one; a neighbour of two
    # muscles swapped is off against those two only.
    return float(np.median(offsets)) if offsets else 0.0


def muscle_layout_offset(shape, key: str, pairs: dict | None = None) -> float:
    """``layout_offset`` of muscle ``key`` in one thigh's ``shape_evidence.ShapeStats``."""
    k = C.by_key(key).model_id
    others = [m for m in C.CLASSES if m.model_id != k]
    return layout_offset(key, {m.key: float(shape.pair_angle[k, m.model_id]) for m in others},
                         {m.key: float(shape.pair_radius[k, m.model_id]) for m in others}, pairs)


def flipped_share(shape, key: str, pairs: dict | None = None) -> float:
    """The largest share, over the other muscles beside muscle ``key`` around the femur whose
    layout with it holds at every level in the prior's thighs (``flips`` ≤ MAX_PRIOR_FLIPS; see
    MAX_FLIP_ANGLE for the muscles across the thigh), of the slices both fill on which that
    layout is turned over (``shape``: one thigh's shape_evidence.ShapeStats). 1 for two
    neighbours swapped along their whole length, about 0.5 for half of it, near 0 when right."""
    pairs = load_pairs() if pairs is None else pairs
    a = C.by_key(key)
    worst = 0.0
    for b in C.CLASSES:
        p = pairs.get(pair_key(a.key, b.key)) if b.model_id != a.model_id else None
        if p is None or p["flips"] > MAX_PRIOR_FLIPS:
            continue
        first, second = (a, b) if a.key < b.key else (b, a)  # the prior holds the pair in key order
        share = _turned_over(shape, first.model_id, second.model_id, p)
        worst = max(worst, 0.0 if share is None else share)
    return worst


def _turned_over(shape, first: int, second: int, p: dict) -> float | None:
    """Share of the slices both muscles fill on which ``second`` lies from ``first`` nearer (in
    the prior's spreads) to the mirror image of the prior's layout ``p`` than to it; None when
    they share too few slices, or the layout is too near its mirror, or too far round, to tell."""
    sd_angle, sd_radius = max(p["angle_sd"], MIN_ANGLE_SD), max(p["radius_sd"], MIN_RADIUS_SD)
    distinct = math.hypot(p["angle"] / sd_angle, p["radius"] / sd_radius) >= MIN_FLIP_SPREADS
    if abs(p["angle"]) > MAX_FLIP_ANGLE or not distinct:
        return None
    d_angle = shape.section_angle[second] - shape.section_angle[first]
    d_radius = shape.section_radius[second] - shape.section_radius[first]
    shared = np.isfinite(d_angle) & np.isfinite(d_radius)
    if shared.sum() < MIN_SHARED_SLICES:
        return None
    d_angle = np.remainder(d_angle[shared] + math.pi, 2 * math.pi) - math.pi
    towards = d_angle * p["angle"] / sd_angle ** 2 + d_radius[shared] * p["radius"] / sd_radius ** 2
    return float((towards < 0).mean())


def pair_key(a: str, b: str) -> str:
    """The prior's name of a pair of class keys: the two sorted, "a|b" (measures from a to b)."""
    return "|".join(sorted((a, b)))


def _spreads(angle: float, radius: float, p: dict) -> float:
    d_angle = math.remainder(angle - p["angle"], 2 * math.pi)
    z = math.hypot(d_angle / max(p["angle_sd"], MIN_ANGLE_SD), (radius - p["radius"]) / max(p["radius_sd"], MIN_RADIUS_SD))
    return min(z, MAX_POSITION_OFFSET)


def load_positions(path: str | Path | None = None) -> dict:
    """Class key -> {angle, angle_sd, radius, radius_sd} (the library's own file by default)."""
    return _load(str(Path(path).resolve()) if path else str(POSITIONS_PATH))[0]


def load_pairs(path: str | Path | None = None) -> dict:
    """pair_key -> {angle, angle_sd, radius, radius_sd}: the layout (the library's file by default)."""
    return _load(str(Path(path).resolve()) if path else str(POSITIONS_PATH))[1]


_FIELDS = ("angle", "angle_sd", "radius", "radius_sd")


def _entry(v: dict, pair: bool = False) -> dict:
    out = {f: float(v[f]) for f in _FIELDS} | {"thighs": int(v.get("thighs", 0))}
    if pair:  # share of slices the prior's own thighs turn the pair over; unknown: never used
        out["flips"] = float(v.get("flips", 1.0))
    return out


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict, dict]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return ({k: _entry(v) for k, v in data["muscles"].items()}, {k: _entry(v, pair=True) for k, v in data["pairs"].items()})
    except FileNotFoundError:
        raise InputError(f"the muscle position prior {path} is missing: reinstall, or run "
                         "`make muscle-positions`") from None
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path} is not a muscle position prior ({err})") from None


def thigh_positions(ids: np.ndarray) -> dict[str, tuple[float, float]]:
    """Class key -> (angle, radius) of each muscle in one framed thigh's model ids."""
    return _positions(_shape(ids))


def thigh_layout(ids: np.ndarray) -> dict[str, tuple[float, float]]:
    """pair_key -> (angle, radius) from the first to the second muscle of each pair that lies
    side by side in one framed thigh's model ids."""
    return _layout(_shape(ids))


def _shape(ids: np.ndarray):
    return shape_stats(ids, None, C.NUM_MODEL_CLASSES)


def _positions(stats) -> dict[str, tuple[float, float]]:
    return {m.key: (float(stats.angle[m.model_id]), float(stats.radius[m.model_id])) for m in C.CLASSES
            if math.isfinite(stats.angle[m.model_id])}


def _layout(stats) -> dict[str, tuple[float, float]]:
    out = {}
    for a in C.CLASSES:
        for b in C.CLASSES:
            if a.key < b.key and math.isfinite(stats.pair_angle[a.model_id, b.model_id]):
                out[pair_key(a.key, b.key)] = (float(stats.pair_angle[a.model_id, b.model_id]),
                                               float(stats.pair_radius[a.model_id, b.model_id]))
    return out


def build(case_dirs: list[Path], log=print) -> dict:
    """The prior from the ground truth of ``case_dirs`` (ct.nii.gz + labels.nii.gz each)."""
    import SimpleITK as sitk

    from . import framing

    seen: dict[str, list[tuple[float, float]]] = {m.key: [] for m in C.CLASSES}
    seen_pairs: dict[str, list[tuple[float, float]]] = {}
    thighs = []
    for case in case_dirs:
        ct = sitk.ReadImage(str(case / "ct.nii.gz"))
        gt = sitk.ReadImage(str(case / "labels.nii.gz"))
        for frame in framing.frame_thighs(ct):
            stats = _shape(C.ct_labels_to_model_ids(framing.to_grid(gt, frame, "nearest"), frame.side))
            thighs.append(stats)
            for key, pos in _positions(stats).items():
                seen[key].append(pos)
            for key, pos in _layout(stats).items():
                seen_pairs.setdefault(key, []).append(pos)
        log(f"  {case}")
    for key, pos in seen.items():
        if len(pos) < 2:
            raise InputError(f"{key}: found in {len(pos)} thigh(s) of these cases; a prior needs at least 2")
    pairs = {key: _spread(pos) for key, pos in sorted(seen_pairs.items())
             if len(pos) >= max(2, MIN_PAIR_SHARE * len(thighs))}
    for key, p in pairs.items():
        first, second = (C.by_key(k).model_id for k in key.split("|"))
        shares = [v for v in (_turned_over(t, first, second, p) for t in thighs) if v is not None]
        p["flips"] = float(np.mean(shares)) if shares else 1.0
    built = {"date": datetime.date.today().isoformat(), "cases": [str(c) for c in case_dirs],
             "command": "python -m ThighMuscleSegLib.quality_positions " + " ".join(sys.argv[1:])}
    return {"muscles": {key: _spread(pos) for key, pos in seen.items()}, "pairs": pairs, "built": built}


def _spread(pos: list[tuple[float, float]]) -> dict:
    """Circular mean and spread of the angles, mean and SD of the radii, of ``pos``."""
    angles, radii = np.array(pos).T
    mean = math.atan2(np.sin(angles).mean(), np.cos(angles).mean())
    resultant = math.hypot(np.sin(angles).mean(), np.cos(angles).mean())
    return {"angle": mean, "angle_sd": math.sqrt(max(-2 * math.log(max(resultant, 1e-12)), 0.0)),
            "radius": float(radii.mean()), "radius_sd": float(radii.std(ddof=1)), "thighs": len(pos)}


def _case_dirs(paths: list[str]) -> list[Path]:
    """Case folders given as themselves or as folders of them (every folder with labels.nii.gz)."""
    found = [c for p in map(Path, paths) for c in ([p] if (p / "labels.nii.gz").is_file()
                                                     else sorted(q.parent for q in p.glob("*/labels.nii.gz")))]
    if not found:
        raise InputError("no case folders (ct.nii.gz + labels.nii.gz) among " + ", ".join(paths))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ThighMuscleSegLib.quality_positions",
                                     description="build the quality flag's muscle position prior from ground truth")
    parser.add_argument("data", nargs="+", help="case folders (ct.nii.gz + labels.nii.gz) or folders of them")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--install", action="store_true", help=f"also write {POSITIONS_PATH}")
    args = parser.parse_args(argv)
    try:
        prior = build(_case_dirs(args.data))
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(prior, indent=1) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    if args.install:
        POSITIONS_PATH.write_text(text, encoding="utf-8")
        _load.cache_clear()
    for key, p in prior["muscles"].items():
        print(f"{key:20s} angle {math.degrees(p['angle']):7.1f}° ± {math.degrees(p['angle_sd']):5.1f}°  "
              f"radius {p['radius']:.2f} ± {p['radius_sd']:.2f}  ({p['thighs']} thighs)")
    print(f"layout: {len(prior['pairs'])} pairs of muscles side by side")
    return 0


if __name__ == "__main__":
    sys.exit(main())
