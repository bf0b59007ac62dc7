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
def test_the_child_waits_for_what_is_sent_later():
    call = forked.ForkedCall(_pid_and_later, np.ones(10), later=True)
    call.send({"volumes": [1.5, 2.5]})
    pid, total, sent = call.result()
    assert pid != os.getpid() and total == 10.0 and sent == {"volumes": [1.5, 2.5]}


def _pid_and_later(a: np.ndarray, later) -> tuple[int, float, object]:
    return os.getpid(), float(a.sum()), later()


# Run in a child process: drawing here renders vtk through Mesa's EGL in the test process, and a
# later import of torch's triton in that process (the training tests) then crashes (two LLVMs).
THREE_WAYS = r"""
import sys
from pathlib import Path
from ThighMuscleSegLib import forked, io as tio
from ThighMuscleSegLib.models import load_model
from ThighMuscleSegLib.pipeline import segment_ct, write_outputs

ct_path, model_path, out = sys.argv[1:4]
ct, model = tio.read_ct(ct_path), load_model(model_path)
result = segment_ct(ct, model, device="cpu")
assert result.pictures is None
write_outputs(result, Path(out) / "here")
forked.allow_forking()
write_outputs(result, Path(out) / "at write")
early = segment_ct(ct, model, device="cpu")
assert early.pictures is not None
write_outputs(early, Path(out) / "while measuring")
assert early.pictures is None  # taken by the write
print("written")
"""


@linux_only
def test_outputs_are_the_same_whether_the_report_is_drawn_here_or_in_a_child(small_phantom, random_model_file,
                                                                           tmp_path):
    """Three ways: no forking; the children started by write_outputs; the report's child started
    by segment_ct, drawing while the volumes are measured (what ``thighseg segment`` does)."""
    import subprocess

    import matplotlib.image as mpimg

    r = subprocess.run([sys.executable, "-c", THREE_WAYS, str(small_phantom / "ct.nii.gz"), str(random_model_file),
                        str(tmp_path)], capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("written"), r.stderr[-2000:]
    folders = {way: tmp_path / way for way in ("here", "at write", "while measuring")}
    names = sorted(p.name for p in folders["here"].iterdir())
    assert "report.png" in names
    for way in ("at write", "while measuring"):
        assert sorted(p.name for p in folders[way].iterdir()) == names
        for picture in ("report.png", "profiles.png"):
            assert np.array_equal(mpimg.imread(folders["here"] / picture), mpimg.imread(folders[way] / picture)), \
                (way, picture)
        for name in ("volumes.csv", "measurements.csv", "slabs.csv", "frames.json"):
            assert (folders["here"] / name).read_bytes() == (folders[way] / name).read_bytes(), (way, name)


@linux_only
def test_a_drawing_child_is_stopped_when_the_write_fails(small_phantom, random_model_file, tmp_path):
    from ThighMuscleSegLib import io as tio
    from ThighMuscleSegLib.models import load_model
    from ThighMuscleSegLib.pipeline import segment_ct, write_outputs

    forked.allow_forking()
    try:
        result = segment_ct(tio.read_ct(small_phantom / "ct.nii.gz"), load_model(random_model_file), device="cpu")
    finally:
        forked.allow_forking(False)
    pid = result.pictures._child.pid
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "volumes.csv").write_text("an earlier result", encoding="utf-8")
    with pytest.raises(tio.InputError, match="already holds results"):
        write_outputs(result, tmp_path / "out")  # results are never replaced without overwrite
    with pytest.raises(ChildProcessError):  # killed and reaped
        os.waitpid(pid, os.WNOHANG)
    assert (tmp_path / "out" / "volumes.csv").read_text(encoding="utf-8") == "an earlier result"
