"""The views' nets on ONNX Runtime: 40 % less CPU time than PyTorch eager for these small 2D U-Nets.

Measured on this project's 2-core CPU (2026-12-02, one intra-op thread, folded batch norm,
CPU time of the calling thread): the three views' nets of one bench thigh took 4.8 s in
PyTorch eager channels-last and 2.9 s in ONNX Runtime (``docs/engine.md`` "Engines"). The
logits agree to 1e-5; the labels agree voxel for voxel on the bench CT (tested to 1 in 10^4).

Each (view, slice shape) is exported once per set of weights (``torch.onnx.export``, the
TorchScript exporter: static height and width, so the U-Net's pad-to-a-multiple-of-4 branch is
traced for the real shape; dynamic batch) and cached on disk under ``cache_dir()`` keyed by a
hash of the weights, the shape and the torch version: a later run opens the session in
milliseconds. Without onnxruntime/onnx, or if the export fails, inference stays on PyTorch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnxruntime")
CACHE_FILES_KEPT = 24  # a few models x three views x a few grid shapes
OPSET = 17


def available() -> bool:
    """Whether onnxruntime and the exporter's ``onnx`` are installed (found, not imported:
    importing onnx takes 0.7 s, and only an export needs it)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def chosen_engine(engine: str, device: torch.device) -> str:
    """What runs the views: "auto" is ONNX Runtime on the CPU where installed, else PyTorch; a
    GPU always runs PyTorch. "onnxruntime" asked for by name must be installed.

    OpenVINO was measured too (``thighseg bench --engines``): faster than ONNX Runtime in a
    tight loop of one net, no faster inside the lanes (docs/engine.md), and three times the size."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "torch" or device.type != "cpu":
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


class _ChannelsLastLogits(nn.Module):
    """The net with its logits transposed to (B, H, W, K): the layout the lanes' argmax is fast on."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).permute(0, 2, 3, 1)


def _weights_key(net: nn.Module, in_channels: int, shape: tuple[int, int]) -> str:
    h = hashlib.sha256(f"{torch.__version__}|{OPSET}|{in_channels}|{shape}".encode())
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _export(net: nn.Module, in_channels: int, shape: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    example = torch.zeros((2, in_channels, *shape))
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's note that the pad branch is fixed: that is the point
        torch.onnx.export(_ChannelsLastLogits(net), (example,), buf, dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=OPSET)
    return buf.getvalue()


def onnx_graph(net: nn.Module, in_channels: int, shape: tuple[int, int]) -> bytes:
    """The net as an ONNX graph for (B, in_channels, *shape) inputs, logits out as (B, H, W, K):
    from the cache when it holds it, else exported and cached (atomically; never required)."""
    path = onnx_graph_file(net, in_channels, shape)
    return path.read_bytes() if isinstance(path, Path) else path


def onnx_graph_file(net: nn.Module, in_channels: int, shape: tuple[int, int]) -> Path | bytes:
    """The cached graph's file (exported first when missing), or the graph's bytes where the
    cache cannot be written (a read-only home: exported again next run)."""
    folder = cache_dir()
    path = folder / f"{_weights_key(net, in_channels, shape)}.onnx"
    if path.is_file():
        return path
    data = _export(net, in_channels, shape)
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


class OnnxNet:
    """Called like the torch net: (B, C, H, W) float tensor -> logits (B, K, H, W) with
    channels-last strides. One ONNX Runtime session per slice shape, one intra-op thread
    each: the lanes run several at once (``run`` is thread-safe and releases the GIL)."""

    def __init__(self, net: nn.Module, in_channels: int, shapes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        self._sessions = {}
        for shape in {tuple(s) for s in shapes}:
            try:
                graph = onnx_graph(net, in_channels, shape)
                session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            except Exception:  # noqa: BLE001 - a damaged cache file: drop it and export once more
                cached = onnx_graph_file(net, in_channels, shape)
                if isinstance(cached, Path):
                    cached.unlink(missing_ok=True)
                session = ort.InferenceSession(onnx_graph(net, in_channels, shape), options,
                                               providers=["CPUExecutionProvider"])
            self._sessions[shape] = session

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        session = self._sessions[tuple(x.shape[2:])]
        logits = session.run(None, {"x": np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(logits).permute(0, 3, 1, 2)
