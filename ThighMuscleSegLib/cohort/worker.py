"""One case of a cohort, through the same library calls as ``thighseg segment``.

:func:`segment_case` reads the CT (``io.read_ct``, with the DICOM series of the case), runs
``pipeline.segment_ct`` and ``pipeline.write_outputs`` into a staging folder, and returns the
case's cohort-table row; a bad scan becomes a ``failed`` row with its message, never an
exception. :class:`CaseWorker` holds a model loaded once; ``ray.remote(CaseWorker)`` is the Ray
actor of ``thighseg batch`` (:mod:`.runner`), which segments case after case.

Each row also carries what the case cost on its worker: wall ``seconds``, ``cpu_seconds`` (user +
system time of the worker process, all its threads) and ``peak_rss_mb`` (the process's peak
resident memory during the case; Linux resets the peak before each case, elsewhere it is the
peak since the worker started).
"""

from __future__ import annotations

import csv
import inspect
import os
import platform
import shutil
import socket
import tempfile
import time
from pathlib import Path

from .manifest import Case, content_sha256
from .table import ID_COLUMNS, composition_fields


def measurement_columns(volumes_csv: str | os.PathLike) -> dict[str, object]:
    """``volumes.csv`` as one wide row: ``<side>_<muscle>_<column>`` -> value (numbers as floats,
    empty cells as None), exactly the values in the case folder."""
    out: dict[str, object] = {}
    with open(volumes_csv, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            for col, value in r.items():
                if col in ID_COLUMNS or col is None:
                    continue
                out[f"{r['side']}_{r['muscle']}_{col}"] = _number(value)
    return out


def composition_columns(measurements_csv: str | os.PathLike) -> dict[str, object]:
    """The cohort-table columns of ``measurements.csv`` (``table.composition_fields``): the
    muscles' columns that ``volumes.csv`` lacks and the groups' rows, as one wide row."""
    out: dict[str, object] = {}
    with open(measurements_csv, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            group = r["muscle"] if r.get("kind") == "group" else None
            for col in composition_fields(group):
                if col in r:
                    out[f"{r['side']}_{r['muscle']}_{col}"] = _number(r[col])
    return out


def _number(text):
    if text is None or text == "":
        return None
    try:
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return text


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def error_message(exc: BaseException) -> str:
    """What a failed row says: the library's own message for bad input, else the exception."""
    from ..io import InputError

    if isinstance(exc, InputError):
        return _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory while segmenting this CT"
    msg = _first_line(str(exc))
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class _Cost:
    """CPU seconds and peak memory of this process over one case."""

    def __init__(self):
        self._reset_peak()
        self.t0 = time.perf_counter()
        self.cpu0 = _cpu_seconds()

    @staticmethod
    def _reset_peak() -> None:
        try:  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM)
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")
        except OSError:
            pass

    def done(self) -> dict:
        return {"seconds": round(time.perf_counter() - self.t0, 3),
                "cpu_seconds": round(_cpu_seconds() - self.cpu0, 3),
                "peak_rss_mb": _peak_rss_mb()}


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource  # not on Windows

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (1024 * 1024 if platform.system() == "Darwin" else 1024), 1)
    except (ImportError, OSError):
        return None


def _read(case: Case):
    """The CT as ``thighseg segment`` reads it (with the checks for segmenting where io has them),
    the DICOM SEG's source files and the reading notes (series chosen, a gap, ...)."""
    from .. import io as tio

    kw = {"thighs": True} if "thighs" in inspect.signature(tio.read_ct).parameters else {}
    ct = tio.read_ct(case.input, series_uid=case.series_uid or None, **kw)
    notes = list(tio.input_notes(ct)) if hasattr(tio, "input_notes") else []
    if hasattr(tio, "dicom_seg_sources"):
        files, no_seg = tio.dicom_seg_sources(case.input, ct)
        return ct, files, notes + ([no_seg] if no_seg else [])
    return ct, _dicom_files(case, ct), notes


