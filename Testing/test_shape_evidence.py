"""The result's own evidence for the quality flag (inference/shape_evidence.py), on hand-made
volumes whose answers are known: a smooth muscle in fat, then the same muscle eroded, moved
or drawn over fat over part of its length."""

import numpy as np
import pytest

from ThighMuscleSegLib.inference.shape_evidence import shape_stats

K = 3  # background and two muscles
SHAPE = (40, 48, 64)


def _cylinders() -> tuple[np.ndarray, np.ndarray]:
    """Two touching round muscles (ids 1, 2) along z, 50 HU, in -100 HU fat."""
    z, y, x = np.ogrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    labels = np.zeros(SHAPE, np.uint8)
    labels[np.broadcast_to((y - 24) ** 2 + (x - 20) ** 2 <= 64, SHAPE)] = 1
    labels[np.broadcast_to((y - 24) ** 2 + (x - 37) ** 2 <= 64, SHAPE) & (labels == 0)] = 2
    hu = np.where(labels > 0, 50.0, -100.0).astype(np.float32)
    return labels, hu


def test_a_smooth_well_placed_muscle_shows_nothing():
    labels, hu = _cylinders()
    s = shape_stats(labels, hu, K)
    assert np.isnan(s.area_step[0]) and np.isnan(s.unclaimed_rim[0])  # background is not a muscle
    for k in (1, 2):
        assert s.area_step[k] == 0.0 and s.centroid_step[k] == 0.0
        assert s.unclaimed_rim[k] == 0.0 and s.foreign_tissue[k] == 0.0


def test_a_muscle_eroded_over_half_its_length_steps_and_leaves_its_edge_unclaimed():
    labels, hu = _cylinders()
    area = (labels[0] == 1).sum()
    eroded = labels.copy()
    inner = np.zeros(SHAPE[1:], bool)
    yy, xx = np.ogrid[:SHAPE[1], :SHAPE[2]]
    inner[(yy - 24) ** 2 + (xx - 20) ** 2 <= 25] = True
    eroded[20:][np.broadcast_to(~inner, (20,) + SHAPE[1:]) & (labels[20:] == 1)] = 0
    s = shape_stats(eroded, hu, K)
    lost = area - inner.sum()
    assert s.area_step[1] == pytest.approx(lost / np.median((eroded == 1).sum(axis=(1, 2))))
    assert s.unclaimed_rim[1] > 0.3  # the eroded half's rim is the muscle's own tissue
    # the neighbour keeps its shape; only where it touched the lost rim does its edge see it
    assert s.area_step[2] == 0.0 and s.unclaimed_rim[2] < 0.05


def test_a_muscle_moved_over_part_of_its_length_jumps_and_covers_fat():
    labels, hu = _cylinders()
    moved = labels.copy()
    part = moved[25:] == 1
    moved[25:][part] = 0
    moved[25:][np.roll(part, -6, axis=1) & (moved[25:] == 0)] = 1  # 6 voxels up, into the fat
    s = shape_stats(moved, hu, K)
    assert s.centroid_step[1] == pytest.approx(6.0, abs=0.5)
    assert 0.05 < s.foreign_tissue[1] < 0.5  # the moved stretch lies partly over fat
    assert s.centroid_step[2] == 0.0


def test_without_the_image_only_the_shape_is_measured():
    labels, _ = _cylinders()
    s = shape_stats(labels, None, K)
    assert s.area_step[1] == 0.0 and np.isnan(s.unclaimed_rim[1]) and np.isnan(s.foreign_tissue[1])


def test_position_is_the_direction_and_relative_distance_from_the_field_axis():
    labels, _ = _cylinders()
    s = shape_stats(labels, None, K)
    centre = ((SHAPE[1] - 1) / 2, (SHAPE[2] - 1) / 2)
    for k, (cy, cx) in ((1, (24, 20)), (2, (24, 37))):
        assert s.angle[k] == pytest.approx(np.arctan2(cy - centre[0], cx - centre[1]), abs=0.02)
    thigh_radius = np.sqrt((labels[0] > 0).sum() / np.pi)
    assert s.radius[1] == pytest.approx(np.hypot(24 - centre[0], 20 - centre[1]) / thigh_radius, rel=0.02)


def test_layout_is_where_one_muscle_lies_from_another_and_turns_with_nothing():
    side = 64
    z, y, x = np.ogrid[:SHAPE[0], :side, :side]
    labels = np.zeros((SHAPE[0], side, side), np.uint8)
    labels[np.broadcast_to((y - 31.5) ** 2 + (x - 20) ** 2 <= 64, labels.shape)] = 1
    labels[np.broadcast_to((y - 44) ** 2 + (x - 40) ** 2 <= 36, labels.shape) & (labels == 0)] = 2
    s = shape_stats(labels, None, K)
    assert s.pair_angle[1, 2] == pytest.approx(s.angle[2] - s.angle[1], abs=1e-9)
    assert s.pair_radius[1, 2] == pytest.approx(s.radius[2] - s.radius[1], abs=1e-9)
    assert s.pair_angle[2, 1] == -s.pair_angle[1, 2] and s.pair_radius[2, 1] == -s.pair_radius[1, 2]
    assert np.isnan(s.pair_angle[1, 1]) and np.isnan(s.pair_radius[0, 1])
    # the whole thigh turned by 90 degrees about the field's axis: the places move, the layout stays
    turned = shape_stats(np.ascontiguousarray(np.rot90(labels, axes=(1, 2))), None, K)
    assert abs(np.remainder(turned.angle[1] - s.angle[1], 2 * np.pi) - 1.5 * np.pi) < 0.02
    assert turned.pair_angle[1, 2] == pytest.approx(s.pair_angle[1, 2], abs=0.02)
    assert turned.pair_radius[1, 2] == pytest.approx(s.pair_radius[1, 2], abs=0.02)


def test_muscles_side_by_side_over_too_few_slices_have_no_layout():
    labels, _ = _cylinders()
    labels[4:][labels[4:] == 2] = 0  # the second muscle only on 4 slices: under MIN_SHARED_SLICES
    s = shape_stats(labels, None, K)
    assert np.isnan(s.pair_angle[1, 2]) and np.isfinite(s.angle[2])


def test_a_muscle_near_where_the_image_ends_is_told_by_its_share_there():
    labels, hu = _cylinders()
    hu[30:] = -1000.0  # the scan ends at slice 29: framing.to_grid's air beyond it
    labels[30:] = 0
    labels[:25][labels[:25] == 2] = 0  # muscle 2 only on slices 25-29: all within 10 mm of the end
    s = shape_stats(labels, hu, K)
    assert s.edge_share[2] == 1.0
    assert s.edge_share[1] == pytest.approx(10 / 30)  # slices 0-4 (the grid's start) and 25-29 of 30
    assert shape_stats(labels, None, K).edge_share[1] == pytest.approx(5 / 30)  # no image: the grid's ends
