"""The cases of a cohort: which CTs, under which case ids, and how to tell that one changed.

An INPUT of ``thighseg batch`` is any of

- a CT file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``): one case, named
  after the file;
- a folder, walked recursively: every CT file is a case; a dataset case folder (one holding
  ``ct.nii.gz``, as ``thighseg phantom`` writes) is one case named after the folder (its
  ``labels.nii.gz`` is not a CT); every DICOM file anywhere in it goes to the DICOM grouping
  (:mod:`.dicomtree`: one case per study);
- a CSV manifest (``.csv``): columns ``case_id,path`` and optionally ``subject``, ``date``,
  ``height_cm``, ``series_uid``; relative paths are relative to the manifest's folder; a path
  may be a CT file or a DICOM folder.

Case ids are kept to ``[A-Za-z0-9._-]`` (they name folders) and must be unique; they are derived
from the inputs alone, so running the same command again finds the same cases.

Resume compares a case's *content*: :func:`content_sha256` hashes the bytes of its file(s);
:func:`stat_key` (names, sizes, modification times) lets an unchanged input be recognised
without reading it again.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..io import InputError, has_ct_suffix
from .case import Case, normalise_date, safe_id
from .dicomtree import dicom_cases

# Files a walk never takes as CTs: the outputs of thighseg itself and label maps beside CTs.
NOT_CT = re.compile(r"(^|[._-])(labels?|seg|segmentation|disagreement)([._-]|$)|\.seg\.nrrd$", re.IGNORECASE)
DATASET_CT_NAMES = ("ct.nii.gz", "ct.nii", "ct.nrrd", "ct.mha")
MANIFEST_COLUMNS = ("case_id", "path")
MANIFEST_OPTIONAL = ("subject", "date", "height_cm", "series_uid")


@dataclass
class Discovery:
    cases: list[Case] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out and why (non-CT series, ...)


def ct_stem(path: str | os.PathLike) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def looks_like_dicom(path: str | os.PathLike) -> bool:
    """DICOM Part 10 files have 'DICM' after a 128-byte preamble; ``.dcm`` is taken on its name."""
    p = Path(path)
    if p.suffix.lower() == ".dcm":
        return True
    if has_ct_suffix(p) or p.suffix.lower() in (".csv", ".json", ".png", ".txt", ".md", ".py", ".gz", ".zip"):
        return False
    try:
        with open(p, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def discover_cases(inputs: list[str | os.PathLike]) -> Discovery:
    """Every case in ``inputs`` (files, folders, DICOM trees, CSV manifests), ids unique."""
    found = Discovery()
    dicom_files: list[str] = []
    for raw in inputs:
        p = Path(raw).expanduser().absolute()
        if not p.exists():
            raise InputError(f"{raw} does not exist")
        if p.is_file() and p.suffix.lower() == ".csv":
            found.cases += read_manifest(p)
        elif p.is_file() and has_ct_suffix(p):
            found.cases.append(Case(safe_id(ct_stem(p)), str(p), (str(p),)))
        elif p.is_file() and looks_like_dicom(p):
            dicom_files.append(str(p))
        elif p.is_dir():
            cases, dcm = _walk(p)
            found.cases += cases
            dicom_files += dcm
        else:
            raise InputError(f"{raw} is neither a CT file (.nii/.nii.gz/.nrrd/.mha), a folder, a DICOM file "
                             "nor a .csv manifest")
    if dicom_files:
        cases, notes = dicom_cases(sorted(set(dicom_files)))
        found.cases += cases
        found.notes += notes
    found.cases = _unique(found.cases)
    if not found.cases:
        raise InputError("no CT found in " + ", ".join(map(str, inputs))
                         + (": " + "; ".join(found.notes) if found.notes else ""))
    return found


def _walk(root: Path) -> tuple[list[Case], list[str]]:
    cases: list[Case] = []
    dicom: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        d = Path(dirpath)
        names = sorted(f for f in filenames if not f.startswith("."))
        dataset_ct = next((n for n in DATASET_CT_NAMES if n in names), None)
        if dataset_ct:  # a dataset case folder: one case, nothing below it (e.g. its dicom/ copy)
            cases.append(_dataset_case(d, d / dataset_ct))
            dirnames[:] = []
            continue
        for n in names:
            f = d / n
            if has_ct_suffix(f):
                if not NOT_CT.search(n):
                    cases.append(Case(safe_id(ct_stem(f)), str(f), (str(f),)))
            elif looks_like_dicom(f):
                dicom.append(str(f))
    return cases, dicom


def _dataset_case(folder: Path, ct: Path) -> Case:
    height = None
    meta = folder / "case.json"
    subject = ""
    if meta.is_file():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            height = (info.get("body") or {}).get("stature_cm") or info.get("height_cm")
            subject = str(info.get("subject", "") or "")
        except (ValueError, OSError, AttributeError):
            pass
    return Case(safe_id(folder.name), str(ct), (str(ct),), subject=subject,
                height_cm=float(height) if height else None, source="dataset")


def read_manifest(path: Path) -> list[Case]:
    """Cases of a CSV manifest (``case_id,path`` and optionally ``subject,date,height_cm,series_uid``)."""
    from .. import io as tio

    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in MANIFEST_COLUMNS if c not in cols]
        if missing:
            raise InputError(f"{path.name}: a manifest needs the columns case_id,path (missing: {', '.join(missing)}); "
                             f"optional: {', '.join(MANIFEST_OPTIONAL)}")
        cases = []
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not row.get("case_id") and not row.get("path"):
                continue
            if not row.get("case_id") or not row.get("path"):
                raise InputError(f"{path.name} line {line}: case_id and path must both be given")
            p = Path(row["path"]).expanduser()
            p = (p if p.is_absolute() else path.parent / p).absolute()
            uid = row.get("series_uid", "")
            if p.is_dir():
                series = tio.list_dicom_series(p)
                if not series:
                    raise InputError(f"{path.name} line {line}: {p} holds no DICOM series")
                chosen = [s for s in series if s.uid == uid] if uid else [tio.pick_ct_series(series)]
                if not chosen:
                    raise InputError(f"{path.name} line {line}: no series {uid} in {p}")
                files, uid = tuple(sorted(chosen[0].files)), chosen[0].uid
            else:
                files = (str(p),)  # a missing file becomes a failed row, not a stop of the whole batch
            height = row.get("height_cm", "")
            try:
                height_cm = float(height) if height else None
            except ValueError:
                raise InputError(f"{path.name} line {line}: height_cm {height!r} is not a number") from None
            cases.append(Case(safe_id(row["case_id"]), str(p), files, subject=row.get("subject", ""),
                              date=normalise_date(row.get("date", "")), height_cm=height_cm, series_uid=uid,
                              source="manifest"))
        return cases


def _unique(cases: list[Case]) -> list[Case]:
    """Same input twice -> once (a manifest's entry, with its subject and date, wins over a folder
    walk's); two inputs with one id -> the id gets a short hash of the path."""
    chosen: dict[tuple[str, str], Case] = {}
    for c in cases:
        key = (c.input, c.series_uid)
        if key not in chosen or (c.source == "manifest" and chosen[key].source != "manifest"):
            chosen[key] = c
    kept = list(chosen.values())  # in the order each input first appeared
    counts: dict[str, int] = {}
    for c in kept:
        counts[c.case_id] = counts.get(c.case_id, 0) + 1
    out = []
    for c in kept:
        if counts[c.case_id] > 1:
            if c.source == "manifest":
                raise InputError(f"case id {c.case_id} is given to more than one CT: case ids must be unique")
            digest = hashlib.sha1(f"{c.input}|{c.series_uid}".encode()).hexdigest()[:8]
            c = Case(**{**asdict(c), "case_id": f"{c.case_id}_{digest}", "files": c.files})
        out.append(c)
    return out


def stat_key(case: Case) -> str:
    """Changes when any of the case's files is added, removed, resized or touched."""
    h = hashlib.sha256()
    for f in sorted(case.files):
        try:
            st = os.stat(f)
            h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}|missing\n".encode())
    return h.hexdigest()


def content_sha256(case: Case, chunk: int = 1 << 20) -> str:
    """SHA-256 over the bytes of the case's files (in name order): the same CT moved or copied
    keeps its hash; any change of content changes it. Missing files hash as missing."""
    h = hashlib.sha256()
    for f in sorted(case.files, key=lambda p: Path(p).name):
        h.update(Path(f).name.encode() + b"\0")
        try:
            with open(f, "rb") as fh:
                while True:
                    b = fh.read(chunk)
                    if not b:
                        break
                    h.update(b)
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()
