"""``thighseg bench --engines``: one view's net under each engine that fits it, one thread each.

What the views could run on: PyTorch eager (channels-first and channels-last), PyTorch
``torch.compile`` (Inductor: needs a C++ compiler, compiles for tens of seconds per shape),
ONNX Runtime and OpenVINO (each only if installed). Each engine runs the same folded net on
the same batches of four 180 x 128 coronal slices, one intra-op thread (as a lane runs it),
interleaved rounds; the number is the process's CPU time per batch (all its threads: an engine may run
on its own worker thread; a shared machine's other load shows far less in CPU time than in wall
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

SLICE_SHAPE = (180, 128)  # a coronal slice of the model grid
BATCH = 4


def _thread_ms(run: Callable[[], object], repeats: int) -> float:
    run()
    t0 = time.process_time()
    for _ in range(repeats):
        run()
    return 1000 * (time.process_time() - t0) / repeats


def _candidates(net: torch.nn.Module, x: torch.Tensor, log) -> dict[str, Callable[[], object]]:
    from ..inference import onnx_engine
    from ..models.model_file import state_digest

    cl = x.contiguous(memory_format=torch.channels_last)
    net_cf = copy.deepcopy(net).to(memory_format=torch.contiguous_format)
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    runs = {"torch eager": lambda: net_cf(x), "torch eager channels-last": lambda: net_cl(cl)}
    try:
        t0 = time.perf_counter()
        compiled = torch.compile(copy.deepcopy(net_cl), dynamic=False)
        with torch.inference_mode():
            compiled(cl)
        log(f"torch.compile: compiled in {time.perf_counter() - t0:.1f} s")
        runs["torch.compile (inductor)"] = lambda: compiled(cl)
    except Exception as e:  # noqa: BLE001 - no compiler, an unsupported platform: reported, not fatal
        log(f"torch.compile unavailable: {type(e).__name__}: {str(e)[:120]}")
    xn = x.numpy()
    if onnx_engine.available():  # the graph segment runs: the net, its softmax and argmax
        key = onnx_engine.graph_key(f"bench:{state_digest(net)}", x.shape[1], SLICE_SHAPE)
        session = onnx_engine.open_session(key, lambda: onnx_engine.export_graph(net, x.shape[1], SLICE_SHAPE))
        runs["onnxruntime"] = lambda: session.run(None, {"x": xn})
    try:
        import openvino as ov

        with tempfile.TemporaryDirectory(prefix="thighseg-ov-") as tmp:
            graph = Path(tmp) / "view.onnx"
            graph.write_bytes(onnx_engine.export_graph(net, x.shape[1], SLICE_SHAPE))
            model = ov.Core().read_model(str(graph))  # the runtime's reader: no conversion tool
        compiled_ov = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1})
        runs["openvino"] = lambda: compiled_ov(xn)
    except ImportError:
        log("openvino not installed (pip install openvino to compare it)")
    except Exception as e:  # noqa: BLE001
        log(f"openvino unavailable: {type(e).__name__}: {str(e)[:120]}")
    return runs


def engines_benchmark(model_path, rounds: int = 4, repeats: int = 8, log=print) -> dict:
    """CPU ms per batch of four coronal slices for each engine, and each one's ratio to the
    engine ``thighseg segment`` uses by default."""
    from ..inference import onnx_engine
    from ..inference.torch_nets import inference_net
    from ..models import load_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = inference_net(load_model(model_path).net("coronal"), torch.device("cpu"))
        x = torch.from_numpy(np.random.default_rng(0).random((BATCH, 3, *SLICE_SHAPE), dtype=np.float32))
        runs = _candidates(net, x, log)
        times: dict[str, list[float]] = {name: [] for name in runs}
        with torch.inference_mode():
            for _ in range(rounds):
                for name, run in runs.items():
                    times[name].append(_thread_ms(run, repeats))
    finally:
        torch.set_num_threads(before)
    ms = {name: round(statistics.median(v), 1) for name, v in times.items()}
    default = "onnxruntime" if onnx_engine.available() else "torch eager channels-last"
    return {"engines_ms_per_batch": ms, "engines_default": default,
            "engines_ratio_to_default": {k: round(v / ms[default], 2) for k, v in ms.items()},
            "engines_batch": f"{BATCH} x 3 x {SLICE_SHAPE[0]} x {SLICE_SHAPE[1]}, one thread, process CPU time"}


def engines_in_lanes(grids: dict[str, np.ndarray], model_path, rounds: int = 2) -> dict:
    """Both thighs' views as ``segment`` runs them (``infer_thighs``, its lanes) on each engine
    it can use: wall and process CPU seconds, medians of interleaved rounds."""
    from ..inference import onnx_engine
    from ..inference.predict import infer_thighs
    from ..models import load_model

    model = load_model(model_path)
    engines = ["torch"] + (["onnxruntime"] if onnx_engine.available() else [])
    infer_thighs(grids, model, device="cpu", engine=engines[-1])  # the export, once, is not the views' cost
    wall: dict[str, list[float]] = {e: [] for e in engines}
    cpu: dict[str, list[float]] = {e: [] for e in engines}
    for _ in range(rounds):
        for engine in engines:
            t0, c0 = time.perf_counter(), time.process_time()
            infer_thighs(grids, model, device="cpu", engine=engine)
            wall[engine].append(time.perf_counter() - t0)
            cpu[engine].append(time.process_time() - c0)
    return {"engines_in_lanes_wall_s": {e: round(statistics.median(v), 2) for e, v in wall.items()},
            "engines_in_lanes_cpu_s": {e: round(statistics.median(v), 2) for e, v in cpu.items()}}


def print_engines(result: dict) -> None:
    print(f"\nengines, one view's net, {result['engines_batch']} (median of rounds):")
    for name, ms in sorted(result["engines_ms_per_batch"].items(), key=lambda kv: kv[1]):
        mark = "  <- segment's default" if name == result["engines_default"] else ""
        print(f"  {name:<28} {ms:7.1f} ms  ({result['engines_ratio_to_default'][name]}x){mark}")
    if "engines_in_lanes_wall_s" in result:
        print("both bench thighs' views on the lanes (infer_thighs): "
              + ", ".join(f"{e} {w} s wall / {result['engines_in_lanes_cpu_s'][e]} s CPU"
                          for e, w in result["engines_in_lanes_wall_s"].items()))
