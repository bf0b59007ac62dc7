"""Engine core on small grids: reformats, fusion, disagreement, clean-up, prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ThighMuscleSegLib.io import InputError
from ThighMuscleSegLib.inference import (disagreement, gather_slices, keep_largest_components, mean_fusion,
                                         predict_thigh, vote)
from ThighMuscleSegLib.inference.sliding3d import gaussian_weights, window_starts
from ThighMuscleSegLib.models import ModelSettings, random_model, window_hu
from ThighMuscleSegLib.progress import Cancelled, Progress

SHAPE = (12, 10, 8)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_channels_are_the_slices_two_voxels_away_with_ends_replicated(axis):
    n = SHAPE[axis]
    ramp = np.arange(n, dtype=np.float32).reshape([-1 if a == axis else 1 for a in range(3)])
    volume = np.ascontiguousarray(np.broadcast_to(ramp, SHAPE))  # value = index along the view axis
    batch = gather_slices(volume, axis, 0, n, (-2, 0, 2))
    rest = [s for a, s in enumerate(SHAPE) if a != axis]
    assert batch.shape == (n, 3, *rest)
    for i in range(n):
        expected = [max(i - 2, 0), i, min(i + 2, n - 1)]
        assert batch[i, :, 0, 0].tolist() == expected
        assert bool((batch[i] == batch[i, :, :1, :1]).all())  # each channel is a whole slice


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gathered_batches_match_numpy_indexing_and_place_back(axis):
    vol = np.random.default_rng(1).random(SHAPE, dtype=np.float32)
    n = SHAPE[axis]
    rebuilt = np.empty(SHAPE, np.float32)
    for start in range(0, n, 3):
        stop = min(start + 3, n)
        got = gather_slices(vol, axis, start, stop, (-2, 0, 2))
        for b, i in enumerate(range(start, stop)):
            for c, o in enumerate((-2, 0, 2)):
                ref = np.take(vol, int(np.clip(i + o, 0, n - 1)), axis=axis)
                np.testing.assert_array_equal(got[b, c], ref)
        np.moveaxis(rebuilt, axis, 0)[start:stop] = got[:, 1]
    np.testing.assert_array_equal(rebuilt, vol)


def _views(*rows):
    return [np.array(r, np.uint8).reshape(1, 1, -1) for r in rows]


def test_vote_majority_wins():
    views = _views([1, 2, 3, 0], [1, 5, 3, 4], [2, 5, 7, 4])
    assert vote(views, 11).ravel().tolist() == [1, 5, 3, 4]


def test_vote_tie_goes_to_highest_summed_probability_among_the_voted_classes():
    views = _views([1, 1], [2, 2], [3, 3])
    prob = np.zeros((11, 1, 1, 2), np.float32)
    prob[2, ..., 0] = 1.4  # voxel 0: class 2 has the highest summed probability
    prob[3, ..., 1] = 1.2
    prob[9, ...] = 2.9  # class 9 got no vote: it never wins, whatever its probability
    assert vote(views, 11, prob).ravel().tolist() == [2, 3]
    assert vote(views, 11).ravel().tolist() == [1, 1]  # without probabilities: the first view
    # a two-vote majority beats a lone vote with a higher summed probability
    prob2 = np.zeros((11, 1, 1, 1), np.float32)
    prob2[4] = 2.0
    prob2[6] = 0.9
    assert vote(_views([6], [6], [4]), 11, prob2).item() == 6


def test_mean_fusion_takes_the_highest_summed_probability():
    prob = np.zeros((11, 1, 1, 2), np.float32)
    prob[4, ..., 0], prob[6, ..., 0] = 1.0, 1.1
    prob[0, ..., 1] = 3.0
    assert mean_fusion(prob).ravel().tolist() == [6, 0]


def test_disagreement_counts_views_that_differ_from_the_fused_label():
    views = _views([1, 1, 1, 2], [1, 1, 3, 3], [1, 4, 5, 0])
    fused = np.array([1, 1, 1, 3], np.uint8).reshape(1, 1, -1)
    d = disagreement(views, fused)
    assert d.dtype == np.uint8 and d.ravel().tolist() == [0, 1, 2, 2]


def test_largest_component_per_class_keeps_diagonal_contacts_and_removes_islands():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:4, 1:4, 1:4] = 3  # 27 voxels: kept
    labels[7:9, 7:9, 7:9] = 3  # 8 voxels, separate: removed
    labels[4, 4, 4] = 3  # touches the big block at a corner only: kept (26-connected)
    labels[6:9, 0:2, 0:2] = 5  # the only part of class 5: kept whole
    labels[0, 9, 9] = 5  # island of class 5: removed
    out = keep_largest_components(labels)
    assert (out == 3).sum() == 28 and out[4, 4, 4] == 3 and (out[7:9, 7:9, 7:9] == 0).all()
    assert (out == 5).sum() == 12 and out[0, 9, 9] == 0
    assert set(np.unique(out)) == {0, 3, 5}
    assert labels[8, 8, 8] == 3  # the input is not modified


def test_only_a_part_reaching_into_the_analysed_field_is_kept():
    """Beyond the field (the reach) a muscle's part is kept only as the end of one inside it."""
    labels = np.zeros((20, 8, 8), np.uint8)
    labels[0:5, 1:7, 1:7] = 2  # 180 voxels, wholly beyond the field (slices 6-13): dropped
    labels[8:12, 2:4, 2:4] = 2  # 16 voxels inside: kept
    labels[11:18, 5:7, 5:7] = 4  # crosses the field's hip end: kept whole, its end beyond too
    labels[15:20, 0:2, 0:2] = 6  # only beyond the field: no such muscle here
    out = keep_largest_components(labels, within=slice(6, 14))
    assert (out == 2).sum() == 16 and (out[0:5] == 0).all()
    assert (out == 4).sum() == 28 and out[17, 5, 5] == 4
    assert not (out == 6).any()
    np.testing.assert_array_equal(keep_largest_components(labels, within=slice(0, 20)), keep_largest_components(labels))


