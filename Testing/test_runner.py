"""The subprocess runner the Slicer module polls from its GUI timer, with real child processes:
a run that prints ``done`` and exits at once is done, Cancel returns at once, nothing blocks."""

import json
import queue
import subprocess
import sys
import threading
import time

import pytest

from ThighMuscleSegModuleLib import runner as R


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _poll_until_over(process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while process.poll().status == "running":
        assert time.monotonic() < deadline, "the run never ended"
        time.sleep(0.005)
    return process.state


DONE = json.dumps({"stage": "done", "percent": 100, "message": "segmented 2 thigh(s)", "notes": []})


def test_a_run_that_prints_done_and_exits_at_once_is_done():
    for _ in range(3):
        p = R.ThighsegProcess([], command=_python(f"print({DONE!r})"))
        p.start()
        state = _poll_until_over(p)
        assert state.status == "done", state.message
        assert state.result["message"] == "segmented 2 thigh(s)"


def test_done_is_kept_when_the_process_exits_before_its_output_is_read():
    # The reader thread is held back at the final line, as a busy GUI can hold it: the process
    # is gone, the `done` line not yet read. Polling then must wait, not call the run failed.
    class HeldQueue(queue.Queue):
        release = threading.Event()

        def put(self, item, *args, **kwargs):
            if item.get("stage") == "done":
                self.release.wait(30)
            super().put(item, *args, **kwargs)

    p = R.ThighsegProcess([], command=_python(f"print({DONE!r})"))
    p._events = HeldQueue()
    p.start()
    p._starter.join()
    p._proc.wait()
    for _ in range(20):
        assert p.poll().status == "running"
        time.sleep(0.01)
    HeldQueue.release.set()
    assert _poll_until_over(p).status == "done"


def test_an_error_line_and_exit_code_make_an_error_with_the_message():
    code = ("import json, sys; print(json.dumps({'stage': 'error', 'message': 'no thigh was found'})); "
            "sys.exit(2)")
    p = R.ThighsegProcess([], command=_python(code))
    p.start()
    state = _poll_until_over(p)
    assert state.status == "error" and state.message == "no thigh was found"


def test_a_crash_reports_the_last_stderr_line():
    p = R.ThighsegProcess([], command=_python("raise SystemExit('thighseg segment: error: corrupt file')"))
    p.start()
    state = _poll_until_over(p)
    assert state.status == "error" and "corrupt file" in state.message



def _started_until_read(code: str) -> "R.ThighsegProcess":
    """A run of ``code`` started, once it has reported its first stage ("read")."""
    p = R.ThighsegProcess([], command=_python(code))
    p.start()
    deadline = time.monotonic() + 30
    while p.poll().stage != "read":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return p

def test_cancel_returns_at_once_and_a_process_ignoring_sigterm_is_killed_after_the_grace_time():
    code = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('{\"stage\": \"read\", \"percent\": 1}', flush=True); time.sleep(120)")
    p = _started_until_read(code)
    t0 = time.monotonic()
    p.cancel(grace_s=1.0)
    assert time.monotonic() - t0 < 0.2  # the GUI thread is back at once
    state = _poll_until_over(p, timeout=20)
    assert state.status == "cancelled"
    assert p._proc.poll() is not None  # killed, not left running


def test_cancel_while_preparing_never_starts_the_process():
    started = threading.Event()
    p = R.ThighsegProcess([], command=_python("open('should-not-exist', 'w')"),
                          prepare=lambda: (started.set(), time.sleep(0.5)))
    p.start()
    assert started.wait(10)
    t0 = time.monotonic()
    p.cancel()
    assert time.monotonic() - t0 < 0.2
    assert _poll_until_over(p).status == "cancelled"
    assert p._proc is None


def test_a_failing_prepare_step_fails_the_run_with_its_reason():
    def prepare():
        raise OSError("disk full")

    p = R.ThighsegProcess([], command=_python("pass"), prepare=prepare)
    p.start()
    state = _poll_until_over(p)
    assert state.status == "error" and "disk full" in state.message


def test_start_returns_while_the_prepare_step_runs():
    release = threading.Event()
    p = R.ThighsegProcess([], command=_python(f"print({DONE!r})"), prepare=lambda: release.wait(10))
    t0 = time.monotonic()
    p.start()
    assert time.monotonic() - t0 < 0.2
    assert p.poll().status == "running" and p.poll().stage == "prepare"
    release.set()
    assert _poll_until_over(p).status == "done"


def test_non_ascii_progress_arrives_intact(monkeypatch):
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.delenv("PYTHONIOENCODING", raising=False)
    message = "Oberschenkel – Muskeln µ 5 cm³"
    code = f"import json; print(json.dumps({{'stage': 'done', 'message': {message!a}}}, ensure_ascii=False))"
    p = R.ThighsegProcess([], command=_python(code))
    p.start()
    state = _poll_until_over(p)
    assert state.status == "done" and state.message == message


def test_when_finished_runs_after_the_process_exits():
    done = threading.Event()
    p = R.ThighsegProcess([], command=_python("import time; time.sleep(0.3)"))
    p.start()
    p.when_finished(done.set)
    assert done.wait(20)
    assert p._proc.poll() is not None


def test_windows_options_hide_the_console_and_kill_the_whole_tree(monkeypatch):
    class StartupInfo:  # subprocess.STARTUPINFO exists only on Windows
        def __init__(self):
            self.dwFlags = 0
            self.wShowWindow = 1

    monkeypatch.setattr(subprocess, "STARTUPINFO", StartupInfo, raising=False)
    monkeypatch.setattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200, raising=False)
    options = R.popen_platform_options("nt")
    assert options["creationflags"] == 0x200
    assert options["startupinfo"].dwFlags & 1 and options["startupinfo"].wShowWindow == 0
    assert R.kill_tree_command(1234) == ["taskkill", "/F", "/T", "/PID", "1234"]
    assert R.popen_platform_options("posix") == {"start_new_session": True}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cancel_stops_what_the_command_started_too():
    code = ("import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            "print('{\"stage\": \"read\", \"message\": \"%d\"}' % c.pid, flush=True); time.sleep(120)")
    p = _started_until_read(code)
    grandchild = int(p.state.message)
    assert _alive(grandchild)
    p.cancel(grace_s=2.0)
    assert _poll_until_over(p, timeout=20).status == "cancelled"
    deadline = time.monotonic() + 10
    while _alive(grandchild):  # the whole group got SIGTERM, not only the direct child
        assert time.monotonic() < deadline, "the command's own child survived Cancel"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has already ended
    except OSError:
        return False
