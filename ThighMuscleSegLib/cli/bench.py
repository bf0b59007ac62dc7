"""``thighseg bench``: per-stage times and peak memory of ``thighseg segment`` on a phantom CT
of 512 × 512 × 500, on the CPU and (where present) the GPU, against a 3D U-Net run on the
same thighs. Speed lives here, never in timed tests.

Peak memory: the larger of the kernel's peak RSS and the sampled RSS of the ``segment``
process plus the private pages of its forked drawing children. The ``resource`` module is
imported only where it is measured: Windows has no such module, and ``thighseg`` imports every
subcommand to build its help, so a top-level import would stop every command there
(``segment`` from Slicer included)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import SimpleITK as sitk


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--slices", type=int, default=500, help="slices of the benchmark CT (default 500)")
    parser.add_argument("--model", metavar="FILE", help="model to time (default: the bundled one, else random weights)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda/mps when present")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch", action="store_true",
                        help="instead: the same phantoms as separate segment processes and as thighseg batch with 1 "
                             "and 2 workers (cases per hour, time saved per case, scaling)")
    parser.add_argument("--batch-cases", type=int, default=4, metavar="N", help="phantoms for --batch (default 4)")
    parser.add_argument("--batch-size", choices=("full", "small"), default="full",
                        help="phantom size for --batch (default full: 512 x 512)")
    parser.add_argument("--engines", action="store_true",
                        help="instead: one view's net on each engine that fits it (PyTorch eager, torch.compile, "
                             "ONNX Runtime, OpenVINO where installed), one thread, CPU ms per batch")
    parser.add_argument("--no-load", action="store_true",
                        help="skip timing the views beside a competing busy-loop process")
    parser.add_argument("--peers", action="store_true",
                        help="also time the peer networks (nnU-Net at 3 and 1.5 mm, MONAI SegResNet) on the same "
                             "two thigh fields in this process (needs the [bench] extra; several minutes on a CPU)")


def bench_ct(slices: int, seed: int) -> sitk.Image:
    """A full-size phantom stretched to ``slices`` slices of the same field (512 × 512 in-plane)."""
    from ..phantom.synth import make_case

    ct = make_case(seed, size="full").ct
    size = list(ct.GetSize())
    extent = ct.GetSpacing()[2] * (size[2] - 1)
    ref = sitk.Image([size[0], size[1], slices], ct.GetPixelID())
    ref.SetOrigin(ct.GetOrigin())
    ref.SetDirection(ct.GetDirection())
    ref.SetSpacing((ct.GetSpacing()[0], ct.GetSpacing()[1], extent / (slices - 1)))
    return sitk.Resample(ct, ref, sitk.Transform(), sitk.sitkLinear, -1000)


def _model_path(arg: str | None, work: Path) -> tuple[Path, str]:
    from ..defaults import default_model_path
    from ..io import InputError
    from ..models import ModelSettings, random_model, save_model

    if arg:
        return Path(arg), arg
    try:
        return default_model_path(), "bundled"
    except InputError:
        m = random_model(ModelSettings(), seed=0)
        return save_model(work / "random.tmsmodel", m.settings, m.nets), "random weights (default width)"


def _children_peak_rss_kb() -> float | None:
    """The largest peak RSS of the finished child processes (kB), None where not measurable."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def _self_peak_rss_kb() -> float | None:
    """This process's peak RSS (kB), None where not measurable."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_mb(pid: int) -> float | None:
    """Resident memory of a running process plus the private memory of its children (the forked
    drawing of report.png: the pages it shares with the process are counted once), from Linux
    /proc; None elsewhere or once it ended."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            kb = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), None)
    except (OSError, ValueError):
        return None
    return None if kb is None else (kb + _children_private_kb(pid)) / 1024


def _children_private_kb(pid: int) -> int:
    total = 0
    for tasks in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children = tasks.read_text(encoding="ascii").split()
        except OSError:
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/smaps_rollup", encoding="ascii") as f:
                    total += sum(int(line.split()[1]) for line in f if line.startswith(("Private_Clean:",
                                                                                         "Private_Dirty:")))
            except (OSError, ValueError):
                pass
    return total


class _MemoryTrace:
    """The child's RSS sampled every 20 ms, filed under the stage it last reported: which stage
    holds the peak is what a memory mend needs to know, not only the peak itself."""

    def __init__(self, pid: int):
        self.pid, self.stage, self.peaks = pid, "start", {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            mb = _rss_mb(self.pid)
            if mb is not None:
                self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), mb)

    def stop(self) -> dict[str, float]:
        self._done.set()
        self._thread.join()
        return {stage: round(mb, 1) for stage, mb in self.peaks.items()}


