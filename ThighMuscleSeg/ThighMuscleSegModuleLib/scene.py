"""Library images <-> MRML nodes, and segmentations built from the class table."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk

import slicer
from ThighMuscleSegLib import classes as C

# LPS (ITK, DICOM) <-> RAS (Slicer): x and y flip sign.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def ijk_to_ras_matrix(image: sitk.Image) -> vtk.vtkMatrix4x4:
    """The IJK-to-RAS matrix of a SimpleITK image (which lives in LPS)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    m[:3, 3] = _LPS_TO_RAS @ np.array(image.GetOrigin())
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, m[r, c])
    return out


def image_from_volume_node(node) -> sitk.Image:
    """A SimpleITK image (LPS) with the voxels and geometry of a scalar volume node."""
    arr = slicer.util.arrayFromVolume(node)
    image = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    spacing = np.array(node.GetSpacing())
    image.SetSpacing(tuple(spacing))
    image.SetOrigin(tuple(_LPS_TO_RAS @ ijk_to_ras[:3, 3]))
    direction = _LPS_TO_RAS @ ijk_to_ras[:3, :3] @ np.diag(1.0 / spacing)
    image.SetDirection(tuple(direction.ravel()))
    return image


def volume_node_from_image(scene, image: sitk.Image, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    """A new volume node (scalar or label map) holding ``image``'s voxels and geometry."""
    node = scene.AddNewNodeByClass(class_name, name)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    node.SetIJKToRASMatrix(ijk_to_ras_matrix(image))
    node.CreateDefaultDisplayNodes()
    return node


def class_color_node(scene):
    """The class table as a colour table node (names, colours, terminology), made once."""
    existing = scene.GetFirstNodeByName("ThighMuscleSeg")
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", "ThighMuscleSeg")
    node.SetTypeToUser()
    node.SetNumberOfColors(2 * C.NUM_MUSCLES + 1)
    node.SetColor(0, C.BACKGROUND_NAME, 0.0, 0.0, 0.0, 0.0)
    for seg in C.segments():
        r, g, b = (v / 255.0 for v in seg.color)
        node.SetColor(seg.label_value, seg.name, r, g, b, 1.0)
        node.SetTerminologyFromString(seg.label_value, seg.slicer_terminology())
    return node


def apply_class_table(segmentation_node) -> None:
    """Give every segment whose label value is in the class table its name, colour, terminology."""
    segmentation = segmentation_node.GetSegmentation()
    by_value = {s.label_value: s for s in C.segments()}
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        entry = by_value.get(segment.GetLabelValue())
        if entry is None:
            continue
        segment.SetName(entry.name)
        segment.SetColor(*(v / 255.0 for v in entry.color))
        segment.SetTerminology(entry.slicer_terminology())


def segmentation_from_labels(scene, labels: sitk.Image, name: str, reference_node=None):
    """A segmentation node of the CT-space label map (right 1-10, left 11-20).

    Muscles absent from ``labels`` get empty segments, so all 20 are there to edit.
    """
    labelmap = volume_node_from_image(scene, labels, f"{name} labels", "vtkMRMLLabelMapVolumeNode")
    labelmap.GetDisplayNode().SetAndObserveColorNodeID(class_color_node(scene).GetID())
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    if reference_node is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, node)
    scene.RemoveNode(labelmap)
    if not ok:
        scene.RemoveNode(node)
        raise RuntimeError("Slicer could not import the label map into a segmentation")
    present = {node.GetSegmentation().GetNthSegment(i).GetLabelValue()
               for i in range(node.GetSegmentation().GetNumberOfSegments())}
    for seg in C.segments():
        if seg.label_value not in present:
            segment_id = node.GetSegmentation().AddEmptySegment("", seg.name)
            node.GetSegmentation().GetSegment(segment_id).SetLabelValue(seg.label_value)
    apply_class_table(node)
    _sort_segments(node)
    return node


def _sort_segments(node) -> None:
    """Right 1-10 then left 11-20, whatever order the import gave."""
    segmentation = node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    ids.sort(key=lambda sid: segmentation.GetSegment(sid).GetLabelValue())
    for index, sid in enumerate(ids):
        segmentation.SetSegmentIndex(sid, index)

