"""``thighseg bench``'s loaded-machine measurement: it runs the real views beside a real busy
loop and leaves no process behind (the numbers themselves belong to the bench, not here)."""

from __future__ import annotations

import time

import numpy as np
import psutil

from ThighMuscleSegLib.bench.load import BUSY_LOOP, loaded_views, start_competitor
from ThighMuscleSegLib.models import ModelSettings, random_model


def _busy_loops() -> list[psutil.Process]:
    mine = psutil.Process().children(recursive=True)
    return [p for p in mine if p.is_running() and BUSY_LOOP in " ".join(p.cmdline())]


def test_loaded_views_reports_both_ways_and_kills_its_competitor():
    model = random_model(ModelSettings(width=4, grid_shape=(24, 16, 16)), seed=0)
    grids = {s: np.random.default_rng(i).normal(40, 60, (24, 16, 16)).astype(np.float32)
             for i, s in enumerate(("right", "left"))}
    r = loaded_views(grids, model, rounds=1)
    for name in ("views", "one_stream_views"):
        assert r[f"{name}_quiet_s"] > 0 and r[f"{name}_loaded_s"] > 0
        # The seconds are rounded to 10 ms and the slowdown to 0.01: the slowdown lies within the
        # ratios their rounding allows (a tiny test model runs in tens of ms, so this is wide).
        quiet, loaded = r[f"{name}_quiet_s"], r[f"{name}_loaded_s"]
        low, high = (loaded - 0.005) / (quiet + 0.005), (loaded + 0.005) / max(quiet - 0.005, 1e-9)
        assert low - 0.006 <= r[f"{name}_loaded_slowdown"] <= high + 0.006
    assert r["views_loaded_slowdown"] is not None
    assert _busy_loops() == []


def test_the_competitor_is_cpu_bound_and_pinned_where_the_os_allows():
    proc = start_competitor()
    try:
        p = psutil.Process(proc.pid)
        time.sleep(1.0)
        assert p.cpu_times().user > 0.05  # it burns CPU (even on a machine loaded by other tests)
        if hasattr(p, "cpu_affinity"):
            assert p.cpu_affinity() == [0]
    finally:
        proc.kill()
        proc.wait()


def test_the_memory_sampled_holds_a_forked_childs_private_pages():
    """``thighseg bench`` samples the segment process plus what its drawing child holds alone."""
    import subprocess
    import sys

    from ThighMuscleSegLib.cli.bench import _rss_mb

    code = ("import os, sys, time, numpy as np\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    block = np.ones(160 * 2**20, np.uint8); print('ready', flush=True); time.sleep(60); os._exit(0)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        assert proc.stdout.readline().strip() == "ready"
        own = psutil.Process(proc.pid).memory_info().rss / 2**20
        assert _rss_mb(proc.pid) - own > 150  # the child's 160 MB, not shared with the parent
    finally:
        for p in psutil.Process(proc.pid).children() + [psutil.Process(proc.pid)]:
            p.kill()
        proc.wait()
