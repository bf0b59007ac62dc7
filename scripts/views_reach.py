"""The views' time with and without the reach, on the bench CT's two thighs.

    .venv/bin/python scripts/views_reach.py [--rounds 4] [--slices 500]

Both thighs' three views on the lanes (``inference.predict.infer_thighs``), once on the
360 mm fields and once on the fields read with their reach (``ThighFrame.reading``), runs
alternating in one process after a warm-up of each (a shared machine's load drifts). Prints the
seconds of each run, the grid shapes and reading / field (ratio of the medians).
"""

from __future__ import annotations

import argparse
import statistics
import time

from ThighMuscleSegLib import framing
from ThighMuscleSegLib.cli.bench import bench_ct
from ThighMuscleSegLib.defaults import default_model_path
from ThighMuscleSegLib.inference.predict import infer_thighs
from ThighMuscleSegLib.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--slices", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    ct = bench_ct(a.slices, a.seed)
    frames = framing.frame_thighs(ct)
    grids = {"field": {f.side: framing.to_grid(ct, f, "linear") for f in frames},
             "reading": {f.side: framing.to_grid(ct, f.reading(), "linear") for f in frames}}
    model = load_model(default_model_path())
    for g in grids.values():
        infer_thighs(g, model, device="cpu")  # warm-up: ONNX graphs for these shapes
    seconds = {name: [] for name in grids}
    for _ in range(a.rounds):
        for name, g in grids.items():
            t0 = time.perf_counter()
            infer_thighs(g, model, device="cpu")
            seconds[name].append(round(time.perf_counter() - t0, 2))
    ratio = statistics.median(seconds["reading"]) / statistics.median(seconds["field"])
    print({"seconds": seconds, "shapes": {n: {s: g.shape for s, g in gs.items()} for n, gs in grids.items()},
           "reading_over_field": round(ratio, 2)})


if __name__ == "__main__":
    main()
