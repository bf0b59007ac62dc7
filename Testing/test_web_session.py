"""The web page's session on a real MRML scene (slicer-core), without a browser: a DICOM CT opened
with the library's reader, its segmentation exported as DICOM SEG, .seg.nrrd and CSV, measured
after an edit, and saved as a training case, all through the Slicer module's ``SceneLogic``."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from synthetic_thighs import synthetic_thighs
from ThighMuscleSegLib.io import InputError
from ThighMuscleSegLib.phantom.writer import write_dicom_series
from ThighMuscleSegLib.segnrrd import read_seg_nrrd
from ThighMuscleSegLib.training.data import find_cases


@pytest.fixture
def opened(mrml, tmp_path):
    """A Session holding a DICOM CT and a segmentation made from its known labels."""
    from ThighMuscleSegModuleLib.logic import SegmentationResult
    from ThighMuscleSegWeb.session import Session

    ct, labels, _ = synthetic_thighs(size_xyz=(48, 40, 24), spacing=(8.0, 8.0, 12.0))
    write_dicom_series(ct, tmp_path / "dicom", seed=7)
    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    session = Session(mrml.scene, tmp_path / "dataset")
    image, files, note = Session.read(tmp_path / "dicom")
    assert files and len(files) == 24 and note == ""
    node = session.load_ct(tmp_path / "dicom", image, files, note)
    seg = session.logic.import_labels(tmp_path / "labels.nii.gz", node)
    session.result = SegmentationResult(seg, None, None, tmp_path, [], ct_node=node)
    session.set_rows(session.start_measuring().result())
    return session, sitk.GetArrayFromImage(labels), tmp_path


def test_exports_hold_the_segmentation(opened):
    session, labels, tmp_path = opened
    out = tmp_path / "out"
    out.mkdir()
    present = sorted(int(v) for v in np.unique(labels) if v)

    seg = pydicom.dcmread(session.dicom_seg(out))
    assert seg.Modality == "SEG"
    assert len(seg.SegmentSequence) == len(present)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(session.ct.dicom_files[0]).SeriesInstanceUID

    nrrd_labels, infos = read_seg_nrrd(session.seg_nrrd(out))
    assert np.array_equal(sitk.GetArrayFromImage(nrrd_labels), labels)
    assert sorted(i.label_value for i in infos if i.label_value) == list(range(1, 21))

    with open(session.table_csv(out), newline="", encoding="utf-8") as f:
        rows = {r["Label"]: r for r in csv.DictReader(f) if r["Label"]}
    assert sorted(rows, key=int) == [str(v) for v in range(1, 21)]
    for v in present:
        assert int(rows[str(v)]["Voxels"]) == int((labels == v).sum())


def test_an_edit_is_measured_and_saved_for_training(opened):
    session, labels, tmp_path = opened
    import slicer

    segmentation = session.result.segmentation
    first = segmentation.GetSegmentation().GetNthSegmentID(0)  # the right sartorius
    edited = np.zeros_like(labels)
    edited[2:6, 2:8, 2:8] = 1  # a new block of it, where there was none
    assert not labels[2:6, 2:8, 2:8].any()
    slicer.util.updateSegmentBinaryLabelmapFromArray(
        ((labels == 1) | (edited == 1)).astype(np.uint8), segmentation, first, session.ct.node)
    rows = {r.label_value: r for r in session.start_measuring().result() if r.kind == "muscle"}
    assert rows[1].voxels == int((labels == 1).sum()) + int(edited.sum())

    with pytest.raises(InputError, match="case name"):
        session.start_save("../elsewhere")
    case = session.start_save("corrected_1").result()
    assert find_cases(tmp_path / "dataset") == [case]
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels.nii.gz")))
    assert int((saved == 1).sum()) == rows[1].voxels
    with pytest.raises(FileExistsError):
        session.start_save("corrected_1")


def test_a_ct_from_a_file_has_no_dicom_seg(mrml, tmp_path):
    from ThighMuscleSegLib.io import InputError as Refused
    from ThighMuscleSegWeb.session import Session

    ct, _, _ = synthetic_thighs(size_xyz=(48, 40, 24), spacing=(8.0, 8.0, 12.0))
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    session = Session(mrml.scene, tmp_path / "dataset")
    image, files, note = Session.read(tmp_path / "ct.nrrd")
    session.load_ct(tmp_path / "ct.nrrd", image, files, note)
    assert session.ct.dicom_files is None and session.ct.node.GetName() == f"{tmp_path.name} ct"  # "ct": say whose
    with pytest.raises(Refused, match="segment the thighs first"):
        session.dicom_seg(tmp_path)
    with pytest.raises(Refused, match="open a CT first"):
        Session(mrml.scene, tmp_path).start(None, "cpu")
