"""Whole-CT Dice of the bundled model with the standard 360 mm field against a longer one
(same centre and model; an experiment, not the product's setting).

    .venv/bin/python scripts/field_length.py CASE... [--slices 240] [--model FILE]

CASE: phantom folders (ct.nii.gz + labels.nii.gz). Muscle beyond the 360 mm field (its ends
at the hip and the knee) is never segmented and scores as missed over the whole CT; the 2D
nets are fully convolutional, so the same views can read a longer field. Prints one JSON line
per case (the share of the true muscle outside the standard fields, and of that the share
beyond their ends along the femur rather than beside them; per field length the mean Dice over
the labels the ground truth holds, the three lowest, seconds) and one with the means.
``--outside-only`` measures only where the muscle outside the fields lies (no segmenting).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ThighMuscleSegLib import framing, pipeline  # noqa: E402
from ThighMuscleSegLib.framing import GRID_SHAPE_ZYX  # noqa: E402
from ThighMuscleSegLib.models import load_model  # noqa: E402
from ThighMuscleSegLib.defaults import default_model_path  # noqa: E402


def label_dice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Dice of every label 1-20 that ``truth`` holds."""
    out = []
    for value in range(1, 21):
        p, t = pred == value, truth == value
        if t.any():
            out.append(2.0 * (p & t).sum() / (p.sum() + t.sum()))
    return np.array(out)


def outside_fields(ct: sitk.Image, truth: np.ndarray) -> dict:
    """Share of the true muscle voxels outside the standard fields, and of those the share
    beyond a field's ends along the femur (the rest lies beside it, outside its square)."""
    frames = framing.frame_thighs(ct)
    covered = sitk.GetArrayFromImage(framing.from_grid({f.side: np.ones(f.grid_shape, np.uint8) for f in frames},
                                                       frames, ct, "nearest")) > 0
    missed = np.argwhere((truth > 0) & ~covered)  # (z, y, x) indices
    if len(missed) == 0:
        return {"outside": 0.0, "beyond_ends": None}
    sample = missed[::10]
    side_of = np.where(truth[tuple(sample.T)] <= 10, "right", "left")  # labels 1-10 right, 11-20 left
    points = np.array([ct.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in p[::-1])) for p in sample])
    beyond = np.ones(len(points), bool)  # a thigh with no field: all of it beyond
    for f in frames:
        mine = side_of == f.side
        grid = f.ct_to_grid_points(points[mine])
        beyond[mine] = np.abs(grid[:, 2]) >= f.length_mm / 2
    return {"outside": round(float(len(missed) / (truth > 0).sum()), 4), "beyond_ends": round(float(beyond.mean()), 3)}


def segment_with_field(ct: sitk.Image, model, slices: int) -> np.ndarray:
    """Labels of ``ct`` with every frame's field ``slices`` × 2 mm long (its centre kept)."""
    find = framing.frame_thighs

    def longer(image, **kw):
        return [dataclasses.replace(f, grid_shape=(slices,) + tuple(f.grid_shape[1:])) for f in find(image, **kw)]

    pipeline.framing.frame_thighs = longer
    try:
        return sitk.GetArrayFromImage(pipeline.segment_ct(ct, model, device="cpu").labels)
    finally:
        pipeline.framing.frame_thighs = find


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--slices", type=int, default=240, help="the longer field's slices of 2 mm (default 240)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--outside-only", action="store_true", help="only where the muscle outside the fields lies")
    args = parser.parse_args()
    model = load_model(args.model or default_model_path())
    sums: dict[str, list[float]] = {}
    for case in map(Path, args.cases):
        ct = sitk.ReadImage(str(case / "ct.nii.gz"))
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels.nii.gz")))
        row = {"case": str(case)} | outside_fields(ct, truth)
        if args.outside_only:
            print(json.dumps(row), flush=True)
            continue
        for slices in (GRID_SHAPE_ZYX[0], args.slices):
            t0 = time.perf_counter()
            dice = label_dice(segment_with_field(ct, model, slices), truth)
            key = f"{2 * slices} mm"
            row[key] = {"dice": round(float(dice.mean()), 4), "lowest": np.sort(dice)[:3].round(3).tolist(),
                        "seconds": round(time.perf_counter() - t0, 1)}
            sums.setdefault(key, []).append(float(dice.mean()))
        print(json.dumps(row), flush=True)
    if sums:
        print(json.dumps({"mean dice": {k: round(float(np.mean(v)), 4) for k, v in sums.items()}, "cases": len(args.cases)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
