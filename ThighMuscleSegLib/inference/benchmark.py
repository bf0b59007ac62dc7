"""Micro benchmark of the engine on one full-size thigh with a random model (prints seconds).

  python -m ThighMuscleSegLib.inference.benchmark [--device cpu] [--arch 2.5d] [--width 16] [--batch 8]

Speed goes here, never into tests: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..models.model_file import random_model
from ..models.settings import ModelSettings
from .predict import DEFAULT_BATCH_SIZE, predict_thigh


def synthetic_thigh(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """HU-like test volume: air around a fat cylinder holding muscle and a bone core."""
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    r = np.hypot(y - shape[1] / 2, x - shape[2] / 2)
    hu = np.full(shape, -1000.0, np.float32)
    hu[np.broadcast_to(r < shape[1] * 0.45, shape)] = -100.0
    hu[np.broadcast_to(r < shape[1] * 0.38, shape)] = 45.0
    hu[np.broadcast_to(r < shape[1] * 0.08, shape)] = 900.0
    return hu + np.random.default_rng(seed).normal(0, 15, shape).astype(np.float32)


def benchmark_engine(device: str = "cpu", architecture: str = "2.5d", width: int | None = None,
                     batch_size: int = DEFAULT_BATCH_SIZE, threads: int | None = None,
                     repeats: int = 1) -> dict:
    """Seconds per stage (best of ``repeats``) for one thigh at full grid size; prints them."""
    overrides = {} if width is None else {"width": width}
    settings = ModelSettings.for_architecture(architecture, **overrides)
    model = random_model(settings, seed=0)
    grid = synthetic_thigh(settings.grid_shape)
    best: dict[str, float] = {}
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        pred = predict_thigh(grid, model, device=device, batch_size=batch_size, threads=threads,
                             log=lambda _msg: None)
        stages = dict(pred.seconds, total=time.perf_counter() - t0)
        best = {k: min(v, best.get(k, v)) for k, v in stages.items()}
    result = {"device": pred.device, "architecture": architecture, "width": settings.width,
              "batch_size": batch_size, "grid_shape": settings.grid_shape, "seconds": best}
    print(f"engine benchmark: {architecture}, width {settings.width}, batch {batch_size}, "
          f"grid {settings.grid_shape}, device {pred.device}")
    for stage, sec in best.items():
        print(f"  {stage:>9}: {sec:6.2f} s")
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", default="2.5d", choices=("2.5d", "2d", "3d"))
    ap.add_argument("--width", type=int)
    ap.add_argument("--batch", type=int, default=DEFAULT_BATCH_SIZE)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args(argv)
    benchmark_engine(a.device, a.arch, a.width, a.batch, a.threads, a.repeats)


if __name__ == "__main__":
    main()
