"""Runs ``thighseg`` in a separate process and follows its JSON progress lines.

Slicer's GUI never waits on the work: the widget polls ``poll()`` from a timer, and nothing
here blocks it. ``start()`` returns at once (an optional ``prepare`` step, e.g. writing the CT
to disk, runs on a worker thread before the process starts); ``cancel()`` returns at once
(stopping, and killing what does not stop within the grace time, happens on a worker thread).

A run is finished only when the process has exited *and* its output has been read to the
end, so the final ``done`` line is never lost to a process that prints it and exits at once.

Platforms: on Linux and macOS the process gets its own session and Cancel sends SIGTERM to
the whole group (``thighseg segment`` removes its staged outputs), SIGKILL after the grace
time. On Windows the console window is hidden (as ``slicer.util.launchConsoleProcess`` does)
and Cancel ends the whole process tree (``PythonSlicer`` is a launcher that starts
``python-real``; stopping only the launcher would leave the work running). Pipes are read as
UTF-8 whatever the system code page, and the child writes UTF-8 (``PYTHONIOENCODING``).
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ThighMuscleSegLib

LIB_PARENT = Path(ThighMuscleSegLib.__file__).resolve().parent.parent

# After the process exits, how long to wait for the end of its output (a grandchild that
# inherited the pipe could keep it open forever).
_DRAIN_TIMEOUT_S = 5.0


def python_executable() -> str:
    """Slicer's own Python (PythonSlicer) inside Slicer, this interpreter elsewhere."""
    return shutil.which("PythonSlicer") or sys.executable


def hidden_window_startupinfo():
    """Windows: the STARTUPINFO that hides the console window of a console program
    (STARTF_USESHOWWINDOW with SW_HIDE, as Slicer's ``launchConsoleProcess``)."""
    info = subprocess.STARTUPINFO()
    info.dwFlags |= 1  # STARTF_USESHOWWINDOW
    info.wShowWindow = 0  # SW_HIDE
    return info


def popen_platform_options(os_name: str | None = None) -> dict:
    """Popen arguments per platform: own process group/session; no console window on Windows."""
    if (os_name or os.name) == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP, "startupinfo": hidden_window_startupinfo()}
    return {"start_new_session": True}


def kill_tree_command(pid: int) -> list[str]:
    """Windows: the command that ends a process and everything it started."""
    return ["taskkill", "/F", "/T", "/PID", str(pid)]


@dataclass
class RunState:
    status: str = "idle"  # idle | running | done | error | cancelled
    stage: str = ""
    percent: float = 0.0
    message: str = ""
    result: dict = field(default_factory=dict)
    stderr_tail: list[str] = field(default_factory=list)