def _hu_grid(shape=(14, 12, 10), seed=0):
    return np.random.default_rng(seed).normal(40, 150, shape).astype(np.float32)


@pytest.mark.parametrize("arch", ["2.5d", "2d", "3d"])
def test_random_model_predicts_shapes_and_dtypes(arch):
    model = random_model(ModelSettings.for_architecture(arch, width=4, patch_shape=(8, 8, 8)), seed=1)
    grid = _hu_grid()
    pred = predict_thigh(grid, model, device="cpu")
    for vol in (pred.labels, pred.fused_labels, pred.disagreement):
        assert vol.shape == grid.shape and vol.dtype == np.uint8
    assert pred.confidence.dtype == np.float16 and pred.confidence.shape == grid.shape
    assert pred.labels.max() <= 10 and pred.disagreement.max() <= len(model.settings.views)
    assert set(pred.view_labels) == set(model.settings.views)
    np.testing.assert_array_equal(pred.labels, keep_largest_components(pred.fused_labels))


def test_views_fuse_and_disagree_consistently():
    model = random_model(ModelSettings(width=4), seed=2)
    pred = predict_thigh(_hu_grid(), model, device="cpu", batch_size=5)
    views = list(pred.view_labels.values())
    np.testing.assert_array_equal(pred.disagreement, disagreement(views, pred.fused_labels))
    majority = sum(v == pred.fused_labels for v in views) >= 2
    agree2 = (views[0] == views[1]) | (views[0] == views[2]) | (views[1] == views[2])
    assert (majority | ~agree2).all()  # wherever two views agree, the fused label is theirs
    assert 0.0 < pred.confidence.max() <= 1.0
    mean = predict_thigh(_hu_grid(), model, device="cpu", fusion="mean", clean=False)
    np.testing.assert_array_equal(mean.labels, mean.fused_labels)


