"""The command line, the library's import hygiene, and the Slicer extension layout."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ThighMuscleSegLib.cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ThighMuscleSegLib.cli.main", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_help_lists_every_subcommand():
    r = run_cli("--help")
    assert r.returncode == 0
    for name in ("phantom", "frame", "segment", "train", "evaluate", "compare", "bench", "demo"):
        assert re.search(rf"^\s+{name}\s", r.stdout, re.M), name


def test_version_prints_the_package_version():
    from ThighMuscleSegLib import __version__

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"thighseg {__version__}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_subcommand_prints_its_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert COMMANDS[name][1].split()[0] in capsys.readouterr().out


def test_train_refuses_an_edge_cut_share_outside_0_to_1(tmp_path, capsys):
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m.tmsmodel"), "--edge-cut", "1.5"]) == 2
    assert "--edge-cut is a share of slices, 0 to 1" in capsys.readouterr().err
    assert not (tmp_path / "m.tmsmodel").exists()


def test_library_import_pulls_in_no_slicer_qt_vtk_or_torch():
    code = ("import sys, ThighMuscleSegLib, ThighMuscleSegLib.classes, ThighMuscleSegLib.io, "
            "ThighMuscleSegLib.progress, ThighMuscleSegLib.cli.main;"
            "bad=[m for m in sys.modules if m.split('.')[0] in "
            "('slicer','qt','PythonQt','ctk','vtk','vtkmodules','PyQt5','PySide6','torch')];"
            "print(','.join(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_library_source_never_imports_slicer_or_qt():
    pattern = re.compile(r"^\s*(import|from)\s+(slicer|qt|ctk|PythonQt)\b", re.M)
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "ThighMuscleSegLib").rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_extension_cmake_declares_what_slicer_needs():
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for var in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS",
                "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert re.search(rf"set\({var} \S", top), var
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in top
    assert "set(EXTENSION_DEPENDS PyTorch)" in top
    assert "add_subdirectory(ThighMuscleSeg)" in top


def test_module_cmake_lists_only_files_that_exist_and_every_module_script():
    module_dir = REPO / "ThighMuscleSeg"
    text = (module_dir / "CMakeLists.txt").read_text(encoding="utf-8").replace("${MODULE_NAME}", "ThighMuscleSeg")
    listed = set(re.findall(r"^\s+([\w/]+\.(?:py|png|ui))\s*$", text, re.M))
    assert listed, "no files found in ThighMuscleSeg/CMakeLists.txt"
    for rel in listed:
        assert (module_dir / rel).is_file(), f"CMakeLists.txt lists missing {rel}"
    scripts = {str(p.relative_to(module_dir)) for p in module_dir.rglob("*.py") if "__pycache__" not in p.parts}
    dev_only = {"ThighMuscleSegModuleLib/headless.py", "ThighMuscleSegModuleLib/screenshots.py"}  # tests, pictures
    assert scripts - dev_only <= listed, f"module scripts not installed by CMake: {sorted(scripts - dev_only - listed)}"
    assert not dev_only & listed
    assert "file(COPY ${REPO_DIR}/${dir}" in text and "foreach(dir ThighMuscleSegLib Resources)" in text
