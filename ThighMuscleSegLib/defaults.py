"""Defaults shared by the command line, the Slicer module and the benchmarks."""

from __future__ import annotations

from pathlib import Path

from .io import InputError
from .resources import RESOURCES

MODELS_DIR = RESOURCES / "Models"
DEFAULT_MODEL_NAME = "thighseg-2.5d-phantom.tmsmodel"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # here, not in inference.device: no torch import for --help
# Labels from the 2 mm grid back into the CT: "linear" interpolates each label's share, so
# boundaries fall between grid voxels (measured +0.006 mean Dice on held-out phantoms, about
# 0.5 s per CT); "nearest" keeps the 2 mm staircase.
DEFAULT_BACK_INTERPOLATION = "linear"
# Training: share of slices cut by a simulated scan edge (augmentation; thighs leaving the
# scanner's field of view were the bundled model's largest errors before it).
DEFAULT_EDGE_CUT = 0.25


def default_model_path() -> Path:
    """The bundled 2.5D model, or a clear error saying how to get one."""
    path = MODELS_DIR / DEFAULT_MODEL_NAME
    if not path.is_file():
        raise InputError(f"the bundled model {path} is missing: pass --model FILE, or train one with "
                         "`thighseg train DATA --out FILE`")
    return path
