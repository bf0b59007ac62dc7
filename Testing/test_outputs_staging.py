import os

import pytest

from ThighMuscleSegLib.io import InputError
from ThighMuscleSegLib.outputs import StagedOutputs


def test_outputs_appear_only_when_all_are_written(tmp_path):
    with StagedOutputs(tmp_path / "out") as stage:
        stage.path("labels.nii.gz").write_text("a")
        stage.path("volumes.csv").write_text("b")
        assert not (tmp_path / "out" / "labels.nii.gz").exists()
    assert sorted(os.listdir(tmp_path / "out")) == ["labels.nii.gz", "volumes.csv"]


def test_a_failure_leaves_nothing_behind(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with StagedOutputs(tmp_path / "out") as stage:
            stage.path("labels.nii.gz").write_text("a")
            raise KeyboardInterrupt
    assert not (tmp_path / "out").exists()  # made for this run: removed with its staging folder


def test_existing_results_are_not_overwritten_without_asking(tmp_path):
    (tmp_path / "labels.nii.gz").write_text("earlier result")
    with pytest.raises(InputError, match="already holds results"):
        with StagedOutputs(tmp_path):
            pass
    assert (tmp_path / "labels.nii.gz").read_text(encoding="utf-8") == "earlier result"
    with StagedOutputs(tmp_path, overwrite=True) as stage:
        stage.path("labels.nii.gz").write_text("new")
    assert (tmp_path / "labels.nii.gz").read_text(encoding="utf-8") == "new"


def test_progress_is_weighted_monotonic_and_cancellable():
    from ThighMuscleSegLib.progress import Cancelled, Progress, RenamedStages

    events = []
    p = Progress({"read": 1, "infer right": 2, "infer left": 2}, sink=events.append)
    p.update("read", 1.0, "read")
    RenamedStages(p, {"infer": "infer right"}).update("infer", 0.5, "half of the right thigh")
    assert events[-1] == {"stage": "infer right", "percent": 40.0, "message": "half of the right thigh"}
    p.update("read", 0.0)  # a late report of an earlier stage never moves the bar back
    assert events[-1]["percent"] == 40.0
    p.cancel()
    with pytest.raises(Cancelled):
        p.update("infer left", 0.1)
    p.finish("done", outputs=["x"])
    assert events[-1] == {"stage": "done", "percent": 100.0, "outputs": ["x"]}
