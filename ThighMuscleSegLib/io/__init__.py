"""Reading CT so that a damaged, odd or hostile input is refused with a message instead of
giving silently wrong numbers, and writing images without ever damaging the user's files.

Every image lives as a SimpleITK image in LPS physical space (mm), CT in Hounsfield units.
``read_ct`` reads a DICOM folder (or an Enhanced CT file) or a NIfTI / NRRD / MHA file and:

- checks the header before any voxel is read (:mod:`.limits`: 2-D or 4-D, colour, absurd
  voxel sizes, more than 4 GB of voxels, and with ``thighs`` too small to hold a thigh);
- checks that the file holds all the data its header describes, reading compressed data to
  its end with its checksum (:mod:`.integrity`);
- picks the CT series of a DICOM folder, and builds a regular volume from the slices'
  positions: a gap is refused (or interpolated with ``allow_gaps``), unequal spacing and
  gantry tilt are resampled (:mod:`.dicom_series`, :mod:`.dicom_volume`);
- with ``thighs``, checks that the values are a CT in HU (:func:`.limits.check_values`).

What was chosen or changed is told in the image's metadata (``series``, ``input_notes``;
read it with :func:`input_notes`). Writers: :mod:`.writing`.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import integrity
from .dicom_series import (SeriesInfo, choice_note, list_dicom_series, pick_ct_series, read_header,
                           series_in_files)
from .dicom_volume import header_of, plan_stack, read_series
from .errors import InputError, OutputError
from .limits import MIN_EXTENT_MM, Header, check_extent, check_header, check_values
from .writing import _umask, atomic_path, describe_write_error, output_error, write_bytes_atomically, write_image

__all__ = ["CT_SUFFIXES", "InputError", "OutputError", "SeriesInfo", "array", "atomic_path", "check_ct",
           "describe_write_error", "dicom_seg_sources", "has_ct_suffix", "image_like", "input_notes",
           "list_dicom_series", "output_error", "patient_height_cm", "pick_ct_series", "read_ct", "same_geometry",
           "write_bytes_atomically", "write_image"]

CT_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
NOTES_KEY = "input_notes"
RESAMPLED_KEY = "resampled"
PATIENT_SIZE_KEY = "patient_size_m"  # DICOM Patient's Size (0010,1020), metres
PLAUSIBLE_SIZE_M = (0.3, 2.6)  # outside: not a height in metres (e.g. centimetres typed in), not used


def has_ct_suffix(path: str | os.PathLike) -> bool:
    name = str(path).lower()
    return any(name.endswith(s) for s in CT_SUFFIXES)


def read_ct(path: str | os.PathLike, series_uid: str | None = None, *, allow_gaps: bool = False,
            allow_huge: bool = False, thighs: bool = False) -> sitk.Image:
    """Read a CT from a DICOM folder or file, or a NIfTI / NRRD / MHA file, as HU.

    A folder with several DICOM series takes ``series_uid`` or, without it, the CT series that
    can hold thighs with the most slices (its name is put in the image's ``series`` metadata).
    ``thighs``: also refuse what is too small to hold a thigh or is no CT in HU (segmenting).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist")
    if not os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0)):
        raise InputError(f"{p} cannot be read: permission denied")
    with _itk_warnings_off():
        if p.is_dir():
            image = _read_dicom(list_dicom_series(p), p, series_uid, allow_gaps, allow_huge, thighs)
        else:
            dicom = _single_dicom(p)
            if dicom is not None:
                image = _read_dicom(dicom, p, series_uid, allow_gaps, allow_huge, thighs)
            else:
                image = _read_file(p, allow_huge, thighs)
    return check_ct(image, p.name, thighs=thighs)


def check_ct(image: sitk.Image, name: str = "input", *, thighs: bool = False) -> sitk.Image:
    """Reject what cannot be a CT volume with a message that says why (with ``thighs``: also
    what is too small to hold a thigh, and values that are no CT in HU)."""
    if image.GetDimension() != 3:
        raise InputError(f"{name} is {image.GetDimension()}-D; a CT volume is 3-D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name} has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour?); a CT has one")
    if min(image.GetSize()) < 2:
        raise InputError(f"{name} has size {image.GetSize()}: too small to be a CT volume")
    if thighs:
        check_extent(Header(name, image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()))
        check_values(image, name)
    return image


def input_notes(image: sitk.Image) -> list[str]:
    """What reading chose or changed (the series picked, a gap interpolated, a tilt corrected)."""
    if not image.HasMetaDataKey(NOTES_KEY):
        return []
    return [n for n in image.GetMetaData(NOTES_KEY).split("\n") if n]


def patient_height_cm(image: sitk.Image) -> float | None:
    """The patient's height (cm) from DICOM Patient's Size (0010,1020) of the series read, or None
    (not DICOM, not given, or no plausible height in metres)."""
    if not image.HasMetaDataKey(PATIENT_SIZE_KEY):
        return None
    return 100.0 * float(image.GetMetaData(PATIENT_SIZE_KEY))


def _patient_size_m(path: str) -> float | None:
    ds = read_header(path)
    try:
        size = float(ds.get("PatientSize")) if ds is not None and ds.get("PatientSize") not in (None, "") else None
    except (TypeError, ValueError):
        return None
    lo, hi = PLAUSIBLE_SIZE_M
    return size if size is not None and lo <= size <= hi else None


