"""Segment framed thighs: the entry point of inference (``predict_thighs``, ``predict_thigh``).

Flow: the views' nets on parallel lanes (``lanes``, each batch run by ``onnx_engine`` or
``torch_nets``; a 3D model goes to ``sliding3d``), then ``fusion`` (vote, clean); both make a
``prediction.ThighPrediction``. torch is imported only by the PyTorch engine and the 3D model.

Memory per thigh (full grid 180x128x128 = 2.95 M voxels, 11 classes): the only class-wide
volume is one float32 running sum of the views' softmax probabilities, 11 x 2.95 M x 4 B =
130 MB, shared by all views (it breaks voting ties and is the mean fusion). Each view keeps
only its argmax as uint8 (3 MB). Both thighs of a CT run together: about 2 x 150 MB + one
batch of activations per lane (~40 MB at batch 4, width 16), never 3 views x 11 classes x
float32 (390 MB) per thigh and never three copies of the input per view.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from ..io import InputError
from ..models.model_file import Model
from ..models.settings import window_hu
from . import onnx_engine, voting
from .device import device_name, torch_threads
from .fusion import fuse_and_clean
from .lanes import cpu_budget, lane_count, run_views
from .prediction import ThighPrediction, ViewOutputs
from .views import view_axis

DEFAULT_BATCH_SIZE = 4  # measured fastest on a 2-core CPU at width 16 (docs/engine.md)


def check_grid(grid_hu: np.ndarray) -> np.ndarray:
    grid = np.asarray(grid_hu)
    if grid.ndim != 3 or min(grid.shape) < 1:
        raise InputError(f"the framed thigh must be a 3-D (z, y, x) volume, not shape {grid.shape}")
    if not np.issubdtype(grid.dtype, np.number):
        raise InputError(f"the framed thigh must hold numbers (HU), not {grid.dtype}")
    if not np.isfinite(grid).all():
        raise InputError("the framed thigh holds NaN or infinite values: the CT or its framing is broken")
    return grid


def predict_thigh(grid_hu: np.ndarray, model: Model, device: str = "auto",
                  batch_size: int = DEFAULT_BATCH_SIZE, progress=None, fusion: str = "vote",
                  clean: bool = True, threads: int | None = None,
                  log: Callable[[str], None] | None = None, engine: str = "auto") -> ThighPrediction:
    """Labels of one framed thigh (HU on the model grid, any (z, y, x) shape).

    ``progress``: a progress.Progress; stages "infer", "fuse", "clean" are reported (and
    each update may raise Cancelled). ``log`` receives the device fallback message.
    ``engine``: "auto" (ONNX Runtime on the CPU where installed, else PyTorch), "torch" or
    "onnxruntime" (``onnx_engine.chosen_engine``).
    """
    return predict_thighs({"thigh": grid_hu}, model, device, batch_size, progress, fusion, clean, threads,
                          log, engine=engine)["thigh"]


def predict_thighs(grids_hu: dict[str, np.ndarray], model: Model, device: str = "auto",
                   batch_size: int = DEFAULT_BATCH_SIZE, progress=None, fusion: str = "vote",
                   clean: bool = True, threads: int | None = None,
                   log: Callable[[str], None] | None = None, fuse_progress=None,
                   engine: str = "auto", analysed: dict[str, slice] | None = None) -> dict[str, ThighPrediction]:
    """``predict_thigh`` for several framed thighs (key -> HU grid), their views run together on
    the lanes (``lanes``): both thighs of a CT keep every core busy to the end.
    ``fuse_progress(key)``: the progress for one thigh's "fuse" and "clean" (default ``progress``).
    ``analysed``: key -> the grid slices of the analysed field, where a grid reads beyond it
    (the per-class statistics are taken there; default: the whole grid)."""
    grids = {k: check_grid(g) for k, g in grids_hu.items()}
    if fusion not in voting.FUSIONS:
        raise ValueError(f"fusion must be one of {voting.FUSIONS}, not {fusion!r}")
    dev, why = device_name(device)
    if why:
        _say(progress, log, "infer", why)
    if model.settings.architecture == "3d":
        return _predict_3d(grids, model, dev, progress, clean, threads)
    outputs = _run_views(grids, model, dev, batch_size, progress, threads, engine=engine)
    # The thighs fused and cleaned side by side (0.46 -> 0.26-0.35 s for the bench CT's two on two
    # cores: most of it is numpy and scipy.ndimage, which leave Python's lock free).
    with ThreadPoolExecutor(max(1, min(len(outputs), cpu_budget(threads)))) as pool:
        done = {k: pool.submit(fuse_and_clean, o, fusion, clean, fuse_progress(k) if fuse_progress else progress,
                               (analysed or {}).get(k, slice(None)))
                for k, o in outputs.items()}
        return {k: f.result() for k, f in done.items()}


def infer_views(grid_hu: np.ndarray, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
                progress=None, threads: int | None = None, engine: str = "auto") -> ViewOutputs:
    """Only the nets' part of ``predict_thigh`` (2D / 2.5D models): each view's labels and the
    summed probabilities, to fuse later (the quality calibration fuses damaged copies of them)."""
    return infer_thighs({"thigh": grid_hu}, model, device, batch_size, progress, threads, engine=engine)["thigh"]


def infer_thighs(grids_hu: dict[str, np.ndarray], model: Model, device: str = "auto",
                 batch_size: int = DEFAULT_BATCH_SIZE, progress=None, threads: int | None = None,
                 lanes: int | None = None, engine: str = "auto") -> dict[str, ViewOutputs]:
    """``infer_views`` for several thighs at once. ``lanes`` (default: one per usable CPU) with
    ``threads // lanes`` intra-op threads each; ``lanes=1, threads=N`` is the classic one stream
    of N-thread convolutions (the bench compares the two under load)."""
    grids = {k: check_grid(g) for k, g in grids_hu.items()}
    if model.settings.architecture == "3d":
        raise ValueError("a 3D model has no views to fuse: use predict_thigh")
    dev, why = device_name(device)
    if why:
        _say(progress, None, "infer", why)
    return _run_views(grids, model, dev, batch_size, progress, threads, lanes, engine)


def _predict_3d(grids: dict[str, np.ndarray], model: Model, dev: str, progress, clean: bool,
                threads: int | None) -> dict[str, ThighPrediction]:
    import torch

    from .sliding3d import predict_volume_3d

    # Moving nets to the device inside inference mode would turn the caller's parameters into
    # inference tensors (training validates with this): work on copies.
    copied = Model(model.settings, {v: copy.deepcopy(n) for v, n in model.nets.items()})
    device = torch.device(dev)
    with torch_threads(threads), torch.inference_mode():
        return {k: predict_volume_3d(torch.from_numpy(window_hu(g, model.settings.hu_window)).to(device),
                                     copied, device, progress=progress, clean=clean)
                for k, g in grids.items()}


def _run_views(grids: dict[str, np.ndarray], model: Model, dev: str, batch_size: int, progress,
               threads: int | None, lanes: int | None = None, engine: str = "auto") -> dict[str, ViewOutputs]:
    settings = model.settings
    lanes = lanes or lane_count(dev, threads)
    t0 = time.perf_counter()
    nets = _view_nets(model, dev, grids, engine)
    volumes = {k: window_hu(g, settings.hu_window) for k, g in grids.items()}
    # PyTorch's own threads: the lanes share the budget (one each on the CPU); ONNX Runtime's
    # sessions have one thread each already.
    intra = max(1, cpu_budget(threads) // lanes) if dev.startswith("cpu") else threads
    with torch_threads(intra) if nets.torch_threads else contextlib.nullcontext():
        outputs = run_views(volumes, nets, settings.views, settings.num_classes, settings.channel_offsets_voxels(),
                            batch_size, lanes, progress)
    wall = time.perf_counter() - t0
    for k, o in outputs.items():
        o.seconds["infer"] = wall  # the views' lane seconds overlap: this is the wall time they took
        o.grid_hu = grids[k]
    return outputs


def _view_nets(model: Model, dev: str, grids: dict[str, np.ndarray], engine: str):
    """What runs each view's batches: ONNX Runtime where it runs (``onnx_engine.chosen_engine``),
    else the folded PyTorch nets."""
    if onnx_engine.chosen_engine(engine, dev) == "onnxruntime":
        shapes = {v: [tuple(s for a, s in enumerate(g.shape) if a != view_axis(v)) for g in grids.values()]
                  for v in model.settings.views}
        try:
            return onnx_engine.OnnxViewNets(model, shapes)
        except Exception as e:  # noqa: BLE001 - an exporter or runtime problem must not stop a segmentation
            if engine != "auto":
                raise
            logging.getLogger(__name__).warning("ONNX Runtime unavailable (%s: %s): the views run on PyTorch",
                                                type(e).__name__, e)
    import torch

    from .torch_nets import TorchViewNets

    return TorchViewNets(model.nets, torch.device(dev))


def _say(progress, log: Callable[[str], None] | None, stage: str, message: str) -> None:
    if log is not None:
        log(message)
    else:
        logging.getLogger(__name__).warning(message)
    if progress is not None:
        progress.update(stage, 0.0, message)
