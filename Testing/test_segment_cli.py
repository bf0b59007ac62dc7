"""``thighseg segment`` end to end on a small phantom (random weights: geometry, files and
behaviour are tested here, accuracy belongs to the trained model's evaluation)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib import io as tio

REPO = Path(__file__).resolve().parent.parent
OUTPUTS = {"segmentation.seg.nrrd", "labels.nii.gz", "disagreement.nii.gz", "volumes.csv", "measurements.csv",
           "report.png", "frames.json", "slabs.csv", "profiles.csv", "profiles.png"}


def thighseg(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ThighMuscleSegLib.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=600, **kw)


@pytest.fixture(scope="module")
def segmented(small_phantom, random_model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "out"
    r = thighseg("segment", small_phantom / "ct.nii.gz", "--out", out, "--model", random_model_file,
                 "--progress", "json", "--device", "cpu", "--height-cm", "170")
    return r, out


def test_every_output_is_written_in_the_ct_geometry(segmented, small_phantom):
    r, out = segmented
    assert r.returncode == 0, r.stderr
    assert set(os.listdir(out)) == OUTPUTS
    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    for name in ("labels.nii.gz", "disagreement.nii.gz"):
        img = sitk.ReadImage(str(out / name))
        assert tio.same_geometry(img, ct), name
        assert img.GetPixelID() == sitk.sitkUInt8
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labels.nii.gz")))
    assert labels.max() <= 20


def test_measurements_csv_matches_the_labels(segmented, small_phantom):
    """measurements.csv of the run: each muscle's composition as the written labels give it, the
    height given, each thigh's all-muscles row the sum of its muscles with its fat plane named."""
    import math

    from ThighMuscleSegLib.measure.composition import muscle_composition
    from ThighMuscleSegLib.measure.table import read_measurements_csv

    _, out = segmented
    rows = read_measurements_csv(out / "measurements.csv")
    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    expected = {c.label_value: c for c in muscle_composition(ct, sitk.ReadImage(str(out / "labels.nii.gz")))}
    muscles = [row for row in rows if row.kind == "muscle"]
    assert [row.label_value for row in muscles] == list(range(1, 21))
    for row in muscles:
        assert row.voxels == expected[row.label_value].voxels and row.height_cm == 170.0
        if row.voxels:
            assert row.imat_percent == pytest.approx(expected[row.label_value].imat_percent, abs=1e-3)
            assert row.volume_per_height2_cm3_m2 == pytest.approx(row.volume_cm3 / 1.7 ** 2, abs=2e-3)
    thighs = {row.side: row for row in rows if row.muscle == "all_muscles"}
    assert set(thighs) == {"right", "left"}
    for side, row in thighs.items():
        assert row.voxels == sum(m.voxels for m in muscles if m.side == side)
        assert row.subcutaneous_fat_plane and (math.isnan(row.subcutaneous_fat_cm2) or row.subcutaneous_fat_cm2 >= 0)


def test_height_must_be_in_centimetres(tmp_path):
    r = thighseg("segment", tmp_path / "x.nii.gz", "--out", tmp_path / "o", "--height-cm", "1.7")
    assert r.returncode != 0 and "centimetres" in r.stderr


def test_frames_json_holds_the_fields_and_their_reach_that_hold_every_label(segmented, small_phantom):
    from ThighMuscleSegLib import framing

    _, out = segmented
    frames = framing.frames_from_json((out / "frames.json").read_text(encoding="utf-8"))
    assert sorted(f.side for f in frames) == ["left", "right"]
    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    assert [f.reach_mm for f in frames] == [framing.reach_into_scan(ct, f) for f in frames]
    assert any(f.reach_mm != (0.0, 0.0) for f in frames)  # this CT goes on beyond the fields' hip ends
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labels.nii.gz")))
    read = framing.field_mask(framing.reading_frames(frames), ct)
    analysed = framing.field_mask(frames, ct)
    assert analysed.any() and not (analysed & ~read).any()
    assert not (labels[~read] > 0).any()  # nothing outside what the views read
    assert (labels[read & ~analysed] > 0).any()  # but muscle beyond the analysed fields, where they read on


def test_progress_lines_are_json_with_stage_and_percent_and_a_final_done(segmented):
    r, out = segmented
    events = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert events and all({"stage", "percent"} <= e.keys() for e in events)
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents) and 0 <= percents[0] and percents[-1] == 100
    assert events[-1]["stage"] == "done"
    assert {Path(p).name for p in events[-1]["outputs"]} == OUTPUTS
    assert {"frame", "infer", "fuse right", "fuse left", "write"} <= {e["stage"] for e in events}
    from ThighMuscleSegLib import framing

    frames = framing.frames_from_json((out / "frames.json").read_text(encoding="utf-8"))
    quality = events[-1]["quality"]  # per thigh: verdict, muscles to check, every muscle's flag
    flagged = [q["verdict"] for q in quality.values() if q["to_check"]]
    assert events[-1]["notes"] == framing.notes_for_user(frames) + flagged  # what the user must be told
    assert set(quality) == {f.side for f in frames}
    for side, q in quality.items():
        assert set(q["muscles"]) == {c.key for c in C.CLASSES}
        assert q["to_check"] == [k for k, m in q["muscles"].items() if m["quality"] == "check"]
        assert q["verdict"].startswith(f"{side} thigh: ")
    assert json.loads((out / "frames.json").read_text(encoding="utf-8"))["quality"] == quality


