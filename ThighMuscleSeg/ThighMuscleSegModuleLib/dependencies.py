"""Python packages the segmentation needs inside Slicer, and installing them safely.

torch comes through the PyTorch extension (it picks the CUDA build that fits the machine);
the rest through Slicer's pip after the user agrees, with the packages Slicer ships pinned to
the versions it ships (numpy, SimpleITK, scipy, pydicom, pillow), so Slicer's own copies are
never replaced: an upgraded pydicom or numpy breaks Slicer's DICOM browser and extensions.

highdicom is not installed: the module hands ``thighseg segment`` an NRRD file, never a DICOM
folder, so no DICOM SEG is written inside Slicer (and highdicom needs pydicom 3, which would
replace the pydicom 2.4 that Slicer 5.8 and 5.10 ship). ``thighseg`` on the command line
writes DICOM SEG where highdicom is installed (``pip install -e ".[dicom]"``).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

# import name -> pip requirement (Slicer ships numpy, SimpleITK, scipy, pydicom, pillow and vtk)
REQUIRED = {"torch": "torch", "scipy": "scipy", "matplotlib": "matplotlib", "skimage": "scikit-image"}
# distribution names of what Slicer ships and pip must leave as it is
PINNED = ("numpy", "SimpleITK", "scipy", "pydicom", "pillow")


def missing() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def describe_missing(names: list[str]) -> str:
    parts = []
    if "torch" in names:
        parts.append("PyTorch (installed through the PyTorch extension; CUDA when your GPU allows it)")
    others = [REQUIRED[n] for n in names if n != "torch"]
    if others:
        parts.append(", ".join(others) + " (from PyPI, with the packages Slicer ships left as they are)")
    return "ThighMuscleSeg needs " + " and ".join(parts) + "."


def pinned_requirements() -> list[str]:
    """``name==version`` of every PINNED package that is installed."""
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for name in PINNED:
        for spelling in (name, name.lower(), name.capitalize()):
            try:
                lines.append(f"{name}=={version(spelling)}")
                break
            except PackageNotFoundError:
                continue
    return lines


def constraints_file() -> Path:
    """A pip constraints file pinning the packages Slicer ships to their current versions."""
    path = Path(tempfile.mkdtemp(prefix="thighseg-pip-")) / "constraints.txt"
    path.write_text("\n".join(pinned_requirements()) + "\n", encoding="utf-8")
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