class ThighsegProcess:
    """One ``thighseg <command> ... --progress json`` run.

    ``command`` replaces the whole command line (tests run stand-in programs through it);
    ``prepare`` runs on a worker thread before the process starts (its exception fails the run).
    """

    def __init__(self, args: list[str], python: str | None = None, command: list[str] | None = None,
                 prepare: Callable[[], None] | None = None):
        self.command = list(command) if command else [python or python_executable(), "-m",
                                                      "ThighMuscleSegLib.cli.main", *args]
        self.state = RunState()
        self._events: queue.Queue = queue.Queue()
        self._proc: subprocess.Popen | None = None
        self._prepare = prepare
        self._lock = threading.Lock()
        self._cancel_requested = False
        self._start_error: str | None = None
        self._starter: threading.Thread | None = None
        self._readers: list[threading.Thread] = []
        self._exited_at: float | None = None

    # --- starting ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the run; returns at once."""
        self.state.status = "running"
        self.state.stage = "prepare" if self._prepare else "start"
        self.state.message = "Preparing…" if self._prepare else "Starting…"
        self._starter = threading.Thread(target=self._prepare_and_start, name="thighseg-start", daemon=True)
        self._starter.start()

    def _prepare_and_start(self) -> None:
        try:
            if self._prepare is not None:
                self._prepare()
            with self._lock:
                if self._cancel_requested:
                    return
                self._proc = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    encoding="utf-8", errors="replace", env=self._environment(), **popen_platform_options())
                for target in (self._read_stdout, self._read_stderr):
                    reader = threading.Thread(target=target, daemon=True)
                    reader.start()
                    self._readers.append(reader)
        except Exception as e:  # noqa: BLE001 - reported to the user through poll()
            self._start_error = f"could not start thighseg: {e}"

    @staticmethod
    def _environment() -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(LIB_PARENT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        return env

    # --- reading ----------------------------------------------------------------------
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

    def _output_read(self) -> bool:
        return all(not r.is_alive() for r in self._readers)

    # --- following --------------------------------------------------------------------
    def poll(self) -> RunState:
        """Apply the progress lines received so far; never blocks."""
        if self.state.status != "running":
            return self.state
        if self._start_error is not None:
            self._apply_events()
            self._finish(None)
            return self.state
        proc = self._proc
        if proc is None:
            if self._cancel_requested and self._starter is not None and not self._starter.is_alive():
                self._finish(None)  # cancelled before the process started
            return self.state
        exited = proc.poll() is not None
        if exited and self._exited_at is None:
            self._exited_at = time.monotonic()
        # Read the end of the output before deciding: the last line may still be in the pipe.
        drained = exited and (self._output_read() or time.monotonic() - self._exited_at > _DRAIN_TIMEOUT_S)
        self._apply_events()
        if drained:
            self._finish(proc.returncode)
        return self.state

    def _apply_events(self) -> None:
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

    def _finish(self, code: int | None) -> None:
        if self.state.status != "running":
            return
        if self._cancel_requested:
            self.state.status = "cancelled"
            self.state.message = "cancelled"
        elif self._start_error is not None:
            self.state.status = "error"
            self.state.message = self._start_error
        elif code == 0 and self.state.stage == "done":
            self.state.status = "done"
        else:
            self.state.status = "error"
            if not self.state.message or self.state.stage != "error":
                tail = [ln for ln in self.state.stderr_tail if ln.strip()]
                self.state.message = tail[-1] if tail else f"thighseg stopped with exit code {code}"

    def finished(self) -> bool:
        """True once nothing runs any more: the process exited, or it never started."""
        if self._starter is not None and self._starter.is_alive():
            return False
        return self._proc is None or self._proc.poll() is not None

    def wait(self, timeout: float | None = None) -> RunState:
        """Block until the run ends (scripts and tests; the GUI polls instead)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        left = lambda: None if deadline is None else max(0.0, deadline - time.monotonic())  # noqa: E731
        if self._starter is not None:
            self._starter.join(left())
        if self._proc is not None:
            self._proc.wait(timeout=left())
        for reader in list(self._readers):
            reader.join(_DRAIN_TIMEOUT_S)
        while self.poll().status == "running":
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return self.state

    def when_finished(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on a worker thread once the process has exited (or never started)."""
        def wait_then_call():
            if self._starter is not None:
                self._starter.join()
            if self._proc is not None:
                self._proc.wait()
            callback()

        threading.Thread(target=wait_then_call, name="thighseg-cleanup", daemon=True).start()

    # --- cancelling -------------------------------------------------------------------
    def cancel(self, grace_s: float = 10.0) -> None:
        """Stop the run; returns at once. POSIX: SIGTERM to the process group (the command
        cleans up), SIGKILL after ``grace_s``. Windows: the whole process tree is ended."""
        with self._lock:
            if self._cancel_requested:
                return
            self._cancel_requested = True
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return  # not started (the starter will not start it) or already over
        threading.Thread(target=self._stop, args=(proc, grace_s), name="thighseg-cancel", daemon=True).start()

    @staticmethod
    def _stop(proc: subprocess.Popen, grace_s: float) -> None:
        try:
            if os.name == "nt":
                subprocess.run(kill_tree_command(proc.pid), capture_output=True, timeout=30,
                               startupinfo=hidden_window_startupinfo())
            else:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                if os.name == "nt":
                    proc.kill()
                else:
                    os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        except (OSError, subprocess.SubprocessError):
            try:
                proc.kill()
            except OSError:
                pass
