"""What a batch keeps and what it runs again (the resume decision), and the lock that keeps a
second batch out of the same output folder; ``runner`` acts on the plan (see its docstring for
how a case folder stays whole)."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..io import InputError
from ..outputs import SEGMENT_OUTPUTS
from .manifest import Case, content_sha256, stat_key
from .table import Records

STAGING_PREFIX = ".staging-"
OLD_PREFIX = ".old-"
# Every output of ``thighseg segment`` but the DICOM SEG (written only for DICOM input): one list.
REQUIRED_OUTPUTS = tuple(n for n in SEGMENT_OUTPUTS if n != "segmentation.dcm")


class BatchError(InputError):
    """The batch as a whole cannot run (no Ray, no cluster, workers that cannot start)."""


def case_dir(out: Path, case_id: str) -> Path:
    return out / "cases" / case_id


def folder_complete(folder: Path, files: list[str] | None) -> bool:
    names = files or REQUIRED_OUTPUTS
    return folder.is_dir() and all((folder / n).is_file() for n in names)


@contextlib.contextmanager
def output_lock(out: Path):
    """One batch per output folder at a time (POSIX advisory lock; elsewhere no lock)."""
    path = out / ".thighseg-batch" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w", encoding="utf-8")
    try:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass
        except OSError:
            raise BatchError(f"another thighseg batch is writing to {out}: wait for it, or choose another --out") \
                from None
        yield
    finally:
        f.close()


def remove_leftovers(out: Path) -> None:
    cases = out / "cases"
    if not cases.is_dir():
        return
    for p in cases.iterdir():
        if p.name.startswith((STAGING_PREFIX, OLD_PREFIX)):
            shutil.rmtree(p, ignore_errors=True)


@dataclass
class Plan:
    rows: dict[str, dict]  # case_id -> table row of every case known in OUT (kept, failed, foreign)
    todo: list[Case]
    skipped: int = 0
    failed_kept: int = 0
    keys: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # case_id -> (stat key, sha if known)


def case_fields(case: Case) -> dict:
    return {"case_id": case.case_id, "input": case.input, "subject": case.subject, "date": case.date,
            "height_cm": case.height_cm}


def plan(cases: list[Case], out: Path, records: Records, retry_failed: bool) -> Plan:
    """What to run, what to keep: the resume decision for every case."""
    p = Plan(rows={}, todo=[])
    current = {c.case_id for c in cases}
    for case in cases:
        rec = records.latest.get(case.case_id)
        key = stat_key(case)
        p.keys[case.case_id] = (key, None)
        if rec is None:
            p.todo.append(case)
            continue
        unchanged = rec.get("stat_key") == key
        if not unchanged and rec.get("input_sha256"):
            sha = content_sha256(case)
            p.keys[case.case_id] = (key, sha)
            unchanged = sha == rec["input_sha256"]
        status = rec["row"].get("status")
        if unchanged and status == "done" and folder_complete(case_dir(out, case.case_id), rec.get("files")):
            p.rows[case.case_id] = {**rec["row"], **case_fields(case), "status": "skipped"}
            p.skipped += 1
            if rec.get("stat_key") != key:  # touched, same content: remember the new stat key
                records.append({**rec, "stat_key": key})
        elif unchanged and status == "failed" and not retry_failed:
            p.rows[case.case_id] = {**rec["row"], **case_fields(case)}
            p.failed_kept += 1
        else:
            p.todo.append(case)
    for case in p.todo:  # an old folder of a case that runs again (changed input, a crash) no longer holds
        shutil.rmtree(case_dir(out, case.case_id), ignore_errors=True)
    # cases of earlier runs that are not among this run's inputs stay in the table as they are
    for case_id, rec in records.latest.items():
        if case_id in current:
            continue
        status = rec["row"].get("status")
        if status == "failed" or folder_complete(case_dir(out, case_id), rec.get("files")):
            p.rows[case_id] = {**rec["row"], "status": "skipped" if status == "done" else status}
    return p
