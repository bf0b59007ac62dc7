import numpy as np
import SimpleITK as sitk

from conftest import blocky_labels, make_image
from ThighMuscleSegLib.cli.main import main


def _write(arr, path, spacing=(0.8, 0.8, 2.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(make_image(arr, spacing=spacing), str(path))


def test_evaluate_folders_of_cases_writes_csv_and_markdown(tmp_path, capsys):
    gt = blocky_labels()
    pred = gt.copy()
    pred[pred == 3] = 0  # one muscle missed entirely in case b
    _write(gt, tmp_path / "gt" / "a" / "labels.nii.gz")
    _write(gt, tmp_path / "gt" / "b" / "labels.nii.gz")
    _write(gt, tmp_path / "pred" / "a" / "labels.nii.gz")
    _write(pred, tmp_path / "pred" / "b" / "labels.nii.gz")
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "| 3 | Right vastus lateralis | 2 | 0.500 ± 0.707 |" in out
    assert "| 1 | Right sartorius | 2 | 1.000 ± 0.000 | 0.00 ± 0.00 |" in out
    lines = (tmp_path / "ev" / "scores.csv").read_text().splitlines()
    assert lines[0].startswith("case,label_value,name,dice,asd_mm,hd95_mm")
    assert len(lines) == 1 + 2 * 20


def test_evaluate_refuses_mismatched_geometry_with_a_clear_message(tmp_path, capsys):
    arr = blocky_labels()
    _write(arr, tmp_path / "p.nii.gz")
    _write(arr, tmp_path / "g.nii.gz", spacing=(1.0, 1.0, 1.0))
    assert main(["evaluate", str(tmp_path / "p.nii.gz"), str(tmp_path / "g.nii.gz")]) == 2
    assert "do not share a geometry" in capsys.readouterr().err


def test_evaluate_names_missing_predictions(tmp_path, capsys):
    arr = blocky_labels()
    for case in ("a", "b"):
        _write(arr, tmp_path / "gt" / case / "labels.nii.gz")
    _write(arr, tmp_path / "pred" / "a" / "labels.nii.gz")
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt")]) == 2
    assert "no prediction for ground-truth case(s): b" in capsys.readouterr().err
