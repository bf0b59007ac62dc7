"""The class table survives a real Slicer round trip: label map -> segmentation node ->
closed surfaces -> .seg.nrrd -> read back (slicer-core, no mocks)."""

import numpy as np
import vtk

from conftest import blocky_labels, make_image
from ThighMuscleSegLib import classes as C


def _segments_by_label(node):
    seg = node.GetSegmentation()
    return {seg.GetNthSegment(i).GetLabelValue(): seg.GetNthSegment(i)
            for i in range(seg.GetNumberOfSegments())}


def _check_against_class_table(node):
    found = _segments_by_label(node)
    assert sorted(found) == list(range(1, 21))
    for entry in C.segments():
        segment = found[entry.label_value]
        assert segment.GetName() == entry.name
        assert np.allclose(segment.GetColor(), [v / 255 for v in entry.color], atol=1e-3)
        assert segment.GetTerminology() == entry.slicer_terminology()


def test_label_map_to_segmentation_surfaces_seg_nrrd_and_back(mrml, tmp_path):
    import slicer
    from ThighMuscleSegModuleLib.scene import segmentation_from_labels, volume_node_from_image

    arr = blocky_labels()
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # rotated in-plane, as scanners can be
    labels = make_image(arr, spacing=(0.8, 0.8, 2.0), origin=(-120.0, 35.0, 400.0), direction=direction)
    ct = volume_node_from_image(mrml.scene, labels, "CT")
    node = segmentation_from_labels(mrml.scene, labels, "Thigh muscles", reference_node=ct)
    _check_against_class_table(node)

    assert node.CreateClosedSurfaceRepresentation()
    for label in (1, 20):
        seg = node.GetSegmentation()
        sid = next(seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())
                   if seg.GetNthSegment(i).GetLabelValue() == label)
        surface = vtk.vtkPolyData()
        node.GetClosedSurfaceRepresentation(sid, surface)
        assert surface.GetNumberOfPoints() > 20
        # The surface sits where the voxels are: its centre maps back onto the box (RAS = -L, -P).
        idx = np.argwhere(arr == label).mean(axis=0)[::-1]
        lps = labels.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in idx))
        centre = np.array(surface.GetCenter())
        assert np.allclose(centre, (-lps[0], -lps[1], lps[2]), atol=1.5)

    path = tmp_path / "muscles.seg.nrrd"
    storage = node.CreateDefaultStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node) == 1

    back = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read back")
    reader = slicer.vtkMRMLSegmentationStorageNode()
    mrml.scene.AddNode(reader)
    reader.SetFileName(str(path))
    assert reader.ReadData(back) == 1
    _check_against_class_table(back)
    for entry in C.segments():
        seg = back.GetSegmentation()
        sid = seg.GetSegmentIdBySegmentName(entry.name)
        voxels = slicer.util.arrayFromSegmentBinaryLabelmap(back, sid, ct)
        assert voxels.sum() == (arr == entry.label_value).sum()


def test_absent_muscles_become_empty_segments_ready_to_paint(mrml):
    from ThighMuscleSegModuleLib.scene import segmentation_from_labels

    arr = blocky_labels(with_values=[1, 2, 11])
    node = segmentation_from_labels(mrml.scene, make_image(arr), "partial")
    found = _segments_by_label(node)
    assert sorted(found) == list(range(1, 21))
    seg = node.GetSegmentation()
    order = [seg.GetNthSegment(i).GetLabelValue() for i in range(seg.GetNumberOfSegments())]
    assert order == list(range(1, 21))


def test_volume_node_geometry_round_trips_through_sitk(mrml):
    from ThighMuscleSegModuleLib.scene import image_from_volume_node, volume_node_from_image

    arr = (np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 50)
    direction = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    img = make_image(arr, spacing=(0.7, 0.9, 2.5), origin=(10.0, -20.0, 30.0), direction=direction)
    node = volume_node_from_image(mrml.scene, img, "ct")
    back = image_from_volume_node(node)
    assert np.array_equal(__import__("SimpleITK").GetArrayFromImage(back), arr)
    assert np.allclose(back.GetSpacing(), img.GetSpacing())
    assert np.allclose(back.GetOrigin(), img.GetOrigin())
    assert np.allclose(back.GetDirection(), img.GetDirection())
