"""Volumes, mean HU, asymmetry and prior comparison on volumes with known answers."""

import csv
import math

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import make_image
from ThighMuscleSegLib.io import InputError
from ThighMuscleSegLib.measure import (CSV_COLUMNS, compare_with_prior, label_counts, muscle_volumes,
                                       read_volumes_csv, write_volumes_csv)

SPACING = (0.5, 0.8, 2.5)  # one voxel = 1 mm³
ROTATED = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def _case():
    labels = np.zeros((10, 20, 30), np.uint8)
    ct = np.full(labels.shape, -100, np.int16)
    labels[0:4, 0:5, 0:10] = 1          # right sartorius: 200 voxels at 40 HU and 60 HU
    ct[0:2, 0:5, 0:10] = 40
    ct[2:4, 0:5, 0:10] = 60
    labels[5:10, 10:20, 0:3] = 11       # left sartorius: 150 voxels at -20 HU
    ct[5:10, 10:20, 0:3] = -20
    labels[0:10, 0:10, 20:30] = 3       # right vastus lateralis only: 1000 voxels
    ct[0:10, 0:10, 20:30] = 55
    kw = dict(spacing=SPACING, origin=(5.0, -3.0, 100.0), direction=ROTATED)
    return make_image(ct, **kw), make_image(labels, **kw)


def test_volumes_mean_hu_and_asymmetry():
    ct, labels = _case()
    rows = {r.label_value: r for r in muscle_volumes(ct, labels)}
    assert sorted(rows) == list(range(1, 21))
    r, l, vl = rows[1], rows[11], rows[3]
    assert (r.voxels, l.voxels, vl.voxels) == (200, 150, 1000)
    assert r.volume_cm3 == pytest.approx(0.2) and l.volume_cm3 == pytest.approx(0.15)
    assert r.mean_hu == pytest.approx(50.0) and l.mean_hu == pytest.approx(-20.0)
    assert r.asymmetry_percent == pytest.approx(100 * 0.05 / 0.175)
    assert l.asymmetry_percent == r.asymmetry_percent  # the same number on both rows
    assert vl.asymmetry_percent == pytest.approx(200.0)  # one side missing
    assert rows[13].voxels == 0 and math.isnan(rows[13].mean_hu)
    assert math.isnan(rows[2].asymmetry_percent)  # both sides empty
    assert (r.name, r.side, l.side) == ("Right sartorius", "right", "left")


def test_csv_round_trip_and_columns(tmp_path):
    ct, labels = _case()
    rows = muscle_volumes(ct, labels)
    path = write_volumes_csv(rows, tmp_path / "volumes.csv")
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == CSV_COLUMNS and len(table) == 21
    assert table[1][CSV_COLUMNS.index("volume_cm3")] == "0.200"
    assert table[2][CSV_COLUMNS.index("mean_hu")] == ""  # empty muscle: no mean
    back = read_volumes_csv(path)
    assert [b.voxels for b in back] == [r.voxels for r in rows]
    assert [tmp.name for tmp in tmp_path.iterdir()] == ["volumes.csv"]  # no temporary left


def test_compare_with_prior():
    ct, labels = _case()
    prior = muscle_volumes(ct, labels)
    arr = sitk.GetArrayFromImage(labels)
    arr[0:2, 0:5, 0:10] = 0  # right sartorius loses half
    current = muscle_volumes(ct, make_image(arr, spacing=SPACING, origin=(5.0, -3.0, 100.0), direction=ROTATED))
    changes = {c.label_value: c for c in compare_with_prior(current, prior)}
    assert changes[1].change_cm3 == pytest.approx(-0.1)
    assert changes[1].change_percent == pytest.approx(-50.0)
    assert changes[11].change_cm3 == 0
    assert math.isnan(changes[2].change_percent)


def test_bad_inputs_are_refused():
    ct, labels = _case()
    other = make_image(np.zeros((10, 20, 30), np.uint8))
    with pytest.raises(InputError, match="geometry"):
        muscle_volumes(ct, other)
    bad = np.zeros((10, 20, 30), np.uint8)
    bad[0, 0, 0] = 33
    with pytest.raises(InputError, match="33"):
        muscle_volumes(ct, make_image(bad, spacing=SPACING, origin=(5.0, -3.0, 100.0), direction=ROTATED))


def test_label_counts_match_bincount_across_slab_boundaries():
    from ThighMuscleSegLib.measure import volumes as measure

    arr = np.random.default_rng(3).integers(0, 256, (3, measure._SLAB_VOXELS // 1000 + 7, 1000), dtype=np.uint8)
    assert np.array_equal(label_counts(arr), np.bincount(arr.ravel(), minlength=256))
