"""Our .seg.nrrd writer against real 3D Slicer (slicer-core): Slicer reads what we write,
and we read what Slicer writes, voxel for voxel, in a rotated anisotropic geometry."""

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import blocky_labels, make_image
from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib.io import InputError
from ThighMuscleSegLib.segnrrd import read_nrrd_fields, read_seg_nrrd, write_seg_nrrd

ROTATED = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
OBLIQUE = tuple(np.array([[0.9659258, -0.2588190, 0.0], [0.2588190, 0.9659258, 0.0], [0.0, 0.0, 1.0]]).ravel())


def _labels(values=range(1, 21), direction=ROTATED):
    arr = blocky_labels(with_values=values)
    return arr, make_image(arr, spacing=(0.8, 0.6, 2.5), origin=(-120.0, 35.0, 400.0), direction=direction)


def _read_with_slicer(mrml, path):
    import slicer

    node = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    mrml.scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    return node


@pytest.mark.parametrize("direction", [ROTATED, OBLIQUE])
def test_slicer_reads_our_file_exactly(mrml, tmp_path, direction):
    import slicer
    import vtk
    from ThighMuscleSegModuleLib.scene import ijk_to_ras_matrix, volume_node_from_image

    arr, labels = _labels(values=[1, 2, 7, 11, 15, 20], direction=direction)
    path = write_seg_nrrd(labels, tmp_path / "out.seg.nrrd")
    ct = volume_node_from_image(mrml.scene, labels, "CT")
    node = _read_with_slicer(mrml, path)
    seg = node.GetSegmentation()
    assert seg.GetNumberOfSegments() == 20  # absent muscles are there, empty, ready to paint
    expected_ijk_to_ras = ijk_to_ras_matrix(labels)
    for i, entry in enumerate(C.segments()):
        segment = seg.GetNthSegment(i)
        assert segment.GetName() == entry.name
        assert segment.GetLabelValue() == entry.label_value
        assert np.allclose(segment.GetColor(), [v / 255 for v in entry.color], atol=1e-5)
        assert segment.GetTerminology() == entry.slicer_terminology()
        sid = seg.GetNthSegmentID(i)
        voxels = slicer.util.arrayFromSegmentBinaryLabelmap(node, sid, ct)
        assert voxels.shape == arr.shape
        assert np.array_equal(voxels > 0, arr == entry.label_value), entry.name
        if (arr == entry.label_value).any():  # the stored grid is the CT's grid
            image = slicer.vtkOrientedImageData()
            node.GetBinaryLabelmapRepresentation(sid, image)
            m = vtk.vtkMatrix4x4()
            image.GetImageToWorldMatrix(m)
            for r in range(4):
                for c in range(4):
                    assert m.GetElement(r, c) == pytest.approx(expected_ijk_to_ras.GetElement(r, c), abs=1e-6)


def test_header_is_slicer_shared_labelmap_layout(tmp_path):
    _, labels = _labels(values=[3])
    path = write_seg_nrrd(labels, tmp_path / "x.seg.nrrd", present_only=True)
    fields = read_nrrd_fields(path)
    assert fields["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert fields["Segmentation_ContainedRepresentationNames"] == "Binary labelmap|"
    assert fields["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
    assert fields["Segment0_Layer"] == "0" and fields["Segment0_LabelValue"] == "3"
    assert "Segment1_ID" not in fields
    raw = path.read_bytes()
    head, body = raw.split(b"\n\n", 1)
    assert b"space: left-posterior-superior" in head and b"encoding: gzip" in head
    assert np.array_equal(np.frombuffer(gzip.decompress(body), np.uint8).reshape(24, 40, 48),
                          sitk.GetArrayFromImage(labels))


def test_our_reader_round_trips_and_keeps_geometry(tmp_path):
    arr, labels = _labels(direction=OBLIQUE)
    back, infos = read_seg_nrrd(write_seg_nrrd(labels, tmp_path / "a.seg.nrrd"))
    assert np.array_equal(sitk.GetArrayFromImage(back), arr)
    assert back.GetSize() == labels.GetSize()
    assert np.allclose(back.GetSpacing(), labels.GetSpacing())
    assert np.allclose(back.GetOrigin(), labels.GetOrigin())
    assert np.allclose(back.GetDirection(), labels.GetDirection())
    assert [i.label_value for i in infos] == list(range(1, 21))
    assert infos[0].terminology == C.segments()[0].slicer_terminology()


def test_we_read_a_file_slicer_wrote(mrml, tmp_path):
    from ThighMuscleSegModuleLib.scene import segmentation_from_labels, volume_node_from_image

    arr, labels = _labels(values=[1, 5, 12, 19])
    ct = volume_node_from_image(mrml.scene, labels, "CT")
    node = segmentation_from_labels(mrml.scene, labels, "muscles", reference_node=ct)
    path = tmp_path / "slicer.seg.nrrd"
    storage = node.CreateDefaultStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node) == 1
    back, infos = read_seg_nrrd(path, reference=labels)
    assert np.array_equal(sitk.GetArrayFromImage(back), arr)
    assert {i.name for i in infos} == {s.name for s in C.segments()}


def test_bad_label_values_are_refused_and_nothing_is_left_behind(tmp_path):
    arr = np.zeros((4, 5, 6), np.uint8)
    arr[1, 1, 1] = 42
    with pytest.raises(InputError, match="42"):
        write_seg_nrrd(make_image(arr), tmp_path / "bad.seg.nrrd")
    assert list(tmp_path.iterdir()) == []
