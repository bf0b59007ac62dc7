"""Writing a phantom case: ct.nii.gz, labels.nii.gz, case.json (and a DICOM series)."""

from __future__ import annotations

import json
import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io import InputError, atomic_path, write_image


def write_dicom_series(ct: sitk.Image, folder: Path, seed: int, scan: str = "") -> None:
    """One CT slice per file, geometry in ImagePositionPatient / Orientation, HU via rescale.
    ``scan``: a follow-up's tag (same patient, its own study and series UIDs)."""
    folder.parent.mkdir(parents=True, exist_ok=True)  # the staging folder is made beside it
    tmp = Path(tempfile.mkdtemp(prefix=".dicom-", dir=folder.parent))
    try:
        uid_root = "1.2.826.0.1.3680043.10.543."
        # hashlib, not hash(): str hashing is salted per process and the files must not vary
        series_uid = f"{uid_root}{seed}.{int(hashlib.sha256(f'series {seed}{scan}'.encode()).hexdigest()[:12], 16)}"
        study_uid = f"{uid_root}{seed}.1"
        if scan:
            study_uid += f".{int(hashlib.sha256(f'study {seed}{scan}'.encode()).hexdigest()[:8], 16)}"
        ct_u = sitk.Cast(ct, sitk.sitkInt16)
        w = sitk.ImageFileWriter()
        w.KeepOriginalImageUIDOn()
        direction = ct.GetDirection()
        orient = "\\".join(f"{v:.6f}" for v in (direction[0], direction[3], direction[6],
                                                   direction[1], direction[4], direction[7]))
        for k in range(ct.GetDepth()):
            sl = ct_u[:, :, k]
            pos = ct.TransformIndexToPhysicalPoint((0, 0, k))
            tags = {
                "0008|0060": "CT", "0008|0008": "DERIVED\\SECONDARY\\AXIAL",
                "0008|103e": "thighseg phantom", "0010|0010": f"Phantom^{seed}", "0010|0020": f"PH{seed:06d}",
                "0020|000d": study_uid, "0020|000e": series_uid, "0020|0011": "1",
                "0020|0052": f"{study_uid}.2",  # frame of reference: a DICOM SEG must reference it
                "0020|0013": str(k + 1), "0020|0032": "\\".join(f"{v:.4f}" for v in pos),
                "0020|0037": orient, "0018|0050": f"{ct.GetSpacing()[2]:.4f}",
                "0028|1052": "0", "0028|1053": "1", "0008|0018": f"{series_uid}.{k + 1}",
            }
            for key, val in tags.items():
                sl.SetMetaData(key, val)
            w.SetFileName(str(tmp / f"slice_{k:04d}.dcm"))
            w.Execute(sl)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_case(case, folder: str | Path, fmt: str = "nifti") -> Path:
    """Write ``case`` into ``folder`` (created); returns the folder."""
    if fmt not in ("nifti", "dicom"):
        raise InputError(f"format must be 'nifti' or 'dicom', not {fmt!r}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    write_image(case.ct, folder / "ct.nii.gz")
    write_image(case.labels, folder / "labels.nii.gz")
    if fmt == "dicom":
        follow = case.params.get("followup")
        write_dicom_series(case.ct, folder / "dicom", int(case.params.get("seed", 0)),
                           json.dumps(follow, sort_keys=True) if follow else "")
    with atomic_path(folder / "case.json") as tmp:
        tmp.write_text(json.dumps(case.params, indent=1, default=_json_default), encoding="utf-8")
    return folder


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON-serializable: {type(o)}")
