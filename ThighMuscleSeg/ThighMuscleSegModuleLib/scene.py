"""Library images <-> MRML nodes, and segmentations built from the class table.

Written against the MRML API that Slicer 5.8, 5.10, 5.12 and 5.13 share: a segment's
terminology is its ``TerminologyEntry`` tag (``vtkSegment::SetTerminology`` and
``GetTerminology`` only exist from 5.10), and a colour table gets terminology only where
``SetTerminologyFromString`` exists (5.10 and later).

Segments are identified by name, then by terminology (type and modifier codes), never by
their storage label value: Slicer renumbers label values when segments are separated,
merged or collapsed into shared layers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk

import slicer
from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib.segnrrd import _class_label_value as _match_class  # the .seg.nrrd reader's rule

# LPS (ITK, DICOM) <-> RAS (Slicer): x and y flip sign.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
COLOR_TABLE_NAME = "ThighMuscleSeg"
_COLOR_TABLE_ATTRIBUTE = "ThighMuscleSeg.ClassTable"
TERMINOLOGY_TAG = "TerminologyEntry"  # vtkSegment::GetTerminologyEntryTagName(), the same in 5.8-5.13


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


def _ijk_to_ras(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def lps_geometry(node) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(spacing, origin, direction) of a volume node in LPS, as SimpleITK has them."""
    ijk_to_ras = _ijk_to_ras(node)
    spacing = np.array(node.GetSpacing())
    origin = _LPS_TO_RAS @ ijk_to_ras[:3, 3]
    direction = _LPS_TO_RAS @ ijk_to_ras[:3, :3] @ np.diag(1.0 / spacing)
    return tuple(spacing), tuple(origin), tuple(direction.ravel())


def image_from_array(arr: np.ndarray, geometry) -> sitk.Image:
    """A SimpleITK image of ``arr`` (z, y, x) with ``lps_geometry`` (copies the voxels)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    spacing, origin, direction = geometry
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def image_from_volume_node(node) -> sitk.Image:
    """A SimpleITK image (LPS) with the voxels and geometry of a scalar volume node."""
    return image_from_array(slicer.util.arrayFromVolume(node), lps_geometry(node))


def check_volume_node(node, name: str | None = None) -> None:
    """What ``io.check_ct`` checks, from the node's header alone (no voxel is read)."""
    from ThighMuscleSegLib.io import InputError

    name = name or node.GetName()
    image = node.GetImageData() if node is not None else None
    if image is None:
        raise InputError(f"{name} has no voxels")
    if image.GetNumberOfScalarComponents() != 1:
        raise InputError(f"{name} has {image.GetNumberOfScalarComponents()} components per voxel (colour?); "
                         "a CT has one")
    if min(image.GetDimensions()) < 2:
        raise InputError(f"{name} has size {image.GetDimensions()}: too small to be a CT volume")


def ct_z_range_mm(node) -> tuple[float, float]:
    """The superior-inferior extent of a volume's voxel centres (LPS z = RAS S, mm)."""
    dims = node.GetImageData().GetDimensions()
    m = _ijk_to_ras(node)
    corners = np.array([[i, j, k, 1.0] for i in (0, dims[0] - 1) for j in (0, dims[1] - 1) for k in (0, dims[2] - 1)])
    z = (corners @ m.T)[:, 2]
    return float(z.min()), float(z.max())


def check_thigh_range(node, thigh_range) -> tuple[float, float]:
    """The manual thigh range ordered, or ValueError when it cannot be one for this CT."""
    lo, hi = sorted(float(v) for v in thigh_range)
    ct_lo, ct_hi = ct_z_range_mm(node)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo < 10.0:
        raise ValueError(f"the thigh range {lo:.0f} to {hi:.0f} mm is too short: give at least 10 mm")
    if hi < ct_lo or lo > ct_hi:
        raise ValueError(f"the thigh range {lo:.0f} to {hi:.0f} mm lies outside the CT "
                         f"({ct_lo:.0f} to {ct_hi:.0f} mm superior-inferior)")
    return lo, hi


