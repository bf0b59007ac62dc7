"""The views on a busy machine: the same two thighs timed quiet and beside a competing
CPU-bound process (a busy loop pinned to one core), in the same process, alternating.

A radiologist's workstation is never idle; the issue that asked for this measured the views
4.1x slower beside one busy loop when each convolution ran on two intra-op threads. The
ratio ``views_loaded_slowdown`` (loaded / quiet, medians) is the number to watch; the target
is at most 2.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import numpy as np

BUSY_LOOP = "while True: pass"


def start_competitor(core: int = 0) -> subprocess.Popen:
    """A CPU-bound Python busy loop, pinned to ``core`` where the OS allows it."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        os.sched_setaffinity(proc.pid, {core})
    except (AttributeError, OSError):  # macOS, Windows: unpinned, still one core's worth of load
        pass
    return proc


def time_views(grids: dict[str, np.ndarray], model, device: str = "cpu", lanes: int | None = None,
               engine: str = "auto") -> float:
    """Wall seconds of both thighs' views (the nets only, as ``segment`` runs them);
    ``lanes=1, engine="torch"``: one stream of PyTorch convolutions on all usable CPUs instead
    (the classic way)."""
    from ..inference.predict import infer_thighs

    t0 = time.perf_counter()
    infer_thighs(grids, model, device=device, lanes=lanes, engine=engine)
    return time.perf_counter() - t0


def loaded_views(grids: dict[str, np.ndarray], model, device: str = "cpu", rounds: int = 2) -> dict:
    """Views quiet and beside one busy loop, ``rounds`` times each, alternating (a shared
    machine drifts: alternating keeps the two conditions under the same drift); the same for
    one stream of multi-threaded convolutions, to show what the lanes buy."""
    time_views(grids, model, device)  # warm-up: first-call allocations and the ONNX export are not the views' cost
    result = {"competitor": "one Python busy loop pinned to CPU 0"}
    for name, lanes, engine in (("views", None, "auto"), ("one_stream_views", 1, "torch")):
        quiet, loaded = [], []
        for _ in range(rounds):
            quiet.append(time_views(grids, model, device, lanes, engine))
            competitor = start_competitor()
            try:
                time.sleep(0.3)  # let the loop reach its core
                loaded.append(time_views(grids, model, device, lanes, engine))
            finally:
                competitor.kill()
                competitor.wait()
        q, l_ = statistics.median(quiet), statistics.median(loaded)
        result.update({f"{name}_quiet_s": round(q, 2), f"{name}_loaded_s": round(l_, 2),
                       f"{name}_loaded_slowdown": round(l_ / q, 2) if q else None,
                       f"{name}_quiet_runs_s": [round(v, 2) for v in quiet],
                       f"{name}_loaded_runs_s": [round(v, 2) for v in loaded]})
    return result
