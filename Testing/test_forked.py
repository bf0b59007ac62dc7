"""``ThighMuscleSegLib/forked.py``: a call run in a forked child brings back its value or its
exception, a cancelled child is gone, and the pipeline forks only where the process allows it."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from ThighMuscleSegLib import forked

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forking helpers: Linux only")


def _pid_and_sum(a: np.ndarray) -> tuple[int, float]:
    return os.getpid(), float(a.sum())


def _fails() -> None:
    raise ValueError("the drawing went wrong")


def _sleeps() -> None:
    time.sleep(60)


@linux_only
def test_the_call_runs_in_another_process_and_brings_back_its_value():
    data = np.arange(1_000_000, dtype=np.float64)  # read by the child without a copy being sent
    call = forked.ForkedCall(_pid_and_sum, data)
    pid, total = call.result()
    assert pid != os.getpid()
    assert total == float(data.sum())


@linux_only
def test_the_childs_exception_is_raised_here():
    with pytest.raises(ValueError, match="the drawing went wrong"):
        forked.ForkedCall(_fails).result()


@linux_only
def test_a_cancelled_child_is_killed_and_reaped():
    call = forked.ForkedCall(_sleeps)
    pid = call.pid
    call.cancel()
    assert call.pid is None
    with pytest.raises(ChildProcessError):  # reaped: no such child any more
        os.waitpid(pid, os.WNOHANG)


def test_forking_is_off_until_the_process_allows_it():
    forked.allow_forking(False)
    assert not forked.forking_allowed()
    forked.allow_forking()
    try:
        assert forked.forking_allowed() == sys.platform.startswith("linux")
    finally:
        forked.allow_forking(False)


@linux_only
def test_outputs_are_the_same_whether_the_report_is_drawn_in_a_child_or_here(small_phantom, random_model_file,
                                                                           tmp_path):
    import matplotlib.image as mpimg

    from ThighMuscleSegLib import io as tio
    from ThighMuscleSegLib.models import load_model
    from ThighMuscleSegLib.pipeline import segment_ct, write_outputs

    result = segment_ct(tio.read_ct(small_phantom / "ct.nii.gz"), load_model(random_model_file), device="cpu")
    folders = {}
    for allowed in (False, True):
        forked.allow_forking(allowed)
        try:
            folders[allowed] = tmp_path / f"forking_{allowed}"
            write_outputs(result, folders[allowed])
        finally:
            forked.allow_forking(False)
    names = sorted(p.name for p in folders[False].iterdir())
    assert names == sorted(p.name for p in folders[True].iterdir())
    assert "report.png" in names
    here, child = (mpimg.imread(folders[a] / "report.png") for a in (False, True))
    assert here.shape == child.shape and np.array_equal(here, child)
    for name in ("volumes.csv", "measurements.csv", "slabs.csv", "frames.json"):
        assert (folders[False] / name).read_bytes() == (folders[True] / name).read_bytes(), name
