"""What the web page offers to open, and what it refuses (``ThighMuscleSegWeb.files``; no browser)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from ThighMuscleSegLib.cli.main import main
from ThighMuscleSegWeb import files as F


def _ct(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(path))
    return path


def test_the_data_folder_lists_ct_files_dicom_folders_and_models(tmp_path):
    _ct(tmp_path / "a" / "ct.nii.gz")
    _ct(tmp_path / "b.nrrd")
    dicom = tmp_path / "study" / "series"
    dicom.mkdir(parents=True)
    for i in range(3):
        (dicom / f"IM{i:04d}").write_bytes(b"\0" * 132)
    (tmp_path / "notes.txt").write_text("not a CT", encoding="utf-8")
    (tmp_path / ".hidden.nii.gz").write_bytes(b"")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.tmsmodel").write_bytes(b"PK")

    titles = [item["title"] for item in F.list_inputs(tmp_path)]
    assert titles == ["a/ct.nii.gz", "b.nrrd", "study/series/ (DICOM)"]
    assert all(str(tmp_path) in item["value"] for item in F.list_inputs(tmp_path))
    models = F.list_models(tmp_path)
    assert models[0] == {"title": F.BUNDLED_MODEL, "value": ""}
    assert [m["title"] for m in models[1:]] == ["models/mine.tmsmodel"]
    assert F.list_inputs(None) == [] and F.list_models(None) == models[:1]


def test_only_listed_files_and_uploads_may_be_opened(tmp_path):
    data, uploads = tmp_path / "data", tmp_path / "uploads"
    inside = _ct(data / "x" / "ct.nii.gz")
    assert F.is_allowed(str(inside), data, uploads)
    assert F.is_allowed(str(uploads / "upload-000" / "ct.nii.gz"), data, uploads)
    assert not F.is_allowed(str(tmp_path / "elsewhere.nii.gz"), data, uploads)
    assert not F.is_allowed(str(data / ".." / "elsewhere.nii.gz"), data, uploads)
    assert not F.is_allowed("/etc/passwd", None, uploads)


def test_uploads_one_ct_file_or_a_series_folder(tmp_path):
    one = F.save_uploads([{"name": "scan.nii.gz", "content": [b"ab", b"cd"]}], tmp_path)
    assert one.name == "scan.nii.gz" and one.read_bytes() == b"abcd"
    series = F.save_uploads([{"name": "../../IM1", "content": b"1"}, {"name": "IM2", "content": b"2"}], tmp_path)
    assert series.is_dir() and sorted(p.name for p in series.iterdir()) == ["IM1", "IM2"]
    assert series.parent == tmp_path  # a name with folders stays inside the upload folder
    with pytest.raises(F.tio.InputError, match="did not arrive"):
        F.save_uploads([{"name": "x.nii.gz", "content": None}], tmp_path)
    with pytest.raises(F.tio.InputError, match="no file"):
        F.save_uploads([], tmp_path)


def test_the_command_refuses_a_missing_data_folder(tmp_path, capsys):
    assert main(["web", "--data", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
