"""The views' nets on ONNX Runtime: 40 % less CPU time than PyTorch eager for these small 2D U-Nets,
and no torch at all once the graphs are exported.

Measured on this project's 2-core CPU (2026-12-02, one intra-op thread, folded batch norm,
CPU time of the calling thread): the three views' nets of one bench thigh took 4.8 s in
PyTorch eager channels-last and 2.9 s in ONNX Runtime (``docs/engine.md`` "Engines"). The
labels agree voxel for voxel on the bench CT (tested to 1 in 10^4).

Each (view, slice shape) is exported once per set of weights (``torch.onnx.export``, the
TorchScript exporter: static height and width, so the U-Net's pad-to-a-multiple-of-4 branch is
traced for the real shape; dynamic batch) with the batch's softmax and argmax in the graph,
channels-last, and cached on disk under ``cache_dir()``. The cache key is the model file's
weights digest (``Model.weights_key``), so a later run finds its graphs without importing
torch or building the nets (importing torch is 2-4 s of a segmentation on 2 cores). Without
onnxruntime/onnx, or if the export fails, inference stays on PyTorch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from ..models.model_file import Model

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnxruntime")
CACHE_FILES_KEPT = 24  # a few models x three views x a few grid shapes
OPSET = 17
GRAPH_RECIPE = "folded-bn|channels-last|softmax+argmax|3"  # what the graph holds: a new recipe, new files


def available() -> bool:
    """Whether onnxruntime and the exporter's ``onnx`` are installed (found, not imported:
    importing onnx takes 0.7 s, and only an export needs it)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def chosen_engine(engine: str, device: str) -> str:
    """What runs the views: "auto" is ONNX Runtime on the CPU where installed, else PyTorch; a
    GPU always runs PyTorch. "onnxruntime" asked for by name must be installed.

    OpenVINO was measured too (``thighseg bench --engines``): faster than ONNX Runtime in a
    tight loop of one net, no faster inside the lanes (docs/engine.md), and three times the size."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "torch" or not device.startswith("cpu"):
        return "torch"
    if engine == "onnxruntime" and not available():
        raise RuntimeError("engine 'onnxruntime' needs the onnxruntime and onnx packages: pip install onnxruntime onnx")
    return "onnxruntime" if available() else "torch"


def cache_dir() -> Path:
    """``$THIGHSEG_CACHE_DIR`` or the user's cache folder (``$XDG_CACHE_HOME`` or ~/.cache) / thighseg."""
    if os.environ.get("THIGHSEG_CACHE_DIR"):
        return Path(os.environ["THIGHSEG_CACHE_DIR"]) / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "thighseg" / "onnx"


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def graph_key(weights_key: str, in_channels: int, shape: tuple[int, int]) -> str:
    """The cache file's name for one net's weights (``Model.weights_key``) and slice shape."""
    text = f"{GRAPH_RECIPE}|{_torch_version()}|{OPSET}|{in_channels}|{tuple(shape)}|{weights_key}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def export_graph(net: "nn.Module", in_channels: int, shape: tuple[int, int]) -> bytes:
    """``net`` (already folded for inference) as an ONNX graph: input "x" (B, in_channels, *shape)
    float32; outputs "probs" (B, H, W, K) float32, the softmax, and "labels" (B, H, W) uint8."""
    import torch

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            logits = self.net(x).permute(0, 2, 3, 1)  # softmax and argmax over the last axis: ONNX Runtime's fast case
            return logits.softmax(dim=-1), logits.argmax(dim=-1).to(torch.uint8)

    buf = io.BytesIO()
    example = torch.zeros((2, in_channels, *shape))
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's note that the pad branch is fixed: that is the point
        torch.onnx.export(Outputs().eval(), (example,), buf, dynamo=False, input_names=["x"],
                          output_names=["probs", "labels"],
                          dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}, "labels": {0: "batch"}},
                          opset_version=OPSET)
    return buf.getvalue()


def cached_graph(key: str, export: Callable[[], bytes]) -> Path | bytes:
    """The cached graph's file (``export()``-ed and cached atomically first when missing), or the
    graph's bytes where the cache cannot be written (a read-only home: exported again next run)."""
    folder = cache_dir()
    path = folder / f"{key}.onnx"
    if path.is_file():
        return path
    data = export()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        _prune(folder)
    except OSError as e:
        log.info("ONNX cache not writable (%s): the nets are exported again next run", e)
        return data
    return path


def _prune(folder: Path) -> None:
    files = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[CACHE_FILES_KEPT:]:
        old.unlink(missing_ok=True)


def open_session(key: str, export: Callable[[], bytes]):
    """An ONNX Runtime session of the graph cached under ``key``, with one intra-op thread: the
    lanes run several at once (``run`` is thread-safe and releases the GIL). A damaged cache file
    (a disk that filled up) is dropped and exported once more."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # warnings about unused initialisers are noise here
    graph = cached_graph(key, export)
    try:
        return ort.InferenceSession(str(graph) if isinstance(graph, Path) else graph, options,
                                    providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - onnxruntime raises its own types for a broken graph
        if not isinstance(graph, Path):
            raise
        graph.unlink(missing_ok=True)
        return ort.InferenceSession(cached_graph(key, export), options, providers=["CPUExecutionProvider"])


class OnnxViewNets:
    """``lanes.ViewNets`` on ONNX Runtime: one session per (view, slice shape) of ``model``.

    ``shapes``: view -> the slice shapes (H, W) it will see. The nets are built (torch imported)
    only for graphs not in the cache yet."""

    device = "cpu"
    torch_threads = False  # each session runs on one thread of its own

    def __init__(self, model: "Model", shapes: dict[str, Iterable[tuple[int, int]]]):
        channels = model.settings.in_channels
        folded: dict[str, "nn.Module"] = {}

        def exporter(view: str, shape: tuple[int, int]) -> Callable[[], bytes]:
            def export() -> bytes:
                if view not in folded:
                    import torch

                    from .torch_nets import inference_net
                    folded[view] = inference_net(model.net(view), torch.device("cpu"))
                return export_graph(folded[view], channels, shape)
            return export

        self._sessions = {}
        for view, view_shapes in shapes.items():
            key = model.weights_key(view)  # before any export builds the nets
            for shape in {tuple(s) for s in view_shapes}:
                self._sessions[view, shape] = open_session(graph_key(key, channels, shape), exporter(view, shape))

    def __call__(self, view: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        session = self._sessions[view, tuple(x.shape[2:])]
        probs, labels = session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})
        return labels, probs
