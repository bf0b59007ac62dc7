"""Segment one framed thigh: the entry point of inference (``predict_thigh``) and the 2D views' nets.

Flow: the views' nets here (a 3D model goes to ``sliding3d``), then ``fusion`` (vote, clean);
both make a ``prediction.ThighPrediction``.

Memory (full grid 180x128x128 = 2.95 M voxels, 11 classes): the only class-wide volume is
one float32 running sum of the views' softmax probabilities, 11 x 2.95 M x 4 B = 130 MB,
shared by all views (it breaks voting ties and is the mean fusion). Each view keeps only
its argmax as uint8 (3 MB). Peak is about 130 MB + the windowed input (12 MB) + a few uint8
volumes + one batch of activations (~40 MB at batch 4, width 16), never 3 views x 11
classes x float32 (390 MB) and never three copies of the input per view.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Callable

import numpy as np
import torch

from ..io import InputError
from ..models.model_file import Model
from ..models.settings import window_hu
from . import voting
from .device import autocast_for, resolve_device, torch_threads
from .fusion import fuse_and_clean
from .prediction import ThighPrediction, ViewOutputs
from .sliding3d import predict_volume_3d
from .views import batch_ranges, gather_slices, place_slices, scatter_view, view_axis

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
                  log: Callable[[str], None] | None = None) -> ThighPrediction:
    """Labels of one framed thigh (HU on the model grid, any (z, y, x) shape).

    ``progress``: a progress.Progress; stages "infer", "fuse", "clean" are reported (and
    each update may raise Cancelled). ``log`` receives the device fallback message.
    """
    grid = check_grid(grid_hu)
    if fusion not in voting.FUSIONS:
        raise ValueError(f"fusion must be one of {voting.FUSIONS}, not {fusion!r}")
    dev, why = resolve_device(device)
    if why:
        _say(progress, log, "infer", why)
    settings = model.settings
    # Work on copies: moving nets to the device and to channels_last inside inference mode
    # would turn the caller's parameters into inference tensors (training validates with this).
    model = Model(settings, {v: copy.deepcopy(n) for v, n in model.nets.items()})
    if settings.architecture == "3d":
        with torch_threads(threads), torch.inference_mode():
            volume = torch.from_numpy(window_hu(grid, settings.hu_window)).to(dev)
            return predict_volume_3d(volume, model, dev, progress=progress, clean=clean)
    outputs = _run_views(grid, model, dev, batch_size, progress, threads)
    return fuse_and_clean(outputs, fusion, clean, progress)


def infer_views(grid_hu: np.ndarray, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
                progress=None, threads: int | None = None) -> ViewOutputs:
    """Only the nets' part of ``predict_thigh`` (2D / 2.5D models): each view's labels and the
    summed probabilities, to fuse later (the quality calibration fuses damaged copies of them)."""
    grid = check_grid(grid_hu)
    if model.settings.architecture == "3d":
        raise ValueError("a 3D model has no views to fuse: use predict_thigh")
    dev, why = resolve_device(device)
    if why:
        _say(progress, None, "infer", why)
    model = Model(model.settings, {v: copy.deepcopy(n) for v, n in model.nets.items()})
    return _run_views(grid, model, dev, batch_size, progress, threads)


def _run_views(grid: np.ndarray, model: Model, dev: torch.device, batch_size: int, progress,
               threads: int | None) -> ViewOutputs:
    settings = model.settings
    with torch_threads(threads), torch.inference_mode():
        volume = torch.from_numpy(window_hu(grid, settings.hu_window)).to(dev)
        prob_sum = torch.zeros((settings.num_classes,) + tuple(grid.shape), dtype=torch.float32, device=dev)
        view_labels: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        total = sum(grid.shape[view_axis(v)] for v in settings.views)
        done = 0
        for view in settings.views:
            t0 = time.perf_counter()
            net = model.net(view).to(dev).eval()
            labels, done = _infer_view(volume, net, view, settings.channel_offsets_voxels(), prob_sum,
                                       batch_size, dev, progress, done, total)
            view_labels[view] = labels
            seconds[view] = time.perf_counter() - t0
        prob_sum_np = prob_sum.cpu().numpy()
        del prob_sum, volume
    return ViewOutputs(view_labels, prob_sum_np, str(dev), seconds)


def _infer_view(volume: torch.Tensor, net: torch.nn.Module, view: str, offsets: tuple[int, ...],
                prob_sum: torch.Tensor, batch_size: int, dev: torch.device, progress,
                done: int, total: int) -> tuple[np.ndarray, int]:
    axis = view_axis(view)
    count = volume.shape[axis]
    # channels_last (N H W C) convolutions measured 1.5x faster on the CPU; also suits cuDNN.
    layout = torch.channels_last if dev.type in ("cpu", "cuda") else torch.contiguous_format
    net = net.to(memory_format=layout)
    labels = torch.empty(volume.shape, dtype=torch.uint8, device=dev)
    for start, stop in batch_ranges(count, batch_size):
        x = gather_slices(volume, axis, start, stop, offsets).contiguous(memory_format=layout)
        with autocast_for(dev):
            logits = net(x)
        probs = logits.float().softmax(dim=1)
        scatter_view(prob_sum, axis, start, probs)
        place_slices(labels, axis, start, probs.argmax(dim=1).to(torch.uint8))
        done += stop - start
        if progress is not None:
            progress.update("infer", done / total, f"{view} view: slice {stop}/{count}")
    return labels.cpu().numpy(), done


def _say(progress, log: Callable[[str], None] | None, stage: str, message: str) -> None:
    if log is not None:
        log(message)
    else:
        logging.getLogger(__name__).warning(message)
    if progress is not None:
        progress.update(stage, 0.0, message)
