"""Progress of a batch: a bar for people (tqdm), JSON lines for machines.

JSON lines follow the project's progress contract (``stage``, ``percent``, ``message``) and add
``done``, ``failed``, ``skipped``, ``remaining``, ``total``, ``eta_s`` (seconds, from the rate so
far) and, per finished case, ``case_id``, ``status`` and ``error``. The last line has ``"stage":
"done"`` with the table paths (or ``"stage": "error"``, or ``"cancelled"``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO


class BatchProgress:
    def __init__(self, mode: str = "human", stream: TextIO | None = None):
        self.mode = mode
        self.stream = stream or (sys.stdout if mode == "json" else sys.stderr)
        self.total = self.done = self.failed = self.skipped = 0
        self.todo = 0
        self.finished_this_run = 0
        self.t_start: float | None = None
        self._bar = None

    # -- counts ---------------------------------------------------------------------------
    @property
    def remaining(self) -> int:
        return max(self.total - self.done - self.failed - self.skipped, 0)

    @property
    def percent(self) -> float:
        return round(100.0 * (self.total - self.remaining) / self.total, 1) if self.total else 100.0

    def eta_s(self) -> float | None:
        if not self.finished_this_run or self.t_start is None:
            return None
        rate = self.finished_this_run / max(time.perf_counter() - self.t_start, 1e-6)
        return round(self.remaining / rate, 1)

    def _counts(self) -> dict:
        return {"done": self.done, "failed": self.failed, "skipped": self.skipped, "remaining": self.remaining,
                "total": self.total, "eta_s": self.eta_s()}

    # -- events ---------------------------------------------------------------------------
    def message(self, text: str, stage: str = "batch") -> None:
        if self.mode == "json":
            self._emit({"stage": stage, "percent": self.percent, "message": text, **self._counts()})
        else:
            self._write(text)

    def start(self, total: int, skipped: int, failed_kept: int, todo: int) -> None:
        self.total, self.skipped, self.failed, self.todo = total, skipped, failed_kept, todo
        self.message(f"{total} case(s): {todo} to segment, {skipped} kept from an earlier run"
                     + (f", {failed_kept} failed before (not retried; --retry-failed)" if failed_kept else ""),
                     stage="plan")

    def running(self) -> None:
        self.t_start = time.perf_counter()
        if self.mode != "json" and self.todo:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=self.todo, unit="case", file=self.stream, dynamic_ncols=True, smoothing=0.1)
            self._bar.set_postfix_str(self._postfix())

    def case(self, row: dict) -> None:
        self.finished_this_run += 1
        if row["status"] == "done":
            self.done += 1
        else:
            self.failed += 1
        if self.mode == "json":
            self._emit({"stage": "case", "percent": self.percent,
                        "message": f"{row['case_id']}: {row['status']}" + (f" ({row['error']})" if row.get("error")
                                                                         else ""),
                        "case_id": row["case_id"], "status": row["status"], "error": row.get("error", ""),
                        "seconds": row.get("seconds"), **self._counts()})
        elif self._bar is not None:
            if row["status"] == "failed":
                self._bar.write(f"failed: {row['case_id']}: {row.get('error', '')}")
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.update(1)
        else:
            self._write(f"[{self.percent:5.1f} %] {row['case_id']}: {row['status']}"
                        + (f" ({row['error']})" if row.get("error") else "") + f"; {self._postfix()}")

    def finish(self, stage: str, message: str, **extra) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.mode == "json":
            self._emit({"stage": stage, "percent": 100.0 if stage == "done" else self.percent, "message": message,
                        **self._counts(), **extra})
        else:
            self._write(message)

    # -- output ---------------------------------------------------------------------------
    def _postfix(self) -> str:
        eta = self.eta_s()
        return (f"done {self.done}, failed {self.failed}, skipped {self.skipped}, remaining {self.remaining}"
                + (f", ETA {_hms(eta)}" if eta is not None and self.remaining else ""))

    def _emit(self, event: dict) -> None:
        self.stream.write(json.dumps(event, default=str) + "\n")
        self.stream.flush()

    def _write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
