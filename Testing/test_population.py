"""The phantom population: bodies drawn per seed, within their documented ranges; held-out
regions; vessels, metal and septa on the real template; a population case end to end."""

from __future__ import annotations

import numpy as np
import pytest

from ThighMuscleSegLib.phantom import population as pop
from ThighMuscleSegLib.phantom.muscles import add_septa
from ThighMuscleSegLib.phantom.template import CORTEX, INTERMUSCULAR_FAT, MARROW, SHAFT_MARROW, load_template
from ThighMuscleSegLib.phantom.vessels import ARTERY, METAL, VEIN, paint_metal, paint_vessels


@pytest.fixture(scope="module")
def bodies():
    return [pop.draw_body(s) for s in range(400)]


def test_a_body_is_the_same_for_a_seed_and_differs_between_seeds():
    assert pop.draw_body(17) == pop.draw_body(17)
    assert pop.draw_body(17) != pop.draw_body(18)


def test_bodies_stay_within_their_documented_ranges(bodies):
    for b in bodies:
        mean, sd = pop.STATURE_CM[b.sex]
        assert mean - 2.5 * sd <= b.stature_cm <= mean + 2.5 * sd
        assert pop.BMI_RANGE[0] <= b.bmi <= pop.BMI_RANGE[1]
        assert pop.SCALE_RANGE["length"][0] <= b.length_scale <= pop.SCALE_RANGE["length"][1]
        assert all(pop.SCALE_RANGE["girth"][0] <= g <= pop.SCALE_RANGE["girth"][1] for g in b.girth_scale)
        assert set(b.volume_factor) == set(range(1, 21)) == set(b.muscle_hu)
        assert all(pop.FACTOR_RANGE[0] <= f <= pop.FACTOR_RANGE[1] for f in b.volume_factor.values())
        assert all(pop.MUSCLE_HU_RANGE[0] <= h <= pop.MUSCLE_HU_RANGE[1] for h in b.muscle_hu.values())
        assert 3.0 <= b.subcutaneous_fat_mm <= 60.0 and b.septa_voxels in pop.SEPTA_VOXELS
        assert 0.6 <= b.appearance["slice_mm"] <= 5.0 and 0.6 <= b.appearance["pixel_mm"] <= 1.0
    assert {b.pattern for b in bodies} == set(pop.PATTERNS) and {b.sex for b in bodies} == {"female", "male"}


def test_the_population_spans_lean_to_obese_healthy_to_myosteatosis_and_asymmetry(bodies):
    fat = [b.subcutaneous_fat_mm for b in bodies]
    assert min(fat) < 8 and max(fat) > 40
    hu = [h for b in bodies for h in b.muscle_hu.values()]
    assert min(hu) < 25 and max(hu) > 50
    # One-sided disuse: the affected thigh's muscles are up to ~30 % smaller than the other's.
    asym = [1 - np.mean([b.volume_factor[m + (10 if b.affected_side == "left" else 0)] /
                         b.volume_factor[m + (0 if b.affected_side == "left" else 10)] for m in range(1, 11)])
            for b in bodies if b.pattern == "one_sided_disuse"]
    assert max(asym) > 0.15 and min(asym) > 0.0
    mi = [pop.muscle_index(b) for b in bodies]
    assert max(mi) / min(mi) > 2.0  # a small atrophic body to a large muscular one


def test_held_out_regions_are_about_a_tenth_each_and_seed_selection_honours_them(bodies):
    share = {r: np.mean([pop.holdout_region(b) == r for b in bodies]) for r in pop.HOLDOUT_REGIONS}
    assert 0.05 < share["most_muscular"] < 0.16 and 0.05 < share["most_atrophic"] < 0.16
    train = pop.seeds_in("train", 0, 20)
    assert all(pop.holdout_region(pop.draw_body(s)) is None for s in train)
    muscular = pop.seeds_in("most_muscular", 0, 3)
    assert all(pop.muscle_index(pop.draw_body(s)) >= pop.MUSCLE_INDEX_DECILES[1] for s in muscular)
    assert not set(train) & set(pop.seeds_in("holdout", 0, 10))


@pytest.fixture(scope="module")
def template():
    return load_template()


def test_vessels_run_down_both_thighs_in_fat_only(template):
    painted = paint_vessels(template.labels, template)
    for code in (ARTERY, VEIN):
        where = painted == code
        assert where.sum() > 200
        assert (template.labels[where] == INTERMUSCULAR_FAT).all()  # never over muscle or bone
        xs = np.nonzero(where)[2] * template.spacing + template.origin[0]
        mid = (template.landmarks["right"]["head"][0] + template.landmarks["left"]["head"][0]) / 2
        assert (xs < mid).any() and (xs > mid).any()  # both legs
        zs = np.unique(np.nonzero(where)[0])
        assert zs.size * template.spacing > 150  # a long run down the thigh
    assert np.array_equal(np.where(painted <= 20, painted, 0), np.where(template.labels <= 20, template.labels, 0))


def test_metal_replaces_only_one_femur_s_bone(template):
    for where in ("hip", "knee"):
        painted = paint_metal(template.labels, template, where, "right")
        metal = painted == METAL
        assert metal.sum() > 500
        assert np.isin(template.labels[metal], (CORTEX, MARROW, SHAFT_MARROW)).all()
        xs = np.nonzero(metal)[2] * template.spacing + template.origin[0]
        assert xs.max() < (template.landmarks["right"]["head"][0] + template.landmarks["left"]["head"][0]) / 2


def test_septa_put_fat_between_touching_muscles_and_thicken_with_their_setting(template):
    lab = template.labels
    muscle = lambda a: ((a >= 1) & (a <= 20)).sum()  # noqa: E731
    one, two = add_septa(lab, 1), add_septa(lab, 2)
    assert muscle(lab) > muscle(one) > muscle(two)
    assert ((one != lab) <= (one == INTERMUSCULAR_FAT)).all()  # only muscle turned to fat
    assert set(np.unique(two[(two >= 1) & (two <= 20)])) == set(range(1, 21))  # no muscle vanishes
    assert add_septa(lab, 0) is lab


def test_a_population_case_carries_its_body_and_differs_from_the_template_body():
    from ThighMuscleSegLib.phantom.synth import make_case

    case = make_case(3, size="small")
    body = case.params["body"]
    assert case.params["population"] == "adult" and body == pop.draw_body(3).to_params()
    assert case.params["scale"] == pytest.approx([*body["girth_scale"], body["length_scale"]], abs=1e-3)
    legacy = make_case(3, size="small", population="template")
    assert "body" not in legacy.params and legacy.params["scale"] != case.params["scale"]
