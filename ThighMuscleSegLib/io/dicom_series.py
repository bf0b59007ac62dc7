"""A folder of DICOM files, the way archives hold it: several series (the CT, a scout, a dose
report, a SEG, a screenshot), found by reading every file's header (no pixels), and the CT
series that can hold thighs picked, saying which and why the others were left out.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")  # Enhanced, Legacy Converted
CT_CLASSES = (CT_IMAGE, *ENHANCED_CT)
NOT_IMAGES = {  # SOP class prefixes of objects that hold no CT slices, and what to call them
    "1.2.840.10008.5.1.4.1.1.66.4": "a segmentation (SEG)",
    "1.2.840.10008.5.1.4.1.1.88.": "a structured report (a dose report?), no images",
    "1.2.840.10008.5.1.4.1.1.7": "a secondary capture (a screenshot or scanned page)",
    "1.2.840.10008.5.1.4.1.1.481.": "a radiotherapy object",
    "1.2.840.10008.5.1.4.1.1.104.": "an encapsulated document",
    "1.2.840.10008.5.1.4.1.1.11.": "a presentation state",
    "1.2.840.10008.5.1.4.1.1.66": "a registration or other spatial object",
}
DICOMDIR = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class Slice:
    """One image of a series: a file, or one frame of a multi-frame file."""
    file: str
    frame: int | None
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    sop_uid: str = ""


@dataclass(frozen=True)
class SeriesInfo:
    uid: str
    files: tuple[str, ...]
    description: str
    modality: str
    sop_class: str = ""
    image_type: tuple[str, ...] = ()
    rows: int = 0
    columns: int = 0
    pixel_spacing: tuple[float, float] = (0.0, 0.0)  # row spacing, column spacing (DICOM order)
    transfer_syntax: str = ""
    slices: tuple[Slice, ...] = field(default=(), compare=False, repr=False)
    damaged: tuple[str, ...] = field(default=(), compare=False, repr=False)  # what is wrong with some files

    @property
    def label(self) -> str:
        return f"{self.short_label[:-1]}, UID {self.uid})"

    @property
    def short_label(self) -> str:
        desc = self.description or "no description"
        n = len(self.files)
        count = (f"{len(self.slices)} frames in 1 file" if self.multiframe
                 else f"{n} slices" if n > 1 else "1 image")
        return f"{self.modality or '?'} series '{desc}' ({count})"

    @property
    def multiframe(self) -> bool:
        return self.sop_class in ENHANCED_CT or (len(self.files) == 1 and len(self.slices) > 1)

    def why_not_ct(self) -> str:
        """'' when this series is a CT volume; else what it is instead."""
        for prefix, what in NOT_IMAGES.items():
            if self.sop_class.startswith(prefix if prefix.endswith(".") else prefix + ".") or self.sop_class == prefix:
                return what
        if self.modality.upper() == "SR" or not self.rows:
            return "no images (a report or other non-image object)"
        if self.modality and self.modality.upper() != "CT":
            return f"modality {self.modality}, not CT"
        if self.sop_class and self.sop_class not in CT_CLASSES:
            return f"not a CT image object (SOP class {self.sop_class})"
        if any(t.upper() == "LOCALIZER" for t in self.image_type):
            return "a localizer (scout), not a volume"
        if len(self.slices) < 2:
            return "one image, not a volume"
        return ""

    def extent_mm(self) -> float:
        """How far the slices reach along their normal (mm)."""
        if len(self.slices) < 2:
            return 0.0
        o = np.array(self.slices[0].orientation, float)
        n = np.cross(o[:3], o[3:])
        d = [float(np.dot(s.position, n)) for s in self.slices]
        return max(d) - min(d)


def _tag(ds, name, default=None):
    v = ds.get(name, default)
    return default if v is None or v == "" else v


def _floats(v, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def read_header(path: str):
    """The dataset of ``path`` without its pixels, or None when it is no DICOM file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # odd values in archive files: what matters is checked here
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            ds._thighseg_pixel_offset = f.tell()  # where the pixel data element starts
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return ds


def _slices_of(path: str, ds) -> tuple[list[Slice], str]:
    """The images of one file and, when something is wrong with it, what."""
    frames = int(_tag(ds, "NumberOfFrames", 1) or 1)
    shared = _tag(ds, "SharedFunctionalGroupsSequence")
    per_frame = _tag(ds, "PerFrameFunctionalGroupsSequence")
    if per_frame is not None:  # enhanced multi-frame: geometry per frame in functional groups
        shared = shared[0] if shared else None
        out = []
        for k, group in enumerate(per_frame):
            pos = _functional(group, shared, "PlanePositionSequence", "ImagePositionPatient", 3)
            ori = _functional(group, shared, "PlaneOrientationSequence", "ImageOrientationPatient", 6)
            if pos is None or ori is None:
                return [], f"frame {k + 1} of {Path(path).name} has no position or orientation"
            out.append(Slice(path, k, pos, ori, f"{_tag(ds, 'SOPInstanceUID', '')}#{k}"))
        return out, ""
    pos = _floats(_tag(ds, "ImagePositionPatient"), 3)
    ori = _floats(_tag(ds, "ImageOrientationPatient"), 6)
    if pos is None or ori is None:
        return [], "" if frames == 1 else f"{Path(path).name} is multi-frame without per-frame positions"
    return [Slice(path, None if frames == 1 else 0, pos, ori, str(_tag(ds, "SOPInstanceUID", "")))], ""


