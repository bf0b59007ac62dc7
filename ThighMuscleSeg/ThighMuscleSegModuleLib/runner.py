"""Runs ``thighseg`` in a separate process and follows its JSON progress lines.

Slicer's GUI never waits on the work: the widget polls ``poll()`` from a timer, and
Cancel terminates the whole process group, so no half-written output is left (the
command itself stages its outputs and removes them on SIGTERM).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import ThighMuscleSegLib

LIB_PARENT = Path(ThighMuscleSegLib.__file__).resolve().parent.parent


def python_executable() -> str:
    """Slicer's own Python (PythonSlicer) inside Slicer, this interpreter elsewhere."""
    return shutil.which("PythonSlicer") or sys.executable


@dataclass
class RunState:
    status: str = "idle"  # idle | running | done | error | cancelled
    stage: str = ""
    percent: float = 0.0
    message: str = ""
    result: dict = field(default_factory=dict)
    stderr_tail: list[str] = field(default_factory=list)


class ThighsegProcess:
    """One ``thighseg <command> ... --progress json`` run."""

    def __init__(self, args: list[str], python: str | None = None):
        self.command = [python or python_executable(), "-m", "ThighMuscleSegLib.cli.main", *args]
        self.state = RunState()
        self._events: queue.Queue = queue.Queue()
        self._proc: subprocess.Popen | None = None
        self._cancel_requested = False

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(LIB_PARENT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        # Own process group, so Cancel reaches the command and anything it started.
        group = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt"
                 else {"start_new_session": True})
        self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env, **group)
        self.state.status = "running"
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                self._events.put(json.loads(line))
            except json.JSONDecodeError:
                continue

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self.state.stderr_tail = (self.state.stderr_tail + [line.rstrip()])[-20:]

    def poll(self) -> RunState:
        """Apply the progress lines received so far; never blocks."""
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            self.state.stage = event.get("stage", self.state.stage)
            self.state.percent = float(event.get("percent", self.state.percent))
            self.state.message = event.get("message", self.state.message)
            if self.state.stage == "done":
                self.state.result = event
            elif self.state.stage == "error":
                self.state.status = "cancelled" if self._cancel_requested else "error"
        if self._proc is not None and self._proc.poll() is not None and self._events.empty():
            self._finish(self._proc.returncode)
        return self.state

    def _finish(self, code: int) -> None:
        if self.state.status != "running":
            return
        if self._cancel_requested:
            self.state.status = "cancelled"
        elif code == 0 and self.state.stage == "done":
            self.state.status = "done"
        else:
            self.state.status = "error"
            if not self.state.message or self.state.stage != "error":
                tail = [ln for ln in self.state.stderr_tail if ln.strip()]
                self.state.message = tail[-1] if tail else f"thighseg stopped with exit code {code}"

    def wait(self, timeout: float | None = None) -> RunState:
        """Block until the process ends (scripts and tests; the GUI polls instead)."""
        assert self._proc is not None
        self._proc.wait(timeout=timeout)
        for _ in range(200):  # let the reader threads drain the pipes
            state = self.poll()
            if state.status != "running":
                break
            threading.Event().wait(0.01)
        return self.state

    def cancel(self, grace_s: float = 10.0) -> None:
        """SIGTERM to the process group (the command cleans up), SIGKILL if it hangs."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._cancel_requested = True
        try:
            self._signal(signal.SIGTERM)
            self._proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL if os.name != "nt" else signal.SIGTERM)
            self._proc.wait()
        except ProcessLookupError:
            pass
        self.poll()

    def _signal(self, sig) -> None:
        assert self._proc is not None
        if os.name == "nt":
            self._proc.terminate()
        else:
            os.killpg(self._proc.pid, sig)
