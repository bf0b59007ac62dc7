"""The quality flag's position prior (quality_positions.py): built from ground truth, a muscle
where it belongs is near 0 spreads from it, two muscles swapped are far."""

import math

import numpy as np
import pytest
import SimpleITK as sitk

from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib import framing
from ThighMuscleSegLib.inference.shape_evidence import shape_stats
from ThighMuscleSegLib.quality_positions import (MAX_POSITION_OFFSET, MAX_PRIOR_FLIPS, build,
                                                 flipped_share, layout_offset, load_pairs, load_positions,
                                                 muscle_layout_offset, pair_key, position_offset, thigh_layout,
                                                 thigh_positions)


def _right_thigh_truth(case) -> np.ndarray:
    """The right thigh's ground truth on its model grid (model ids)."""
    ct = sitk.ReadImage(str(case / "ct.nii.gz"))
    gt = sitk.ReadImage(str(case / "labels.nii.gz"))
    frame = next(f for f in framing.frame_thighs(ct) if f.side == "right")
    return C.ct_labels_to_model_ids(framing.to_grid(gt, frame, "nearest"), "right")


def _swapped(ids: np.ndarray, a: str, b: str, from_slice: int = 0) -> np.ndarray:
    """``ids`` with muscles ``a`` and ``b`` exchanged from slice ``from_slice`` on."""
    ia, ib = C.by_key(a).model_id, C.by_key(b).model_id
    out = ids.copy()
    part, orig = out[from_slice:], ids[from_slice:]
    part[orig == ia], part[orig == ib] = ib, ia
    return out


def test_the_installed_prior_knows_every_muscle():
    prior = load_positions()
    assert set(prior) == {m.key for m in C.CLASSES}
    for p in prior.values():
        assert -math.pi <= p["angle"] <= math.pi and 0 < p["angle_sd"] < 1 and p["radius"] > 0 < p["radius_sd"]


def test_the_installed_layout_holds_the_close_neighbours():
    pairs = load_pairs()
    for a, b in (("vastus_lateralis", "vastus_intermedius"), ("semitendinosus", "semimembranosus")):
        p = pairs[pair_key(a, b)]
        assert p["thighs"] >= 16 and 0 < p["radius_sd"] < 1 and 0 < p["angle_sd"] < 1


def test_layout_offset_reads_a_pair_from_either_end():
    pairs = {pair_key("gracilis", "sartorius"): {"angle": 0.5, "angle_sd": 0.1, "radius": 0.2, "radius_sd": 0.1}}
    # the prior holds gracilis -> sartorius; measured from sartorius the same layout is negated
    assert layout_offset("gracilis", {"sartorius": 0.5}, {"sartorius": 0.2}, pairs) == 0.0
    assert layout_offset("sartorius", {"gracilis": -0.5}, {"gracilis": -0.2}, pairs) == 0.0
    assert layout_offset("sartorius", {"gracilis": -0.5}, {"gracilis": 0.1}, pairs) == pytest.approx(3.0)
    # pairs the prior does not hold, or not side by side in the result, are no evidence
    assert layout_offset("gracilis", {"adductors": 2.0, "sartorius": math.nan}, {"adductors": 1.0}, pairs) == 0.0


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
    ids = _right_thigh_truth(small_phantom)
    swapped = _swapped(ids, "vastus_medialis", "biceps_femoris")
    right, wrong = thigh_positions(ids), thigh_positions(swapped)
    for key in ("vastus_medialis", "biceps_femoris"):
        assert position_offset(key, *right[key], prior) < 2.0
        assert position_offset(key, *wrong[key], prior) > 5.0
    assert position_offset("gracilis", *wrong["gracilis"], prior) < 2.0  # untouched


def test_a_layout_from_a_phantom_tells_close_neighbours_swapped(small_phantom):
    built = build([small_phantom], log=lambda _: None)
    assert pair_key("vastus_intermedius", "vastus_lateralis") in built["pairs"]
    ids = _right_thigh_truth(small_phantom)
    swapped = _swapped(ids, "vastus_lateralis", "vastus_intermedius")

    def offset(key, labels):
        return muscle_layout_offset(shape_stats(labels, None, C.NUM_MODEL_CLASSES), key, built["pairs"])

    for key in ("vastus_lateralis", "vastus_intermedius"):
        assert offset(key, ids) < 2.0 and offset(key, swapped) > 4.0
    assert offset("gracilis", swapped) < 2.0  # two of its nine pairs changed: the median does not move
    assert thigh_layout(ids).keys() <= built["pairs"].keys()


def test_flipped_share_counts_the_slices_where_close_neighbours_turn_over(small_phantom):
    pairs = load_pairs()  # the installed layout, read on a phantom of another seed
    assert pairs[pair_key("vastus_lateralis", "vastus_intermedius")]["flips"] <= MAX_PRIOR_FLIPS
    ids = _right_thigh_truth(small_phantom)
    whole = _swapped(ids, "vastus_lateralis", "vastus_intermedius")
    half = _swapped(ids, "vastus_lateralis", "vastus_intermedius", from_slice=ids.shape[0] // 2)

    def share(key, labels):
        return flipped_share(shape_stats(labels, None, C.NUM_MODEL_CLASSES), key, pairs)

    for key in ("vastus_lateralis", "vastus_intermedius"):
        right, turned, half_turned = share(key, ids), share(key, whole), share(key, half)
        assert right < 0.2 and turned > 0.8 and right < half_turned < turned
    assert share("gracilis", whole) == share("gracilis", ids)  # its layout with each of them holds
