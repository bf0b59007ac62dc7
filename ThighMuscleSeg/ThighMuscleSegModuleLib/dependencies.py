"""Python packages the segmentation needs inside Slicer, and installing them safely.

torch comes through the PyTorch extension (it picks the CUDA build that fits the machine);
the rest through Slicer's pip after the user agrees, with numpy and SimpleITK pinned to the
versions Slicer ships, so Slicer's own copies are never replaced.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

# import name -> pip requirement (Slicer ships numpy, SimpleITK, pydicom and vtk itself)
REQUIRED = {"torch": "torch", "scipy": "scipy", "matplotlib": "matplotlib", "skimage": "scikit-image",
            "highdicom": "highdicom"}
PINNED = ("numpy", "SimpleITK")


def missing() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def describe_missing(names: list[str]) -> str:
    parts = []
    if "torch" in names:
        parts.append("PyTorch (installed through the PyTorch extension; CUDA when your GPU allows it)")
    others = [REQUIRED[n] for n in names if n != "torch"]
    if others:
        parts.append(", ".join(others) + " (from PyPI, with Slicer's numpy and SimpleITK left as they are)")
    return "ThighMuscleSeg needs " + " and ".join(parts) + "."


def constraints_file() -> Path:
    """A pip constraints file pinning the packages Slicer ships to their current versions."""
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for name in PINNED:
        try:
            lines.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    path = Path(tempfile.mkdtemp(prefix="thighseg-pip-")) / "constraints.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def install(names: list[str]) -> None:
    """Install ``names`` inside Slicer (call only after the user agreed)."""
    import slicer

    if "torch" in names:
        try:
            import PyTorchUtils
        except ImportError:
            raise RuntimeError("PyTorch is missing and the PyTorch extension is not installed: install "
                               "'PyTorch' from the Extensions Manager, restart Slicer, and try again") from None
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
            raise RuntimeError("PyTorch could not be installed; see the PyTorch module for details")
    others = [REQUIRED[n] for n in names if n != "torch"]
    if others:
        slicer.util.pip_install(others + ["-c", str(constraints_file())])
