"""The 2D views' nets on every framed thigh at once, a batch of slices at a time, on parallel lanes.

Why lanes: one process with N intra-op threads per convolution waits at every operation for
its slowest thread, so one busy core beside it slows all of them (measured here: 2.5x with one
busy-loop process). Instead each lane is a Python thread running whole batches with one
intra-op thread; lanes pull (thigh, view, slices) jobs from one queue, so a lane on a busy core
simply takes fewer jobs (1.6x with the same busy loop, and faster on a quiet machine too).

What runs a batch is a ``ViewNets`` (``onnx_engine.OnnxViewNets`` on the CPU, or
``torch_nets.TorchViewNets``): batch in, each slice's labels and softmax out, as numpy. All the
rest is here, in numpy, without torch: which slices to run, gathering their inputs, placing the
outputs. Less work, same labels:
- slices whose three input channels are all zero after windowing (air and fat only: the window
  starts at -100 HU) are not run: every such slice has the same input, so the net's output
  for one zero slice is placed at all of them;
- the nets' outputs come channels-last, (B, H, W, K): the layout argmax and softmax are fast on.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from .device import thread_limit, usable_cpus
from .prediction import ViewOutputs
from .views import gather_rows, view_axis

MAX_LANES = 8  # beyond this, the lanes' Python (one GIL) costs more than another lane gains


class ViewNets(Protocol):
    """Runs one view's net on a batch of inputs (B, C, H, W) float32: returns its labels
    (B, H, W) uint8 and softmax probabilities (B, H, W, K) float32. Called from several lanes
    at once."""

    device: str
    torch_threads: bool  # whether it runs on PyTorch's intra-op threads (the lanes then share them out)

    def __call__(self, view: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def cpu_budget(threads: int | None = None) -> int:
    """CPUs the views may use: ``threads``, else the usable CPUs, but no more than the process's
    own thread setting (a Ray actor given one CPU has one; so may a user)."""
    limit = thread_limit()
    return max(1, threads or min(usable_cpus(), limit or usable_cpus()))


def lane_count(device: str, threads: int | None = None) -> int:
    """Lanes for ``device``: one per CPU of the budget (at most MAX_LANES), one on a GPU."""
    if not device.startswith("cpu"):
        return 1
    return min(MAX_LANES, cpu_budget(threads))


@dataclass
class _Thigh:
    """One thigh's input and what the lanes accumulate for it."""

    volume: np.ndarray  # windowed (z, y, x) float32
    prob_sum: np.ndarray  # (z, y, x, K) float32: a batch's channels-last softmax adds in without a transpose
    labels: dict[str, np.ndarray]  # view -> uint8 (z, y, x)
    seconds: dict[str, float] = field(default_factory=dict)  # view -> lane seconds
    lock: threading.Lock = field(default_factory=threading.Lock)


def computed_rows(volume: np.ndarray, axis: int, offsets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Slices along ``axis`` whose input (slices ``i + o``, clamped) is not all zero, and the others."""
    n = volume.shape[axis]
    filled = np.moveaxis(volume, axis, 0).reshape(n, -1).any(axis=1)
    rows = np.arange(n)
    needed = np.zeros(n, dtype=bool)
    for o in offsets:
        needed |= filled[np.clip(rows + o, 0, n - 1)]
    return rows[needed], rows[~needed]


def _along(volume: np.ndarray, axis: int, rows: np.ndarray):
    """``volume`` with ``axis`` first, and an index of ``rows``: a slice where they are consecutive
    (a view written in place, no gather), else the index array."""
    first = np.moveaxis(volume, axis, 0)
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return first, slice(int(rows[0]), int(rows[-1]) + 1)
    return first, rows


def _place(thigh: _Thigh, view: str, axis: int, rows: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> None:
    """One batch's labels (B, H, W) into the view's labels and its softmax (B, H, W, K) into the
    thigh's sum; a batch of one is placed at every one of ``rows`` (the all-zero slices)."""
    target, at = _along(thigh.labels[view], axis, rows)
    target[at] = labels
    sums, at = _along(thigh.prob_sum, axis, rows)  # (n, H, W, K)
    with thigh.lock:  # the views of one thigh add into the same sum from different lanes
        sums[at] += probs


def run_views(volumes: dict[str, np.ndarray], nets: ViewNets, views: Sequence[str], num_classes: int,
              offsets: tuple[int, ...], batch_size: int, lanes: int, progress=None) -> dict[str, ViewOutputs]:
    """Every view of every thigh in ``volumes`` (key -> windowed (z, y, x) float32).

    ``progress`` (a progress.Progress or None) gets stage "infer" with the share of slices
    done; an update may raise Cancelled, which stops every lane before the next batch."""
    thighs = {k: _Thigh(v, np.zeros((*v.shape, num_classes), np.float32),
                        {view: np.zeros(v.shape, np.uint8) for view in views})
              for k, v in volumes.items()}
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    total = 0
    for key, thigh in thighs.items():
        for view in views:
            axis = view_axis(view)
            rows, empty = computed_rows(thigh.volume, axis, offsets)
            t0 = time.perf_counter()
            if empty.size:
                shape = [s for d, s in enumerate(thigh.volume.shape) if d != axis]
                _place(thigh, view, axis, empty, *nets(view, np.zeros((1, len(offsets), *shape), np.float32)))
            thigh.seconds[view] = time.perf_counter() - t0
            for start in range(0, rows.size, batch_size):
                jobs.put((key, view, axis, rows[start:start + batch_size]))
                total += 1
    state = _LaneState(total, progress)
    workers = [threading.Thread(target=_lane, args=(jobs, thighs, nets, offsets, state),
                                name=f"thighseg-lane-{i}", daemon=True) for i in range(lanes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    state.raise_failure()
    return {k: ViewOutputs(dict(t.labels), _classes_first(t.prob_sum), nets.device, dict(t.seconds))
            for k, t in thighs.items()}


def _classes_first(prob_sum: np.ndarray) -> np.ndarray:
    """(z, y, x, K) -> a C-contiguous (K, z, y, x) copy, the layout fusion reads a few slices at a
    time. Measured on one bench thigh: adding every batch into (K, z, y, x) took 1.0 s, into
    channels-last 0.3 s and this copy 0.2 s; fusion on a (K, z, y, x) view of channels-last
    memory instead of the copy, 0.45 s more."""
    return np.ascontiguousarray(np.moveaxis(prob_sum, 3, 0))


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


def _lane(jobs: queue.SimpleQueue, thighs: dict[str, _Thigh], nets: ViewNets, offsets, state: _LaneState) -> None:
    try:
        while state.failure is None:
            try:
                key, view, axis, rows = jobs.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            thigh = thighs[key]
            _place(thigh, view, axis, rows, *nets(view, gather_rows(thigh.volume, axis, rows, offsets)))
            with thigh.lock:
                thigh.seconds[view] += time.perf_counter() - t0
            state.finished_one(view)
    except BaseException as e:  # handed to the caller's thread by raise_failure
        state.fail(e)
