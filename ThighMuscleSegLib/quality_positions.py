"""Where each muscle lies around the femur in other bodies: the quality flag's position prior.

Two muscles swapped by all three views agree with each other and keep their shapes and sizes
(a swap of neighbours of similar volume); what gives them away is that each now lies where
the other should. ``inference/shape_evidence`` measures a muscle's direction and relative
distance around the field's axis (the femur; left thighs mirrored, so both sides share one
prior); this module holds their mean and spread over phantoms of many bodies, and
``position_offset`` says how many spreads a result lies from them.

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
from .io import InputError

POSITIONS_PATH = Path(__file__).resolve().parent / "data" / "muscle_positions.json"
MAX_POSITION_OFFSET = 10.0  # spreads: beyond this a muscle is equally misplaced
MIN_ANGLE_SD = 0.05  # radians (3°): a floor, so that a prior from few bodies is not over-sure
MIN_RADIUS_SD = 0.05


def position_offset(key: str, angle: float, radius: float, prior: dict | None = None) -> float:
    """Distance, in spreads, of a muscle's (angle, radius) from where it lies in other bodies
    (0 when unknown: no prior for the class, or no position)."""
    prior = load_positions() if prior is None else prior
    p = prior.get(key)
    if p is None or not (math.isfinite(angle) and math.isfinite(radius)):
        return 0.0
    d_angle = math.remainder(angle - p["angle"], 2 * math.pi)
    z = math.hypot(d_angle / max(p["angle_sd"], MIN_ANGLE_SD), (radius - p["radius"]) / max(p["radius_sd"], MIN_RADIUS_SD))
    return min(z, MAX_POSITION_OFFSET)


def load_positions(path: str | Path | None = None) -> dict:
    """Class key -> {angle, angle_sd, radius, radius_sd} (the library's own file by default)."""
    return _load(str(Path(path).resolve()) if path else str(POSITIONS_PATH))


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {k: {f: float(v[f]) for f in ("angle", "angle_sd", "radius", "radius_sd")}
                for k, v in data["muscles"].items()}
    except FileNotFoundError:
        raise InputError(f"the muscle position prior {path} is missing: reinstall, or run "
                         "`make muscle-positions`") from None
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path} is not a muscle position prior ({err})") from None


def thigh_positions(ids: np.ndarray) -> dict[str, tuple[float, float]]:
    """Class key -> (angle, radius) of each muscle in one framed thigh's model ids."""
    from .inference.shape_evidence import shape_stats

    stats = shape_stats(ids, None, C.NUM_MODEL_CLASSES)
    return {m.key: (float(stats.angle[m.model_id]), float(stats.radius[m.model_id])) for m in C.CLASSES
            if math.isfinite(stats.angle[m.model_id])}


def build(case_dirs: list[Path], log=print) -> dict:
    """The prior from the ground truth of ``case_dirs`` (ct.nii.gz + labels.nii.gz each)."""
    import SimpleITK as sitk

    from . import framing

    seen: dict[str, list[tuple[float, float]]] = {m.key: [] for m in C.CLASSES}
    for case in case_dirs:
        ct = sitk.ReadImage(str(case / "ct.nii.gz"))
        gt = sitk.ReadImage(str(case / "labels.nii.gz"))
        for frame in framing.frame_thighs(ct):
            ids = C.ct_labels_to_model_ids(framing.to_grid(gt, frame, "nearest"), frame.side)
            for key, pos in thigh_positions(ids).items():
                seen[key].append(pos)
        log(f"  {case}")
    muscles = {}
    for key, pos in seen.items():
        if len(pos) < 2:
            raise InputError(f"{key}: found in {len(pos)} thigh(s) of these cases; a prior needs at least 2")
        angles, radii = np.array(pos).T
        mean = math.atan2(np.sin(angles).mean(), np.cos(angles).mean())
        resultant = math.hypot(np.sin(angles).mean(), np.cos(angles).mean())
        muscles[key] = {"angle": mean, "angle_sd": math.sqrt(max(-2 * math.log(max(resultant, 1e-12)), 0.0)),
                        "radius": float(radii.mean()), "radius_sd": float(radii.std(ddof=1)), "thighs": len(pos)}
    return {"muscles": muscles, "built": {"date": datetime.date.today().isoformat(),
                                          "cases": [str(c) for c in case_dirs],
                                          "command": "python -m ThighMuscleSegLib.quality_positions " +
                                                     " ".join(sys.argv[1:])}}


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
