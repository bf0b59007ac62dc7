"""One case of a cohort and the two rules its fields follow (folder-safe ids, ISO dates).

Its own module so that the folder / manifest discovery (``manifest``) and the DICOM grouping
(``dicomtree``) both build cases without importing each other.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Case:
    case_id: str
    input: str  # absolute path: a CT file or a DICOM folder (with series_uid)
    files: tuple[str, ...]  # the files the case is read from (content hash, stat key)
    subject: str = ""
    date: str = ""  # ISO 8601 (YYYY-MM-DD) when known
    height_cm: float | None = None
    series_uid: str = ""  # DICOM: the series to read from ``input``
    source: str = "file"  # file | dataset | dicom | manifest

    def to_dict(self) -> dict:
        d = asdict(self)
        d["files"] = list(self.files)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Case":
        return cls(**{**d, "files": tuple(d.get("files", ()))})


def safe_id(text: str) -> str:
    """A folder-safe case id: ``[A-Za-z0-9._-]``, not starting with a dot, never empty."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")
    s = s.lstrip(".")
    return s or "case"


def normalise_date(text: str) -> str:
    """YYYYMMDD (DICOM) or YYYY-MM-DD -> YYYY-MM-DD; anything else is kept as written."""
    t = (text or "").strip()
    m = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})", t)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else t
