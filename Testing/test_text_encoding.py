"""Every text file the library reads or writes names its encoding.

Without it Python uses the locale's, which is ASCII on a bare `LC_ALL=C` box (CI was one): a
summary with "Σ" or a muscle name with "é" then crashes, or worse, is written in another code page
on Windows and misread later. Checked on the source (ast), so it also covers paths no test runs.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ThighMuscleSegLib", "ThighMuscleSeg", "ThighMuscleSegWeb", "scripts")
NOT_FILES = {"Image", "sitk", "zipfile", "tarfile", "h5py", "webbrowser", "os", "gzip"}


def _text_mode(call: ast.Call) -> bool:
    method = isinstance(call.func, ast.Attribute)
    mode_arg = call.args[0] if method and call.args else (call.args[1] if len(call.args) > 1 else None)
    mode_arg = next((k.value for k in call.keywords if k.arg == "mode"), mode_arg)
    mode = mode_arg.value if isinstance(mode_arg, ast.Constant) else "r"
    return "b" not in str(mode)


def _unnamed_encodings(path: Path) -> list[str]:
    found = []
    for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(call, ast.Call) or any(k.arg == "encoding" for k in call.keywords):
            continue
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        text_io = name in ("read_text", "write_text") or (name == "open" and owner not in NOT_FILES
                                                          and _text_mode(call))
        subprocess_text = name in ("run", "Popen", "check_output") and any(
            k.arg in ("text", "universal_newlines") for k in call.keywords)
        if text_io or subprocess_text:
            found.append(f"{path.relative_to(REPO)}:{call.lineno}: {ast.unparse(call)[:80]}")
    return found


def test_library_names_the_encoding_of_every_text_file():
    files = [f for p in PACKAGES for f in (REPO / p).rglob("*.py")]
    assert len(files) > 50
    assert [hit for f in files for hit in _unnamed_encodings(f)] == []


def test_the_cli_speaks_on_an_ascii_console():
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    say = ("from ThighMuscleSegLib.cli.main import _printable_anywhere; import sys; _printable_anywhere();"
           "print('512 \\u00d7 512, 12 cm\\u00b3'); print('\\u00b1 2 HU', file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", say], capture_output=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode("ascii", "replace")
    assert r.stdout == b"512 \\xd7 512, 12 cm\\xb3\n" and r.stderr == b"\\xb1 2 HU\n"