def _segment(ct_path: Path, model: Path, device: str, out: Path) -> dict:
    before = _children_peak_rss_kb()
    t0 = time.perf_counter()
    err = tempfile.TemporaryFile()  # a file, not a pipe: a chatty stderr cannot block the child
    proc = subprocess.Popen([sys.executable, "-m", "ThighMuscleSegLib.cli.main", "segment", str(ct_path), "--out",
                             str(out), "--model", str(model), "--device", device, "--progress", "json"],
                            stdout=subprocess.PIPE, stderr=err, text=True, encoding="utf-8", errors="replace")
    trace, last = _MemoryTrace(proc.pid), None
    for line in proc.stdout:
        if line.strip():
            last = line
            trace.stage = json.loads(line).get("stage", trace.stage)
    proc.wait()
    err.seek(0)
    stderr = err.read().decode("utf-8", "replace")
    err.close()
    wall = time.perf_counter() - t0
    by_stage = trace.stop()
    if proc.returncode != 0 or last is None:
        raise RuntimeError(f"segment failed on {device}: {stderr.strip().splitlines()[-1:]}")
    done = json.loads(last)
    after = _children_peak_rss_kb()
    peak_mb = None if after is None else round(max(after, before) / 1024, 1)
    if by_stage:  # the sampled peak also holds the forked child's private memory
        peak_mb = round(max(peak_mb or 0.0, max(by_stage.values())), 1)
    return {"device": done["device"], "end_to_end_s": round(wall, 2), "pipeline_s": done["seconds"],
            "peak_rss_mb": peak_mb, "peak_rss_mb_by_stage": by_stage, "stages": done["stages"]}


def _baseline_3d(ct: sitk.Image, frames: list) -> float:
    """Both thighs' fields (``frames``) through the 3D U-Net (random weights, default width), sliding window."""
    from .. import framing
    from ..inference.predict import predict_thigh
    from ..models import ModelSettings, random_model

    model = random_model(ModelSettings.for_architecture("3d"), seed=0)
    t0 = time.perf_counter()
    for f in frames:
        predict_thigh(framing.to_grid(ct, f, "linear"), model, device="cpu")
    return time.perf_counter() - t0


def _warm_engine_cache(model_path: Path, frames: list) -> float:
    """Export the views' nets for the grids the bench CT's thighs (``frames``) are read on (the
    field with its reach) once (what a first run on a new machine pays, seconds returned), so the timed
    runs are the steady state every later CT of those shapes sees."""
    import numpy as np

    from .. import framing
    from ..inference.predict import infer_thighs
    from ..models import load_model

    model = load_model(model_path)
    if model.settings.architecture == "3d":
        return 0.0
    shapes = {f.grid_shape for f in framing.reading_frames(frames)}
    t0 = time.perf_counter()
    infer_thighs({str(s): np.full(s, -1000.0, np.float32) for s in shapes}, model, device="cpu")
    return round(time.perf_counter() - t0, 2)


def _loaded_views(ct: sitk.Image, frames: list, model_path: Path, device: str) -> dict:
    """The views of the bench CT's two thigh fields (``frames``), quiet and beside one busy-loop
    process (bench.load)."""
    from .. import framing
    from ..bench.load import loaded_views
    from ..models import load_model

    grids = {f.side: framing.to_grid(ct, f, "linear") for f in frames}
    return loaded_views(grids, load_model(model_path), device=device)


def _run_engines(args) -> int:
    from .. import framing
    from ..bench.engines import engines_benchmark, engines_in_lanes, print_engines

    with tempfile.TemporaryDirectory(prefix="thighseg-bench-engines-") as tmp:
        model, model_name = _model_path(args.model, Path(tmp))
        log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
        ct = bench_ct(args.slices, args.seed)
        grids = {f.side: framing.to_grid(ct, f, "linear") for f in framing.frame_thighs(ct)}
        result = {**engines_benchmark(model, log=log), **engines_in_lanes(grids, model), "model": model_name,
                  "machine": _machine()}
    return _emit(result, args.json, print_engines, f"model: {model_name}")


def _run_batch(args) -> int:
    from ..cohort.benchmark import batch_benchmark, print_batch_benchmark

    with tempfile.TemporaryDirectory(prefix="thighseg-bench-batch-") as tmp:
        model, model_name = _model_path(args.model, Path(tmp))
        device = (args.devices or ["cpu"])[0]
        log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
        result = {**batch_benchmark(Path(tmp), model, args.batch_cases, args.batch_size, device=device, log=log),
                  "model": model_name, "device": device, "machine": _machine()}
    return _emit(result, args.json, print_batch_benchmark, f"model: {model_name}, device: {device}")


def _emit(result: dict, as_json: bool, print_table, what: str) -> int:
    """One JSON line, or the table and a line naming the model and the machine."""
    if as_json:
        print(json.dumps(result))
    else:
        print_table(result)
        print(f"  {what}, machine: {result['machine']}")
    return 0


