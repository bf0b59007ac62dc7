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


def test_image_writers_on_threads_leave_the_label_maps_buffers_where_they_are(tmp_path):
    """SimpleITK's GetArrayViewFromImage copies an image that an ITK writer holds, and views
    taken before then read freed memory once the writer lets go: write_outputs' writer threads
    get copies, so the maps' buffers never move while other threads view them."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import SimpleITK as sitk

    from ThighMuscleSegLib.pipeline import Segmentation, _write_images

    arr = np.zeros((200, 512, 512), np.uint8)
    arr[50:150, 100:400, 100:400] = 3
    labels, disagreement = sitk.GetImageFromArray(arr), sitk.GetImageFromArray(arr // 3)
    result = Segmentation(labels, labels, disagreement, [], "cpu")
    before = {id(img): sitk.GetArrayViewFromImage(img).ctypes.data for img in (labels, disagreement)}
    moved = False
    with ThreadPoolExecutor(4) as pool:
        tasks = _write_images(pool, result, lambda name: tmp_path / name, None)
        while not all(t.done() for t in tasks):
            moved |= any(sitk.GetArrayViewFromImage(img).ctypes.data != before[id(img)]
                         for img in (labels, disagreement))
            time.sleep(0.001)
        for t in tasks:
            t.result()
    assert not moved
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "labels.nii.gz"))), arr)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "disagreement.nii.gz"))), arr // 3)
