"""``thighseg web``: the browser UI (trame-slicer) on 127.0.0.1.

Only the arguments live here: the app is the ``ThighMuscleSegWeb`` package (it reuses the Slicer
module's logic, ``ThighMuscleSeg/ThighMuscleSegModuleLib``) and is imported when the command runs,
so the library never imports slicer or trame.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from ..io import InputError

WEB_EXTRA = 'pip install -e ".[web]"'
MODULE_FOLDER = Path(__file__).resolve().parents[2] / "ThighMuscleSeg"  # a checkout's Slicer module folder


def add_arguments(parser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080; 0: a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this computer only; see docs/web.md before "
                             "serving other hosts, behind a reverse proxy with authentication)")
    parser.add_argument("--data", metavar="DIR",
                        help="folder whose CTs (NIfTI, NRRD, MHA, DICOM folders) and .tmsmodel files the page "
                             "offers to open")
    parser.add_argument("--dataset", metavar="DIR", default="thighseg-training-cases",
                        help="dataset folder that 'Save as training case' writes into, as thighseg train reads "
                             "it (default: ./thighseg-training-cases)")


def load_app():
    """The web app's module, or InputError naming the extra to install."""
    if importlib.util.find_spec("ThighMuscleSegModuleLib") is None and MODULE_FOLDER.is_dir():
        sys.path.insert(0, str(MODULE_FOLDER))
    for needed in ("trame_slicer", "trame", "slicer"):
        if importlib.util.find_spec(needed) is None:
            raise InputError(f"the web UI needs the '{needed}' package, which is not installed: {WEB_EXTRA}")
    for needed in ("ThighMuscleSegWeb", "ThighMuscleSegModuleLib"):
        if importlib.util.find_spec(needed) is None:
            raise InputError(f"{needed} was not found: run thighseg web from a checkout installed with {WEB_EXTRA}")
    return importlib.import_module("ThighMuscleSegWeb.app")


def run(args) -> int:
    data = Path(args.data) if args.data else None
    if data is not None and not data.is_dir():
        raise InputError(f"--data {data} is not a folder")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is no TCP port (0-65535)")
    # Offscreen rendering without a display (vtk reads this when the first render window is made).
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    app = load_app()
    app.serve(host=args.host, port=args.port, data_dir=data, dataset_dir=Path(args.dataset))
    return 0
