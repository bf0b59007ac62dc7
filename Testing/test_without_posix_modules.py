"""``thighseg`` where ``import resource`` fails, as on Windows (and without highdicom, which the
Slicer module never installs): the help and a real ``segment`` run in a subprocess."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SITECUSTOMIZE = '''
import sys
# Windows has no POSIX `resource` module; the Slicer module does not install highdicom.
for name in ("resource", "highdicom"):
    sys.modules[name] = None  # `import name` now raises ModuleNotFoundError
'''


@pytest.fixture
def windows_like_env(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    check = subprocess.run([sys.executable, "-c", "import resource"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "ModuleNotFoundError" in check.stderr  # the stand-in works
    return env


def _thighseg(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "ThighMuscleSegLib.cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_help_works_without_resource(windows_like_env):
    r = _thighseg(windows_like_env, "--help")
    assert r.returncode == 0, r.stderr
    assert "segment" in r.stdout and "bench" in r.stdout


def test_bench_help_works_without_resource(windows_like_env):
    r = _thighseg(windows_like_env, "bench", "--help")
    assert r.returncode == 0, r.stderr


def test_segment_runs_without_resource_or_highdicom(windows_like_env, small_phantom, random_model_file, tmp_path):
    out = tmp_path / "out"
    r = _thighseg(windows_like_env, "segment", str(small_phantom / "ct.nii.gz"), "--out", str(out),
                  "--model", str(random_model_file), "--device", "cpu", "--progress", "json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"stage": "done"' in r.stdout.strip().splitlines()[-1]
    for name in ("labels.nii.gz", "segmentation.seg.nrrd", "volumes.csv", "disagreement.nii.gz"):
        assert (out / name).is_file(), name
