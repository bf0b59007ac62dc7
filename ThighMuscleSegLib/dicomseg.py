"""DICOM SEG of a CT-space label map, referencing the CT series it was made from (highdicom).

One segment per class-table label (segment number = CT label value, 1-20): category
"Anatomical Structure", type the muscle's code (SNOMED CT, or the private 99THIGHSEG code
where none is confirmed), and the side as a Segmented Property Type Modifier (SCT Right /
Left) inside the type's code item, as DICOM defines it. highdicom has no argument for the
modifier, so it is added to the dataset after construction.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import __version__
from . import classes as C
from .io import InputError, atomic_path
from .measure import label_counts

ALGORITHM_NAME = "ThighMuscleSeg"


def _coded(code: C.Code):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning)


def _lab_color(rgb: tuple[int, int, int]):
    from highdicom.color import CIELabColor
    from skimage.color import rgb2lab

    lab = rgb2lab(np.array([[rgb]], np.float64) / 255.0)[0, 0]
    return CIELabColor(float(lab[0]), float(lab[1]), float(lab[2]))


def segment_descriptions(present: set[int] | None = None) -> list:
    """highdicom SegmentDescriptions of the class table (all 20, or the label values in ``present``)."""
    from highdicom.content import AlgorithmIdentificationSequence
    from highdicom import UID as hd_uid
    from highdicom.seg import SegmentAlgorithmTypeValues, SegmentDescription
    from pydicom.sr.codedict import codes

    algorithm = AlgorithmIdentificationSequence(name=ALGORITHM_NAME, version=__version__,
                                                family=codes.cid7162.ArtificialIntelligence)
    out = []
    for seg in C.segments():
        if present is not None and seg.label_value not in present:
            continue
        desc = SegmentDescription(
            segment_number=seg.label_value, segment_label=seg.name,
            segmented_property_category=_coded(C.CATEGORY), segmented_property_type=_coded(seg.muscle.code),
            algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
            tracking_id=seg.column_key, tracking_uid=hd_uid(), display_color=_lab_color(seg.color))
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [_coded(seg.laterality)]
        out.append(desc)
    return out


def _sorted_sources(labels: sitk.Image, files: list[str]):
    """The source datasets in label-map slice order, matched by their position in space."""
    import pydicom

    if not files:
        raise InputError("no source DICOM files given: a DICOM SEG must reference the CT series")
    by_index: dict[int, object] = {}
    for f in files:
        try:
            ds = pydicom.dcmread(f)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input problem
            raise InputError(f"cannot read source DICOM file {f}: {e}") from None
        if "ImagePositionPatient" not in ds:
            raise InputError(f"{f} has no ImagePositionPatient: not a CT slice")
        point = tuple(float(v) for v in ds.ImagePositionPatient)
        k = labels.TransformPhysicalPointToContinuousIndex(point)
        idx = int(round(k[2]))
        if abs(k[0]) > 0.01 or abs(k[1]) > 0.01 or abs(k[2] - idx) > 0.01 or not 0 <= idx < labels.GetSize()[2]:
            raise InputError(f"{Path(f).name} does not lie on a slice of the label map: "
                             "give the files of the CT series that was segmented")
        by_index[idx] = ds
    if len(by_index) != labels.GetSize()[2]:
        raise InputError(f"{len(by_index)} distinct source slices for a label map of {labels.GetSize()[2]} slices: "
                         "give all files of the segmented CT series")
    return [by_index[i] for i in range(labels.GetSize()[2])]


def write_dicom_seg(labels: sitk.Image, source_dicom_files: list[str], path: str | os.PathLike,
                    *, series_number: int = 300) -> Path:
    """Write a binary DICOM SEG of ``labels`` (CT-space, on the CT's grid) atomically."""
    import highdicom as hd

    arr = sitk.GetArrayViewFromImage(labels)
    if arr.dtype != np.uint8:
        raise InputError(f"the label map must be uint8 (it is {arr.dtype})")
    sources = _sorted_sources(labels, list(source_dicom_files))
    counts = label_counts(arr)
    if counts[2 * C.NUM_MUSCLES + 1:].any():
        raise InputError("label values above 20 are not in the class table")
    present = {int(v) for v in np.flatnonzero(counts) if v > 0}
    if not present:
        raise InputError("the label map is empty: a DICOM SEG needs at least one segmented muscle")
    # Segment numbers must run 1..n in DICOM SEG: renumber present labels, keep names/codes.
    order = sorted(present)
    lut = np.zeros(256, np.uint8)
    lut[order] = np.arange(1, len(order) + 1)
    descs = segment_descriptions(present)
    for number, desc in enumerate(descs, start=1):
        desc.SegmentNumber = number
    try:
        seg = _segmentation(hd, sources, lut[np.asarray(arr)], descs, series_number)
    except ValueError as e:  # highdicom names what the source series lacks
        raise InputError(f"cannot write a DICOM SEG for this series: {e}") from None
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return Path(path)


def _segmentation(hd, sources, pixels, descs, series_number):
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="ThighMuscleSeg",
        manufacturer_model_name="ThighMuscleSeg 2.5D U-Net", software_versions=__version__,
        device_serial_number="0", content_label="THIGHMUSCLES", content_description="Thigh muscles, both sides",
        series_description="Thigh muscle segmentation")
