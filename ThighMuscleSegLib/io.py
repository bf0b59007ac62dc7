"""Reading CT and writing images without ever damaging the user's files.

Every image lives as a SimpleITK image in LPS physical space (mm), CT in Hounsfield
units. Writers go through a temporary name in the destination folder and an atomic
rename, so a crash, a full disk or a cancel never leaves a half-written file behind
and never overwrites an existing file with a broken one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

CT_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


class InputError(Exception):
    """The input cannot be used; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class SeriesInfo:
    uid: str
    files: tuple[str, ...]
    description: str
    modality: str

    @property
    def label(self) -> str:
        desc = self.description or "no description"
        return f"{self.modality or '?'} series '{desc}' ({len(self.files)} slices, UID {self.uid})"


def has_ct_suffix(path: str | os.PathLike) -> bool:
    name = str(path).lower()
    return any(name.endswith(s) for s in CT_SUFFIXES)


def list_dicom_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """All DICOM series under ``folder`` (recursively), with description and modality."""
    folder = str(folder)
    reader = sitk.ImageSeriesReader()
    found: list[SeriesInfo] = []
    dirs = [folder] + [str(p) for p in Path(folder).rglob("*") if p.is_dir()]
    for d in dirs:
        for uid in reader.GetGDCMSeriesIDs(d) or ():
            files = tuple(reader.GetGDCMSeriesFileNames(d, uid))
            desc, modality = _series_tags(files[0])
            found.append(SeriesInfo(uid, files, desc, modality))
    return found


def _series_tags(first_file: str) -> tuple[str, str]:
    r = sitk.ImageFileReader()
    r.SetFileName(first_file)
    try:
        r.ReadImageInformation()
    except RuntimeError:
        return "", ""
    get = lambda tag: r.GetMetaData(tag).strip() if r.HasMetaDataKey(tag) else ""  # noqa: E731
    return get("0008|103e"), get("0008|0060")


def pick_ct_series(series: list[SeriesInfo]) -> SeriesInfo:
    """The CT series to segment: CT modality first, then the one with most slices."""
    if not series:
        raise InputError("the folder holds no DICOM series: give a folder of CT slices or a NIfTI/NRRD/MHA file")
    cts = [s for s in series if s.modality.upper() == "CT"] or series
    return max(cts, key=lambda s: len(s.files))


def read_ct(path: str | os.PathLike, series_uid: str | None = None) -> sitk.Image:
    """Read a CT from a DICOM folder or a NIfTI / NRRD / MHA file, as int16-compatible HU.

    A folder with several DICOM series takes ``series_uid`` or, without it, the CT series
    with the most slices (its name is put in the image's ``series`` metadata).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist")
    if p.is_dir():
        series = list_dicom_series(p)
        if series_uid:
            chosen = [s for s in series if s.uid == series_uid]
            if not chosen:
                raise InputError(f"no series with UID {series_uid} in {p}; found: "
                                 + "; ".join(s.label for s in series))
            info = chosen[0]
        else:
            info = pick_ct_series(series)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(list(info.files))
        try:
            image = reader.Execute()
        except RuntimeError as e:
            raise InputError(f"cannot read DICOM {info.label}: {_first_line(e)}") from None
        image.SetMetaData("series", info.label)
        image.SetMetaData("series_uid", info.uid)
    else:
        if not has_ct_suffix(p) and p.suffix.lower() not in (".dcm", ""):
            raise InputError(f"{p.name} is not a CT file: give a DICOM folder or a .nii/.nii.gz/.nrrd/.mha file")
        try:
            image = sitk.ReadImage(str(p))
        except RuntimeError as e:
            raise InputError(f"cannot read {p.name} as an image (corrupt or not a CT?): {_first_line(e)}") from None
    return check_ct(image, str(p))


def check_ct(image: sitk.Image, name: str = "input") -> sitk.Image:
    """Reject what cannot be a CT volume with a message that says why."""
    if image.GetDimension() != 3:
        raise InputError(f"{name} is {image.GetDimension()}-D; a CT volume is 3-D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name} has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour?); a CT has one")
    if min(image.GetSize()) < 2:
        raise InputError(f"{name} has size {image.GetSize()}: too small to be a CT volume")
    return image


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


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temporary path beside ``dest``; on success it replaces ``dest`` atomically.

    On any error (disk full, cancel) the temporary file is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(dest.suffixes)  # keep .nii.gz so writers pick the right format
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name.split('.')[0]}-", suffix=suffix, dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(image: sitk.Image, dest: str | os.PathLike, compress: bool = True) -> Path:
    """Write an image atomically (format from the suffix; .nii.gz on all cores, see gzipio)."""
    from .gzipio import write_nifti_gz

    with atomic_path(dest) as tmp:
        if compress and str(dest).endswith(".nii.gz"):
            write_nifti_gz(image, tmp)
        else:
            sitk.WriteImage(image, str(tmp), compress)
    return Path(dest)