@pytest.mark.parametrize("view,axis", [("axial", 0), ("coronal", 1)])
def test_view_labels_equal_the_net_on_hand_built_slices(view, axis):
    model = random_model(ModelSettings(width=4), seed=4)
    grid = _hu_grid()
    pred = predict_thigh(grid, model, device="cpu", batch_size=3)
    vol = window_hu(grid, model.settings.hu_window)
    n = grid.shape[axis]
    i = 1
    channels = [np.take(vol, min(max(i + o, 0), n - 1), axis=axis) for o in (-2, 0, 2)]
    with torch.inference_mode():
        logits = model.net(view)(torch.from_numpy(np.stack(channels)[None]))
    expected = logits[0].argmax(0).numpy().astype(np.uint8)
    np.testing.assert_array_equal(np.take(pred.view_labels[view], i, axis=axis), expected)


def test_2d_model_is_the_axial_net_alone():
    model = random_model(ModelSettings.for_architecture("2d", width=4), seed=5)
    pred = predict_thigh(_hu_grid(), model, device="cpu")
    assert not pred.disagreement.any()
    np.testing.assert_array_equal(pred.fused_labels, pred.view_labels["axial"])


def test_3d_window_covering_the_grid_equals_the_net_itself():
    settings = ModelSettings.for_architecture("3d", width=3, patch_shape=(32, 32, 32))
    model = random_model(settings, seed=6)
    grid = _hu_grid((9, 10, 11))
    pred = predict_thigh(grid, model, device="cpu", clean=False)
    with torch.inference_mode():
        x = torch.from_numpy(window_hu(grid, settings.hu_window))[None, None]
        direct = model.net("volume")(x)[0].argmax(0).numpy()
    np.testing.assert_array_equal(pred.labels, direct)


def test_sliding_windows_cover_the_grid_with_positive_weights():
    assert window_starts(180, 96) == [0, 48, 84]
    assert window_starts(20, 32) == [0]
    w = gaussian_weights((6, 8, 4), torch.device("cpu"))
    assert w.shape == (6, 8, 4) and float(w.min()) > 0 and float(w.max()) == pytest.approx(1.0, abs=0.05)


def test_bad_input_is_refused_clearly():
    model = random_model(ModelSettings(width=2))
    with pytest.raises(InputError, match="3-D"):
        predict_thigh(np.zeros((5, 5), np.float32), model)
    bad = _hu_grid()
    bad[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        predict_thigh(bad, model)
    with pytest.raises(InputError, match="unknown device"):
        predict_thigh(_hu_grid(), model, device="tpu")
    with pytest.raises(ValueError, match="fusion"):
        predict_thigh(_hu_grid(), model, fusion="max")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: no fallback to see")
def test_missing_gpu_falls_back_to_cpu_with_a_message():
    messages: list[str] = []
    pred = predict_thigh(_hu_grid(), random_model(ModelSettings(width=2)), device="cuda", log=messages.append)
    assert pred.device == "cpu" and "CUDA is not available" in messages[0]


def test_progress_reports_each_stage_and_cancel_stops_the_run():
    events: list[dict] = []
    progress = Progress({"infer": 8, "fuse": 1, "clean": 1}, sink=events.append)
    predict_thigh(_hu_grid(), random_model(ModelSettings(width=2)), device="cpu", progress=progress)
    stages = [e["stage"] for e in events]
    assert {"infer", "fuse", "clean"} <= set(stages)
    assert any("sagittal view" in e["message"] for e in events)
    cancelled = Progress({"infer": 1})
    cancelled.cancel()
    with pytest.raises(Cancelled):
        predict_thigh(_hu_grid(), random_model(ModelSettings(width=2)), device="cpu", progress=cancelled)


def test_prediction_leaves_the_callers_nets_trainable():
    import torch

    from ThighMuscleSegLib.inference.predict import predict_thigh
    from ThighMuscleSegLib.models import ModelSettings, random_model

    model = random_model(ModelSettings(width=4), seed=0)
    predict_thigh(np.zeros((8, 12, 12), np.float32), model, device="cpu")
    net = model.net("axial").train()
    loss = net(torch.zeros(1, 3, 12, 12)).sum()
    loss.backward()  # fails if predict_thigh turned the parameters into inference tensors
    assert all(p.grad is not None for p in net.parameters())
