"""The web UI's test server: ``thighseg web`` in its own process on a free 127.0.0.1 port, and
Debian's chromium driven by Playwright (``playwright install`` cannot download a browser here)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = os.environ.get("THIGHSEG_CHROMIUM", "/usr/bin/chromium")
READY_TIMEOUT_S = 600  # slicer-core and trame start in ~5 s; a loaded 2-core box at nice 15 took minutes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class WebServer:
    process: subprocess.Popen
    url: str
    log: Path
    tmp: Path  # the server's TMPDIR: where the segment runs' work folders go

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.is_file() else ""

    def stop(self) -> None:
        """End the server and everything it started (the segment subprocess has its own session)."""
        stop_tree(self.process)


def start_server(data: Path, dataset: Path, folder: Path) -> WebServer:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp"
    tmp.mkdir(exist_ok=True)
    log = folder / "server.log"
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
    env.pop("DISPLAY", None)  # offscreen (EGL), as on a server
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ThighMuscleSegLib.cli.main", "web", "--port", str(port), "--data", str(data),
             "--dataset", str(dataset)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            preexec_fn=_end_with_parent)
    server = WebServer(process, f"http://127.0.0.1:{port}/", log, tmp)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "thighseg web: serving" not in server.log_text():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"thighseg web did not start:\n{server.log_text()[-4000:]}")
        time.sleep(0.2)
    return server


def _end_with_parent() -> None:
    """Linux: the server gets SIGTERM when the test process dies (a killed pytest runs no finalizer)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_tree(process: subprocess.Popen, grace_s: float = 15.0) -> None:
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for sig in (signal.SIGTERM, signal.SIGKILL):  # politely first; then whatever is left
        for p in [process, *children]:
            try:
                os.kill(p.pid, sig)
            except OSError:
                pass
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass


def work_dirs(tmp: Path) -> list[Path]:
    """The segment runs' work folders the Slicer module's logic makes (``logic.WORK_PREFIX``)."""
    return sorted(tmp.glob("ThighMuscleSeg-*"))


def wait_until(condition, timeout_s: float, what: str, step_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(step_s)
