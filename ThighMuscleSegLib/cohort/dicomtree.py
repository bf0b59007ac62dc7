"""A DICOM tree as cases: files grouped by SeriesInstanceUID, one CT series per study.

Every file's header is read (no pixels). A series can hold thighs when it is CT, is not a
localizer (``ImageType`` LOCALIZER), has at least :data:`MIN_SLICES` slices and covers at least
:data:`MIN_EXTENT_MM` along its slice normal. Of a study's series that can, the one covering
the longest stretch is kept (then the most slices; then the lowest UID, so the choice is the
same every time). Everything left out is said in a note. A case is a study: subject =
PatientID, date = StudyDate; several studies of one patient are several cases, each with its
date. Its id, ``<PatientID>_<StudyDate>_<6 hex of the StudyInstanceUID>``, stays the same when
other studies are added to the tree.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .case import Case, normalise_date, safe_id

MIN_SLICES = 10
MIN_EXTENT_MM = 50.0
TAGS = ("SeriesInstanceUID", "StudyInstanceUID", "PatientID", "StudyDate", "SeriesDate", "Modality",
        "SeriesDescription", "ImageType", "ImagePositionPatient", "ImageOrientationPatient", "SOPClassUID")


@dataclass
class Series:
    uid: str
    study: str = ""
    patient: str = ""
    date: str = ""
    modality: str = ""
    description: str = ""
    localizer: bool = False
    files: list[str] = field(default_factory=list)
    positions: list[float] = field(default_factory=list)  # along the slice normal, mm

    @property
    def extent_mm(self) -> float:
        return float(max(self.positions) - min(self.positions)) if len(self.positions) > 1 else 0.0

    @property
    def label(self) -> str:
        return (f"{self.modality or '?'} series '{self.description or 'no description'}' of patient "
                f"{self.patient or '?'} ({len(self.files)} files, UID {self.uid})")

    def why_not(self) -> str | None:
        if self.modality.upper() != "CT":
            return f"modality {self.modality or 'unknown'}, not CT"
        if self.localizer:
            return "a localizer"
        if len(self.files) < MIN_SLICES:
            return f"{len(self.files)} slices (fewer than {MIN_SLICES})"
        if self.extent_mm < MIN_EXTENT_MM:
            return f"covers {self.extent_mm:.0f} mm (less than {MIN_EXTENT_MM:.0f} mm: cannot hold a thigh)"
        return None


def read_series(files: list[str]) -> tuple[dict[str, Series], list[str]]:
    """Headers of ``files`` grouped by SeriesInstanceUID; unreadable files are noted."""
    import pydicom

    series: dict[str, Series] = {}
    unreadable = []
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=list(TAGS))
        except Exception:  # noqa: BLE001 - any unreadable file is noted, never stops the walk
            unreadable.append(f)
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid:
            unreadable.append(f)
            continue
        s = series.get(uid)
        if s is None:
            image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
            s = series[uid] = Series(uid, str(ds.get("StudyInstanceUID", "") or ""),
                                     str(ds.get("PatientID", "") or ""),
                                     str(ds.get("StudyDate", "") or ds.get("SeriesDate", "") or ""),
                                     str(ds.get("Modality", "") or ""), str(ds.get("SeriesDescription", "") or ""),
                                     "LOCALIZER" in image_type)
        s.files.append(f)
        pos, ori = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
        if pos is not None and ori is not None and len(ori) == 6:
            normal = np.cross(np.asarray(ori[:3], float), np.asarray(ori[3:], float))
            s.positions.append(float(np.dot(normal, np.asarray(pos, float))))
    notes = []
    if unreadable:
        notes.append(f"{len(unreadable)} file(s) that look like DICOM could not be read or have no "
                     f"SeriesInstanceUID (first: {unreadable[0]})")
    return series, notes


def dicom_cases(files: list[str]) -> tuple[list[Case], list[str]]:
    """One case per study that holds a CT series able to hold thighs; notes on what was left out."""
    series, notes = read_series(files)
    by_study: dict[str, list[Series]] = defaultdict(list)
    for s in series.values():
        by_study[s.study or s.uid].append(s)
    cases = []
    for study in sorted(by_study):
        members = by_study[study]
        usable = []
        for s in sorted(members, key=lambda s: s.uid):
            why = s.why_not()
            if why:
                notes.append(f"left out {s.label}: {why}")
            else:
                usable.append(s)
        if not usable:
            continue
        best = max(usable, key=lambda s: (round(s.extent_mm, 1), len(s.files), _neg(s.uid)))
        for s in usable:
            if s is not best:
                notes.append(f"left out {s.label}: study {study} has a longer CT series ({best.uid})")
        folder = os.path.commonpath([os.path.dirname(f) for f in best.files])
        date = normalise_date(best.date)
        digest = hashlib.sha1(study.encode()).hexdigest()[:6]
        case_id = safe_id(f"{best.patient or 'patient'}_{date.replace('-', '') or 'nodate'}_{digest}")
        cases.append(Case(case_id, folder, tuple(sorted(best.files)), subject=best.patient, date=date,
                          series_uid=best.uid, source="dicom"))
    return cases, notes


def _neg(uid: str) -> tuple:
    """Sort key that makes the lowest UID win a ``max``."""
    return tuple(-ord(c) for c in uid)
