"""Muscle composition (IMAT / LAMA / NAMA, SD of HU, groups), volume / height², subcutaneous fat
area and measurements.csv, on hand-made volumes with known answers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import make_image
from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib.io import InputError
from ThighMuscleSegLib.measure import hu_ranges
from ThighMuscleSegLib.measure.composition import composition_sums, group_rows_from_sums, muscle_composition
from ThighMuscleSegLib.measure.subcutaneous import subcutaneous_fat_area_cm2

SPACING = (0.5, 0.8, 2.5)  # one voxel = 1 mm³
ROTATED = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
VL_R, VL_L = C.by_key("vastus_lateralis").label_value("right"), C.by_key("vastus_lateralis").label_value("left")


def _mixture():
    """Right vastus lateralis: 1000 voxels, 120 of IMAT (-100 HU), 300 of LAMA (10 HU), 500 of
    NAMA (60 HU), 80 of bone (400 HU, in none of the three); slab boundaries cut through it."""
    shape = (40, 30, 30)
    lab = np.zeros(shape, np.uint8)
    ct = np.full(shape, -1000.0, np.float32)
    values = np.concatenate([np.full(120, -100.0), np.full(300, 10.0), np.full(500, 60.0), np.full(80, 400.0)])
    np.random.default_rng(1).shuffle(values)
    idx = np.unravel_index(100 + 35 * np.arange(1000), shape)  # scattered over all slabs, not in [0:2]^3
    lab[idx] = VL_R
    ct[idx] = values
    lab[0:2, 0:2, 0:2] = VL_L  # left vastus lateralis: 8 voxels at the range edges
    ct[0:2, 0:2, 0:2] = np.array([-190, -30, -29.4, 29, 29.6, 150, -191, 151], np.float32).reshape(2, 2, 2)
    kw = dict(spacing=SPACING, origin=(5.0, -3.0, 100.0), direction=ROTATED)
    return make_image(ct, **kw), make_image(lab, **kw), values


def test_known_fat_mixture_gives_exact_imat_lama_nama_and_sd():
    ct, labels, values = _mixture()
    rows = {r.label_value: r for r in muscle_composition(ct, labels)}
    vl = rows[VL_R]
    assert (vl.voxels, vl.volume_cm3) == (1000, pytest.approx(1.0))
    assert (vl.imat_percent, vl.lama_percent, vl.nama_percent) == (pytest.approx(12.0), pytest.approx(30.0),
                                                                   pytest.approx(50.0))
    assert (vl.imat_cm3, vl.lama_cm3, vl.nama_cm3) == (pytest.approx(0.12), pytest.approx(0.3), pytest.approx(0.5))
    assert vl.mean_hu == pytest.approx(values.mean()) and vl.sd_hu == pytest.approx(values.std())
    # Inclusive edges; a float CT is rounded to whole HU first (-29.4 -> LAMA, 29.6 -> NAMA).
    left = rows[VL_L]
    assert (round(left.imat_percent * 8 / 100), round(left.lama_percent * 8 / 100),
            round(left.nama_percent * 8 / 100)) == (2, 2, 2)
    empty = rows[C.by_key("gracilis").label_value("right")]
    assert empty.voxels == 0 and math.isnan(empty.mean_hu) and math.isnan(empty.sd_hu)
    assert math.isnan(empty.imat_percent) and empty.imat_cm3 == 0.0


def test_ranges_come_from_hu_ranges():
    assert (hu_ranges.IMAT.low, hu_ranges.IMAT.high) == (-190, -30)
    assert (hu_ranges.LAMA.low, hu_ranges.LAMA.high) == (-29, 29)
    assert (hu_ranges.NAMA.low, hu_ranges.NAMA.high) == (30, 150)


def test_within_restricts_the_voxels_counted():
    ct, labels, _ = _mixture()
    within = np.zeros(sitk.GetArrayViewFromImage(labels).shape, bool)
    within[:20] = True
    lab = sitk.GetArrayViewFromImage(labels)
    rows = {r.label_value: r for r in muscle_composition(ct, labels, within=within)}
    assert rows[VL_R].voxels == int((lab[:20] == VL_R).sum())
    with pytest.raises(InputError, match="shape"):
        muscle_composition(ct, labels, within=within[:5])


def test_groups_sum_their_members():
    rng = np.random.default_rng(3)
    lab = rng.integers(0, 21, size=(12, 16, 16)).astype(np.uint8)
    ct = rng.normal(20, 60, size=lab.shape).astype(np.float32)
    img_ct, img_lab = make_image(ct), make_image(lab)
    sums = composition_sums(img_ct, img_lab)
    groups = {(g.side, g.muscle): g for g in group_rows_from_sums(sums)}
    assert len(groups) == 2 * len(C.GROUPS)
    for side in C.SIDES:
        for g in C.GROUPS:
            row = groups[(side, g.key)]
            inside = np.isin(lab, g.label_values(side))
            assert row.label_value is None and row.voxels == int(inside.sum())
            assert row.volume_cm3 == pytest.approx(inside.sum() / 1000.0)
            assert row.mean_hu == pytest.approx(ct[inside].astype(float).mean())
            assert row.sd_hu == pytest.approx(ct[inside].astype(float).std())
            assert row.imat_cm3 == pytest.approx(hu_ranges.IMAT.contains(np.rint(ct[inside])).sum() / 1000.0)
        assert groups[(side, "all_muscles")].voxels == int(((lab > 0) & ((lab > 10) == (side == "left"))).sum())
    assert C.by_key("gracilis").key in C.GROUPS[2].members  # the adductor group holds gracilis


def test_label_values_outside_the_table_are_refused():
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[0, 0, 0] = 21
    with pytest.raises(InputError, match="21"):
        muscle_composition(make_image(np.zeros((4, 4, 4), np.int16)), make_image(lab))


# --- subcutaneous fat ---------------------------------------------------------------------------

def _thighs(tilt_deg: float = 0.0, touching: bool = False):
    """Two thighs, 1 mm voxels: per thigh a muscle disc (r 30 mm) split by a 4 mm cleft of fat
    (intermuscular), a ring of fat (r 30-45 mm: subcutaneous), skin (45-47 mm), air outside.
    Cylinders along z, or tilted by ``tilt_deg`` about the y axis. Returns the images, the two
    axis points and directions, and the subcutaneous fat area of one ring on a plane
    perpendicular to the axis (the exact pixel count for an untilted thigh)."""
    shape = (60, 120, 200) if tilt_deg == 0 else (80, 120, 200)
    z, y, x = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    ct = np.full(shape, -1000.0, np.float32)
    lab = np.zeros(shape, np.uint8)
    axis = np.array([np.sin(np.radians(tilt_deg)), 0.0, np.cos(np.radians(tilt_deg))])
    gap = 80.0 if touching else 100.0  # 80 mm apart: the fat rings overlap, one body part
    centres = {"right": np.array([100.0 - gap / 2, 60.0, shape[0] / 2]),
               "left": np.array([100.0 + gap / 2, 60.0, shape[0] / 2])}
    for side, c in centres.items():
        d = np.stack([x - c[0], y - c[1], z - c[2]], -1)
        along = d @ axis
        radial = np.linalg.norm(d - along[..., None] * axis, axis=-1)
        ct[radial <= 47] = 30.0  # skin
        ct[radial <= 45] = -100.0  # subcutaneous fat
        disc = radial <= 30
        ct[disc] = 50.0
        lab[disc] = C.by_key("vastus_lateralis").label_value(side)
        cleft = disc & (np.abs(y - c[1]) <= 2)  # intermuscular fat: unlabelled, inside the hull
        ct[cleft] = -100.0
        lab[cleft] = 0
    return make_image(ct), make_image(lab), centres, axis


def test_subcutaneous_fat_ring_has_its_area_and_the_cleft_is_not_counted():
    ct, labels, centres, axis = _thighs()
    arr = sitk.GetArrayViewFromImage(ct)[30]
    yy, xx = np.mgrid[0:120, 0:200]
    ring = (np.hypot(xx - centres["right"][0], yy - 60) <= 45) & (np.hypot(xx - centres["right"][0], yy - 60) > 30)
    assert ring.sum() == ((arr == -100) & ring).sum()
    exact = ring.sum() / 100.0  # the ring's pixels, 1 mm² each
    for side in C.SIDES:
        area = subcutaneous_fat_area_cm2(ct, labels, centres[side], axis, side=side)
        assert area == pytest.approx(exact, abs=0.3)  # a few hull-edge pixels
        assert exact == pytest.approx(math.pi * (45 ** 2 - 30 ** 2) / 100, rel=0.02)
    assert subcutaneous_fat_area_cm2(ct, labels, centres["left"], axis) == pytest.approx(
        subcutaneous_fat_area_cm2(ct, labels, centres["left"], axis, side="left"))  # side found from the point


def test_touching_thighs_are_split_between_their_hulls():
    ct, labels, centres, axis = _thighs(touching=True)
    right = subcutaneous_fat_area_cm2(ct, labels, centres["right"], axis, side="right")
    apart = math.pi * (45 ** 2 - 30 ** 2) / 100
    assert right < apart and right == pytest.approx(apart, rel=0.08)  # the overlap is shared, not doubled


def test_tilted_thigh_on_its_perpendicular_plane():
    ct, labels, centres, axis = _thighs(tilt_deg=25.0)
    area = subcutaneous_fat_area_cm2(ct, labels, centres["right"], axis, side="right")
    assert area == pytest.approx(math.pi * (45 ** 2 - 30 ** 2) / 100, rel=0.03)


def test_no_muscle_on_the_plane_gives_nan():
    ct, labels, centres, axis = _thighs()
    assert math.isnan(subcutaneous_fat_area_cm2(ct, labels, centres["right"] + [0, 0, 500], axis, side="right"))


# --- measurements.csv ---------------------------------------------------------------------------

def _frame(side, centre, axis):
    from ThighMuscleSegLib.framing import ThighFrame

    return ThighFrame(side, tuple(float(v) for v in centre), tuple(float(v) for v in axis), (0.0, 60.0))


def test_measurement_rows_height_groups_fat_and_csv_round_trip(tmp_path):
    from ThighMuscleSegLib.measure.table import (MEASUREMENT_COLUMNS, PLANE_FRAME, measurement_rows,
                                                 read_measurements_csv, write_measurements_csv)

    ct, labels, centres, axis = _thighs()
    frames = [_frame(s, centres[s], axis) for s in C.SIDES]
    vl = C.by_key("vastus_lateralis")
    csa = {vl.label_value("right"): {"csa_25_cm2": 20.0, "csa_50_cm2": 25.0, "csa_75_cm2": 22.0,
                                     "csa_max_cm2": 26.0, "csa_max_percent": 55.0}}
    rows = measurement_rows(ct, labels, frames, height_cm=180.0, csa=csa)
    assert [r.kind for r in rows] == ["muscle"] * 20 + ["group"] * (2 * len(C.GROUPS))
    by = {(r.side, r.muscle): r for r in rows}
    right_vl = by[("right", "vastus_lateralis")]
    assert right_vl.volume_per_height2_cm3_m2 == pytest.approx(right_vl.volume_cm3 / 1.8 ** 2)
    assert right_vl.csa_max_percent == 55.0 and math.isnan(by[("left", "vastus_lateralis")].csa_50_cm2)
    quad = by[("right", "quadriceps")]
    assert quad.voxels == right_vl.voxels  # the only quadriceps muscle present
    assert math.isnan(quad.csa_50_cm2)  # rectus femoris has no CSA: no sum
    thigh = by[("right", "all_muscles")]
    assert thigh.subcutaneous_fat_cm2 == pytest.approx(math.pi * (45 ** 2 - 30 ** 2) / 100, rel=0.02)
    assert thigh.subcutaneous_fat_plane == PLANE_FRAME and math.isnan(quad.subcutaneous_fat_cm2)
    path = write_measurements_csv(rows, tmp_path / "measurements.csv")
    with open(path, encoding="utf-8") as f:
        assert f.readline().strip().split(",") == list(MEASUREMENT_COLUMNS)
    back = read_measurements_csv(path)
    assert len(back) == len(rows)
    for a, b in zip(back, rows):
        assert (a.kind, a.label_value, a.muscle, a.side, a.name, a.voxels) == (b.kind, b.label_value, b.muscle,
                                                                             b.side, b.name, b.voxels)
        for col in ("volume_cm3", "sd_hu", "imat_percent", "csa_50_cm2", "subcutaneous_fat_cm2", "height_cm"):
            x, y = getattr(a, col), getattr(b, col)
            assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, abs=5e-4)
    assert [p.name for p in tmp_path.iterdir()] == ["measurements.csv"]  # no temporary left


def test_group_csa_is_the_members_sum_when_all_have_one():
    from ThighMuscleSegLib.measure.table import group_csa

    ham = C.GROUPS[1]
    csa = {v: {"csa_50_cm2": 10.0 + v, "csa_25_cm2": 1.0} for v in ham.label_values("left")}
    out = group_csa(csa, "left", ham)
    assert out["csa_50_cm2"] == pytest.approx(sum(10.0 + v for v in ham.label_values("left")))
    assert out["csa_25_cm2"] == pytest.approx(3.0) and math.isnan(out["csa_75_cm2"])


def test_volume_per_height2_needs_a_height():
    from ThighMuscleSegLib.measure.table import per_height2

    assert per_height2(1000.0, 200.0) == pytest.approx(250.0)
    assert math.isnan(per_height2(1000.0, None)) and math.isnan(per_height2(1000.0, 0.0))


def test_reader_refuses_a_file_that_is_no_measurements_csv(tmp_path):
    from ThighMuscleSegLib.measure.table import read_measurements_csv

    p = tmp_path / "volumes.csv"
    p.write_text("label_value,muscle\n1,sartorius\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a thighseg measurements.csv"):
        read_measurements_csv(p)


# --- height from DICOM (the segment run's measurements.csv: test_segment_cli) ----------------------

def test_dicom_patient_size_gives_the_height(tmp_path):
    import pydicom
    from synthetic_dicom import write_ct_series
    from ThighMuscleSegLib import io as tio

    ct = make_image(np.zeros((4, 16, 16), np.int16), spacing=(1.0, 1.0, 2.0))
    for folder, size in (("tall", "1.82"), ("centimetres", "182"), ("none", None)):
        for path in write_ct_series(ct, tmp_path / folder):
            ds = pydicom.dcmread(path)
            if size is not None:
                ds.PatientSize = size
            ds.save_as(path)
        height = tio.patient_height_cm(tio.read_ct(tmp_path / folder))
        assert height == (pytest.approx(182.0) if folder == "tall" else None), folder  # 182 "m" is no height
    assert tio.patient_height_cm(ct) is None  # not read from DICOM


def test_cohort_table_takes_the_new_columns_from_measurements_csv(tmp_path):
    from ThighMuscleSegLib.cohort.table import measurement_column_names, read_table, write_tables
    from ThighMuscleSegLib.cohort.worker import composition_columns
    from ThighMuscleSegLib.measure.table import measurement_rows, write_measurements_csv

    ct, labels, centres, axis = _thighs()
    rows = measurement_rows(ct, labels, [_frame(s, centres[s], axis) for s in C.SIDES], height_cm=165.0)
    wide = composition_columns(write_measurements_csv(rows, tmp_path / "measurements.csv"))
    assert set(wide) <= set(measurement_column_names())
    by = {(r.side, r.muscle): r for r in rows}
    assert wide["right_vastus_lateralis_imat_percent"] == pytest.approx(by[("right", "vastus_lateralis")].imat_percent,
                                                                         abs=1e-3)
    assert "right_vastus_lateralis_volume_cm3" not in wide  # volumes.csv's column, taken from there
    assert wide["left_all_muscles_subcutaneous_fat_cm2"] == pytest.approx(
        by[("left", "all_muscles")].subcutaneous_fat_cm2, abs=1e-3)
    assert "left_quadriceps_subcutaneous_fat_cm2" not in wide  # measured on the all-muscles row only
    csv_path, _ = write_tables(tmp_path, [{"case_id": "a", "status": "done", "measurements": wide}])
    table = read_table(csv_path)[0]
    assert float(table["left_quadriceps_volume_cm3"]) == pytest.approx(by[("left", "quadriceps")].volume_cm3,
                                                                        abs=1e-3)


def test_group_profile_is_the_sum_of_its_members_at_each_level():
    from ThighMuscleSegLib.measure.profiles import ProfileRow
    from ThighMuscleSegLib.measure.table import group_profile_summary

    ham = C.GROUPS[1]
    levels = np.arange(0.0, 101.0)
    rows = []
    for n, v in enumerate(ham.label_values("right")):  # member n peaks at 40 + 20 n %: the sum peaks between
        muscle, side = C.split_label_value(v)
        rows += [ProfileRow(side, muscle.key, v, float(p), 4.0 * p, float(10 - abs(p - 40 - 20 * n) / 10))
                 for p in levels]
    out = group_profile_summary(rows)[("right", "hamstrings")]
    total = {p: sum(10 - abs(p - 40 - 20 * n) / 10 for n in range(3)) for p in levels}
    assert out["csa_50_cm2"] == pytest.approx(total[50.0]) and out["csa_25_cm2"] == pytest.approx(total[25.0])
    assert out["csa_max_cm2"] == pytest.approx(max(total.values())) and out["csa_max_percent"] == 60.0
    assert math.isnan(group_profile_summary(rows)[("right", "quadriceps")]["csa_50_cm2"])  # no member profile
    unknown_length = [dataclasses.replace(r, level_percent=math.nan) for r in rows]  # the femur length unknown
    out = group_profile_summary(unknown_length)[("right", "hamstrings")]
    assert out["csa_max_cm2"] == pytest.approx(max(total.values())) and math.isnan(out["csa_max_percent"])
    assert math.isnan(out["csa_50_cm2"])


def test_the_fat_area_is_measured_in_physical_space_whatever_the_voxel_order():
    ct, labels, centres, axis = _thighs()
    flipped = []
    for img in (ct, labels):  # the same physical volume stored with x and y reversed (LPS -> RAS-like order)
        arr = sitk.GetArrayFromImage(img)[:, ::-1, ::-1].copy()
        flipped.append(make_image(arr, origin=(199.0, 119.0, 0.0), direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1)))
    for side in C.SIDES:
        assert subcutaneous_fat_area_cm2(*flipped, centres[side], axis, side=side) == pytest.approx(
            subcutaneous_fat_area_cm2(ct, labels, centres[side], axis, side=side))


def test_sums_from_the_slabs_are_the_sums_of_the_volume():
    """``thighseg segment`` takes the composition sums from the slab table (one pass): the same
    counts in every range (a float CT rounded to whole HU for both), the same HU sums."""
    from ThighMuscleSegLib.measure.composition import sums_from_slabs
    from ThighMuscleSegLib.measure.femur import FemurLine
    from ThighMuscleSegLib.measure.slabs import slab_table
    from ThighMuscleSegLib.measure.volumes import voxel_volume_cm3

    ct, lab, _ = _mixture()
    lines = {side: FemurLine(side, (0.0, 0.0, 100.0), (0.1, 0.0, 0.995), -200.0, 200.0, (-180.0, 180.0))
             for side in ("right", "left")}
    whole = composition_sums(ct, lab)
    from_slabs = sums_from_slabs(slab_table(ct, lab, lines), voxel_volume_cm3(lab))
    assert np.array_equal(whole.voxels, from_slabs.voxels) and whole.voxels.dtype == from_slabs.voxels.dtype
    for key, counts in whole.range_voxels.items():
        assert np.array_equal(counts, from_slabs.range_voxels[key]), key
    edges = {key: int(from_slabs.range_voxels[key][VL_L]) for key in ("imat", "lama", "nama")}
    assert edges == {"imat": 2, "lama": 2, "nama": 2}  # -190, -30 | -29.4, 29 | 29.6 (30 once rounded), 150
    np.testing.assert_allclose(from_slabs.hu_sum, whole.hu_sum, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(from_slabs.hu_sq_sum, whole.hu_sq_sum, rtol=1e-12, atol=1e-6)
    assert from_slabs.voxel_cm3 == whole.voxel_cm3
