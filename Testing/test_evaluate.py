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
    lines = (tmp_path / "ev" / "scores.csv").read_text(encoding="utf-8").splitlines()
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


def _small_field_frame():
    from ThighMuscleSegLib.framing import ThighFrame

    # a 20 x 20 x 20 mm field (10^3 voxels of 2 mm) centred at (20, 20, 20) mm, axis along z
    return ThighFrame("right", (20.0, 20.0, 20.0), (0.0, 0.0, 1.0), (10.0, 30.0), grid_shape=(10, 10, 10))


def test_field_scope_scores_only_inside_the_analysed_field(tmp_path, capsys):
    from ThighMuscleSegLib.framing import field_mask, frames_to_json

    frame = _small_field_frame()
    gt = np.zeros((40, 40, 40), np.uint8)
    gt[:, 15:25, 15:25] = 1  # a long muscle: runs out of the field at both ends
    ref = make_image(gt)
    inside = field_mask([frame], ref)
    zs = np.flatnonzero(inside.any(axis=(1, 2)))
    assert 9 <= zs.min() <= 12 and 28 <= zs.max() <= 31  # the field's 20 mm around z = 20
    pred = np.where(inside, gt, 0).astype(np.uint8)  # found everything the model could see
    _write(gt, tmp_path / "gt" / "a" / "labels.nii.gz", spacing=(1.0, 1.0, 1.0))
    _write(pred, tmp_path / "pred" / "a" / "labels.nii.gz", spacing=(1.0, 1.0, 1.0))
    (tmp_path / "pred" / "a" / "frames.json").write_text(frames_to_json([frame]))
    args = ["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt")]
    assert main(args) == 0
    whole = capsys.readouterr().out
    assert main(args + ["--scope", "field"]) == 0
    field = capsys.readouterr().out
    share = inside[gt == 1].mean()
    assert f"| 1 | Right sartorius | 1 | {2 * share / (1 + share):.3f} ± 0.000 |" in whole
    assert "| 1 | Right sartorius | 1 | 1.000 ± 0.000 | 0.00 ± 0.00 |" in field
    assert field.startswith("Scored inside the analysed fields only.")


def test_field_scope_without_frames_json_says_what_to_do(tmp_path, capsys):
    arr = blocky_labels()
    _write(arr, tmp_path / "pred" / "a" / "labels.nii.gz")
    _write(arr, tmp_path / "gt" / "a" / "labels.nii.gz")
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--scope", "field"]) == 2
    err = capsys.readouterr().err
    assert "frames.json" in err and "--scope ct" in err
