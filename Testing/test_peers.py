"""``thighseg bench --peers`` parts: the peer networks' plans, the tools' sliding windows, the FLOP
count and one whole run on tiny thigh fields (real dynamic-network-architectures and MONAI nets,
the bundled model). Speed itself is never asserted: it lives in ``thighseg bench --peers``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from ThighMuscleSegLib.bench import peer_nets as P


def _specs(our_classes: int) -> dict[str, P.PeerSpec]:
    return {s.name: s for s in P.default_peers(our_classes)}


def test_the_three_peers_are_named_as_the_bench_reports_them():
    names = list(_specs(11))
    for part in ("fast", "fullres", "segresnet"):
        assert sum(part in n for n in names) == 1, names


def test_nnunet_plans_follow_nnunets_planner():
    specs = _specs(11)
    # TotalSegmentator fast: patch 128 x 112 x 112 -> the 112 axes stop at 7 after four poolings,
    # the lone 128 axis (8) is below 12: five stages, the fifth capped at 320 features.
    fast = specs["nnunet_fast_3mm"]
    net, config = P.build_net(fast, fast.patch)
    assert config["stages"] == 5 and config["features_per_stage"] == [32, 64, 128, 256, 320]
    assert config["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * 4
    assert fast.num_classes == P.TOTALSEG_TOTAL_CLASSES and fast.step == 0.8 and fast.spacing_mm == 3.0
    full = specs["nnunet_fullres_1.5mm"]
    _, config = P.build_net(full, full.patch)
    assert config["stages"] == 6 and config["features_per_stage"][-2:] == [320, 320]
    assert full.step == 0.5 and full.num_classes == 11
    out = net.to("meta")(torch.empty((1, 1) + fast.patch, device="meta"))
    assert tuple(out.shape) == (1, fast.num_classes) + fast.patch  # no deep-supervision list


def test_auto3dseg_roi_follows_its_rule():
    # A 256 x 256 x 360 mm field at 1.5 mm: the default roi 224 x 224 x 144 (x y z) is capped at
    # the 170 voxels in-plane, z grows by 1.15 up to the image (240), then floors to 16s.
    roi, levels = P.auto3dseg_roi((240, 171, 171))
    assert roi == (240, 160, 160) and levels == 5
    roi, levels = P.auto3dseg_roi((40, 40, 40))  # a small image: the whole image, floored to 8s
    assert levels == 5 and all(r <= 40 and r % 16 == 0 for r in roi)


def test_nnunet_tile_starts_cover_the_axis_with_at_most_the_step():
    for size, tile, step in ((240, 128, 0.5), (171, 128, 0.5), (120, 128, 0.8), (200, 64, 0.8)):
        starts = P.nnunet_starts(size, tile, step)
        assert starts[0] == 0 and starts[-1] == max(0, size - tile)
        assert all(0 < b - a <= tile * step for a, b in zip(starts, starts[1:]))
        if len(starts) > 2:  # one tile fewer would step further than the step allows
            assert (size - tile) / (len(starts) - 2) > tile * step


class _SignNet(nn.Module):
    """Logits (x, -x): label 1 exactly where the input is negative, whatever the tiling."""

    def forward(self, x):
        return torch.cat([x, -x], dim=1)


@pytest.mark.parametrize("shape", [(21, 30, 17), (40, 33, 50)])
def test_sliding_windows_stitch_every_voxel_back_in_place(shape):
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1, 1) + shape).astype(np.float32))
    expected = (x[0, 0] < 0).to(torch.uint8)
    with torch.inference_mode():
        labels, tiles = P.nnunet_window(_SignNet(), x, (16, 16, 16), 0.5, 2, half=False)
        assert torch.equal(labels, expected)
        assert tiles == np.prod([len(P.nnunet_starts(max(s, 16), 16, 0.5)) for s in shape])
        labels, windows = P.monai_window(_SignNet(), x, (16, 16, 16), 0.625, half=False)
        assert torch.equal(labels, expected) and windows > 1


def test_flops_are_counted_without_computing():
    conv = nn.Conv3d(4, 8, 3, padding=1)
    assert P.flops_of(conv, (1, 4, 10, 12, 14)) == 2 * 4 * 8 * 27 * 10 * 12 * 14
    assert next(conv.parameters()).device.type == "cpu"  # the caller's net stays where it was


@pytest.mark.slow
def test_peers_on_two_tiny_thigh_fields(capsys):
    from ThighMuscleSegLib.bench.peers import peers_on_grids, print_peers
    from ThighMuscleSegLib.defaults import default_model_path
    from ThighMuscleSegLib.models.model_file import load_model

    model = load_model(default_model_path())
    rng = np.random.default_rng(0)
    grids = [rng.normal(40, 60, (16, 16, 16)).astype(np.float32) for _ in range(2)]  # 32 mm fields
    specs = [dataclasses.replace(s, patch=None if s.patch is None else (16, 16, 16))
             for s in P.default_peers(model.settings.num_classes)]
    result = peers_on_grids(grids, model, device="cpu", peers=specs)
    json.dumps(result)  # the bench prints it as JSON
    assert set(result["peers"]) == {s.name for s in specs}
    assert result["views_s"] > 0 and result["views_gflop"] > 0
    for spec in specs:
        seconds, d = result["peers"][spec.name], result["details"][spec.name]
        assert seconds > 0
        # ratios are printed to 0.01 and seconds to 0.001 s: a small ratio carries that rounding
        assert result["ratios"][spec.name] == pytest.approx(seconds / result["views_s"], rel=0.02, abs=0.006)
        assert d["image"] == [round(16 * 2.0 / spec.spacing_mm)] * 3 and len(d["tiles_per_thigh"]) == 2
        tiles = d["tiles_per_thigh"][0]  # GFLOP are rounded to 0.1 per patch and per thigh
        assert result["gflop"][spec.name] == pytest.approx(d["gflop_per_patch"] * tiles, abs=0.05 * tiles + 0.1)
        if spec.window == "nnunet":
            assert d["tiles_per_thigh"][0] == len(P.nnunet_starts(max(d["image"][0], 16), 16, spec.step)) ** 3
    assert set(result["targets"]) == {"views_5x_faster_than_fast", "views_50x_faster_than_fullres_1.5mm"}
    print_peers(result)
    table = capsys.readouterr().out
    assert all(name in table for name in result["peers"]) and "three 2D views" in table
    table.encode("ascii")  # the CLI prints nothing non-ASCII
