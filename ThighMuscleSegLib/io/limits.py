"""Sanity limits on a CT: checked on its header before any voxel is read, then on its values.

What passes can hold a thigh and be segmented; what does not gets one sentence that says
what the image is (or looks like) and what to do.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .errors import InputError

MAX_SPACING_MM = 20.0  # coarser than this is no CT that shows muscles (a wrong header or unit)
MIN_EXTENT_MM = 80.0  # each way; framing needs 80 mm of femoral shaft (framing.locate.MIN_THIGH_MM)
HUGE_BYTES = 4 * 1024 ** 3  # more voxel data than this needs --allow-huge
MEMORY_FACTOR = 3  # the run needs about this many times the CT's voxel data in memory (measured: bench)
AIR_BELOW_HU = -200.0  # a CT in HU always shows air (about -1000 HU) around the body
MIN_RANGE_HU = 300.0  # fat to bone spans more than this in any CT of a thigh
LABEL_MAP_VALUES = 32  # an integer image with this few distinct values is a label map or mask


@dataclass(frozen=True)
class Header:
    """What a reader knows before it reads the voxels."""
    name: str
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    components: int = 1
    bytes_per_voxel: int = 2
    pixel: str = "16-bit signed integer"

    @classmethod
    def of_reader(cls, reader: sitk.ImageFileReader, name: str) -> "Header":
        pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
        bits = re.search(r"(\d+)-bit", pixel)
        return cls(name, tuple(reader.GetSize()), tuple(reader.GetSpacing()), tuple(reader.GetOrigin()),
                   tuple(reader.GetDirection()), reader.GetNumberOfComponents(),
                   int(bits.group(1)) // 8 if bits else 2, pixel)

    @property
    def dimension(self) -> int:
        return len(self.size)

    @property
    def data_bytes(self) -> int:
        return math.prod(self.size) * self.components * self.bytes_per_voxel


def check_header(h: Header, *, allow_huge: bool = False, thighs: bool = False) -> None:
    """Refuse, before reading voxels, what cannot be a CT volume (and, with ``thighs``, what
    cannot hold a thigh)."""
    sizes = " × ".join(map(str, h.size))
    if h.dimension == 2 or (h.dimension == 3 and h.size[2] == 1):
        raise InputError(f"{h.name} is a 2-D image ({sizes}): one slice or a picture, not a CT volume; "
                         "give the whole CT (a DICOM folder or a 3-D .nii.gz/.nrrd/.mha)")
    if h.dimension > 3 and any(s > 1 for s in h.size[3:]):
        extra = " × ".join(map(str, h.size[3:]))
        raise InputError(f"{h.name} is {h.dimension}-D ({sizes}): {extra} volumes in one file (a time series or "
                         "several scans); give one 3-D CT volume")
    if h.dimension < 2:
        raise InputError(f"{h.name} is {h.dimension}-D; a CT volume is 3-D")
    if h.components != 1:
        raise InputError(f"{h.name} has {h.components} components per voxel (colour? a vector field?); "
                         "a CT has one value, in HU, per voxel")
    for axis, s in zip("xyz", h.spacing[:3]):
        if not math.isfinite(s) or s <= 0:
            raise InputError(f"{h.name} has a voxel size of {s:g} mm along {axis}: a broken header; set the voxel "
                             "size (e.g. in 3D Slicer) and save the image again")
        if s > MAX_SPACING_MM:
            raise InputError(f"{h.name} has a voxel size of {s:g} mm along {axis}: more than {MAX_SPACING_MM:g} mm "
                             "is no CT that shows muscles (a header in cm or m instead of mm?)")
    if not all(math.isfinite(v) for v in (*h.origin, *h.direction)):
        raise InputError(f"{h.name} has a broken header: its origin or direction is not a number")
    if h.data_bytes > HUGE_BYTES and not allow_huge:
        gb = h.data_bytes / 1024 ** 3
        raise InputError(f"{h.name} holds {gb:.1f} GB of voxels ({sizes}, {h.pixel}): more than "
                         f"{HUGE_BYTES / 1024 ** 3:.0f} GB; pass --allow-huge to segment it anyway "
                         f"(it needs about {MEMORY_FACTOR * gb:.0f} GB of memory), or crop it to the thighs first")
    if thighs:
        check_extent(h)


def extent_mm(h: Header) -> np.ndarray:
    """The image's extent along the patient's left-right, front-back and head-foot axes (mm)."""
    d = np.array(h.direction[:9], float).reshape(3, 3)
    edges = d * (np.array(h.size[:3], float) * np.array(h.spacing[:3], float))  # columns: each index axis, in mm
    return np.abs(edges).sum(axis=1)


def check_extent(h: Header) -> None:
    ext = extent_mm(h)
    if (ext < MIN_EXTENT_MM).any():
        shown = " × ".join(f"{v:.0f}" for v in ext)
        short = [n for n, v in zip(("left-right", "front-back", "head-foot"), ext) if v < MIN_EXTENT_MM]
        raise InputError(f"{h.name} covers only {shown} mm (left-right × front-back × head-foot): too small to hold "
                         f"a thigh ({' and '.join(short)} under {MIN_EXTENT_MM:.0f} mm); a thigh is over 100 mm across "
                         f"and its femur is framed over at least {MIN_EXTENT_MM:.0f} mm: give the whole CT")


def check_values(image: sitk.Image, name: str) -> None:
    """Refuse what holds no CT in Hounsfield units, saying what it looks like instead."""
    arr = sitk.GetArrayViewFromImage(image)
    if arr.dtype.kind == "f":
        bad = sum(int((~np.isfinite(arr[k])).sum()) for k in range(arr.shape[0]))
        if bad:
            raise InputError(f"{name} holds {bad:,} voxels that are NaN or infinite: a damaged or processed "
                             "image, not a CT in HU; export the original CT again")
    step = max(1, int(round((arr.size / 1e6) ** (1 / 3))))
    sample = np.asarray(arr[::step, ::step, ::step])
    lo, hi = float(sample.min()), float(sample.max())
    integer = arr.dtype.kind in "iub" or bool(np.all(sample == np.round(sample)))
    if integer and lo >= 0 and hi <= 255:
        values = np.unique(sample)
        if len(values) <= LABEL_MAP_VALUES:
            raise InputError(f"{name} holds only {len(values)} distinct values ({_range(lo, hi)}): it looks like a "
                             "label map or mask, not a CT; give the CT itself")
    if hi - lo < MIN_RANGE_HU:
        kind = "values" if integer else "non-integer values"
        raise InputError(f"{name} holds {kind} from {_range(lo, hi)} only: it looks like a normalised or derived "
                         "image (a probability map, scaled intensities, PET), not a CT in Hounsfield units "
                         "(air -1000, fat about -100, muscle about 50, bone several hundred)")
    if lo > AIR_BELOW_HU:
        if lo >= 0 and 1500 <= hi <= 4096:
            looks = ("stored CT values without their rescale intercept (raw 0 to 4095; subtract 1024 to get HU) "
                     "or an MR image")
        elif lo >= 0:
            looks = "an MR or other non-CT image (no negative values)"
        else:
            looks = "a CT cropped inside the body, or values shifted from HU"
        raise InputError(f"{name} shows no air (values {_range(lo, hi)}, nothing below {AIR_BELOW_HU:.0f}): a CT in "
                         f"Hounsfield units has air at about -1000 HU around the body; this looks like {looks}")


def _range(lo: float, hi: float) -> str:
    fmt = (lambda v: f"{v:.0f}") if max(abs(lo), abs(hi)) >= 100 else (lambda v: f"{v:.3g}")
    return f"{fmt(lo)} to {fmt(hi)}"
