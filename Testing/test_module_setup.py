"""The Slicer module as the supported Slicer versions load it: the development set-up the README
gives, the Python and MRML API of Slicer 5.8 (Python 3.9, no terminology methods on segments),
what is installed into Slicer, and which slicer-core this test run uses."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "ThighMuscleSeg"
MODULE_SOURCES = sorted(p for p in MODULE.rglob("*.py") if "__pycache__" not in p.parts)
LIBRARY_SOURCES = sorted(p for p in (REPO / "ThighMuscleSegLib").rglob("*.py") if "__pycache__" not in p.parts)


def test_a_checkout_added_as_module_path_finds_the_library(tmp_path):
    # Slicer appends the module's folder (here ThighMuscleSeg/ of a checkout) to sys.path and
    # imports the module; -S keeps this venv's editable install of the library out of reach.
    code = ("import sys; sys.path.append(sys.argv[1]);"
            "import ThighMuscleSegModuleLib.runner as r, ThighMuscleSegLib, ThighMuscleSegLib.resources as R;"
            "print(ThighMuscleSegLib.__file__); print(r.LIB_PARENT); print((R.RESOURCES / R.TERMINOLOGY_NAME).is_file())")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    r = subprocess.run([sys.executable, "-S", "-c", code, str(MODULE)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lib_file, lib_parent, terminology_found = r.stdout.split()
    assert Path(lib_file).resolve() == (REPO / "ThighMuscleSegLib" / "__init__.py").resolve()
    assert Path(lib_parent).resolve() == REPO.resolve()  # what the subprocess gets on PYTHONPATH
    assert terminology_found == "True"


@pytest.mark.parametrize("path", MODULE_SOURCES + LIBRARY_SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_sources_parse_as_python_3_9_which_slicer_5_8_runs(path):
    source = path.read_text(encoding="utf-8")
    ast.parse(source, filename=str(path), feature_version=(3, 9))
    tree = ast.parse(source)
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                 any(a.name == "annotations" for a in n.names) for n in tree.body)
    for node in ast.walk(tree):
        # X | Y in an annotation is evaluated at definition time on 3.9 without the future import
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations = [a.annotation for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs]
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for ann in filter(None, annotations):
            if not future and any(isinstance(x, ast.BinOp) and isinstance(x.op, ast.BitOr) for x in ast.walk(ann)):
                pytest.fail(f"{path.name}:{node.lineno}: X | Y annotation without 'from __future__ import annotations'")
        if isinstance(node, ast.Call):
            names = {k.arg for k in node.keywords}
            func = ast.unparse(node.func)
            assert not (func == "zip" and "strict" in names), f"{path.name}:{node.lineno}: zip(strict=) is 3.10+"
            assert not (func.endswith("dataclass") and names & {"kw_only", "slots"}), \
                f"{path.name}:{node.lineno}: dataclass(kw_only/slots) is 3.10+"
            assert func not in ("itertools.pairwise", "pairwise", "aiter", "anext"), f"{path.name}:{node.lineno}: 3.10+"


# Methods that Slicer 5.8.1's headers lack (vtkSegment.h has only GetTerminologyEntryTagName();
# vtkMRMLColorNode.h has no terminology at all); they came with 5.10.
NOT_IN_SLICER_5_8 = ("SetTerminology", "GetTerminology", "HasTerminology", "SetTerminologyFromString",
                     "GetTerminologyAsString", "GetContainsTerminology")


def test_the_module_calls_no_mrml_method_slicer_5_8_lacks_unless_it_checks_first():
    for path in MODULE_SOURCES:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in NOT_IN_SLICER_5_8:
                if re.search(rf"\.{name}\(", line) and f'hasattr(node, "{name}")' not in path.read_text(encoding="utf-8"):
                    pytest.fail(f"{path.relative_to(REPO)}:{n} calls {name}(), which Slicer 5.8 lacks: {line.strip()}")


def test_the_extension_installs_no_development_files():
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = text[text.index("set(MODULE_PYTHON_SCRIPTS"):text.index(")", text.index("set(MODULE_PYTHON_SCRIPTS"))]
    for dev_only in ("headless.py", "screenshots.py"):
        assert dev_only not in scripts, f"{dev_only} is for tests and pictures, not for Slicer"
    assert "PATTERN Screenshots EXCLUDE" in text


def test_slicer_gets_no_highdicom_and_keeps_what_it_ships():
    from ThighMuscleSegModuleLib import dependencies as D

    assert "highdicom" not in D.REQUIRED and "highdicom" not in D.REQUIRED.values()
    assert {"numpy", "SimpleITK", "scipy", "pydicom", "pillow"} <= set(D.PINNED)
    from importlib.metadata import version

    pins = D.pinned_requirements()
    assert f"pydicom=={version('pydicom')}" in pins and f"numpy=={version('numpy')}" in pins
    assert any(p.startswith("pillow==") for p in pins)


@pytest.mark.mrml
def test_which_slicer_core_this_run_uses():
    """`make test` runs the scene tests a second time against another slicer-core release
    (THIGHSEG_EXPECT_SLICER_CORE says which): this checks that run really uses it."""
    pytest.importorskip("slicer")
    from importlib.metadata import version

    import slicer

    found = version("slicer-core")
    print(f"slicer-core {found} from {Path(slicer.__file__).parent}")
    expected = os.environ.get("THIGHSEG_EXPECT_SLICER_CORE")
    if expected:
        assert found == expected
