"""What the Slicer module does to the MRML scene, without Qt.

Everything here runs against real MRML, inside Slicer and headless with PyPI's
``slicer-core`` (that is how the tests drive it). The panel in ``ThighMuscleSeg.py``
only wires widgets to these functions.

Importing this package makes ``ThighMuscleSegLib`` importable in both layouts the module
runs from: the installed extension (the library sits beside ``ThighMuscleSeg.py``, on the path
Slicer adds for the module) and a development checkout added to Slicer's *Additional module
paths* as ``ThighMuscleSeg/`` (the library sits one folder up, in the repository root).
"""

import importlib.util
import os
import sys


def _make_library_importable() -> None:
    if importlib.util.find_spec("ThighMuscleSegLib") is not None:
        return
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(repo_root, "ThighMuscleSegLib", "__init__.py")):
        sys.path.append(repo_root)


_make_library_importable()