def run(args) -> int:
    if args.batch:
        return _run_batch(args)
    if args.engines:
        return _run_engines(args)
    import torch

    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + \
        (["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])
    with tempfile.TemporaryDirectory(prefix="thighseg-bench-") as tmp:
        work = Path(tmp)
        ct = bench_ct(args.slices, args.seed)
        ct_path = work / "bench_ct.nii"
        sitk.WriteImage(ct, str(ct_path))
        model, model_name = _model_path(args.model, work)
        from .. import framing

        frames = framing.frame_thighs(ct)  # the bench CT's fields, framed once for every part below
        export_s = _warm_engine_cache(model, frames)
        runs = [_segment(ct_path, model, d, work / f"out_{d}") for d in devices]
        baseline = _baseline_3d(ct, frames)
        loaded = _loaded_views(ct, frames, model, devices[0]) if not args.no_load else {}
        framing_alone = _framing_bench(work, args.seed)
    cpu = runs[0]
    infer_25d = cpu["stages"].get("infer", 0.0)  # wall time of both thighs' views (they run on parallel lanes)
    result = {**cpu, "ct_size": list(ct.GetSize()), "model": model_name, "machine": _machine(),
              "runs": runs, "baseline_3d_s": round(baseline, 2),
              "views_2_5d_s": round(infer_25d, 2),
              "ratio_3d_to_2_5d_views": round(baseline / infer_25d, 2) if infer_25d else None,
              "framing": framing_alone, "engine_export_s": export_s, **loaded}
    if args.peers:
        from ..bench.peers import peers_benchmark

        result.update(peers_benchmark(ct, model, device=devices[0]))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"thighseg bench: CT {ct.GetSize()}, model: {model_name}, machine: {result['machine']}")
    for run_ in runs:
        print(f"\n{run_['device']}: end to end {run_['end_to_end_s']} s (pipeline {run_['pipeline_s']} s), "
              + (f"peak RSS {run_['peak_rss_mb']} MB" if run_["peak_rss_mb"] is not None
                 else "peak RSS not measured on this platform"))
        for stage, s in run_["stages"].items():
            print(f"  {stage:<18} {s:7.2f} s")
        if run_["peak_rss_mb_by_stage"]:
            print("  peak RSS by stage (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in run_["peak_rss_mb_by_stage"].items()))
    print(f"\nframing alone, {framing_alone['ct_size']}: {framing_alone['frame_s']} s, extra peak memory "
          + (f"{framing_alone['extra_peak_mb']} MB" if framing_alone["extra_peak_mb"] is not None else "not measured")
          + f" (one float32 copy of the CT would be {framing_alone['float_copy_mb']} MB)")
    print(f"\n3D U-Net sliding window, both thighs: {baseline:.2f} s vs {infer_25d:.2f} s for the 2.5D views "
          f"({result['ratio_3d_to_2_5d_views']}x)")
    if loaded:
        print(f"\nviews beside {loaded['competitor']}: {loaded['views_quiet_s']} s quiet, {loaded['views_loaded_s']} s "
              f"loaded: {loaded['views_loaded_slowdown']}x (target <= 2x); one stream of "
              f"{loaded['one_stream_views_quiet_s']} s slowed {loaded['one_stream_views_loaded_slowdown']}x")
    if args.peers:
        from ..bench.peers import print_peers

        print_peers(result)
    return 0


def _framing_bench(work: Path, seed: int, slices: int = 600) -> dict:
    """Framing a 512 × 512 × 600 CT in a fresh process: seconds and the peak memory it adds
    beyond the CT itself (measured from the process's peak RSS before and after)."""
    path = work / "frame_ct.nii"
    sitk.WriteImage(bench_ct(slices, seed), str(path))
    code = ("import json, time, SimpleITK as sitk; from ThighMuscleSegLib import framing;"
            "from ThighMuscleSegLib.cli.bench import _self_peak_rss_kb as peak;"
            f"ct = sitk.ReadImage({str(path)!r}); import numpy;"
            "before = peak(); t = time.perf_counter();"
            "frames = framing.frame_thighs(ct); grids = [framing.to_grid(ct, f) for f in frames];"
            "s = time.perf_counter() - t; after = peak();"
            "print(json.dumps({'frame_s': round(s, 2), "
            "'extra_peak_mb': None if after is None else round((after - before) / 1024, 1),"
            "'float_copy_mb': round(4 * numpy.prod(ct.GetSize()) / 2**20, 1), 'ct_size': list(ct.GetSize()),"
            "'thighs': len(frames)}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True)
    return json.loads(r.stdout)


def _machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_implementation()} {platform.python_version()}"