def dicom_seg_sources(path: str | os.PathLike, ct: sitk.Image) -> tuple[list[str] | None, str]:
    """The DICOM files a DICOM SEG of ``ct`` can reference, or None and why there are none."""
    if ct.HasMetaDataKey(RESAMPLED_KEY):
        return None, (f"no segmentation.dcm: {ct.GetMetaData(RESAMPLED_KEY)}, so the result's slices are not the "
                      "DICOM series' own; labels.nii.gz and segmentation.seg.nrrd hold it on the grid that was read")
    if not Path(path).is_dir() or not ct.HasMetaDataKey("series_files"):
        return None, ""
    return ct.GetMetaData("series_files").split("\n"), ""


def _single_dicom(p: Path) -> list[SeriesInfo] | None:
    if has_ct_suffix(p):
        return None
    if read_header(str(p)) is None:
        if p.suffix.lower() not in (".dcm", ""):
            raise InputError(f"{p.name} is not a CT file: give a DICOM folder or a .nii/.nii.gz/.nrrd/.mha file")
        return None
    return series_in_files([str(p)])


def _read_dicom(series: list[SeriesInfo], p: Path, series_uid, allow_gaps, allow_huge, thighs) -> sitk.Image:
    if series_uid:
        chosen = [s for s in series if s.uid == series_uid]
        if not chosen:
            raise InputError(f"no series with UID {series_uid} in {p}; found: " + "; ".join(s.label for s in series))
        info = chosen[0]
        why = info.why_not_ct()
        if why:
            raise InputError(f"{info.label} is {why}: give the UID of a CT series")
    elif p.is_file() and len(series) == 1 and series[0].why_not_ct():
        s = series[0]
        one = s.why_not_ct().startswith("one image")
        raise InputError(f"{p.name} is one DICOM image ({s.label}): give the folder that holds the whole series"
                         if one else f"{p.name} is {s.why_not_ct()} ({s.label}), not a CT volume")
    else:
        info = pick_ct_series(series, MIN_EXTENT_MM if thighs else 0.0)
    if info.damaged:
        more = f" (and {len(info.damaged) - 1} more such files)" if len(info.damaged) > 1 else ""
        raise InputError(f"{info.label}: {info.damaged[0]}{more}; copy the series again")
    plan = plan_stack(info, allow_gaps)
    check_header(header_of(info, plan), allow_huge=allow_huge, thighs=thighs)
    image = read_series(info, plan)
    notes = [choice_note(info, series, MIN_EXTENT_MM if thighs else 0.0)] if not series_uid else []
    notes += [f"{info.label}: {n}" for n in plan.notes]
    image.SetMetaData("series", info.label)
    image.SetMetaData("series_uid", info.uid)
    image.SetMetaData("series_files", "\n".join(s.file for s in plan.slices))
    image.SetMetaData(NOTES_KEY, "\n".join(n for n in notes if n))
    size_m = _patient_size_m(info.files[0])
    if size_m is not None:
        image.SetMetaData(PATIENT_SIZE_KEY, repr(size_m))
    if plan.resample_z or plan.tilted:
        image.SetMetaData(RESAMPLED_KEY, "the CT was resampled (" + ("gantry tilt corrected" if plan.tilted else
                                                                     "slices made regular") + ")")
    elif info.multiframe:
        image.SetMetaData(RESAMPLED_KEY, "the CT is an Enhanced multi-frame object")
    return image


def _read_file(p: Path, allow_huge: bool, thighs: bool) -> sitk.Image:
    if not has_ct_suffix(p) and p.suffix.lower() not in (".dcm", ""):
        raise InputError(f"{p.name} is not a CT file: give a DICOM folder or a .nii/.nii.gz/.nrrd/.mha file")
    if p.stat().st_size == 0:
        raise InputError(f"{p.name} is empty (0 bytes): an interrupted copy? copy it again")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise InputError(f"cannot read {p.name} as an image (corrupt or not a CT?): {_first_line(e)}") from None
    integrity.check_nifti_header(p)
    check_header(Header.of_reader(reader, p.name), allow_huge=allow_huge, thighs=thighs)
    slow_check = integrity.plan(p)  # the cheap checks run here; inflating runs beside ITK's read
    with ThreadPoolExecutor(1) if slow_check else contextlib.nullcontext() as pool:
        pending = pool.submit(slow_check) if slow_check else None
        try:
            image = reader.Execute()
        except RuntimeError as e:
            if pending is not None:
                pending.result()  # its message (truncated, checksum) says more than ITK's
            raise InputError(f"cannot read {p.name} as an image (corrupt or not a CT?): {_first_line(e)}") from None
        if pending is not None:
            pending.result()
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    return image


@contextlib.contextmanager
def _itk_warnings_off():
    """ITK prints its warnings (an odd sform, non-uniform sampling) on stderr: they are either
    checked here and refused with a message, or harmless."""
    was = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(was)


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def array(image: sitk.Image) -> np.ndarray:
    """Voxel array in (z, y, x) order, a view where SimpleITK allows it."""
    return sitk.GetArrayViewFromImage(image)


def image_like(arr: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """An image of ``arr`` (z, y, x) with the geometry of ``reference``."""
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(reference)
    return out


def same_geometry(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol))
