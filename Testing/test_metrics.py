"""Metrics on hand-made volumes whose answers are known exactly."""

import math

import numpy as np
import pytest

from ThighMuscleSegLib import metrics as M


def test_dice_of_identical_masks_is_one_and_of_disjoint_is_zero():
    a = np.zeros((8, 8, 8), bool)
    a[2:6, 2:6, 2:6] = True
    b = np.zeros_like(a)
    b[0:2, 0:2, 0:2] = True
    assert M.dice(a, a) == 1.0
    assert M.dice(a, b) == 0.0
    assert M.dice(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_dice_of_half_overlap():
    a = np.zeros((4, 4, 8), bool)
    b = np.zeros_like(a)
    a[..., 0:4] = True
    b[..., 2:6] = True
    assert M.dice(a, b) == pytest.approx(0.5)


@pytest.mark.parametrize("sx", [0.7, 1.0, 2.5])
def test_asd_of_a_one_voxel_shift_equals_the_spacing(sx):
    # A slab spanning the whole y-z extent: its only surfaces are the two x faces.
    a = np.zeros((6, 7, 20), bool)
    a[:, :, 5:12] = True
    b = np.roll(a, 1, axis=2)
    asd, hd95 = M.asd_and_hd95(a, b, spacing_zyx=(2.0, 1.3, sx))
    assert asd == pytest.approx(sx)
    assert hd95 == pytest.approx(sx)


def test_asd_of_identical_masks_is_zero_and_of_empty_is_nan():
    a = np.zeros((10, 10, 10), bool)
    a[3:7, 2:8, 4:9] = True
    assert M.asd_and_hd95(a, a, (1, 1, 1)) == (0.0, 0.0)
    asd, hd = M.asd_and_hd95(a, np.zeros_like(a), (1, 1, 1))
    assert math.isnan(asd) and math.isnan(hd)


def test_score_labels_reports_each_label_with_physical_distances():
    gt = np.zeros((12, 20, 30), np.uint8)
    gt[:, :, 2:10] = 1   # label 1 spans y-z: a clean one-voxel shift below
    gt[4:8, 5:15, 15:25] = 11
    pred = gt.copy()
    pred[:, :, 2:10] = 0
    pred[:, :, 3:11] = 1
    rows = {r.label_value: r for r in M.score_labels(pred, gt, spacing_xyz=(0.8, 0.8, 2.0))}
    assert rows[1].asd_mm == pytest.approx(0.8)
    assert rows[1].dice == pytest.approx(2 * 7 / 16)
    assert rows[11].dice == 1.0 and rows[11].asd_mm == 0.0
    assert rows[2].gt_voxels == 0 and rows[2].dice == 1.0
    summary = M.summarize(list(rows.values()))
    assert summary["labels"] == 2
    assert summary["dice_mean"] == pytest.approx((2 * 7 / 16 + 1) / 2)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        M.score_labels(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), (1, 1, 1))
