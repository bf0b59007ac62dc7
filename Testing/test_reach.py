"""Reach: the views read beyond the analysed 360 mm field where the scan goes on (framing)."""

import json

import numpy as np
import SimpleITK as sitk

from ThighMuscleSegLib import framing as F
from ThighMuscleSegLib.framing.frame import ThighFrame


def _tilted_left_frame(reach_mm) -> ThighFrame:
    axis = np.array([0.15, -0.1, 0.98])
    return ThighFrame("left", (40.0, -20.0, 650.0), tuple(axis / np.linalg.norm(axis)), (500.0, 800.0),
                      reach_mm=reach_mm)


def test_the_reading_frame_holds_the_field_voxel_for_voxel():
    field = _tilted_left_frame((60.0, 30.0))
    reading = field.reading()
    assert reading.grid_shape == (180 + 30 + 15, 128, 128) and reading.reach_mm == (0.0, 0.0)
    assert field.analysed_slices() == slice(30, 210)
    rng = np.random.default_rng(1)
    ijk = np.column_stack([rng.integers(0, 128, 40), rng.integers(0, 128, 40), rng.integers(0, 180, 40)])
    shifted = ijk + [0, 0, field.analysed_slices().start]
    assert np.allclose(reading.index_to_ct(shifted), field.index_to_ct(ijk), atol=1e-9)
    # The extra slices lie beyond the field's ends along the femur axis, knee end first.
    t = (reading.index_to_ct([[64, 64, 0], [64, 64, 224]]) - field.centre) @ np.array(field.axis)
    assert np.allclose(t, [-179 - 60, 179 + 30], atol=1e-6)
    assert _tilted_left_frame((0.0, 0.0)).reading() == _tilted_left_frame((0.0, 0.0))


def test_reach_is_kept_in_frames_json_and_absent_means_none():
    frame = _tilted_left_frame((30.0, 60.0))
    assert F.frames_from_json(F.frames_to_json([frame]))[0].reach_mm == (30.0, 60.0)
    old = json.loads(F.frames_to_json([frame]))
    old["frames"][0].pop("reach_mm")
    assert F.frames_from_json(json.dumps(old))[0].reach_mm == (0.0, 0.0)  # frames.json written before reach


def _hip_end_beyond_mm(ct: sitk.Image, frame: ThighFrame) -> float:
    """How far the CT's last slice (its far edge) lies beyond the field's hip end, along the axis."""
    top_z = ct.GetOrigin()[2] + (ct.GetSize()[2] - 0.5) * ct.GetSpacing()[2]
    return (top_z - frame.centre[2]) / frame.axis[2] - frame.grid_shape[0] * frame.spacing_mm / 2


def test_reach_steps_with_what_the_scan_holds_beyond_the_field(small_phantom):
    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    frames = F.frame_thighs(ct)
    for frame in frames:
        assert frame.reach_mm == F.reach_into_scan(ct, frame)
        assert frame.reach_mm[0] == 0.0  # this small phantom's CT ends inside the fields at the knee
    right = frames[0]
    seen = set()
    for top in range(ct.GetSize()[2], 40, -1):  # the scan's top moved down, one slice at a time
        cut = ct[:, :, :top]
        beyond, hip = _hip_end_beyond_mm(cut, right), F.reach_into_scan(cut, right)[1]
        seen.add(hip)
        if any(abs(beyond - edge) < 0.5 for edge in (F.REACH_MIN_SCAN_MM, F.REACH_STEP_MM)):
            continue  # on a step's edge
        want = 0.0 if beyond < F.REACH_MIN_SCAN_MM else \
            min(F.REACH_MAX_MM, F.REACH_STEP_MM * np.ceil(beyond / F.REACH_STEP_MM))
        assert hip == want, (top, beyond)
        if beyond < -50:
            break
    assert set(seen) == {0.0, 30.0, 60.0}  # the scan's top went from beyond the reach to inside the field


def test_boxes_read_no_further_than_the_boxes(small_phantom):
    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    boxes = F.frame_thighs(ct, override={"boxes": {"left": (50, 150, 400, 200, 300, 700)}})
    assert boxes[0].reach_mm == (0.0, 0.0) and boxes[0].reading() == boxes[0]
