"""The 2D views' nets on every framed thigh at once, a batch of slices at a time, on parallel lanes.

Why lanes: one process with N intra-op threads per convolution waits at every operation for
its slowest thread, so one busy core beside it slows all of them (measured here: 2.5x with one
busy-loop process). Instead each lane is a Python thread running whole batches with one
intra-op thread; lanes pull (thigh, view, slices) jobs from one queue, so a lane on a busy core
simply takes fewer jobs (1.6x with the same busy loop, and faster on a quiet machine too).

Less work, same labels:
- batch norm is folded into the convolution before it (inference only: eval statistics);
- slices whose three input channels are all zero after windowing (air and fat only: the window
  starts at -100 HU) are not run: every such slice has the same input, so the net's output
  for one zero slice is placed at all of them;
- the argmax is taken of the logits in their channels-last layout (the softmax's channel-first
  output made argmax the slowest step of a batch).
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .device import autocast_for, usable_cpus
from .prediction import ViewOutputs
from .views import gather_rows, view_axis

MAX_LANES = 8  # beyond this, the lanes' Python (one GIL) costs more than another lane gains


def cpu_budget(threads: int | None = None) -> int:
    """CPUs the views may use: ``threads``, else the usable CPUs, but no more than torch's own
    thread setting (a Ray actor given one CPU sets it to one; so may a user)."""
    return max(1, threads or min(usable_cpus(), torch.get_num_threads()))


def lane_count(device: torch.device, threads: int | None = None) -> int:
    """Lanes for ``device``: one per CPU of the budget (at most MAX_LANES), one on a GPU."""
    if device.type != "cpu":
        return 1
    return min(MAX_LANES, cpu_budget(threads))


def inference_net(net: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``net`` for inference on ``device``: eval mode, batch norm folded into the
    convolutions, channels-last. The caller's net is left as it is (training validates with it)."""
    net = copy.deepcopy(net).eval()
    _fold_batch_norm(net)
    layout = torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format
    return net.to(device).to(memory_format=layout)


def _fold_batch_norm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            setattr(module, name, nn.Sequential(*_folded(list(child))))
        else:
            _fold_batch_norm(child)


def _folded(layers: list[nn.Module]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d) and out and isinstance(out[-1], nn.Conv2d):
            out[-1] = fuse_conv_bn_eval(out[-1], layer)
        else:
            out.append(layer)
    return out


@dataclass
class _Thigh:
    """One thigh's input and what the lanes accumulate for it."""

    volume: torch.Tensor  # windowed (z, y, x)
    prob_sum: torch.Tensor  # (K, z, y, x)
    labels: dict[str, torch.Tensor]  # view -> uint8 (z, y, x)
    seconds: dict[str, float] = field(default_factory=dict)  # view -> lane seconds
    lock: threading.Lock = field(default_factory=threading.Lock)


