"""The quality flag's position prior (quality_positions.py): built from ground truth, a muscle
where it belongs is near 0 spreads from it, two muscles swapped are far."""

import math

import pytest
import SimpleITK as sitk

from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib import framing
from ThighMuscleSegLib.quality_positions import (MAX_POSITION_OFFSET, build, load_positions, position_offset,
                                                 thigh_positions)


def test_the_installed_prior_knows_every_muscle():
    prior = load_positions()
    assert set(prior) == {m.key for m in C.CLASSES}
    for p in prior.values():
        assert -math.pi <= p["angle"] <= math.pi and 0 < p["angle_sd"] < 1 and p["radius"] > 0 < p["radius_sd"]


def test_offset_counts_spreads_and_wraps_the_angle():
    prior = {"gracilis": {"angle": math.pi - 0.05, "angle_sd": 0.1, "radius": 1.0, "radius_sd": 0.1}}
    assert position_offset("gracilis", math.pi - 0.05, 1.0, prior) == 0.0
    # 0.1 rad past +pi is -pi + 0.05: one spread away, not 2 pi / 0.1
    assert position_offset("gracilis", -math.pi + 0.05, 1.0, prior) == pytest.approx(1.0)
    assert position_offset("gracilis", math.pi - 0.05, 1.3, prior) == pytest.approx(3.0)
    assert position_offset("gracilis", 0.0, 5.0, prior) == MAX_POSITION_OFFSET
    assert position_offset("sartorius", 0.0, 1.0, prior) == 0.0  # no prior for the class: no evidence


def test_a_prior_from_a_phantom_tells_swapped_muscles(small_phantom):
    prior = build([small_phantom], log=lambda _: None)["muscles"]
    assert set(prior) == {m.key for m in C.CLASSES} and all(p["thighs"] == 2 for p in prior.values())
    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    gt = sitk.ReadImage(str(small_phantom / "labels.nii.gz"))
    frame = next(f for f in framing.frame_thighs(ct) if f.side == "right")
    ids = C.ct_labels_to_model_ids(framing.to_grid(gt, frame, "nearest"), "right")
    a, b = C.by_key("vastus_medialis").model_id, C.by_key("biceps_femoris").model_id
    swapped = ids.copy()
    swapped[ids == a], swapped[ids == b] = b, a
    right, wrong = thigh_positions(ids), thigh_positions(swapped)
    for key in ("vastus_medialis", "biceps_femoris"):
        assert position_offset(key, *right[key], prior) < 2.0
        assert position_offset(key, *wrong[key], prior) > 5.0
    assert position_offset("gracilis", *wrong["gracilis"], prior) < 2.0  # untouched
