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
        ratio = r[f"{name}_loaded_s"] / r[f"{name}_quiet_s"]  # of the rounded seconds: 10 ms rounding
        assert abs(r[f"{name}_loaded_slowdown"] - ratio) <= 0.01 / r[f"{name}_quiet_s"] * ratio + 0.01
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
