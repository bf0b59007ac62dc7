"""Framing on phantoms with known anatomy and on the two real CTs."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib import framing as F
from ThighMuscleSegLib.framing import locate as L
from ThighMuscleSegLib.framing.frame import ThighFrame, rotation_z_to


@pytest.fixture(scope="module")
def case(small_phantom):
    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    labels = sitk.ReadImage(str(small_phantom / "labels.nii.gz"))
    params = json.loads((small_phantom / "case.json").read_text(encoding="utf-8"))
    return ct, labels, params, F.frame_thighs(ct)


def test_rotation_takes_z_onto_the_axis_and_is_orthonormal():
    axis = np.array([0.2, -0.1, 0.97])
    r = rotation_z_to(axis)
    assert np.allclose(r @ [0, 0, 1], axis / np.linalg.norm(axis))
    assert np.allclose(r.T @ r, np.eye(3)) and np.isclose(np.linalg.det(r), 1)


def test_frame_forward_and_inverse_are_exact_and_json_round_trips():
    f = ThighFrame("left", (12.0, -30.0, 700.0), tuple(np.array([0.1, 0.2, 0.97]) / np.linalg.norm([0.1, 0.2, 0.97])),
                   (600.0, 850.0), split_midline=[(600.0, 10.0), (850.0, 12.0)])
    g = np.random.default_rng(0).uniform(-150, 150, (50, 3))
    assert np.allclose(f.ct_to_grid_points(f.grid_points_to_ct(g)), g, atol=1e-9)
    assert np.isclose(np.linalg.det(f.linear()), -1.0)  # the left thigh is mirrored
    back = ThighFrame.from_json(f.to_json())
    assert np.allclose(back.linear(), f.linear()) and back.split_midline == f.split_midline


def test_both_thighs_found_right_at_smaller_x_without_swapping(case):
    ct, labels, params, frames = case
    assert [f.side for f in frames] == ["right", "left"]
    right, left = frames
    assert right.centre[0] < left.centre[0]
    arr = sitk.GetArrayFromImage(labels)
    for f in frames:  # the frame sees its own side's muscles; of the other side at most a
        ids_ct = F.to_grid(labels, f, "nearest")  # sliver where touching legs meet the midline
        own = (ids_ct > 0) & ((ids_ct > C.NUM_MUSCLES) == (f.side == "left"))
        other = (ids_ct > 0) & ~own
        assert len(np.unique(ids_ct[own])) == 10
        assert other.sum() < 0.002 * own.sum()
    assert arr.max() == 20


def test_femur_axis_within_3_degrees_of_the_phantom_shaft(case):
    _, _, params, frames = case
    for f in frames:
        truth = params["femur_shaft_axis"][f.side]
        d = np.array(truth["proximal"]) - np.array(truth["distal"])
        assert f.axis_angle_deg(d) < 3.0, f.side


def test_left_thigh_is_mirrored_to_look_like_a_right_one(case):
    """Vastus lateralis lies on the same side of the grid for both thighs (lateral = -x)."""
    ct, labels, _, frames = case
    for f in frames:
        ids = C.ct_labels_to_model_ids(F.to_grid(labels, f, "nearest"), f.side)
        x_vl = np.nonzero(ids == C.by_key("vastus_lateralis").model_id)[2].mean()
        x_add = np.nonzero(ids == C.by_key("adductors").model_id)[2].mean()
        assert x_vl < x_add, f.side


def test_labels_round_trip_as_well_as_plain_2mm_sampling_allows(case):
    from ThighMuscleSegLib.cli.frame import roundtrip

    _, labels, _, frames = case
    rows = roundtrip(labels, frames)
    assert len(rows) == 20
    for name, r in rows.items():
        assert r["dice_in_field"] >= r["dice_2mm_axis_aligned"] - 0.03, name
        assert r["dice_in_field"] > 0.8, name


def test_ct_grid_is_hu_with_the_other_leg_removed(case):
    ct, _, _, frames = case
    grid = F.to_grid(ct, frames[0], "linear")
    assert grid.shape == (180, 128, 128) and grid.dtype == np.float32
    assert -1100 <= grid.min() and 1000 < grid.max() < 3000  # HU, cortical bone included
    soft = grid[(grid > -30) & (grid < 150)]
    assert 20 < np.median(soft) < 80  # muscle
    assert len(frames[0].split_midline) > 10
    removed = grid == F.resample.AIR_HU  # the other leg's side is filled with air
    assert removed[:, :, -10:].mean() > 0.5 and removed[:, :, :10].mean() < removed[:, :, -10:].mean()


def test_a_cut_field_of_view_still_frames_and_says_so(case):
    ct, _, _, frames = case
    z0 = frames[0].z_range_mm[0]
    k = int(round((z0 + 60 - ct.GetOrigin()[2]) / ct.GetSpacing()[2]))
    cut = ct[:, :, k:]  # the knee end is gone
    frames_cut = F.frame_thighs(cut)
    assert {f.side for f in frames_cut} == {"right", "left"}
    assert any("cuts" in n for f in frames_cut for n in f.notes)


def test_a_thigh_cut_by_the_side_of_the_scanned_field_is_noted_for_that_side_only(case):
    ct, _, _, frames = case
    assert not any("scanned field" in n for f in frames for n in f.notes)
    right = frames[0]
    assert right.side == "right"
    x_cut = right.centre[0] - 30.0  # lateral of the shaft: the femur stays whole, the muscle does not
    i = int(round(ct.TransformPhysicalPointToContinuousIndex((x_cut, *right.centre[1:]))[0]))
    cut = F.frame_thighs(ct[i:, :, :])
    notes = {f.side: " ".join(f.notes) for f in cut}
    assert "the side of the right thigh" in notes["right"] and "volumes are too small" in notes["right"]
    assert "scanned field" not in notes["left"]
    assert F.notes_for_user(cut) == [n for f in cut for n in f.notes]  # both thighs found: nothing more


def test_a_ct_of_one_thigh_says_the_other_was_not_found(case):
    ct, _, _, frames = case
    midline_x = frames[0].split_midline[len(frames[0].split_midline) // 2][1]
    i = int(round(ct.TransformPhysicalPointToContinuousIndex((midline_x, *frames[0].centre[1:]))[0]))
    left_only = F.frame_thighs(ct[i:, :, :])
    assert [f.side for f in left_only] == ["left"]
    notes = F.notes_for_user(left_only)
    assert any("no right thigh was found" in n for n in notes)
    # With no slice showing both legs, the side comes from patient x (this phantom's legs lie at x > 0).
    assert left_only[0].centre[0] > 0 and any("taken as the left thigh" in n for n in notes)


def test_manual_range_and_boxes_override_the_search(case):
    ct, _, _, frames = case
    lo, hi = frames[0].z_range_mm
    manual = F.frame_thighs(ct, override={"z_range_mm": (lo + 20, hi - 20)})
    assert all(f.found == "manual" for f in manual) and len(manual) == 2
    boxes = F.frame_thighs(ct, override={"boxes": {"left": (50, 150, 600, 200, 300, 900)}})
    assert [(f.side, f.centre) for f in boxes] == [("left", (125.0, 225.0, 750.0))]
    with pytest.raises(F.NoThighError, match="outside the CT"):
        F.frame_thighs(ct, override={"z_range_mm": (5000, 5100)})


def test_the_real_knee_and_pelvis_cts_hold_no_thigh_and_say_what_they_show(vhf):
    knee = sitk.ReadImage(str(vhf / "ct" / "vhf_knee_ct.nii.gz"))
    with pytest.raises(F.NoThighError, match="knee or lower leg"):
        F.frame_thighs(knee)
    pelvis = sitk.ReadImage(str(vhf / "ct" / "vhf_pelvis_ct.nii.gz"))
    with pytest.raises(F.NoThighError, match="trunk or pelvis"):
        F.frame_thighs(pelvis)


def test_slice_analysis_sees_two_legs_and_one_shaft_each_at_mid_thigh(case):
    ct, _, _, frames = case
    work = L.working_copy(ct)
    assert np.allclose(work.GetSpacing(), (4, 4, 4))
    mid = np.mean(frames[0].z_range_mm)
    finding = min(L.analyse_slices(work), key=lambda f: abs(f.z_mm - mid))
    assert set(finding.shaft) == {"right", "left"}
    assert finding.shaft["right"][0] < finding.midline_x < finding.shaft["left"][0]
    for side in ("right", "left"):
        assert 1.5 < finding.shaft[side][3] < L.MAX_SHAFT_AREA_CM2


def test_from_grid_puts_each_side_back_with_its_own_label_values(case):
    _, labels, _, frames = case
    grids = {f.side: np.full(f.grid_shape, 3, np.uint8) for f in frames}
    back = sitk.GetArrayFromImage(F.from_grid(grids, frames, labels))
    assert set(np.unique(back)) == {0, 3, 13}
    xs = np.nonzero(back == 3)[2].mean(), np.nonzero(back == 13)[2].mean()
    assert xs[0] < xs[1]  # right (3) at smaller x than left (13)


def test_one_thigh_at_a_time_gives_the_labels_of_both_at_once(case, monkeypatch):
    """Dense CTs are put back one thigh at a time to bound memory: the same labels either way."""
    from ThighMuscleSegLib.framing import resample

    _, labels, _, frames = case
    rng = np.random.default_rng(5)
    grids = {f.side: rng.integers(0, 11, f.grid_shape).astype(np.uint8) for f in frames}
    both = sitk.GetArrayFromImage(F.from_grid(grids, frames, labels, "linear"))
    monkeypatch.setattr(resample, "PARALLEL_BLOCKS_MAX_VOXELS", 0)
    one_by_one = sitk.GetArrayFromImage(F.from_grid(grids, frames, labels, "linear"))
    assert len(frames) == 2 and np.count_nonzero(both) > 0.05 * both.size
    assert np.array_equal(both, one_by_one)


def test_linear_back_interpolation_is_the_argmax_of_every_label_interpolated(small_phantom):
    """The fast linear path (the cells' labels by one nearest resample, votes only in cells of
    two or more labels) equals the plain definition: interpolate every label's indicator,
    background included, over the whole grid; argmax."""
    axis = np.array([0.15, -0.1, 0.98])
    frame = ThighFrame("right", (3.0, -2.0, 5.0), tuple(axis / np.linalg.norm(axis)), (-20.0, 30.0),
                       grid_shape=(24, 20, 20))
    zz, yy, xx = np.mgrid[:24, :20, :20]
    grid = np.zeros((24, 20, 20), np.uint8)
    for value, centre, radius in ((1, (8, 8, 7), 5.0), (4, (14, 11, 12), 6.5), (7, (12, 6, 13), 4.0)):
        grid[(zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 < radius ** 2] = value
    ct = sitk.Image([60, 60, 40], sitk.sitkInt16)
    ct.SetSpacing((0.7, 0.7, 1.3))
    ct.SetOrigin((-18.0, -22.0, -20.0))
    fast = sitk.GetArrayFromImage(F.from_grid({"right": grid}, [frame], ct, "linear"))
    plain = _plain_linear_labels(grid, frame, ct)
    assert set(np.unique(fast)) == {0, 1, 4, 7}
    assert np.mean(fast != plain) < 1e-3  # only float ties at exact half-way points may differ


def _plain_linear_labels(grid: np.ndarray, frame: ThighFrame, ct: sitk.Image) -> np.ndarray:
    """The definition of linear votes: every label's indicator (background included) over the
    whole grid interpolated linearly by SimpleITK; the argmax (ties to the lower id)."""
    from ThighMuscleSegLib.framing.resample import grid_reference, grid_to_ct_transform

    inverse = grid_to_ct_transform(frame).GetInverse()
    shares = []
    for value in range(int(grid.max()) + 1):
        indicator = sitk.GetImageFromArray((grid == value).astype(np.float32))
        indicator.CopyInformation(grid_reference(frame))
        shares.append(sitk.GetArrayFromImage(sitk.Resample(indicator, ct, inverse, sitk.sitkLinear, 0.0,
                                                           sitk.sitkFloat32)))
    return np.argmax(np.stack(shares), axis=0)


def test_linear_votes_match_the_definition_at_the_grid_edges_and_the_map_comes_back_with_them():
    """Blocks of every label reach the grid's faces (where linear interpolation clamps to the
    edge voxel, and beyond the grid gives nothing), the CT reaches past the grid on all sides:
    the one-pass result equals the definition but for float ties, and the disagreement map
    put back in the same pass equals putting it back alone."""
    axis = np.array([-0.2, 0.12, 0.97])
    frame = ThighFrame("right", (1.0, 4.0, -3.0), tuple(axis / np.linalg.norm(axis)), (-25.0, 25.0),
                       grid_shape=(20, 16, 16))
    rng = np.random.default_rng(3)
    grid = np.kron(rng.integers(0, 11, (5, 4, 4)), np.ones((4, 4, 4))).astype(np.uint8)
    extra = rng.integers(0, 4, grid.shape).astype(np.uint8)
    ct = sitk.Image([64, 64, 60], sitk.sitkInt16)
    ct.SetSpacing((0.75, 0.75, 0.9))
    ct.SetOrigin((-23.0, -20.0, -28.0))
    labels, back_extra = F.labels_and_map_to_ct({"right": grid}, {"right": extra}, [frame], ct, "linear")
    fast = sitk.GetArrayFromImage(labels)
    plain = _plain_linear_labels(grid, frame, ct)
    assert np.count_nonzero(plain) > 0.2 * plain.size and np.count_nonzero(plain == 0) > 0.2 * plain.size
    assert np.mean(fast != plain) < 1e-4
    alone = F.map_to_ct({"right": extra}, [frame], ct)
    assert np.array_equal(sitk.GetArrayFromImage(back_extra), sitk.GetArrayFromImage(alone))
    assert np.array_equal(fast, sitk.GetArrayFromImage(F.from_grid({"right": grid}, [frame], ct, "linear")))


def test_only_the_part_of_the_block_that_can_be_labelled_is_resampled_and_nothing_is_lost():
    """A small island of muscle, a disagreement elsewhere, both near a face of the grid: the
    block is cut to what they can reach, and the result is that of the whole field's block."""
    from ThighMuscleSegLib.framing import resample as R

    axis = np.array([0.15, -0.1, 0.98])
    frame = ThighFrame("right", (2.0, -3.0, 1.0), tuple(axis / np.linalg.norm(axis)), (-25.0, 25.0),
                       grid_shape=(20, 16, 16))
    grid = np.zeros(frame.grid_shape, np.uint8)
    grid[0:3, 5:9, 6:10] = 4  # touches the face at z = 0
    grid[2, 7, 8] = 7
    extra = np.zeros(frame.grid_shape, np.uint8)
    extra[12:14, 14:16, 1:3] = 2  # a disagreement outside the muscle, at the y face
    ct = sitk.Image([64, 64, 60], sitk.sitkInt16)
    ct.SetSpacing((0.75, 0.75, 0.9))
    ct.SetOrigin((-23.0, -20.0, -28.0))
    cut = R._content_box(frame, ct, [grid, extra])
    whole = R._field_box(frame, ct)
    assert np.prod(cut[1]) < 0.6 * np.prod(whole[1])
    assert all(a >= b for a, b in zip(cut[0], whole[0]))
    labels, back = F.labels_and_map_to_ct({"right": grid}, {"right": extra}, [frame], ct, "linear")
    original = R._content_box
    try:
        R._content_box = lambda f, reference, grids: R._field_box(f, reference)
        labels_whole, back_whole = F.labels_and_map_to_ct({"right": grid}, {"right": extra}, [frame], ct, "linear")
    finally:
        R._content_box = original
    for got, expected in ((labels, labels_whole), (back, back_whole)):
        got, expected = sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(expected)
        assert np.count_nonzero(expected) > 0 and np.array_equal(got, expected)
    assert R._content_box(frame, ct, [np.zeros_like(grid)]) is None


