"""Progress and cancel, passed as one object through every stage (never a global).

A stage reports with ``progress.update(stage, fraction, message)``; ``fraction`` is that
stage's own 0..1, mapped onto the overall 0..100 % by the stage's weight. Every update
is also a cancellation point: when the run was cancelled it raises ``Cancelled``.

The ``--progress json`` contract: one JSON object per line with ``stage``, ``percent``
(0-100 overall) and ``message``; the last line has ``"stage": "done"`` with the output
paths, or ``"stage": "error"`` with the message.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Callable, Mapping, TextIO


class Cancelled(Exception):
    """The user cancelled the run (Cancel button, Ctrl+C, SIGTERM)."""


class Progress:
    """Reports progress over weighted stages and carries the cancel flag."""

    def __init__(self, stages: Mapping[str, float] | None = None,
                 sink: Callable[[dict], None] | None = None):
        self._weights = dict(stages or {})
        total = sum(self._weights.values()) or 1.0
        self._starts: dict[str, float] = {}
        acc = 0.0
        for name, w in self._weights.items():
            self._starts[name] = acc / total
            acc += w
        self._spans = {k: w / total for k, w in self._weights.items()}
        self._sink = sink
        self._cancel = threading.Event()
        self._lock = threading.Lock()  # both thighs' steps may report at once: one line at a time
        self.percent = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user")

    def update(self, stage: str, fraction: float = 0.0, message: str = "") -> None:
        self.check()
        fraction = min(max(float(fraction), 0.0), 1.0)
        with self._lock:
            if stage in self._spans:
                pct = 100.0 * (self._starts[stage] + fraction * self._spans[stage])
                self.percent = max(self.percent, pct)  # overall progress never runs backwards
            if self._sink is not None:
                self._sink({"stage": stage, "percent": round(self.percent, 1), "message": message})

    def finish(self, stage: str = "done", **extra) -> None:
        with self._lock:
            self.percent = 100.0 if stage == "done" else self.percent
            if self._sink is not None:
                self._sink({"stage": stage, "percent": round(self.percent, 1), **extra})


class RenamedStages:
    """A view of a Progress that renames stages, so a shared step (e.g. inference, which
    reports "infer") can be weighted separately per thigh ("infer right", "infer left")."""

    def __init__(self, progress: Progress, names: Mapping[str, str]):
        self._progress, self._names = progress, dict(names)

    def update(self, stage: str, fraction: float = 0.0, message: str = "") -> None:
        self._progress.update(self._names.get(stage, stage), fraction, message)

    def check(self) -> None:
        self._progress.check()

    @property
    def cancelled(self) -> bool:
        return self._progress.cancelled


def json_lines_sink(stream: TextIO = sys.stdout) -> Callable[[dict], None]:
    """One JSON object per line, flushed at once so a reading process sees it live."""

    def emit(event: dict) -> None:
        stream.write(json.dumps(event, default=str) + "\n")
        stream.flush()

    return emit


def human_sink(stream: TextIO = sys.stderr) -> Callable[[dict], None]:
    """Readable lines for people; repeats of the same message are not printed twice, and an
    error is left to the command's own one-line error message."""
    last = {"message": None}
    t0 = time.perf_counter()

    def emit(event: dict) -> None:
        msg = event.get("message") or event.get("stage")
        if msg == last["message"] or event.get("stage") == "error":
            return
        last["message"] = msg
        stream.write(f"[{time.perf_counter() - t0:6.1f} s {event.get('percent', 0):5.1f} %] {msg}\n")
        stream.flush()

    return emit


NULL = Progress()
