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
    assert os.listdir(tmp_path / "out") == []


def test_existing_results_are_not_overwritten_without_asking(tmp_path):
    (tmp_path / "labels.nii.gz").write_text("earlier result")
    with pytest.raises(InputError, match="already holds results"):
        with StagedOutputs(tmp_path):
            pass
    assert (tmp_path / "labels.nii.gz").read_text() == "earlier result"
    with StagedOutputs(tmp_path, overwrite=True) as stage:
        stage.path("labels.nii.gz").write_text("new")
    assert (tmp_path / "labels.nii.gz").read_text() == "new"
