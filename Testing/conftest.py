"""Shared fixtures: a real headless Slicer scene, small test images, shared data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

# The views' ONNX exports go to a cache of this test session, not the user's (children inherit it).
if "THIGHSEG_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["THIGHSEG_CACHE_DIR"] = tempfile.mkdtemp(prefix="thighseg-test-cache-")
    atexit.register(shutil.rmtree, os.environ["THIGHSEG_CACHE_DIR"], True)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("THIGHSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
VHF = SHARED_DATA / "visible-human-female"


def pytest_collection_modifyitems(items):
    """Tests on a real MRML scene are marked ``mrml``: ``make test`` runs them (not the slow
    ones) a second time against another slicer-core release."""
    for item in items:
        if "mrml" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mrml)


@pytest.fixture
def mrml():
    """A fresh real MRML scene with the Slicer logics the module needs (slicer-core)."""
    pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -e .[test]")
    from slicer_harness import make_scene

    s = make_scene()
    yield s
    s.clear()


@pytest.fixture
def vhf():
    """The Visible Human Female folder of ../shared/data, or a skip that says where it should be."""
    if not VHF.is_dir():
        pytest.skip(f"shared anatomy not found at {VHF} (set THIGHSEG_SHARED_DATA)")
    return VHF


def make_image(arr: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def blocky_labels(shape=(24, 40, 48), with_values=range(1, 21)) -> np.ndarray:
    """A label map with one box per CT label value, boxes not touching."""
    arr = np.zeros(shape, np.uint8)
    values = list(with_values)
    for n, v in enumerate(values):
        row, col = divmod(n, 5)
        z0 = 2 + 10 * (row % 2)
        y0 = 2 + 9 * (row % 4)
        x0 = 2 + 9 * col
        arr[z0:z0 + 5, y0:y0 + 6, x0:x0 + 6] = v
    return arr


@pytest.fixture(scope="session")
def small_phantom(tmp_path_factory):
    """One small phantom case on disk (ct.nii.gz, labels.nii.gz, case.json), made once."""
    from ThighMuscleSegLib.phantom.synth import make_case
    from ThighMuscleSegLib.phantom.writer import write_case

    folder = tmp_path_factory.mktemp("phantom") / "case_000"
    write_case(make_case(11, size="small"), folder)
    return folder


@pytest.fixture(scope="session")
def random_model_file(tmp_path_factory):
    """A narrow 2.5D model with random weights (the engine's stand-in until training)."""
    from ThighMuscleSegLib.models import ModelSettings, random_model, save_model

    model = random_model(ModelSettings(width=4), seed=0)
    path = tmp_path_factory.mktemp("model") / "random.tmsmodel"
    return save_model(path, model.settings, model.nets)
