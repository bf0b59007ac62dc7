"""The phantom generator: geometry, determinism, labels, Hounsfield values, volumes, DICOM,
--anatomy with a structure missing. Small cases (256 x 256, ~2 mm) keep this quick."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from ThighMuscleSegLib.classes import CLASSES
from ThighMuscleSegLib.io import read_ct, same_geometry
from ThighMuscleSegLib.phantom.anatomy import canonical_key, find_structures, plan_structures
from ThighMuscleSegLib.phantom.hounsfield import REFERENCE_MEASURED, TISSUE_HU
from ThighMuscleSegLib.phantom.reference import plausible_range_cm3
from ThighMuscleSegLib.phantom.synth import make_case
from ThighMuscleSegLib.phantom.template import load_template
from ThighMuscleSegLib.phantom.writer import write_case

SEED = 6  # a case whose field runs from the hips to below the knees


@pytest.fixture(scope="module")
def case():
    return make_case(SEED, size="small")


def _arrays(c):
    return sitk.GetArrayFromImage(c.ct), sitk.GetArrayFromImage(c.labels)


def test_geometry_types_and_lps(case):
    assert case.ct.GetPixelID() == sitk.sitkInt16
    assert case.labels.GetPixelID() == sitk.sitkUInt8
    assert same_geometry(case.ct, case.labels)
    assert case.ct.GetSize()[:2] == (256, 256)
    assert np.allclose(case.ct.GetDirection(), np.eye(3).ravel())
    ct, lab = _arrays(case)
    assert set(np.unique(lab)) <= set(range(21))
    # LPS: +x is the patient's left, so every right label lies at smaller x than its left twin.
    for c in CLASSES:
        r = np.nonzero(lab == c.label_value("right"))[2].mean()
        left = np.nonzero(lab == c.label_value("left"))[2].mean()
        assert r < left, c.key


def test_full_size_scanner_geometry_is_drawn_in_range():
    from ThighMuscleSegLib.phantom.synth import SIZES

    matrix, pixel, slices, most = SIZES["full"]
    assert matrix == 512 and 0.6 <= pixel[0] < pixel[1] <= 0.95 and slices == (1.0, 2.0)
    assert most >= 200


def test_every_class_on_both_sides(case):
    _, lab = _arrays(case)
    present = set(np.unique(lab))
    assert set(range(1, 21)) <= present


def test_hounsfield_ranges(case):
    ct, lab = _arrays(case)
    muscle = ct[(lab >= 1) & (lab <= 20)]
    assert -30 < np.median(muscle) < 80
    assert ct.min() >= -1024 and ct.max() > 700  # cortical bone present
    air = ct[:, :8, :8]
    assert abs(np.median(air) + 1000) < 30
    fat = ct[(ct > -200) & (ct < -40)]
    assert fat.size > 1000 and -130 < np.median(fat) < -70


def test_hounsfield_table_matches_real_ct_measurement():
    for tissue in ("fat", "muscle", "cortical_bone"):
        assert abs(TISSUE_HU[tissue][0] - REFERENCE_MEASURED[tissue]) <= 15, tissue


def test_hounsfield_calibration_against_shared_ct(vhf):
    from ThighMuscleSegLib.phantom.hounsfield import measure_real_ct

    measured = measure_real_ct(vhf / "ct")
    for tissue in ("fat", "muscle", "cortical_bone"):
        assert abs(measured[tissue] - REFERENCE_MEASURED[tissue]) < 3, tissue


def test_case_json_ground_truth(case):
    p = json.loads(json.dumps(case.params))
    assert p["seed"] == SEED and "generator" in p and isinstance(p["legs_touching"], bool)
    z0, z1 = p["thigh_z_range_mm"]
    assert z1 - z0 > 150
    for side in ("right", "left"):
        prox, dist = np.array(p["femur_axis"][side]["proximal"]), np.array(p["femur_axis"][side]["distal"])
        assert prox[2] > dist[2] and 300 < np.linalg.norm(prox - dist) * 1 < 600
    assert p["femur_axis"]["right"]["distal"][0] < p["femur_axis"]["left"]["distal"][0]
    # Both ends of the axis lie in bone of the CT.
    ct = sitk.GetArrayFromImage(case.ct)
    for side in ("right", "left"):
        for end in ("proximal", "distal"):
            i, j, k = case.ct.TransformPhysicalPointToIndex(p["femur_axis"][side][end])
            assert 0 <= k < ct.shape[0] and ct[k, j, i] > 80, (side, end)


def test_deterministic_and_seed_dependent(case):
    again = make_case(SEED, size="small")
    a, b = _arrays(case), _arrays(again)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert case.params == again.params
    other = make_case(SEED + 1, size="small")
    assert other.params["scale"] != case.params["scale"]


def test_template_volumes_are_plausible_adult_volumes():
    t = load_template()
    counts = np.bincount(t.labels.ravel(), minlength=21)
    for c in CLASSES:
        lo, hi = plausible_range_cm3(c.key)
        for side in ("right", "left"):
            vol = counts[c.label_value(side)] * t.spacing ** 3 / 1000.0
            assert lo <= vol <= hi, (c.key, side, vol)


def test_case_volumes_follow_atrophy_factors(case):
    _, lab = _arrays(case)
    voxel_cm3 = np.prod(case.labels.GetSpacing()) / 1000.0
    t = load_template()
    tcount = np.bincount(t.labels.ravel(), minlength=21) * t.spacing ** 3 / 1000.0
    scale = np.prod(case.params["scale"])
    counts = np.bincount(lab.ravel(), minlength=21) * voxel_cm3
    assert case.params["field"] != "partial"
    for v in range(1, 21):
        expected = tcount[v] * case.params["muscle_volume_factor"][str(v)] * scale
        assert 0.75 * expected < counts[v] < 1.3 * expected, v


def test_write_and_dicom_round_trip(case, tmp_path):
    folder = write_case(case, tmp_path / "case_000", fmt="dicom")
    ct = read_ct(folder / "ct.nii.gz")
    lab = sitk.ReadImage(str(folder / "labels.nii.gz"))
    assert same_geometry(ct, case.ct) and same_geometry(lab, case.ct)
    dcm = read_ct(folder / "dicom")
    assert same_geometry(dcm, case.ct, tol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(dcm), sitk.GetArrayFromImage(case.ct))
    assert json.loads((folder / "case.json").read_text(encoding="utf-8"))["seed"] == SEED


def test_name_matching_handles_spelling_variants():
    assert canonical_key("Muscle", "Semitendonosus") == "semitendinosus"
    for name in ("BicepsFemorisLong", "BicepsFemorisLongHead", "BicepsFemorisLongus"):
        assert canonical_key("Muscle", name) == "biceps_femoris_long"
    assert canonical_key("Muscle", "BicepsFemorisShortHead") == "biceps_femoris_short"
    assert canonical_key("Muscle", "QuadratisFemoris") == "quadratus_femoris"
    assert canonical_key("Muscle", "ExtensorHallicusLongus") == "extensor_hallucis_longus"
    assert canonical_key("Muscle", "Illiacus") == "iliacus"


def test_shared_anatomy_mirrors_the_missing_right_biceps_long_head(vhf):
    plan = plan_structures(vhf / "surfaces")
    mirrored = [(s.side, s.key) for s in plan if s.mirrored]
    assert ("right", "biceps_femoris_long") in mirrored


def test_anatomy_folder_lacking_a_structure(vhf, tmp_path):
    """A reduced folder (thigh muscles and femoral cartilage only), right gracilis removed:
    the template mirrors the left gracilis and the case still has every class."""
    src = find_structures(vhf / "surfaces")
    keep = {k for _, k in src if k in (
        "sartorius", "rectus_femoris", "vastus_lateralis", "vastus_intermedius", "vastus_medialis",
        "gracilis", "adductor_longus", "adductor_brevis", "adductor_magnus", "biceps_femoris_long",
        "biceps_femoris_short", "semitendinosus", "semimembranosus", "cartilage_femurhead",
        "cartilage_femurdistal", "bone_tibia", "bone_patella")}
    for (side, key), path in src.items():
        if key in keep and not (side == "right" and key == "gracilis"):
            (tmp_path / side).mkdir(exist_ok=True)
            shutil.copy(path, tmp_path / side / path.name)
    plan = plan_structures(tmp_path)
    assert ("right", "gracilis") in [(s.side, s.key) for s in plan if s.mirrored]
    c = make_case(3, size="small", anatomy=tmp_path)
    lab = sitk.GetArrayFromImage(c.labels)
    assert set(range(1, 21)) <= set(np.unique(lab))
    assert np.nonzero(lab == 6)[2].mean() < np.nonzero(lab == 16)[2].mean()