def _legs_image(left_x: float, right_x: float | None, lone_from_k: int = 0) -> sitk.Image:
    """4 mm LPS slices of round legs (100 mm across, a 24 mm femur each); the right leg is absent
    from slice ``lone_from_k`` up (or everywhere when ``right_x`` is None)."""
    n, spacing = 40, 4.0
    origin = (-200.0, -100.0, 0.0)
    y, x = np.mgrid[0:50, 0:100] * spacing
    x, y = x + origin[0], y + origin[1]
    arr = np.full((n, 50, 100), -1000.0, np.float32)
    for k in range(n):
        for cx in (left_x, right_x):
            if cx is None or (cx == right_x and k >= lone_from_k):
                continue
            r2 = (x - cx) ** 2 + y ** 2
            arr[k][r2 < 50.0 ** 2] = 40.0
            arr[k][r2 < 12.0 ** 2] = 1000.0
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((spacing,) * 3)
    img.SetOrigin(origin)
    return img


def test_a_lone_leg_is_not_split_and_takes_its_side_from_the_slices_with_both():
    findings = L.analyse_slices(_legs_image(left_x=-30.0, right_x=-140.0, lone_from_k=20))
    both, lone = findings[:20], findings[20:]
    assert all(set(f.shaft) == {"right", "left"} for f in both)
    # The left leg alone lies at x < 0, yet the slices with both legs say it is the left one.
    assert all(set(f.shaft) == {"left"} and f.midline_x is None and not f.side_by_position for f in lone)
    assert all(abs(f.leg_centre["left"][0] - (-30.0)) < 4.0 for f in lone)  # the whole leg, not half


def test_a_scan_of_one_leg_takes_its_side_from_patient_x():
    for x, side in ((-80.0, "right"), (80.0, "left")):
        findings = L.analyse_slices(_legs_image(left_x=x, right_x=None))
        assert all(set(f.shaft) == {side} and f.side_by_position for f in findings)

