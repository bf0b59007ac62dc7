"""A small CT series written as real DICOM files (pydicom), for DICOM SEG tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_ct_series(ct: sitk.Image, folder: Path) -> list[str]:
    """One CT Image Storage file per slice of ``ct`` (int16 HU), geometry from the image."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    arr = sitk.GetArrayFromImage(ct)
    d = np.array(ct.GetDirection()).reshape(3, 3)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    files = []
    for k in range(arr.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.PatientName = "CT", "THIGH001", "Thigh^Test"
        ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "19700101", "F", "20240101", "120000"
        ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "A1", "", "1"
        ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = 1, k + 1, "test"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ct.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*d[:, 0], *d[:, 1])]
        ds.PixelSpacing = [f"{ct.GetSpacing()[1]:.6f}", f"{ct.GetSpacing()[0]:.6f}"]
        ds.SliceThickness = f"{ct.GetSpacing()[2]:.6f}"
        ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = arr[k].astype(np.int16).tobytes()
        path = folder / f"ct_{k:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        files.append(str(path))
    return files
