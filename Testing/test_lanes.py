"""The views on parallel lanes (PyTorch or ONNX Runtime) give the labels of the plain per-view
loop they replaced.

Reference: each view's own trained net as saved (batch norm not folded), every slice run,
softmax summed, argmax of the probabilities, fused by the same vote. Tolerance: folding batch
norm into the convolutions changes the logits by float rounding only, so at most one voxel in
10 000 may flip (a near tie); on the bench CT the labels were identical voxel for voxel.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from ThighMuscleSegLib import framing
from ThighMuscleSegLib.defaults import default_model_path
from ThighMuscleSegLib.inference.fusion import fuse_and_clean
from ThighMuscleSegLib.inference.lanes import computed_rows
from ThighMuscleSegLib.inference.torch_nets import inference_net
from ThighMuscleSegLib.inference.predict import predict_thigh, predict_thighs
from ThighMuscleSegLib.inference.prediction import ViewOutputs
from ThighMuscleSegLib.inference.views import gather_slices, view_axis
from ThighMuscleSegLib.models import load_model, window_hu
from ThighMuscleSegLib.progress import Cancelled, Progress

FLIP_TOLERANCE = 1e-4  # share of voxels whose label may differ from the reference


@pytest.fixture(scope="module")
def bundled():
    return load_model(default_model_path())


@pytest.fixture(scope="module")
def thigh_grids(small_phantom):
    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    return {f.side: framing.to_grid(ct, f, "linear") for f in framing.frame_thighs(ct)}


def reference_views(grid: np.ndarray, model) -> ViewOutputs:
    """The plain loop: unfolded nets, every slice, softmax then argmax."""
    s = model.settings
    volume = window_hu(grid, s.hu_window)
    prob_sum = torch.zeros((s.num_classes, *grid.shape))
    labels = {}
    with torch.inference_mode():
        for view in s.views:
            net, axis = model.net(view).eval(), view_axis(view)
            probs = [net(torch.from_numpy(gather_slices(volume, axis, i, i + 1, s.channel_offsets_voxels()))).softmax(1)
                     for i in range(grid.shape[axis])]
            stacked = torch.cat(probs).movedim(0, 1).movedim(1, axis + 1)  # (K, z, y, x)
            prob_sum += stacked
            labels[view] = stacked.argmax(0).to(torch.uint8).numpy()
    return ViewOutputs(labels, prob_sum.numpy(), "cpu")


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_lanes_give_the_labels_of_the_plain_loop(bundled, thigh_grids, engine):
    side, grid = next(iter(thigh_grids.items()))
    reference = fuse_and_clean(reference_views(grid, bundled))
    fast = predict_thigh(grid, bundled, device="cpu", threads=2, engine=engine)
    assert (fast.labels > 0).sum() > 1000  # a real thigh, not an empty field
    for view in bundled.settings.views:
        assert np.mean(fast.view_labels[view] != reference.view_labels[view]) <= FLIP_TOLERANCE, view
    assert np.mean(fast.labels != reference.labels) <= FLIP_TOLERANCE
    assert np.mean(fast.disagreement != reference.disagreement) <= FLIP_TOLERANCE


def test_both_thighs_at_once_equal_each_alone_and_any_lane_count(bundled, thigh_grids):
    together = predict_thighs(thigh_grids, bundled, device="cpu", threads=3)  # 3 lanes on any machine
    assert set(together) == set(thigh_grids) == {"right", "left"}
    for side, grid in thigh_grids.items():
        alone = predict_thigh(grid, bundled, device="cpu", threads=1)
        np.testing.assert_array_equal(together[side].labels, alone.labels)
        np.testing.assert_array_equal(together[side].disagreement, alone.disagreement)


def test_folded_net_matches_the_saved_one(bundled):
    net = bundled.net("coronal").eval()
    x = torch.rand(2, 3, 36, 28)
    with torch.inference_mode():
        folded = inference_net(net, torch.device("cpu"))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x.contiguous(memory_format=torch.channels_last)), net(x),
                                   rtol=1e-4, atol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the caller's net untouched


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_only_slices_with_a_nonzero_channel_are_computed(axis):
    volume = np.zeros((20, 16, 12), np.float32)
    index = [slice(None)] * 3
    index[axis] = slice(6, 9)
    volume[tuple(index)] = 0.5
    rows, empty = computed_rows(volume, axis, (-2, 0, 2))
    assert rows.tolist() == list(range(4, 11))  # 6..8 and the slices that see them 2 away
    assert sorted(rows.tolist() + empty.tolist()) == list(range(volume.shape[axis]))


def test_a_cancel_stops_every_lane(bundled, thigh_grids):
    seen = []

    def sink(event):
        seen.append(event)
        if len(seen) == 3:
            progress.cancel()

    progress = Progress({"infer": 1}, sink=sink)
    with pytest.raises(Cancelled):
        predict_thighs(thigh_grids, bundled, device="cpu", threads=2, progress=progress)
    assert len(seen) < 10  # stopped within a batch per lane, not after every view


def _torch_outputs(net, x: np.ndarray):
    with torch.inference_mode():
        logits = net(torch.from_numpy(x))
    return logits.argmax(1).to(torch.uint8).numpy(), logits.softmax(1).permute(0, 2, 3, 1).numpy()


def test_onnx_exports_are_cached_per_weights_and_shape(bundled, tmp_path, monkeypatch):
    from ThighMuscleSegLib.inference import onnx_engine

    monkeypatch.setenv("THIGHSEG_CACHE_DIR", str(tmp_path))
    first = onnx_engine.OnnxViewNets(bundled, {"axial": [(32, 24), (32, 24), (16, 20)]})
    files = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 2  # one per distinct slice shape
    stamps = [f.stat().st_mtime_ns for f in files]
    again = onnx_engine.OnnxViewNets(bundled, {"axial": [(32, 24)]})
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read back, not exported again
    x = np.random.default_rng(0).random((3, 3, 32, 24), dtype=np.float32)
    labels, probs = first("axial", x)
    np.testing.assert_array_equal(again("axial", x)[0], labels)
    want_labels, want_probs = _torch_outputs(bundled.net("axial").eval(), x)
    assert labels.dtype == np.uint8 and probs.shape == (3, 32, 24, bundled.settings.num_classes)
    np.testing.assert_allclose(probs, want_probs, atol=1e-4)
    assert np.mean(labels != want_labels) <= FLIP_TOLERANCE
    onnx_engine.OnnxViewNets(bundled, {"coronal": [(32, 24)]})
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 3  # other weights: another file


def test_changed_weights_are_exported_again_not_read_from_the_cache(tmp_path, monkeypatch):
    from ThighMuscleSegLib.inference import onnx_engine

    monkeypatch.setenv("THIGHSEG_CACHE_DIR", str(tmp_path))
    model = load_model(default_model_path())
    x = np.random.default_rng(1).random((2, 3, 24, 20), dtype=np.float32)
    before = onnx_engine.OnnxViewNets(model, {"sagittal": [(24, 20)]})("sagittal", x)[1]
    with torch.no_grad():  # what fine-tuning does to the nets of a model it was given
        next(model.net("sagittal").parameters()).mul_(1.5)
    after = onnx_engine.OnnxViewNets(model, {"sagittal": [(24, 20)]})("sagittal", x)[1]
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
    np.testing.assert_allclose(after, _torch_outputs(model.net("sagittal").eval(), x)[1], atol=1e-4)
    assert np.abs(after - before).max() > 1e-3


def test_an_unknown_engine_is_refused(bundled, thigh_grids):
    grid = next(iter(thigh_grids.values()))
    with pytest.raises(ValueError, match="engine"):
        predict_thigh(grid, bundled, device="cpu", engine="tensorrt")


def test_a_damaged_cached_export_is_replaced(bundled, tmp_path, monkeypatch):
    from ThighMuscleSegLib.inference import onnx_engine

    monkeypatch.setenv("THIGHSEG_CACHE_DIR", str(tmp_path))
    onnx_engine.OnnxViewNets(bundled, {"sagittal": [(24, 20)]})
    (cached,) = (tmp_path / "onnx").glob("*.onnx")
    cached.write_bytes(b"half a file")  # a disk that filled up, a copy cut short
    again = onnx_engine.OnnxViewNets(bundled, {"sagittal": [(24, 20)]})
    x = np.random.default_rng(2).random((2, 3, 24, 20), dtype=np.float32)
    np.testing.assert_allclose(again("sagittal", x)[1], _torch_outputs(bundled.net("sagittal").eval(), x)[1],
                               atol=1e-4)
    assert cached.read_bytes() != b"half a file"


NO_TORCH_RUN = """
import sys
import SimpleITK as sitk
from ThighMuscleSegLib.defaults import default_model_path
from ThighMuscleSegLib.models import load_model
from ThighMuscleSegLib.pipeline import segment_ct
result = segment_ct(sitk.ReadImage(sys.argv[1]), load_model(default_model_path(), lazy=True), device="cpu")
print(int((sitk.GetArrayViewFromImage(result.labels) > 0).sum()), "torch" in sys.modules)
"""


def test_with_its_graphs_cached_a_segmentation_never_imports_torch(small_phantom, tmp_path):
    """Importing torch is 2-4 s of a 16 s segmentation: the ONNX Runtime path does without it."""
    import subprocess
    import sys

    from ThighMuscleSegLib.inference import onnx_engine

    if not onnx_engine.available():
        pytest.skip("onnxruntime is not installed")
    env = {**__import__("os").environ, "THIGHSEG_CACHE_DIR": str(tmp_path)}
    ct = str(small_phantom / "ct.nii.gz")
    runs = [subprocess.run([sys.executable, "-c", NO_TORCH_RUN, ct], env=env, capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    assert runs[0][1] == "True"  # the first run exported the graphs: that needs torch
    assert runs[1] == [runs[0][0], "False"]  # the same labels, torch never imported
    assert int(runs[0][0]) > 1000
