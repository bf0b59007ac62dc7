"""CT series written as real DICOM files (pydicom), for DICOM SEG and input tests: a plain
series, one with slices left out, unequal spacing, gantry tilt or a compressed transfer
syntax, an Enhanced (legacy converted) multi-frame CT, and the other objects an archive
folder holds beside a CT (a scout, a dose report, a screenshot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def _dataset(meta_sop_class, sop_class, study, series, frame, modality="CT"):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = meta_sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.Modality, ds.PatientID, ds.PatientName = modality, "THIGH001", "Thigh^Test"
    ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "19700101", "F", "20240101", "120000"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "A1", "", "1"
    ds.SeriesNumber, ds.Manufacturer = 1, "test"
    return ds


def write_ct_series(ct: sitk.Image, folder: Path, *, drop=(), syntax=None, tilt_deg: float = 0.0,
                    positions_mm=None, description: str = "thigh CT", study: str | None = None,
                    series_number: int = 1) -> list[str]:
    """One CT Image Storage file per slice of ``ct`` (int16 HU), geometry from the image.

    ``drop``: slice indices not written (a series with gaps); ``syntax``: a transfer syntax UID
    to compress with (pydicom's encoders); ``tilt_deg``: the slices are resampled from ``ct`` on
    planes tilted about the x axis, as a tilted gantry acquires them, positions still advancing
    along the table; ``positions_mm``: each slice's z instead of the image's (unequal spacing,
    slices resampled from ``ct`` there)."""
    import pydicom
    from pydicom.uid import CTImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    d = np.array(ct.GetDirection()).reshape(3, 3)
    sx, sy, sz = ct.GetSpacing()
    nx, ny, nz = ct.GetSize()
    study, series, frame = study or generate_uid(), generate_uid(), generate_uid()
    t = np.radians(tilt_deg)
    row, col = d[:, 0], d[:, 1] * np.cos(t) + d[:, 2] * np.sin(t)
    zs = list(positions_mm) if positions_mm is not None else [None] * nz
    files = []
    for k, z in enumerate(zs):
        if k in drop:
            continue
        origin = np.array(ct.TransformIndexToPhysicalPoint((0, 0, k))) if z is None else \
            np.array([*ct.GetOrigin()[:2], z])
        if tilt_deg or z is not None:
            pixels = _plane(ct, origin, row, col, nx, ny, sx, sy)
        else:
            pixels = sitk.GetArrayViewFromImage(ct)[k]
        ds = _dataset(CTImageStorage, CTImageStorage, study, series, frame)
        ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = series_number, k + 1, description
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in origin]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
        ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]
        ds.SliceThickness = f"{sz:.6f}"
        if tilt_deg:
            ds.GantryDetectorTilt = f"{tilt_deg:.2f}"
        _pixels(ds, pixels)
        if syntax is not None:
            ds.compress(syntax)
        path = folder / f"ct_{k:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        files.append(str(path))
    return files


def _pixels(ds, pixels: np.ndarray) -> None:
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
    ds.PixelData = np.ascontiguousarray(pixels, np.int16).tobytes()


def _plane(ct, origin, row, col, nx, ny, sx, sy) -> np.ndarray:
    """``ct`` sampled (linearly) on the plane through ``origin`` spanned by ``row`` and ``col``."""
    ref = sitk.Image([nx, ny, 1], sitk.sitkInt16)
    ref.SetSpacing((sx, sy, 1.0))
    ref.SetOrigin(tuple(float(v) for v in origin))
    ref.SetDirection(tuple(np.column_stack([row, col, np.cross(row, col)]).ravel()))
    out = sitk.Resample(ct, ref, sitk.Transform(), sitk.sitkLinear, -1024, sitk.sitkInt16)
    return sitk.GetArrayFromImage(out)[0]


def write_scout(ct: sitk.Image, folder: Path, study: str) -> str:
    """A coronal localizer (ImageType LOCALIZER) of ``ct``: one image, as scanners store it."""
    import pydicom
    from pydicom.uid import CTImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    arr = sitk.GetArrayViewFromImage(ct)
    coronal = np.flipud(arr.mean(axis=1)).astype(np.int16)  # (z, x), head at the top
    ds = _dataset(CTImageStorage, CTImageStorage, study, generate_uid(), generate_uid())
    ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = 2, 1, "Topogram 0.6 T20f"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    top = ct.TransformIndexToPhysicalPoint((0, 0, ct.GetSize()[2] - 1))
    ds.ImagePositionPatient = [f"{v:.6f}" for v in top]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]
    ds.PixelSpacing = [f"{ct.GetSpacing()[2]:.6f}", f"{ct.GetSpacing()[0]:.6f}"]
    _pixels(ds, coronal)
    path = folder / "scout.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return str(path)


def write_dose_report(folder: Path, study: str) -> str:
    """An X-Ray Radiation Dose SR: no pixels, modality SR."""
    import pydicom
    from pydicom.dataset import Dataset

    folder.mkdir(parents=True, exist_ok=True)
    sr = "1.2.840.10008.5.1.4.1.1.88.67"
    from pydicom.uid import generate_uid

    ds = _dataset(sr, sr, study, generate_uid(), generate_uid(), modality="SR")
    ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "Dose Report", 997, 1
    ds.ValueType, ds.CompletionFlag, ds.VerificationFlag = "CONTAINER", "COMPLETE", "UNVERIFIED"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "113701", "DCM", "X-Ray Radiation Dose Report"
    ds.ConceptNameCodeSequence = [concept]
    path = folder / "dose.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return str(path)


def write_secondary_capture(folder: Path, study: str) -> str:
    """A screenshot stored as Secondary Capture, with modality CT as some consoles write it."""
    import pydicom
    from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    ds = _dataset(SecondaryCaptureImageStorage, SecondaryCaptureImageStorage, study, generate_uid(), generate_uid())
    ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "Screen Save", 998, 1
    ds.ConversionType = "WSD"
    _pixels(ds, (np.arange(256 * 256).reshape(256, 256) % 4096).astype(np.int16))
    path = folder / "screen.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return str(path)


def write_enhanced_ct(series_files: list[str], path: Path) -> Path:
    """The series as one Legacy Converted Enhanced CT multi-frame file (highdicom)."""
    import highdicom as hd
    import pydicom

    legacy = [pydicom.dcmread(f) for f in series_files]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=legacy, series_instance_uid=hd.UID(), series_number=5, sop_instance_uid=hd.UID(),
        instance_number=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    enhanced.save_as(path)
    return path
