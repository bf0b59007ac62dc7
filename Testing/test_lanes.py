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
from ThighMuscleSegLib.inference.lanes import computed_rows, inference_net
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
    volume = torch.from_numpy(window_hu(grid, s.hu_window))
    prob_sum = torch.zeros((s.num_classes, *grid.shape))
    labels = {}
    with torch.inference_mode():
        for view in s.views:
            net, axis = model.net(view).eval(), view_axis(view)
            probs = [net(gather_slices(volume, axis, i, i + 1, s.channel_offsets_voxels())).softmax(1)
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
    volume = torch.zeros(20, 16, 12)
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


def test_onnx_exports_are_cached_per_weights_and_shape(bundled, tmp_path, monkeypatch):
    from ThighMuscleSegLib.inference import onnx_engine

    monkeypatch.setenv("THIGHSEG_CACHE_DIR", str(tmp_path))
    net = inference_net(bundled.net("axial"), torch.device("cpu"))
    first = onnx_engine.OnnxNet(net, 3, [(32, 24), (32, 24), (16, 20)])
    files = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 2  # one per distinct slice shape
    stamps = [f.stat().st_mtime_ns for f in files]
    again = onnx_engine.OnnxNet(net, 3, [(32, 24)])
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read back, not exported again
    x = torch.rand(3, 3, 32, 24)
    with torch.inference_mode():
        torch.testing.assert_close(again(x), first(x))
        torch.testing.assert_close(first(x), net(x), rtol=1e-4, atol=1e-4)
        assert first(x).is_contiguous(memory_format=torch.channels_last)
    other = inference_net(bundled.net("coronal"), torch.device("cpu"))
    onnx_engine.OnnxNet(other, 3, [(32, 24)])
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 3  # other weights: another file


def test_an_unknown_engine_is_refused(bundled, thigh_grids):
    grid = next(iter(thigh_grids.values()))
    with pytest.raises(ValueError, match="engine"):
        predict_thigh(grid, bundled, device="cpu", engine="tensorrt")


def test_a_damaged_cached_export_is_replaced(bundled, tmp_path, monkeypatch):
    from ThighMuscleSegLib.inference import onnx_engine

    monkeypatch.setenv("THIGHSEG_CACHE_DIR", str(tmp_path))
    net = inference_net(bundled.net("sagittal"), torch.device("cpu"))
    onnx_engine.OnnxNet(net, 3, [(24, 20)])
    (cached,) = (tmp_path / "onnx").glob("*.onnx")
    cached.write_bytes(b"half a file")  # a disk that filled up, a copy cut short
    again = onnx_engine.OnnxNet(net, 3, [(24, 20)])
    x = torch.rand(2, 3, 24, 20)
    with torch.inference_mode():
        torch.testing.assert_close(again(x), net(x), rtol=1e-4, atol=1e-4)
    assert cached.read_bytes() != b"half a file"
