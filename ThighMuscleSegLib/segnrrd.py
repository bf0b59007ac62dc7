"""3D Slicer's ``.seg.nrrd`` segmentation file, written directly (numpy + gzip, no Slicer).

Layout (as Slicer's vtkMRMLSegmentationStorageNode writes and reads it): one 3D uint8
label volume in the CT's exact geometry (LPS space directions and origin), every segment in
layer 0 with its own label value, and per segment ``Segment{i}_*`` key/value fields (ID,
name, colour, label value, layer, extent, tags with the terminology entry). Segments absent
from the label map are still written (empty extent) so users can paint them in Slicer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import classes as C
from .gzipio import gzip_stream
from .io import InputError, atomic_path
from .measure import label_counts

_EMPTY_EXTENT = (0, -1, 0, -1, 0, -1)
_GZIP_LEVEL = 1  # label maps are mostly zeros: level 1 is ~5x faster than 6 and barely larger
_CHUNK_BYTES = 16 << 20


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a .seg.nrrd file, as its header describes it."""

    index: int  # position in the file (Segment{index}_...)
    segment_id: str
    name: str
    color: tuple[float, float, float]  # RGB 0-1
    file_label_value: int  # voxel value of the segment in its layer
    layer: int
    extent: tuple[int, ...]  # i0 i1 j0 j1 k0 k1 in file voxels; i0 > i1 when empty
    terminology: str  # Slicer's serialized terminology entry, "" when absent
    label_value: int | None  # the class-table CT label value this segment is, None if not one


def _fmt(x: float) -> str:
    """A float as NRRD wants it: no locale, round-trips exactly."""
    return f"{float(x):.17g}"


def _layer_extent(arr: np.ndarray) -> tuple[int, ...]:
    """Bounding box (i0 i1 j0 j1 k0 k1) of all labelled voxels, from two cheap projections.

    Slicer writes the extent of the shared layer for every segment in it, and reads the
    union of them as the layer's extent; we do the same.
    """
    if not arr.size:
        return _EMPTY_EXTENT
    in_z = np.flatnonzero(arr.reshape(arr.shape[0], -1).max(axis=1))
    if in_z.size == 0:
        return _EMPTY_EXTENT
    plane = arr[in_z[0]:in_z[-1] + 1].max(axis=0)  # (y, x)
    in_y = np.flatnonzero(plane.max(axis=1))
    in_x = np.flatnonzero(plane.max(axis=0))
    return (int(in_x[0]), int(in_x[-1]), int(in_y[0]), int(in_y[-1]), int(in_z[0]), int(in_z[-1]))


def _header(labels: sitk.Image, fields: list[tuple[str, str]]) -> bytes:
    size = labels.GetSize()
    direction = np.array(labels.GetDirection(), float).reshape(3, 3)
    columns = direction * np.array(labels.GetSpacing(), float)  # column i = axis i step in LPS mm
    dirs = " ".join("(" + ",".join(_fmt(v) for v in columns[:, i]) + ")" for i in range(3))
    origin = "(" + ",".join(_fmt(v) for v in labels.GetOrigin()) + ")"
    lines = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        "type: unsigned char",
        "dimension: 3",
        "space: left-posterior-superior",
        f"sizes: {size[0]} {size[1]} {size[2]}",
        f"space directions: {dirs}",
        "kinds: domain domain domain",
        "encoding: gzip",
        f"space origin: {origin}",
    ]
    for key, value in fields:
        if "\n" in value or ":=" in key:
            raise ValueError(f"NRRD field {key!r} cannot hold a newline")
        lines.append(f"{key}:={value}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _color_string(rgb255: tuple[int, int, int]) -> str:
    return " ".join(f"{c / 255.0:.6g}" for c in rgb255)


def write_seg_nrrd(labels: sitk.Image, path: str | os.PathLike, *, present_only: bool = False,
                   counts: np.ndarray | None = None) -> Path:
    """Write a CT-space label map (right 1-10, left 11-20) as a Slicer ``.seg.nrrd``, atomically.

    All 20 class-table segments are written unless ``present_only``; the voxel grid is
    exactly ``labels``' grid (no cropping), so it overlays the CT it came from. ``counts``:
    voxels per label value 1..20 (index = value) when the caller has counted them already.
    """
    if labels.GetDimension() != 3 or labels.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("the label map must be a 3-D scalar image")
    arr = np.ascontiguousarray(sitk.GetArrayViewFromImage(labels))
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise InputError("label values must lie in 0..255")
        arr = arr.astype(np.uint8)
    counts = label_counts(arr) if counts is None else np.asarray(counts)
    unknown = [v for v in np.flatnonzero(counts) if v > 2 * C.NUM_MUSCLES]
    if unknown:
        raise InputError(f"label values {unknown} are not in the class table (0, right 1-10, left 11-20)")
    entries = [s for s in C.segments() if not present_only or counts[s.label_value] > 0]
    layer_extent = " ".join(str(v) for v in _layer_extent(arr))
    empty_extent = " ".join(str(v) for v in _EMPTY_EXTENT)

    fields: list[tuple[str, str]] = []
    for i, seg in enumerate(entries):
        p = f"Segment{i}_"
        fields += [
            (p + "Color", _color_string(seg.color)),
            (p + "ColorAutoGenerated", "0"),
            (p + "Extent", layer_extent if counts[seg.label_value] else empty_extent),
            (p + "ID", seg.column_key),
            (p + "LabelValue", str(seg.label_value)),
            (p + "Layer", "0"),
            (p + "Name", seg.name),
            (p + "NameAutoGenerated", "0"),
            (p + "Tags", f"TerminologyEntry:{seg.slicer_terminology()}|"),
        ]
    fields += [
        ("Segmentation_ContainedRepresentationNames", "Binary labelmap|"),
        ("Segmentation_MasterRepresentation", "Binary labelmap"),
        ("Segmentation_ReferenceImageExtentOffset", "0 0 0"),
    ]
    header = _header(labels, fields)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header)
            gz = gzip_stream(_GZIP_LEVEL)
            flat = arr.reshape(-1)
            for start in range(0, flat.size, _CHUNK_BYTES):
                f.write(gz.compress(flat[start:start + _CHUNK_BYTES]))
            f.write(gz.flush())
    return Path(path)