def volume_node_from_image(scene, image: sitk.Image, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    """A new volume node (scalar or label map) holding ``image``'s voxels and geometry."""
    node = scene.AddNewNodeByClass(class_name, name)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    node.SetIJKToRASMatrix(ijk_to_ras_matrix(image))
    node.CreateDefaultDisplayNodes()
    return node


# --- the CT for the subprocess, written off the GUI thread -------------------------------
_NRRD_TYPES = {"int8": "signed char", "uint8": "uchar", "int16": "short", "uint16": "ushort", "int32": "int",
               "uint32": "uint", "int64": "longlong", "uint64": "ulonglong", "float32": "float", "float64": "double"}


def nrrd_writer(node, path: str | Path):
    """A callable that writes the node's voxels and geometry to ``path`` as raw (uncompressed)
    NRRD. Call it on a worker thread: everything it needs from the scene is taken here (the
    voxel array is a view, kept alive with its image data), and writing releases the GIL."""
    check_volume_node(node)
    arr = slicer.util.arrayFromVolume(node)  # a view that keeps its VTK array (the voxels) alive
    spacing, origin, direction = lps_geometry(node)
    if arr.dtype.name not in _NRRD_TYPES:
        raise ValueError(f"{node.GetName()}: voxel type {arr.dtype} cannot be handed to thighseg")
    axes = np.array(direction).reshape(3, 3) * np.array(spacing)  # column i: axis i in LPS, mm per voxel
    vec = lambda v: "(" + ",".join(repr(float(x)) for x in v) + ")"  # noqa: E731
    header = "".join([
        "NRRD0004\n",
        f"type: {_NRRD_TYPES[arr.dtype.name]}\n",
        "dimension: 3\n",
        "space: left-posterior-superior\n",
        f"sizes: {arr.shape[2]} {arr.shape[1]} {arr.shape[0]}\n",
        "space directions: " + " ".join(vec(axes[:, i]) for i in range(3)) + "\n",
        "kinds: domain domain domain\n",
        "endian: little\n",
        "encoding: raw\n",
        f"space origin: {vec(origin)}\n",
        "\n",
    ])
    path = Path(path)

    def write() -> Path:
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False)  # a no-op on little-endian machines
        with open(path, "wb") as f:
            f.write(header.encode("ascii"))
            np.ascontiguousarray(data).tofile(f)
        return path

    return write


# --- terminology ----------------------------------------------------------------------
def segment_terminology(segment) -> str:
    """A segment's serialized terminology entry ("" when it has none), on every Slicer 5.x."""
    value = vtk.reference("")
    return str(value) if segment.GetTag(TERMINOLOGY_TAG, value) else ""


def set_segment_terminology(segment, entry: str) -> None:
    segment.SetTag(TERMINOLOGY_TAG, entry)


def terminology_file() -> Path:
    from ThighMuscleSegLib import resources as R

    return R.RESOURCES / R.TERMINOLOGY_NAME


def load_terminology(terminologies_logic) -> str:
    """Load the project's terminology context into Slicer's Terminologies logic (once), so
    that Segment Editor resolves the segments' entries. Returns the context's name."""
    names = vtk.vtkStringArray()
    terminologies_logic.GetLoadedTerminologyNames(names)
    if C.TERMINOLOGY_CONTEXT in {names.GetValue(i) for i in range(names.GetNumberOfValues())}:
        return C.TERMINOLOGY_CONTEXT
    name = terminologies_logic.LoadTerminologyFromFile(str(terminology_file()))
    if name != C.TERMINOLOGY_CONTEXT:
        raise RuntimeError(f"Slicer could not load the terminology file {terminology_file()}")
    return name


# --- the class table in the scene ------------------------------------------------------
def _class_table_signature() -> str:
    return "|".join(f"{s.label_value}:{s.name}" for s in C.segments())


def class_color_node(scene, with_terminology: bool | None = None):
    """The class table as a colour table node (names, colours and, where Slicer's colour
    tables have it (5.10+), terminology). Filled completely before it enters the scene;
    an existing node is reused only if it is this complete table."""
    for node in _nodes_by_name(scene, COLOR_TABLE_NAME, "vtkMRMLColorTableNode"):
        if node.GetAttribute(_COLOR_TABLE_ATTRIBUTE) == _class_table_signature():
            return node
    node = slicer.vtkMRMLColorTableNode()
    node.SetName(COLOR_TABLE_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(2 * C.NUM_MUSCLES + 1)
    node.SetColor(0, C.BACKGROUND_NAME, 0.0, 0.0, 0.0, 0.0)
    if with_terminology is None:
        with_terminology = hasattr(node, "SetTerminologyFromString")
    for seg in C.segments():
        r, g, b = (v / 255.0 for v in seg.color)
        node.SetColor(seg.label_value, seg.name, r, g, b, 1.0)
        if with_terminology:
            node.SetTerminologyFromString(seg.label_value, seg.slicer_terminology())
    node.SetAttribute(_COLOR_TABLE_ATTRIBUTE, _class_table_signature())
    scene.AddNode(node)
    return node


def _nodes_by_name(scene, name: str, class_name: str) -> list:
    nodes = scene.GetNodesByClassByName(class_name, name)
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]


def class_label_of(segment) -> int | None:
    """The class-table label value a segment stands for: by name, then by terminology
    (type and modifier codes); None for a segment that is no thigh muscle of the table."""
    return _match_class(segment.GetName() or "", segment_terminology(segment))


