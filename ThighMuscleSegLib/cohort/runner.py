"""``thighseg batch``: a cohort on Ray, resumable, one bad scan never stops the rest.

Output folder::

    OUT/cases/<case_id>/      exactly the outputs of ``thighseg segment`` (done and skipped cases)
    OUT/cohort.csv            one row per case (columns: table.py)
    OUT/cohort.parquet        the same table
    OUT/cohort_report.png     volumes by side, asymmetry, failed and flagged cases
    OUT/.thighseg-batch/      the per-case records resume reads, a lock against a second batch

How a case folder stays whole: a worker writes a case into ``OUT/cases/.staging-<case_id>-<random>/``;
only the driver (this process) renames it to ``cases/<case_id>`` (after moving an older result aside),
then appends the case's record, then rewrites the tables. Hidden staging folders that a killed run
left are removed when the next run starts. The tables are rewritten after each finished case (at
most every :data:`TABLE_INTERVAL_S` seconds while cases stream in, and always at the end), so a
row never names a folder that is not there.

Resume: a case is kept (``skipped``) when its record says done, its folder holds every file the
record lists and its input is unchanged (same names, sizes and times, or else the same content
hash); a changed input runs again (its old folder, made from the old input, is removed when the
run starts). A failed case is retried only with ``retry_failed`` (or when its input changed).

Workers are Ray actors (:class:`.worker.CaseWorker`) that load the model once. GPU workers ask Ray
for one GPU each; CPU workers for their share of the cores. A worker that dies (out of memory, a
crash) is replaced; its case is tried once more, then it is a failed row. Cancel (Ctrl+C, SIGTERM)
kills the workers, removes the in-flight staging folders and writes the tables for the cases
finished so far; the next run goes on from there.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import os
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..io import InputError
from ..progress import Cancelled
from .cluster import connect, import_ray, worker_resources
from .manifest import Case, discover_cases
from .progress import BatchProgress
from .resume import (OLD_PREFIX, STAGING_PREFIX, BatchError, Plan, case_dir, case_fields, output_lock, plan,
                     remove_leftovers)
from .table import Records, write_tables

TABLE_INTERVAL_S = 2.0
MAX_TRIES = 2  # a case whose worker dies twice is a failed row


@dataclass
class BatchOptions:
    out: Path
    workers: int | None = None
    address: str | None = None  # None: a local Ray started here; "auto" or HOST:PORT: an existing cluster
    device: str = "auto"
    retry_failed: bool = False
    model: str | None = None
    fusion: str = "vote"
    back_interpolation: str | None = None
    cpus_per_worker: float | None = None
    report: bool = True


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    remaining: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    workers: int = 0
    worker_info: list = field(default_factory=list)
    cohort_csv: str = ""
    cohort_parquet: str = ""
    cohort_report: str = ""
    notes: list = field(default_factory=list)


class _Stop:
    """Ctrl+C / SIGTERM: the first asks the batch to stop cleanly, a second interrupts at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class _Driver:
    """Everything the driver owns: the case folders' final names, the records, the tables."""

    def __init__(self, out: Path, records: Records, rows: dict[str, dict], progress: BatchProgress):
        self.out, self.records, self.rows, self.progress = out, records, rows, progress
        self._last_table = 0.0

    def commit(self, case: Case, row: dict, staging: Path, stat: str) -> None:
        final = case_dir(self.out, case.case_id)
        row = {**row, **case_fields(case), "finished_at": _now()}
        files: list[str] = []
        if row["status"] == "done":
            files = sorted(p.name for p in staging.iterdir())
            old = None
            if final.exists():
                old = final.with_name(f"{OLD_PREFIX}{case.case_id}-{uuid.uuid4().hex[:8]}")
                os.replace(final, old)
            os.replace(staging, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            shutil.rmtree(staging, ignore_errors=True)
            if final.exists():  # results of an input that has changed since: they no longer hold
                self.rows.pop(case.case_id, None)
                self.write_tables(force=True)
                shutil.rmtree(final, ignore_errors=True)
        self.records.append({"case": case.to_dict(), "row": row, "stat_key": stat,
                             "input_sha256": row.get("input_sha256"), "files": files})
        self.rows[case.case_id] = row
        self.progress.case(row)
        self.write_tables()

    def write_tables(self, force: bool = False) -> tuple[Path, Path | None] | None:
        now = time.perf_counter()
        if not force and now - self._last_table < TABLE_INTERVAL_S:
            return None
        self._last_table = now
        return write_tables(self.out, list(self.rows.values()))


def run_batch(inputs: list[str], options: BatchOptions, progress: BatchProgress | None = None) -> BatchSummary:
    """Segment every case of ``inputs`` into ``options.out``; see the module docstring."""
    progress = progress or BatchProgress("human")
    t0 = time.perf_counter()
    out = Path(options.out).absolute()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    discovery = discover_cases(inputs)
    for note in discovery.notes:
        progress.message(f"note: {note}", stage="discover")
    (out / "cases").mkdir(parents=True, exist_ok=True)
    summary = BatchSummary(notes=list(discovery.notes))
    with output_lock(out):
        remove_leftovers(out)
        records = Records(out)
        p = plan(discovery.cases, out, records, options.retry_failed)
        progress.start(len(discovery.cases), p.skipped, p.failed_kept, len(p.todo))
        driver = _Driver(out, records, p.rows, progress)
        if p.todo:
            _run_on_ray(p, options, driver, progress, summary, out)
        csv_path, pq_path = driver.write_tables(force=True)
        summary.cohort_csv, summary.cohort_parquet = str(csv_path), str(pq_path or "")
        if options.report:
            try:
                from .report import write_cohort_report

                summary.cohort_report = str(write_cohort_report(out / "cohort_report.png", list(p.rows.values())))
            except Exception as e:  # noqa: BLE001 - a missing picture never loses a batch's results
                progress.message(f"note: cohort_report.png was not drawn ({type(e).__name__}: {e})")
    summary.total = len(discovery.cases)
    counts = collections.Counter(r["status"] for r in p.rows.values() if r["case_id"] in
                                 {c.case_id for c in discovery.cases})
    summary.done, summary.failed, summary.skipped = counts["done"], counts["failed"], counts["skipped"]
    summary.remaining = summary.total - summary.done - summary.failed - summary.skipped
    summary.seconds = round(time.perf_counter() - t0, 2)
    if summary.cancelled:
        raise Cancelled(f"cancelled: {summary.done + summary.skipped} case(s) complete, {summary.failed} failed, "
                        f"{summary.remaining} not run; the table holds the finished ones; run the same command "
                        "again to go on")
    return summary


def _run_on_ray(p: Plan, options: BatchOptions, driver: _Driver, progress: BatchProgress,
                summary: BatchSummary, out: Path) -> None:
    from ..defaults import default_model_path
    from ..models import load_model
    from .worker import CaseWorker, error_message

    model_path = Path(options.model) if options.model else default_model_path()
    load_model(model_path)  # a wrong model file stops here, before any case is tried
    model_bytes = model_path.read_bytes()
    ray = import_ray()
    started = connect(ray, options.address)
    try:
        workers, cpus, gpus = worker_resources(ray, options.device, options.workers, options.cpus_per_worker, len(p.todo))
        device = options.device
        if gpus > 0 and device == "auto":
            device = "cuda"
        threads = max(1, int(cpus))
        Actor = ray.remote(CaseWorker)
        model_ref = ray.put(model_bytes)

        def new_actor():
            return Actor.options(num_cpus=cpus, num_gpus=gpus, max_restarts=0).remote(
                model_ref, device, options.fusion, options.back_interpolation, threads)

        actors = [new_actor() for _ in range(workers)]
        summary.workers = workers
        where = options.address or "a local Ray on this machine"
        progress.message(f"{workers} worker(s) on {where}: {cpus:g} CPU" + (f", {gpus:g} GPU" if gpus else "")
                         + f" each, device {device}", stage="workers")
        pending = collections.deque(p.todo)
        tries: dict[str, int] = collections.defaultdict(int)
        inflight: dict = {}  # ref -> (actor index, case, staging)
        deaths_in_a_row = 0
        progress.running()

        def submit(i: int) -> None:
            case = pending.popleft()
            tries[case.case_id] += 1
            staging = out / "cases" / f"{STAGING_PREFIX}{case.case_id}-{uuid.uuid4().hex[:8]}"
            ref = actors[i].run.remote(case.to_dict(), str(staging), p.keys[case.case_id][1])
            inflight[ref] = (i, case, staging)

        for i in range(workers):
            if pending:
                submit(i)
        with _Stop() as stop:
            while inflight:
                if stop.requested:
                    summary.cancelled = True
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
                for ref in ready:
                    i, case, staging = inflight.pop(ref)
                    try:
                        row = ray.get(ref)
                        deaths_in_a_row = 0
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                        shutil.rmtree(staging, ignore_errors=True)
                        deaths_in_a_row += 1
                        with contextlib.suppress(Exception):
                            ray.kill(actors[i])
                        actors[i] = new_actor()
                        if deaths_in_a_row > max(3, 2 * workers):
                            raise BatchError(f"the workers keep dying before finishing a case (last: "
                                             f"{_first(e)}); see the Ray logs (/tmp/ray/session_latest/logs)") \
                                from None
                        if tries[case.case_id] < MAX_TRIES:
                            pending.appendleft(case)
                        else:
                            row = {"case_id": case.case_id, "status": "failed", "device": device,
                                   "error": "the worker died while segmenting this case (out of memory or a "
                                            f"crash): {_first(e)}"}
                            driver.commit(case, row, staging, p.keys[case.case_id][0])
                        if pending:
                            submit(i)
                        continue
                    except Exception as e:  # noqa: BLE001 - e.g. the row could not travel back
                        shutil.rmtree(staging, ignore_errors=True)
                        row = {"case_id": case.case_id, "status": "failed", "device": device,
                               "error": error_message(getattr(e, "cause", None) or e)}
                    driver.commit(case, row, staging, p.keys[case.case_id][0])
                    if pending and not stop.requested:
                        submit(i)
            # A stop that lands between a finished case and the next submit empties ``inflight``
            # without passing the check above: cases are left, so it is a cancel all the same.
            if stop.requested and pending:
                summary.cancelled = True
            if summary.cancelled:
                progress.message("stopping: the workers are stopped, the unfinished cases leave nothing behind")
                for a in actors:
                    with contextlib.suppress(Exception):
                        ray.kill(a, no_restart=True)
                with contextlib.suppress(Exception):  # wait until they are gone before cleaning up
                    ray.wait(list(inflight), num_returns=len(inflight), timeout=10)
                for _, _, staging in inflight.values():
                    shutil.rmtree(staging, ignore_errors=True)
        if not summary.cancelled:
            with contextlib.suppress(Exception):
                summary.worker_info = ray.get([a.info.remote() for a in actors], timeout=30)
            for a in actors:
                with contextlib.suppress(Exception):
                    ray.kill(a, no_restart=True)
    finally:
        if started:
            ray.shutdown()
        remove_leftovers(out)


def _first(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
