"""DICOM SEG: written from a real (small) DICOM CT series, read back with highdicom."""

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from synthetic_dicom import write_ct_series
from synthetic_thighs import synthetic_thighs
from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib.io import InputError, read_ct

hd = pytest.importorskip("highdicom")


def _case(tmp_path, drop=()):
    ct, labels, _ = synthetic_thighs((40, 32, 6), (8.0, 8.0, 10.0), origin=(-160.0, -128.0, 700.0))
    files = write_ct_series(ct, tmp_path / "ct")
    ct_read = read_ct(tmp_path / "ct")  # the CT as the pipeline sees it
    arr = sitk.GetArrayFromImage(labels)
    for v in drop:
        arr[arr == v] = 0
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(ct_read)
    return files, out, arr


def test_dicom_seg_round_trip(tmp_path):
    from ThighMuscleSegLib.dicomseg import write_dicom_seg

    files, labels, arr = _case(tmp_path)
    path = write_dicom_seg(labels, files[::-1], tmp_path / "seg.dcm")  # file order must not matter
    seg = hd.seg.segread(str(path))
    assert seg.number_of_segments == 20
    for number, entry in enumerate(C.segments(), start=1):
        desc = seg.get_segment_description(number)
        assert desc.segment_label == entry.name
        assert desc.segmented_property_type.value == entry.muscle.code.value
        assert desc.segmented_property_type.scheme_designator == entry.muscle.code.scheme
        modifier = desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0]
        assert modifier.CodeValue == entry.laterality.value
        assert desc.algorithm_identification[0].AlgorithmName == "ThighMuscleSeg"
    sources = [pydicom.dcmread(f) for f in files]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[s.SOPInstanceUID for s in sources], combine_segments=True)
    assert np.array_equal(pixels, arr)  # pixel content, slice by slice, in source order


def test_absent_muscles_are_left_out_and_renumbered(tmp_path):
    from ThighMuscleSegLib.dicomseg import write_dicom_seg

    files, labels, arr = _case(tmp_path, drop=(3, 14))
    seg = hd.seg.segread(str(write_dicom_seg(labels, files, tmp_path / "seg.dcm")))
    assert seg.number_of_segments == 18
    names = [seg.get_segment_description(n).segment_label for n in range(1, 19)]
    assert names == [s.name for s in C.segments() if s.label_value not in (3, 14)]


def test_wrong_series_is_refused(tmp_path):
    from ThighMuscleSegLib.dicomseg import write_dicom_seg

    files, labels, _ = _case(tmp_path)
    with pytest.raises(InputError, match="slices"):
        write_dicom_seg(labels, files[:-1], tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()