def _functional(group, shared, seq: str, attr: str, n: int):
    for g in (group, shared):
        if g is not None and seq in g and len(g[seq].value):
            v = _floats(g[seq][0].get(attr), n)
            if v is not None:
                return v
    return None


def _short_pixels(path: str, ds) -> str:
    """For uncompressed pixel data: '' when the file holds all of it, else what is missing."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(_tag(meta, "TransferSyntaxUID", "")) if meta is not None else ""
    if syntax not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", ""):
        return ""  # compressed: the decoder finds a damaged stream
    rows, cols = int(_tag(ds, "Rows", 0) or 0), int(_tag(ds, "Columns", 0) or 0)
    bits, spp = int(_tag(ds, "BitsAllocated", 16) or 16), int(_tag(ds, "SamplesPerPixel", 1) or 1)
    frames = int(_tag(ds, "NumberOfFrames", 1) or 1)
    need = rows * cols * spp * frames * bits // 8
    if not need:
        return ""
    element = 8 if syntax in ("1.2.840.10008.1.2", "") else 12
    have = os.path.getsize(path) - ds._thighseg_pixel_offset - element
    if have < need:
        share = 100 * max(have, 0) / need
        return f"{Path(path).name} is truncated: {share:.0f} % of its pixel data ({max(have, 0):,} of {need:,} bytes)"
    return ""


def _other_size(path: str, ds, first) -> str:
    size, usual = (_tag(ds, "Rows", 0), _tag(ds, "Columns", 0)), (_tag(first, "Rows", 0), _tag(first, "Columns", 0))
    if size != usual:
        return (f"{Path(path).name} is {size[0]} × {size[1]} pixels where the series' first image is "
                f"{usual[0]} × {usual[1]}: not one volume")
    return ""


def _walk(folder: Path) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
    return out


def list_dicom_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """All DICOM series under ``folder`` (recursively), from every file's header."""
    return series_in_files(_walk(Path(folder)))


def series_in_files(paths: list[str]) -> list[SeriesInfo]:
    """The DICOM series of these files (others are skipped), in the order first seen."""
    groups: dict[str, dict] = {}
    for path in paths:
        ds = read_header(path)
        if ds is None or str(_tag(ds, "SOPClassUID", "")) == DICOMDIR or "SeriesInstanceUID" not in ds:
            continue
        uid = str(ds.SeriesInstanceUID)
        g = groups.setdefault(uid, {"ds": ds, "files": [], "slices": [], "damaged": []})
        g["files"].append(path)
        slices, problem = _slices_of(path, ds)
        g["slices"].extend(slices)
        problem = problem or _short_pixels(path, ds) or _other_size(path, ds, g["ds"])
        if problem:
            g["damaged"].append(problem)
    found = []
    for uid, g in groups.items():
        ds = g["ds"]
        meta = getattr(ds, "file_meta", None)
        spacing = _floats(_tag(ds, "PixelSpacing"), 2)
        if spacing is None and "SharedFunctionalGroupsSequence" in ds:
            spacing = _functional(ds.SharedFunctionalGroupsSequence[0], None, "PixelMeasuresSequence",
                                  "PixelSpacing", 2)
        image_type = _tag(ds, "ImageType", ()) or ()
        found.append(SeriesInfo(
            uid, tuple(g["files"]), str(_tag(ds, "SeriesDescription", "")).strip(), str(_tag(ds, "Modality", "")),
            str(_tag(ds, "SOPClassUID", "")), tuple(str(t) for t in (image_type if not isinstance(image_type, str)
                                                                    else [image_type])),
            int(_tag(ds, "Rows", 0) or 0), int(_tag(ds, "Columns", 0) or 0), spacing or (0.0, 0.0),
            str(_tag(meta, "TransferSyntaxUID", "")) if meta is not None else "",
            tuple(g["slices"]), tuple(g["damaged"])))
    return found


def pick_ct_series(series: list[SeriesInfo], min_extent_mm: float = 0.0) -> SeriesInfo:
    """The CT series to segment: a CT volume (no scout, report, SEG or screenshot) reaching at least
    ``min_extent_mm`` along its slices; of those, the one with the most slices."""
    if not series:
        raise InputError("the folder holds no DICOM series: give a folder of CT slices or a NIfTI/NRRD/MHA file")
    ok = [s for s in series if not why_left_out(s, min_extent_mm)]
    if not ok:
        raise InputError("the folder holds no CT series that can hold a thigh; it holds: "
                         + "; ".join(f"{s.short_label}: {why_left_out(s, min_extent_mm)}" for s in series))
    return max(ok, key=lambda s: (len(s.slices), s.extent_mm(), s.uid))


def why_left_out(s: SeriesInfo, min_extent_mm: float = 0.0) -> str:
    why = s.why_not_ct()
    if not why and min_extent_mm and s.extent_mm() < min_extent_mm:
        why = f"reaches only {s.extent_mm():.0f} mm along its slices (a thigh needs {min_extent_mm:.0f})"
    return why


def choice_note(chosen: SeriesInfo, series: list[SeriesInfo], min_extent_mm: float = 0.0) -> str:
    """What the user is told about the series picked, and about the others in the folder."""
    others = [s for s in series if s.uid != chosen.uid]
    if not others:
        return ""
    parts = []
    for s in others:
        why = why_left_out(s, min_extent_mm)
        parts.append(f"{s.short_label}: {why}" if why else
                     f"{s.label}: fewer slices than the one read (--series {s.uid} reads it)")
    return f"read {chosen.label}; left out: " + "; ".join(parts)