# ---------------------------------------------------------------- reading


def read_nrrd_fields(path: str | os.PathLike) -> dict[str, str]:
    """The ``key:=value`` fields of a NRRD header (the segment metadata of a .seg.nrrd)."""
    fields: dict[str, str] = {}
    with open(path, "rb") as f:
        if not f.read(4) == b"NRRD":
            raise InputError(f"{Path(path).name} is not a NRRD file")
        f.seek(0)
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                break
            if ":=" in line:
                key, value = line.split(":=", 1)
                fields[key] = value
    return fields


def _terminology(tags: str) -> str:
    for item in tags.split("|"):
        if item.startswith("TerminologyEntry:"):
            return item[len("TerminologyEntry:"):]
    return ""


def _class_label_value(name: str, terminology: str) -> int | None:
    """Match a segment to the class table by name, then by its type + modifier codes."""
    for seg in C.segments():
        if name.strip().lower() == seg.name.lower():
            return seg.label_value
    parts = terminology.split("~")
    if len(parts) >= 4:
        for seg in C.segments():
            want = seg.slicer_terminology().split("~")
            if [p.split("^")[:2] for p in parts[2:4]] == [p.split("^")[:2] for p in want[2:4]]:
                return seg.label_value
    return None


def read_segment_infos(fields: dict[str, str]) -> list[SegmentInfo]:
    infos: list[SegmentInfo] = []
    i = 0
    while f"Segment{i}_ID" in fields:
        get = lambda key, default="": fields.get(f"Segment{i}_{key}", default)  # noqa: E731
        name = get("Name") or get("ID")
        color = tuple(float(v) for v in (get("Color") or "0.5 0.5 0.5").split()[:3])
        extent = tuple(int(v) for v in get("Extent", " ".join(map(str, _EMPTY_EXTENT))).split())
        terminology = _terminology(get("Tags"))
        infos.append(SegmentInfo(i, get("ID"), name, color,  # type: ignore[arg-type]
                                 int(get("LabelValue", "1")), int(get("Layer", str(i))), extent,
                                 terminology, _class_label_value(name, terminology)))
        i += 1
    return infos


def read_seg_nrrd(path: str | os.PathLike, reference: sitk.Image | None = None) -> tuple[sitk.Image, list[SegmentInfo]]:
    """Read a ``.seg.nrrd`` (ours or one saved by Slicer) as a CT-space class label map.

    Voxels of segments that match the class table (by name, else by terminology codes) get
    the class-table label value; other segments are left out (their info says
    ``label_value=None``). Segments in several layers are merged, later ones on top. With
    ``reference`` the result is resampled (nearest neighbour) onto that CT's grid, since
    Slicer may crop a segmentation to its extent.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} does not exist")
    fields = read_nrrd_fields(p)
    infos = read_segment_infos(fields)
    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as e:
        raise InputError(f"cannot read {p.name} as a segmentation: {str(e).strip().splitlines()[-1]}") from None
    layers = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() == 1:
        layers = layers[..., np.newaxis]
    out = np.zeros(layers.shape[:3], np.uint8)
    for layer in sorted({s.layer for s in infos}):
        lut = np.zeros(int(layers.max()) + 1 if layers.size else 1, np.uint8)
        for s in infos:
            if s.layer == layer and s.label_value is not None and 0 < s.file_label_value < lut.size:
                lut[s.file_label_value] = s.label_value
        component = min(layer, layers.shape[3] - 1)
        mapped = lut[layers[..., component].astype(np.intp, copy=False)]
        np.copyto(out, mapped, where=mapped > 0)
    labels = sitk.GetImageFromArray(out)
    labels.SetSpacing(image.GetSpacing())
    labels.SetOrigin(image.GetOrigin())
    labels.SetDirection(image.GetDirection())
    if reference is not None:
        labels = sitk.Resample(labels, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return labels, infos

