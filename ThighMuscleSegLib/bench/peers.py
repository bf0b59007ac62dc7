"""``thighseg bench --peers``: the three peer networks of the README table (TotalSegmentator's
fast nnU-Net at 3 mm, nnU-Net 3d_fullres at 1.5 mm, Auto3DSeg SegResNet at 1.5 mm; configured in
``peer_nets``) and this project's three 2D views, run on the same thigh fields in the same
process: seconds for both thighs, GFLOP per thigh, and each peer's seconds over the views'.

Compute only: the views are timed by ``infer_thighs`` on both thighs at once, as ``thighseg
segment`` runs them (nets, windowing, softmax sum, argmax; no fusion, clean-up or de-crop);
each peer's input is the field resampled to its resolution before the clock starts, its sliding
window and argmax are timed. Random weights for the peers;
the views use the model given. On a GPU each net first runs once untimed (cuDNN set-up)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from . import peer_nets as P

# Stand-in for nnU-Net's CTNormalization (clip to the foreground's 0.5-99.5 percentiles, then
# z-score): the values do not change the compute, only keep activations in a normal range.
_CT_CLIP, _CT_MEAN, _CT_STD = (-1000.0, 1500.0), 100.0, 300.0


def peers_benchmark(ct: sitk.Image, model_path: Path, device: str = "cpu", half: bool | None = None,
                    log: Callable[[str], None] | None = None) -> dict:
    """Both thighs of ``ct`` framed as ``thighseg segment`` frames them, then ``peers_on_grids``."""
    from .. import framing
    from ..models.model_file import load_model

    frames = framing.frame_thighs(ct)
    grids = [framing.to_grid(ct, f, "linear") for f in frames]
    return peers_on_grids(grids, load_model(model_path), device=device, half=half, log=log)


def peers_on_grids(grids: Sequence[np.ndarray], model, spacing_mm: float | None = None, device: str = "cpu",
                   half: bool | None = None, log: Callable[[str], None] | None = None,
                   peers: Sequence[P.PeerSpec] | None = None) -> dict:
    """Times our views and each peer on the thigh fields ``grids`` (HU, (z, y, x), on the model's
    grid of ``spacing_mm``). ``peers``: default ``peer_nets.default_peers``."""
    from ..inference.device import resolve_device

    say = log or (lambda _m: None)
    dev, why = resolve_device(device)
    if why:
        say(why)
    half = dev.type == "cuda" if half is None else half
    spacing_mm = spacing_mm or model.settings.spacing_mm
    peers = tuple(peers) if peers is not None else P.default_peers(model.settings.num_classes)
    if not grids:
        raise ValueError("no thigh fields to benchmark")
    views_s, views_flops, views_detail = _time_views(grids, model, dev, say)
    result = {"peers": {}, "gflop": {}, "ratios": {}, "views_s": round(views_s, 3),
              "views_gflop": round(views_flops / 1e9, 1),
              "details": {"device": str(dev), "half": half, "thighs": len(grids),
                          "field_mm": [round(s * spacing_mm, 1) for s in grids[0].shape],
                          "views": views_detail}}
    for spec in peers:
        seconds, detail = _time_peer(spec, grids, spacing_mm, dev, half, say)
        result["peers"][spec.name] = round(seconds, 3)
        result["gflop"][spec.name] = detail.pop("gflop_per_thigh")
        result["ratios"][spec.name] = round(seconds / views_s, 2) if views_s > 0 else None
        result["details"][spec.name] = detail
    result["targets"] = _targets(result)
    return result


def _targets(result: dict) -> dict:
    """The issue's speed targets against the peers measured here (None: that peer not run)."""
    def ratio_of(part: str):
        return next((r for n, r in result["ratios"].items() if part in n and r is not None), None)

    fast, fullres = ratio_of("fast"), ratio_of("fullres")
    return {"views_5x_faster_than_fast": None if fast is None else fast >= 5,
            "views_50x_faster_than_fullres_1.5mm": None if fullres is None else fullres >= 50}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _time_views(grids, model, dev: torch.device, say) -> tuple[float, float, dict]:
    """Seconds of ``infer_thighs`` on all ``grids`` together and the views' FLOPs per thigh (one
    slice per view counted, times the slices along that view's axis; the engine skips all-air
    slices, so it computes less than that)."""
    from ..inference.predict import infer_thighs
    from ..inference.views import view_axis

    settings = model.settings
    shape = grids[0].shape
    flops, per_view = 0, {}
    for view in settings.views:
        axis = view_axis(view)
        plane = tuple(s for a, s in enumerate(shape) if a != axis)
        one = P.flops_of(model.net(view), (1, settings.in_channels) + plane)
        flops += one * shape[axis]
        per_view[view] = {"slice": list(plane), "slices": shape[axis], "gflop": round(one * shape[axis] / 1e9, 1)}
    fields = {f"thigh_{i}": g for i, g in enumerate(grids)}
    if dev.type != "cpu":
        infer_thighs(fields, model, device=str(dev))  # untimed: cuDNN picks its kernels
    say(f"views: {len(grids)} thighs on {dev}")
    _sync(dev)
    t0 = time.perf_counter()
    infer_thighs(fields, model, device=str(dev))
    _sync(dev)
    seconds = time.perf_counter() - t0
    detail = {"resolution_mm": settings.spacing_mm, "grid": list(shape), "per_view": per_view,
              "classes": settings.num_classes, "width": settings.width}
    return seconds, flops, detail


