"""The femur line (measure.femur) and the slab table (measure.slabs): hand-made volumes with
known answers, phantoms with their recorded femur, and the real Visible Human Female CT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import make_image
from ThighMuscleSegLib.framing.frame import ThighFrame
from ThighMuscleSegLib.measure import muscle_volumes
from ThighMuscleSegLib.measure.femur import FemurLine, covered_range
from ThighMuscleSegLib.measure.hu_ranges import IMAT, LAMA, NAMA
from ThighMuscleSegLib.measure.slabs import read_slabs_csv, slab_table, write_slabs_csv


def _line(side="right", origin=(0.0, 0.0, 0.0), axis=(0.0, 0.0, 1.0), knee=-200.0, hip=200.0, covered=(-180.0, 180.0)):
    return FemurLine(side, origin, axis, knee, hip, covered)


def test_femur_line_levels_and_round_trip():
    axis = np.array([0.1, -0.2, 1.0])
    axis /= np.linalg.norm(axis)
    line = _line(origin=(10.0, 20.0, 30.0), axis=tuple(axis), knee=-190.0, hip=210.0)
    assert line.length_mm == pytest.approx(400.0)
    p = line.point_at_percent(25.0)
    assert line.t_mm(p[None])[0] == pytest.approx(-90.0)
    assert line.percent(line.t_mm(p[None]))[0] == pytest.approx(25.0)
    assert FemurLine.from_dict(line.to_dict()) == line
    cut = _line(knee=None)
    assert cut.length_mm is None and FemurLine.from_dict(cut.to_dict()) == cut
    with pytest.raises(ValueError, match="unknown"):
        cut.percent([0.0])


def test_covered_range_is_the_ct_and_the_field_together():
    # A CT of 2 mm slices from z = -100 to +98 mm; an upright frame at z = 0: its field
    # spans +-180 mm, so the CT's slices limit it (half a slice beyond the first and last centres).
    ct = make_image(np.zeros((100, 8, 8), np.int16), spacing=(40.0, 40.0, 2.0), origin=(-140.0, -140.0, -100.0))
    frame = ThighFrame("right", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (-100.0, 98.0))
    assert covered_range(ct, frame) == pytest.approx((-101.0, 99.0))
    # Tilted 10 degrees: the thigh's cross-section reaches further up and down the slices.
    a = math.radians(10.0)
    tilted = ThighFrame("right", (0.0, 0.0, 0.0), (math.sin(a), 0.0, math.cos(a)), (-100.0, 98.0))
    lo, hi = covered_range(ct, tilted)
    assert lo > -101.0 / math.cos(a) and hi < 99.0 / math.cos(a)
    assert hi - lo > 150.0


def _labelled_blocks(rng) -> tuple[sitk.Image, sitk.Image]:
    lab = np.zeros((40, 30, 50), np.uint8)
    lab[3:30, 5:12, 4:20] = 3  # right
    lab[10:38, 15:25, 25:45] = 14  # left
    lab[0:5, 0:3, 0:3] = 20
    hu = rng.normal(20.0, 60.0, lab.shape).astype(np.int16)
    spacing, direction = (0.8, 0.9, 3.0), (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    return (make_image(hu, spacing, (5.0, -3.0, 100.0), direction),
            make_image(lab, spacing, (5.0, -3.0, 100.0), direction))


def test_slab_volumes_sum_to_the_muscle_volume_exactly(tmp_path):
    ct, labels = _labelled_blocks(np.random.default_rng(1))
    axis = np.array([0.2, 0.1, 1.0]) / np.linalg.norm([0.2, 0.1, 1.0])
    lines = {"right": _line("right", (0.0, 0.0, 150.0), tuple(axis)),
             "left": _line("left", (30.0, 0.0, 140.0), (0.0, 0.0, 1.0))}
    table = slab_table(ct, labels, lines)
    volumes = {v.label_value: v for v in muscle_volumes(ct, labels)}
    hu = sitk.GetArrayFromImage(ct).astype(float)
    lab = sitk.GetArrayFromImage(labels)
    for value in (3, 14, 20):
        rows = table.select(value)
        assert rows.voxels.sum() == volumes[value].voxels
        assert rows.volume_cm3.sum() == pytest.approx(volumes[value].volume_cm3, rel=1e-12)
        inside = hu[lab == value]
        assert rows.hu_sum.sum() == pytest.approx(inside.sum())
        assert rows.hu_sq_sum.sum() == pytest.approx((inside ** 2).sum())
        for r, counted in ((IMAT, rows.imat_voxels), (LAMA, rows.lama_voxels), (NAMA, rows.nama_voxels)):
            assert counted.sum() == int(r.contains(inside).sum())
        assert np.allclose(rows.t_mm / table.slab_mm, np.round(rows.t_mm / table.slab_mm))
    back = read_slabs_csv(write_slabs_csv(table, tmp_path / "slabs.csv"))
    assert back.label_values() == [3, 14, 20]
    assert np.array_equal(back.voxels, table.voxels) and np.allclose(back.t_mm, table.t_mm)
    assert np.allclose(back.volume_cm3, table.volume_cm3) and np.allclose(back.hu_sum, table.hu_sum, atol=0.1)


def test_a_voxel_falls_in_the_slab_of_its_centre():
    # 1 mm voxels at z = -5..4, an upright line: slab n (2 mm) holds t in [2n - 1, 2n + 1).
    lab = np.zeros((10, 2, 2), np.uint8)
    lab[:, 0, 0] = 1
    labels = make_image(lab, origin=(0.0, 0.0, -5.0))
    ct = make_image(np.zeros_like(lab, np.int16), origin=(0.0, 0.0, -5.0))
    table = slab_table(ct, labels, {"right": _line()})
    assert dict(zip(table.t_mm.tolist(), table.voxels.tolist())) == {-4.0: 2, -2.0: 2, 0.0: 2, 2.0: 2, 4.0: 2}
