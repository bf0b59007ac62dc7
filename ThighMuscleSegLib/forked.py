"""One call run in a forked child process, its result brought back through a pipe.

Why: drawing (matplotlib, the vtk surfaces) holds Python's lock for most of its second and a
half, so in a thread it stalls the measuring that writing also needs; a forked child has its own
lock and reads the parent's arrays without copying them (copy-on-write).

Only where the process allows it (``allow_forking``: the ``thighseg segment`` process, whose
threads are all its own) and only on Linux (fork after threads is unsafe on macOS, absent on
Windows). A Ray worker, a web server or a library user's process keeps the in-process path:
their other threads (gRPC, event loops) may hold locks at the moment of a fork. Callers fork
before they start threads of their own for the same reason (a lock held by another thread,
an import's among them, stays held in the child).

The child never touches the output folder: it returns its result (e.g. a PNG's bytes) and the
parent writes it, so a cancelled or killed job leaves nothing behind. The child dies with the
parent (``PR_SET_PDEATHSIG``) and on cancel (``ForkedCall.cancel``).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_allowed = False


def allow_forking(allowed: bool = True) -> None:
    """Let this process fork helpers (call it where the process is yours, e.g. a CLI command)."""
    global _allowed
    _allowed = bool(allowed)


def forking_allowed() -> bool:
    return _allowed and sys.platform.startswith("linux") and hasattr(os, "fork")


class ForkedCall:
    """``fn(*args, **kwargs)`` started now in a forked child; :meth:`result` waits for its
    return value or raises its exception. Where the fork fails (no memory or processes left)
    the call runs in this process when its result is asked for.

    ``later=True``: ``fn`` also gets ``later``, a call that waits for the one value this
    process passes to :meth:`send` (what is still being computed when the child starts)."""

    def __init__(self, fn: Callable[..., Any], *args, later: bool = False, **kwargs):
        self.pid: int | None = None
        self._in_process = None
        self._send_end: int | None = None
        self._sent: list = []
        if later:
            kwargs["later"] = self._sent_value
        try:
            self._start_child(fn, args, kwargs, later)
        except OSError:
            self._in_process = (fn, args, kwargs)

    def _sent_value(self):  # ``later`` where the call runs in this process
        return self._sent[0]

    def send(self, value: Any) -> None:
        """The value the child's ``later()`` returns (once)."""
        if self._send_end is None:
            self._sent.append(value)
            return
        end, self._send_end = self._send_end, None
        try:
            with os.fdopen(end, "wb") as pipe:
                pipe.write(pickle.dumps(value))
        except BrokenPipeError:  # the child is gone: result() says why
            pass

    def _start_child(self, fn, args, kwargs, later: bool) -> None:
        read_end, write_end = os.pipe()
        value_read, value_write = os.pipe() if later else (None, None)
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            stream.flush()
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            for end in (read_end, write_end, value_read, value_write):
                if end is not None:
                    os.close(end)
            raise
        if pid == 0:  # the child: never returns
            os.close(read_end)
            if later:
                os.close(value_write)
                kwargs["later"] = lambda: _receive(value_read)
            _child(write_end, parent, fn, args, kwargs)
        os.close(write_end)
        if later:
            os.close(value_read)
        self.pid, self._read_end, self._send_end = pid, read_end, value_write

    def result(self) -> Any:
        if self._in_process is not None:
            fn, args, kwargs = self._in_process
            return fn(*args, **kwargs)
        try:
            with os.fdopen(self._read_end, "rb") as pipe:
                payload = pipe.read()
        finally:
            self._reap()
        if not payload:
            raise RuntimeError("a forked drawing process ended without a result")
        ok, value = pickle.loads(payload)
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        """Stop the child now (on cancel or an error elsewhere)."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for end in (self._read_end, self._send_end):
                try:
                    if end is not None:
                        os.close(end)
                except OSError:
                    pass
            self._send_end = None
            self._reap()

    def _reap(self) -> None:
        if self.pid is not None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = None


def _receive(read_end: int):
    """The value the parent sends (EOFError where it closed the pipe without sending)."""
    with os.fdopen(read_end, "rb") as pipe:
        return pickle.load(pipe)


def _child(write_end: int, parent: int, fn, args, kwargs) -> None:
    """Run the call and send (ok, value) back; leave by ``os._exit`` (no atexit, no flushing
    of the parent's buffers, no staging folder's clean-up: all of that is the parent's)."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the parent is gone already
            os._exit(1)
        try:
            message = (True, fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - sent to the parent
            message = (False, e)
        try:
            data = pickle.dumps(message)
        except Exception as e:  # noqa: BLE001 - an unpicklable exception still says what went wrong
            data = pickle.dumps((False, RuntimeError(f"{type(message[1]).__name__}: {message[1]}")))
            del e
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not go on as the parent
        code = 1
    finally:
        os._exit(code)