def peer_input(grid: np.ndarray, spacing_mm: float, target_mm: float) -> torch.Tensor:
    """The field resampled (trilinear) to the peer's resolution and normalised, (1, 1, z, y, x)."""
    shape = tuple(max(1, round(s * spacing_mm / target_mm)) for s in grid.shape)
    x = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[None, None]
    x = torch.nn.functional.interpolate(x, size=shape, mode="trilinear", align_corners=False)
    return (x.clamp(*_CT_CLIP) - _CT_MEAN) / _CT_STD


def _time_peer(spec: P.PeerSpec, grids, spacing_mm: float, dev: torch.device, half: bool,
               say) -> tuple[float, dict]:
    inputs = [peer_input(g, spacing_mm, spec.spacing_mm) for g in grids]
    patch = P.patch_for(spec, tuple(inputs[0].shape[2:]))
    net, config = P.build_net(spec, patch)
    one_patch = P.flops_of(net, (1, 1) + tuple(patch))
    net = net.to(dev)
    say(f"{spec.name}: {len(grids)} thighs of {list(inputs[0].shape[2:])} voxels at {spec.spacing_mm} mm, "
        f"patch {list(patch)}")

    def run(x):
        with torch.inference_mode():
            if spec.window == "nnunet":
                labels, tiles = P.nnunet_window(net, x, patch, spec.step, spec.num_classes, half)
            else:
                labels, tiles = P.monai_window(net, x, patch, spec.step, half)
            labels.cpu()
        return tiles

    if dev.type != "cpu":
        run(inputs[0].to(dev))  # untimed warm-up
    seconds, tiles = 0.0, []
    for x in inputs:
        x = x.to(dev)
        _sync(dev)
        t0 = time.perf_counter()
        tiles.append(run(x))
        _sync(dev)
        seconds += time.perf_counter() - t0
    del net
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    detail = {"tool": spec.tool, "resolution_mm": spec.spacing_mm, "image": list(inputs[0].shape[2:]),
              "patch": list(patch), "tiles_per_thigh": tiles,
              ("tile_step_size" if spec.window == "nnunet" else "overlap"): spec.step,
              "mirroring": False, "classes": spec.num_classes, **config,
              "gflop_per_patch": round(one_patch / 1e9, 1),
              "gflop_per_thigh": round(one_patch * sum(tiles) / len(tiles) / 1e9, 1)}
    return seconds, detail


def print_peers(result: dict) -> None:
    """An ASCII table: network, resolution, patch, GFLOP per thigh, seconds for the thighs, x our views."""
    d = result["details"]
    rows = [("this project's three 2D views", f"{d['views']['resolution_mm']:g} mm",
             "slices " + " / ".join("x".join(map(str, v["slice"])) for v in d["views"]["per_view"].values()),
             f"{result['views_gflop']:,.0f}", f"{result['views_s']:.2f}", "1")]
    for name, seconds in result["peers"].items():
        p = d[name]
        patch = "x".join(map(str, p["patch"])) + f" x {p['tiles_per_thigh'][0]} per thigh"
        rows.append((name, f"{p['resolution_mm']:g} mm", patch,
                     f"{result['gflop'][name]:,.0f}", f"{seconds:.2f}", f"{result['ratios'][name]}"))
    head = ("network", "resolution", "patch (z y x)", "GFLOP per thigh", f"s, {d['thighs']} thighs", "x our views")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print(f"\npeers on {d['device']}{' (half precision)' if d['half'] else ''}, "
          f"{d['thighs']} thigh fields of {' x '.join(f'{v:g}' for v in d['field_mm'])} mm (z y x):")
    for r in [head] + rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
    t = result.get("targets", {})
    print("  targets: " + ", ".join(f"{k} {'met' if v else 'not met' if v is not None else 'not run'}"
                                     for k, v in t.items()))