def computed_rows(volume: torch.Tensor, axis: int, offsets: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Slices along ``axis`` whose input (slices ``i + o``, clamped) is not all zero, and the others."""
    n = volume.shape[axis]
    filled = volume.ne(0).movedim(axis, 0).flatten(1).any(dim=1)
    rows = torch.arange(n, device=volume.device)
    needed = torch.zeros(n, dtype=torch.bool, device=volume.device)
    for o in offsets:
        needed |= filled[(rows + o).clamp(0, n - 1)]
    return rows[needed], rows[~needed]


def _place(thigh: _Thigh, view: str, axis: int, rows: torch.Tensor, logits: torch.Tensor,
           copies: int = 1) -> None:
    """One batch's argmax into the view's labels and its softmax into the thigh's sum; with
    ``copies`` > 1, a single slice's output placed at every one of ``rows``."""
    labels = logits.argmax(dim=1).to(torch.uint8)  # (B, H, W); logits channels-last: fast
    probs = logits.float().softmax(dim=1)
    if copies > 1:  # broadcast after the softmax: one slice's work, not one per copy
        labels, probs = labels.expand(copies, *labels.shape[1:]), probs.expand(copies, *probs.shape[1:])
    thigh.labels[view].index_copy_(axis, rows, labels.movedim(0, axis))
    with thigh.lock:  # the views of one thigh add into the same sum from different lanes
        thigh.prob_sum.index_add_(axis + 1, rows, probs.movedim(0, 1).movedim(1, axis + 1))


def _zero_slices(thigh: _Thigh, view: str, axis: int, rows: torch.Tensor, net: nn.Module,
                 layout, dev: torch.device, channels: int) -> None:
    """The net's output for an all-zero input, placed at every slice in ``rows``."""
    if rows.numel() == 0:
        return
    shape = [s for d, s in enumerate(thigh.volume.shape) if d != axis]
    x = torch.zeros((1, channels, *shape), device=dev).contiguous(memory_format=layout)
    with autocast_for(dev):
        logits = net(x)
    _place(thigh, view, axis, rows, logits, copies=rows.numel())


def run_views(volumes: dict[str, torch.Tensor], nets: dict[str, nn.Module], num_classes: int,
              offsets: tuple[int, ...], dev: torch.device, batch_size: int, lanes: int,
              progress=None) -> dict[str, ViewOutputs]:
    """Every view of every thigh in ``volumes`` (key -> windowed (z, y, x) on ``dev``).

    ``progress`` (a progress.Progress or None) gets stage "infer" with the share of slices
    done; an update may raise Cancelled, which stops every lane before the next batch."""
    layout = torch.channels_last if dev.type in ("cpu", "cuda") else torch.contiguous_format
    thighs = {k: _Thigh(v, torch.zeros((num_classes, *v.shape), dtype=torch.float32, device=dev),
                        {view: torch.zeros(v.shape, dtype=torch.uint8, device=dev) for view in nets})
              for k, v in volumes.items()}
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    total = 0
    for key, thigh in thighs.items():
        for view, net in nets.items():
            axis = view_axis(view)
            rows, empty = computed_rows(thigh.volume, axis, offsets)
            t0 = time.perf_counter()
            _zero_slices(thigh, view, axis, empty, net, layout, dev, len(offsets))
            thigh.seconds[view] = time.perf_counter() - t0
            for start in range(0, rows.numel(), batch_size):
                jobs.put((key, view, axis, rows[start:start + batch_size]))
                total += 1
    state = _LaneState(total, progress)
    workers = [threading.Thread(target=_lane, args=(jobs, thighs, nets, offsets, layout, dev, state),
                                name=f"thighseg-lane-{i}", daemon=True) for i in range(lanes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    state.raise_failure()
    return {k: ViewOutputs({v: t.labels[v].cpu().numpy() for v in nets}, t.prob_sum.cpu().numpy(), str(dev),
                           dict(t.seconds))
            for k, t in thighs.items()}


class _LaneState:
    """Shared by the lanes: jobs done (for progress), the first failure (to stop the others)."""

    def __init__(self, total: int, progress):
        self.total, self.done, self.progress = total, 0, progress
        self.failure: BaseException | None = None
        self._lock = threading.Lock()

    def finished_one(self, view: str) -> None:
        with self._lock:
            self.done += 1
            if self.progress is not None and self.failure is None:
                try:
                    self.progress.update("infer", self.done / max(self.total, 1),
                                         f"{view} view: batch {self.done}/{self.total}")
                except BaseException as e:  # Cancelled: every lane stops before its next batch
                    self.failure = e

    def fail(self, error: BaseException) -> None:
        with self._lock:
            self.failure = self.failure or error

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


def _lane(jobs: queue.SimpleQueue, thighs: dict[str, _Thigh], nets: dict[str, nn.Module], offsets, layout,
          dev: torch.device, state: _LaneState) -> None:
    try:
        with torch.inference_mode():
            while state.failure is None:
                try:
                    key, view, axis, rows = jobs.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                thigh = thighs[key]
                x = gather_rows(thigh.volume, axis, rows, offsets).contiguous(memory_format=layout)
                with autocast_for(dev):
                    logits = nets[view](x)
                _place(thigh, view, axis, rows, logits)
                with thigh.lock:
                    thigh.seconds[view] += time.perf_counter() - t0
                state.finished_one(view)
    except BaseException as e:  # handed to the caller's thread by raise_failure
        state.fail(e)