def class_segments(segmentation_node) -> list[tuple[str, int]]:
    """(segment ID, class label value) of every segment that is a muscle of the class table,
    in the segmentation's order (later segments are drawn over earlier ones)."""
    segmentation = segmentation_node.GetSegmentation()
    out = []
    for i in range(segmentation.GetNumberOfSegments()):
        value = class_label_of(segmentation.GetNthSegment(i))
        if value is not None:
            out.append((segmentation.GetNthSegmentID(i), value))
    return out


def _style_segment(segment, entry) -> None:
    segment.SetName(entry.name)
    segment.SetColor(*(v / 255.0 for v in entry.color))
    set_segment_terminology(segment, entry.slicer_terminology())


def segmentation_from_labels(scene, labels: sitk.Image, name: str, reference_node=None, with_terminology=None):
    """A segmentation node of the CT-space label map (right 1-10, left 11-20).

    Muscles absent from ``labels`` get empty segments, so all 20 are there to edit. If
    anything fails, nothing is left in the scene (no label map, no half-made segmentation).
    """
    by_value = {s.label_value: s for s in C.segments()}
    color_node = class_color_node(scene, with_terminology)
    labelmap = node = None
    try:
        labelmap = volume_node_from_image(scene, labels, f"{name} labels", "vtkMRMLLabelMapVolumeNode")
        labelmap.GetDisplayNode().SetAndObserveColorNodeID(color_node.GetID())
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        if reference_node is not None:
            node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, node):
            raise RuntimeError("Slicer could not import the label map into a segmentation")
        segmentation = node.GetSegmentation()
        # Straight after the import each segment's label value is its voxel value in `labels`
        # (our own file, right 1-10, left 11-20): the one moment a label value identifies it.
        order = {}
        for i in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(i)
            entry = by_value.get(segment.GetLabelValue())
            if entry is not None:
                _style_segment(segment, entry)
                order[segmentation.GetNthSegmentID(i)] = entry.label_value
        for entry in C.segments():
            if entry.label_value not in order.values():
                segment_id = segmentation.AddEmptySegment("", entry.name)
                _style_segment(segmentation.GetSegment(segment_id), entry)
                order[segment_id] = entry.label_value
        for index, segment_id in enumerate(sorted(order, key=order.get)):  # right 1-10, then left 11-20
            segmentation.SetSegmentIndex(segment_id, index)
    except BaseException:
        remove_nodes(scene, [node])
        raise
    finally:
        remove_nodes(scene, [labelmap])
    return node


def remove_nodes(scene, nodes) -> None:
    """Remove nodes with their display and storage nodes (MRML leaves those behind)."""
    for node in nodes:
        if node is None or node.GetScene() is not scene:
            continue
        extra = []
        for i in range(node.GetNumberOfDisplayNodes() if hasattr(node, "GetNumberOfDisplayNodes") else 0):
            extra.append(node.GetNthDisplayNode(i))
        if hasattr(node, "GetStorageNode"):
            extra.append(node.GetStorageNode())
        scene.RemoveNode(node)
        for other in extra:
            if other is not None and other.GetScene() is scene:
                scene.RemoveNode(other)


def labels_array(segmentation_node, reference_node) -> np.ndarray:
    """The class-table muscles of a segmentation as one uint8 label array (z, y, x) on the
    reference volume's grid: each segment at its class value, matched by name or terminology
    (its own label value is ignored). One merge in Slicer's C++, not one export per segment."""
    from vtk.util.numpy_support import vtk_to_numpy

    dims = reference_node.GetImageData().GetDimensions()
    out = np.zeros(dims[::-1], np.uint8)
    matched = class_segments(segmentation_node)
    if not matched:
        return out
    segmentation = segmentation_node.GetSegmentation()
    binary = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    if not segmentation.CreateRepresentation(binary):
        raise RuntimeError(f"{segmentation_node.GetName()}: Slicer could not make its binary labelmap")
    ids, values = vtk.vtkStringArray(), vtk.vtkIntArray()
    for segment_id, value in matched:
        ids.InsertNextValue(segment_id)
        values.InsertNextValue(value)
    merged = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GenerateMergedLabelmapInReferenceGeometry(
        segmentation_node, reference_node, ids, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, merged, values)
    if merged.GetPointData().GetScalars() is None or tuple(merged.GetExtent()) != tuple(
            reference_node.GetImageData().GetExtent()):
        raise RuntimeError(f"{segmentation_node.GetName()}: Slicer could not merge the segments onto the CT grid")
    out[...] = vtk_to_numpy(merged.GetPointData().GetScalars()).reshape(dims[::-1])
    return out
