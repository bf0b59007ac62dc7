"""The de-crop (labels and disagreement map back into the CT) of this checkout against an
earlier commit's, on the bench CT's two thighs, in one process.

    .venv/bin/python scripts/ab_decrop.py --old ad891dc [--rounds 6] [--slices 500]

The bench CT is segmented once (views, fusion) to get both thighs' label and disagreement
grids; then the earlier commit's ``framing/resample.py`` (loaded from git as a module) and this
checkout's put them back, alternating (a shared machine's load drifts). Prints one JSON object:
wall and CPU seconds of each run, the ratios of the medians, and how many CT voxels differ.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ThighMuscleSegLib import framing
from ThighMuscleSegLib.cli.bench import bench_ct
from ThighMuscleSegLib.defaults import DEFAULT_BACK_INTERPOLATION, default_model_path
from ThighMuscleSegLib.inference.predict import predict_thighs
from ThighMuscleSegLib.models import load_model

REPO = Path(__file__).resolve().parent.parent


def _old_resample(commit: str, folder: Path):
    """The commit's framing/resample.py as a module of the framing package (its relative imports work)."""
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:ThighMuscleSegLib/framing/resample.py"],
                          check=True, capture_output=True, text=True, encoding="utf-8").stdout
    path = folder / "resample_old.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("ThighMuscleSegLib.framing.resample_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _timed(put_back) -> tuple[float, float, tuple]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = put_back()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the earlier commit")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--slices", type=int, default=500)
    args = ap.parse_args()
    ct = bench_ct(args.slices, 42)
    frames = framing.reading_frames(framing.frame_thighs(ct))
    preds = predict_thighs({f.side: framing.to_grid(ct, f, "linear") for f in frames},
                           load_model(default_model_path(), lazy=True), device="cpu")
    labels = {s: p.labels for s, p in preds.items()}
    disagreement = {s: p.disagreement for s, p in preds.items()}
    how = DEFAULT_BACK_INTERPOLATION
    with tempfile.TemporaryDirectory(prefix="thighseg-ab-decrop-") as tmp:
        old = _old_resample(args.old, Path(tmp))
        runs = {
            "old": lambda: (old.from_grid(labels, frames, ct, how), old.map_to_ct(disagreement, frames, ct)),
            "new": lambda: framing.labels_and_map_to_ct(labels, disagreement, frames, ct, how),
        }
        seconds: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in runs}
        outputs = {}
        for _ in range(args.rounds):
            for name, put_back in runs.items():
                wall, cpu, outputs[name] = _timed(put_back)
                seconds[name]["wall"].append(round(wall, 2))
                seconds[name]["cpu"].append(round(cpu, 2))
    differ = [int(np.count_nonzero(sitk.GetArrayViewFromImage(a) != sitk.GetArrayViewFromImage(b)))
              for a, b in zip(outputs["old"], outputs["new"])]
    median = {k: {m: statistics.median(v) for m, v in s.items()} for k, s in seconds.items()}
    print(json.dumps({"old_commit": args.old, "ct_slices": args.slices, "rounds": args.rounds, "seconds": seconds,
                      "new_over_old_wall": round(median["new"]["wall"] / median["old"]["wall"], 2),
                      "new_over_old_cpu": round(median["new"]["cpu"] / median["old"]["cpu"], 2),
                      "labels_voxels_differ": differ[0], "disagreement_voxels_differ": differ[1]}))


if __name__ == "__main__":
    main()
