"""``thighseg bench --batch``: what a cohort run gains over one ``thighseg segment`` per CT.

The same phantom CTs are segmented three ways, one after the other on the same machine:
separate ``thighseg segment`` processes (each starts Python, imports, loads the model), then
``thighseg batch`` with 1 worker and with 2 workers (a local Ray started by the command, as a
user would run it). Reported per way: wall seconds, cases per hour, and from ``cohort.csv`` the
workers' own seconds per case (the steady state: without Ray's start, and without each
worker's first case, which pays the first imports). Timings on a shared
machine vary; compare the ways as ratios within one run.
"""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys
import time
from pathlib import Path


def make_cts(folder: Path, cases: int, size: str, seed: int) -> list[Path]:
    """``cases`` phantom CTs (population seeds ``seed``..) as folder/case_NNN/ct.nii.gz."""
    from ..phantom.synth import make_case
    from ..phantom.writer import write_case

    paths = []
    for i in range(cases):
        case_dir = folder / f"case_{i:03d}"
        write_case(make_case(seed + i, size=size), case_dir)
        paths.append(case_dir / "ct.nii.gz")
    return paths


def _thighseg(*args: str) -> float:
    """Wall seconds of one ``thighseg`` command; its failure is the benchmark's."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "ThighMuscleSegLib.cli.main", *args, "--progress", "json"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                       errors="replace")
    if r.returncode != 0:
        raise RuntimeError(f"thighseg {args[0]} failed: {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def _worker_seconds(out: Path) -> list[float]:
    with open(out / "cohort.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    bad = [r["case_id"] for r in rows if r["status"] != "done"]
    if bad:
        raise RuntimeError(f"batch cases not done: {bad}")
    return [float(r["seconds"]) for r in rows]


def _way(name: str, wall: float, cases: int, per_case: list[float], warm_ups: int = 0) -> dict:
    """``warm_ups``: how many of the slowest cases to leave out of the steady-state median (each
    worker's first case also pays the first imports of vtk and matplotlib)."""
    steady = sorted(per_case)[:max(len(per_case) - warm_ups, 1)]
    return {"way": name, "wall_s": round(wall, 1), "cases_per_hour": round(3600 * cases / wall, 1),
            "seconds_per_case_median": round(statistics.median(steady), 2)}


def batch_benchmark(work: Path, model: Path, cases: int = 4, size: str = "full", seed: int = 81000,
                    device: str = "cpu", log=print) -> dict:
    """Segment ``cases`` phantoms separately, then in a batch with 1 and 2 workers; see the module docstring."""
    log(f"making {cases} {size} phantoms (seeds {seed}..{seed + cases - 1})")
    cts = make_cts(work / "cts", cases, size, seed)
    separate = []
    for i, ct in enumerate(cts):
        log(f"separate thighseg segment {i + 1}/{cases}")
        separate.append(_thighseg("segment", str(ct), "--out", str(work / "separate" / ct.parent.name),
                                  "--model", str(model), "--device", device))
    ways = [_way("separate segment processes", sum(separate), cases, separate)]
    for workers in (1, 2):
        log(f"thighseg batch --workers {workers}")
        out = work / f"batch_{workers}"
        wall = _thighseg("batch", str(work / "cts"), "--out", str(out), "--workers", str(workers),
                         "--model", str(model), "--device", device)
        ways.append({**_way(f"batch, {workers} worker{'s' if workers > 1 else ''}", wall, cases,
                            _worker_seconds(out), warm_ups=workers), "workers": workers})
    one, two = ways[1], ways[2]
    return {"cases": cases, "size": size, "ways": ways,
            "saved_per_case_s": round(ways[0]["seconds_per_case_median"] - one["seconds_per_case_median"], 2),
            "scaling_efficiency_2_workers": round(two["cases_per_hour"] / (2 * one["cases_per_hour"]), 2)}


def print_batch_benchmark(result: dict) -> None:
    print(f"thighseg bench --batch: {result['cases']} {result['size']} phantom CTs")
    print(f"  {'way':<30} {'wall s':>8} {'cases/h':>8} {'s/case (median)':>16}")
    for w in result["ways"]:
        print(f"  {w['way']:<30} {w['wall_s']:>8} {w['cases_per_hour']:>8} {w['seconds_per_case_median']:>16}")
    print(f"  a batch worker saves {result['saved_per_case_s']} s per case against a separate process "
          "(start, imports, model load)")
    print(f"  2 workers vs 1: scaling efficiency {result['scaling_efficiency_2_workers']} "
          "(cases per hour with 2 workers / twice those with 1)")