def test_volumes_csv_has_a_quality_flag_per_muscle_and_side(segmented):
    from ThighMuscleSegLib.measure import CSV_COLUMNS, read_volumes_csv

    r, out = segmented
    header = (out / "volumes.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert tuple(header) == CSV_COLUMNS and header[-2:] == ["confidence", "quality"]
    rows = read_volumes_csv(out / "volumes.csv")
    assert all(row.quality in ("ok", "check") and 0.0 <= row.confidence <= 1.0 for row in rows)
    last = json.loads(r.stdout.strip().splitlines()[-1])
    for row in rows:
        assert last["quality"][row.side]["muscles"][row.muscle]["quality"] == row.quality


def test_seg_nrrd_reads_back_in_slicer_with_names_colours_and_terminology(segmented, mrml):
    import slicer

    from ThighMuscleSegLib import classes as C

    _, out = segmented
    node = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    mrml.scene.AddNode(storage)
    storage.SetFileName(str(out / "segmentation.seg.nrrd"))
    assert storage.ReadData(node) == 1
    seg = node.GetSegmentation()
    assert seg.GetNumberOfSegments() == 20
    for entry in C.segments():
        s = seg.GetSegment(seg.GetSegmentIdBySegmentName(entry.name))
        assert s.GetTerminology() == entry.slicer_terminology()
        assert np.allclose(s.GetColor(), [v / 255 for v in entry.color], atol=1e-3)


def test_existing_results_are_kept(segmented, small_phantom, random_model_file):
    _, out = segmented
    before = (out / "volumes.csv").read_bytes()
    r = thighseg("segment", small_phantom / "ct.nii.gz", "--out", out, "--model", random_model_file)
    assert r.returncode == 2 and "already holds results" in r.stderr
    assert (out / "volumes.csv").read_bytes() == before


def test_corrupt_model_file_is_a_clear_error(small_phantom, tmp_path):
    bad = tmp_path / "broken.tmsmodel"
    bad.write_bytes(b"PK\x03\x04 not really a model")
    r = thighseg("segment", small_phantom / "ct.nii.gz", "--out", tmp_path / "o", "--model", bad)
    assert r.returncode == 2 and "model" in r.stderr.lower()
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


def test_a_file_that_is_not_a_ct_is_a_clear_error(tmp_path, random_model_file):
    notes = tmp_path / "notes.nii.gz"
    notes.write_bytes(b"\x1f\x8b\x08 garbage")
    r = thighseg("segment", notes, "--out", tmp_path / "o", "--model", random_model_file)
    assert r.returncode == 2 and "corrupt or not a CT" in r.stderr


def test_a_ct_without_thighs_says_what_it_found(vhf, tmp_path, random_model_file):
    r = thighseg("segment", vhf / "ct" / "vhf_knee_ct.nii.gz", "--out", tmp_path / "o", "--model",
                 random_model_file, "--progress", "json")
    assert r.returncode == 2
    assert "no thigh found" in r.stderr and "knee or lower leg" in r.stderr
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["stage"] == "error" and "no thigh found" in last["message"]


def test_cancel_with_sigterm_leaves_nothing_behind(small_phantom, random_model_file, tmp_path):
    out = tmp_path / "cancelled"
    proc = subprocess.Popen([sys.executable, "-m", "ThighMuscleSegLib.cli.main", "segment",
                             str(small_phantom / "ct.nii.gz"), "--out", str(out), "--model",
                             str(random_model_file), "--progress", "json", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    for line in proc.stdout:  # wait until inference is under way, then cancel
        if '"infer' in line:
            break
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode == 130
    assert not out.exists() or os.listdir(out) == []


def test_dicom_input_also_gets_a_dicom_seg(small_phantom, random_model_file, tmp_path):
    import pydicom

    from ThighMuscleSegLib.phantom.writer import write_dicom_series

    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    (tmp_path / "dicom").mkdir()
    write_dicom_series(ct, tmp_path / "dicom", seed=11)
    r = thighseg("segment", tmp_path / "dicom", "--out", tmp_path / "out", "--model", random_model_file,
                 "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert set(os.listdir(tmp_path / "out")) == OUTPUTS | {"segmentation.dcm"}
    seg = pydicom.dcmread(tmp_path / "out" / "segmentation.dcm")
    assert seg.Modality == "SEG"
    labels = sitk.ReadImage(str(tmp_path / "out" / "labels.nii.gz"))
    assert np.allclose(labels.GetOrigin(), ct.GetOrigin(), atol=1e-2)