def _dicom_files(case: Case, ct) -> list[str] | None:
    """The CT series' files for the DICOM SEG (as ``thighseg segment`` finds them)."""
    from .. import io as tio

    if not Path(case.input).is_dir():
        return None
    series = ct.GetMetaData("series_uid") if ct.HasMetaDataKey("series_uid") else None
    for info in tio.list_dicom_series(case.input):
        if series is None or info.uid == series:
            return list(info.files)
    return None


def segment_case(case: Case, staging: str | os.PathLike, model, *, device: str = "auto", fusion: str = "vote",
                 back_interpolation: str | None = None, input_sha256: str | None = None) -> dict:
    """Segment ``case`` into the folder ``staging`` (created; removed again when the case fails).

    Returns the row: ``status`` ``done`` (``staging`` holds exactly the outputs of
    ``thighseg segment``) or ``failed`` (``error`` says why; ``staging`` does not exist).
    """
    from ..defaults import DEFAULT_BACK_INTERPOLATION
    from ..pipeline import segment_ct, write_outputs

    cost = _Cost()
    row: dict = {"case_id": case.case_id, "status": "failed", "error": "", "device": "",
                 "host": socket.gethostname(), "thighs": "", "notes": "", "flagged": ""}
    staging = Path(staging)
    try:
        row["input_sha256"] = input_sha256 or content_sha256(case)
        ct, dicom_files, read_notes = _read(case)
        result = segment_ct(ct, model, device=device, fusion=fusion,
                            back_interpolation=back_interpolation or DEFAULT_BACK_INTERPOLATION)
        write_outputs(result, staging, dicom_files=dicom_files, height_cm=case.height_cm)
        row.update(status="done", device=str(result.device), thighs=",".join(f.side for f in result.frames),
                   notes="; ".join(read_notes + list(result.notes)))
        measurements = measurement_columns(staging / "volumes.csv")
        row["flagged"] = ",".join(k[: -len("_quality")] for k, v in measurements.items()
                                  if k.endswith("_quality") and v == "check")
        row["measurements"] = {**measurements, **composition_columns(staging / "measurements.csv")}
    except Exception as e:  # noqa: BLE001 - one bad scan is a failed row, never the end of the batch
        row["error"] = error_message(e)
        shutil.rmtree(staging, ignore_errors=True)
    row.update(cost.done())
    return row


class CaseWorker:
    """A model loaded once, then :meth:`run` case after case (the Ray actor of ``thighseg batch``).

    ``model`` is a model file's path or its bytes (bytes travel to the nodes of a cluster that
    do not have the file). ``threads``: torch's intra-op threads (the CPUs Ray gave the actor).
    """

    def __init__(self, model, device: str = "auto", fusion: str = "vote", back_interpolation: str | None = None,
                 threads: int | None = None):
        import torch

        from ..heap import keep_freed_memory
        from ..inference.device import resolve_device
        from ..models import load_model

        keep_freed_memory()  # this process is the worker's: case after case reuses the same pages
        if threads:
            torch.set_num_threads(max(1, int(threads)))
        t0 = time.perf_counter()
        if isinstance(model, (bytes, bytearray)):
            fd, tmp = tempfile.mkstemp(suffix=".tmsmodel")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(model)
                self.model = load_model(tmp)
            finally:
                os.unlink(tmp)
        else:
            self.model = load_model(model)
        self.model_load_seconds = time.perf_counter() - t0
        dev, _ = resolve_device(device)  # once per worker: the fallback note is the row's device
        self.device = str(dev) if device == "auto" else device
        self.fusion, self.back_interpolation = fusion, back_interpolation
        self.cases = 0

    def info(self) -> dict:
        import torch

        return {"host": socket.gethostname(), "pid": os.getpid(), "device": self.device,
                "threads": torch.get_num_threads(), "model_load_seconds": round(self.model_load_seconds, 3)}

    def run(self, case: dict, staging: str, input_sha256: str | None = None) -> dict:
        self.cases += 1
        return segment_case(Case.from_dict(case), staging, self.model, device=self.device, fusion=self.fusion,
                            back_interpolation=self.back_interpolation, input_sha256=input_sha256)
