"""The module's Logic against real MRML (slicer-core): what a radiologist's clicks do."""

import csv
import math

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import blocky_labels, make_image
from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib import measure


@pytest.fixture
def logic(mrml):
    from ThighMuscleSegModuleLib.logic import SceneLogic

    return SceneLogic(mrml.scene)


def _ct_and_labels(mrml, tmp_path, arr=None):
    from ThighMuscleSegModuleLib.scene import volume_node_from_image

    arr = blocky_labels() if arr is None else arr
    spacing, origin = (0.8, 0.8, 2.0), (-100.0, 50.0, 600.0)
    hu = np.where(arr > 0, 50, -90).astype(np.int16)
    ct_node = volume_node_from_image(mrml.scene, make_image(hu, spacing, origin), "patient CT")
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(make_image(arr, spacing, origin), str(path))
    return ct_node, path, arr


def test_segmentation_exports_back_to_the_same_label_map(mrml, logic, tmp_path):
    ct_node, path, arr = _ct_and_labels(mrml, tmp_path)
    seg = logic.import_labels(path, ct_node)
    back = sitk.GetArrayFromImage(logic.labels_image(seg, ct_node))
    assert np.array_equal(back, arr)


def test_edited_segment_changes_the_volumes(mrml, logic, tmp_path):
    import slicer

    ct_node, path, arr = _ct_and_labels(mrml, tmp_path)
    seg = logic.import_labels(path, ct_node)
    before = {v.label_value: v for v in logic.volumes_of(seg, ct_node)}
    sid = seg.GetSegmentation().GetSegmentIdBySegmentName("Right sartorius")
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(seg, sid, ct_node)
    mask[:, :, :] = 0
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask, seg, sid, ct_node)  # the user erases it
    after = {v.label_value: v for v in logic.volumes_of(seg, ct_node)}
    assert before[1].voxels == (arr == 1).sum() and after[1].voxels == 0
    assert after[2].voxels == before[2].voxels


def test_training_case_is_written_in_the_dataset_contract_and_never_replaced(mrml, logic, tmp_path):
    from ThighMuscleSegLib.training.data import find_cases

    ct_node, path, arr = _ct_and_labels(mrml, tmp_path)
    seg = logic.import_labels(path, ct_node)
    case = logic.save_training_case(ct_node, seg, tmp_path / "dataset", "patient01")
    assert [c.name for c in find_cases(tmp_path / "dataset")] == ["patient01"]
    labels = sitk.ReadImage(str(case / "labels.nii.gz"))
    ct = sitk.ReadImage(str(case / "ct.nii.gz"))
    assert labels.GetPixelID() == sitk.sitkUInt8 and ct.GetPixelID() == sitk.sitkInt16
    assert np.array_equal(sitk.GetArrayFromImage(labels), arr)
    assert np.allclose(ct.GetOrigin(), (-100.0, 50.0, 600.0)) and np.allclose(ct.GetSpacing(), (0.8, 0.8, 2.0))
    with pytest.raises(FileExistsError):
        logic.save_training_case(ct_node, seg, tmp_path / "dataset", "patient01")
    assert sorted(p.name for p in (tmp_path / "dataset").iterdir()) == ["patient01"]


def _verdict_agrees(row) -> bool:
    """A change row's volume verdict is the one its change and SDC columns call for."""
    from ThighMuscleSegLib.measure.change import BEYOND, NO_SDC, WITHIN

    change, sdc = float(row["Change (%)"]), float(row["SDC (%)"])
    if sdc != sdc:  # no repeatability table for this muscle
        return row["Volume verdict"] == NO_SDC
    return row["Volume verdict"] == (WITHIN if abs(change) < sdc else BEYOND)


def test_prior_comparison_reports_the_shrunk_muscle_with_its_verdict_and_picture(mrml, logic, small_phantom,
                                                                                    tmp_path):
    from ThighMuscleSegModuleLib.tables import table_rows

    ct_node = _phantom_ct_node(mrml, small_phantom)
    prior = logic.import_labels(small_phantom / "labels.nii.gz", ct_node, name="prior")
    labels = sitk.ReadImage(str(small_phantom / "labels.nii.gz"))
    arr = sitk.GetArrayFromImage(labels)
    shrunk = arr.copy()
    shrunk[(arr == 3) & (np.arange(arr.shape[2])[None, None, :] % 2 == 0)] = 0  # right VL loses every other column
    now = sitk.GetImageFromArray(shrunk)
    now.CopyInformation(labels)
    sitk.WriteImage(now, str(tmp_path / "now.nii.gz"))
    current = logic.import_labels(tmp_path / "now.nii.gz", ct_node, name="current")
    picture = tmp_path / "change.png"
    table = logic.compare_with_prior(current, prior, ct_node, picture=picture)
    rows = {r["Muscle"]: r for r in table_rows(table)}
    assert len(rows) == 20
    removed = 1 - (shrunk == 3).sum() / (arr == 3).sum()
    assert float(rows["Right vastus lateralis"]["Change (%)"]) == pytest.approx(-100 * removed, abs=1.0)
    assert all(float(r["Change (cm3)"]) == 0 for m, r in rows.items() if m != "Right vastus lateralis")
    assert all(_verdict_agrees(r) for r in rows.values())
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert current.GetNodeReference("ThighMuscleSegChange") is table


def test_a_prior_scan_4_cm_shorter_at_the_knee_is_not_read_as_atrophy(mrml, logic, small_phantom, tmp_path):
    from ThighMuscleSegModuleLib.scene import volume_node_from_image
    from ThighMuscleSegModuleLib.tables import table_rows

    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    labels = sitk.ReadImage(str(small_phantom / "labels.nii.gz"))
    assert ct.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # slice 0 is the knee (inferior) end
    cut = int(round(40.0 / ct.GetSpacing()[2]))
    ct_node = _phantom_ct_node(mrml, small_phantom)
    prior_ct_node = volume_node_from_image(mrml.scene, ct[:, :, cut:], "prior CT")
    sitk.WriteImage(labels[:, :, cut:], str(tmp_path / "prior_labels.nii.gz"))
    prior = logic.import_labels(tmp_path / "prior_labels.nii.gz", prior_ct_node, name="prior")
    current = logic.import_labels(small_phantom / "labels.nii.gz", ct_node, name="current")
    rows = table_rows(logic.compare_with_prior(current, prior, ct_node, prior_ct_node))
    naive = {v.name: v.volume_cm3 for v in measure.muscle_volumes(ct[:, :, cut:], labels[:, :, cut:])}
    whole = {v.name: v.volume_cm3 for v in measure.muscle_volumes(ct, labels)}
    assert min(100 * (naive[n] - whole[n]) / whole[n] for n in whole if whole[n]) < -5  # what a plain comparison says
    assert all(abs(float(r["Change (%)"])) < 1.5 for r in rows), [(r["Muscle"], r["Change (%)"]) for r in rows]
    assert all(_verdict_agrees(r) for r in rows)


def test_a_runs_frames_are_used_only_with_the_ct_they_were_found_in(mrml, logic, small_phantom):
    from ThighMuscleSegLib.framing import frame_thighs, frames_to_json
    from ThighMuscleSegModuleLib import follow_up as F

    ct_node, other_ct = _phantom_ct_node(mrml, small_phantom), _phantom_ct_node(mrml, small_phantom)
    seg = logic.import_labels(small_phantom / "labels.nii.gz", ct_node)
    assert F.frames_of(seg, ct_node) is None  # not made by a run: framed from its CT when needed
    frames = frame_thighs(sitk.ReadImage(str(small_phantom / "ct.nii.gz")))
    F.keep_frames(seg, ct_node, frames_to_json(frames))
    assert F.frames_of(seg, ct_node) == frames
    assert F.frames_of(seg, other_ct) is None and F.femur_lines_of(seg, other_ct) == {}


def test_volume_table_exports_to_csv(mrml, logic, tmp_path):
    from ThighMuscleSegModuleLib import tables as T

    ct_node, path, _ = _ct_and_labels(mrml, tmp_path)
    seg = logic.import_labels(path, ct_node)
    rows = logic.volumes_of(seg, ct_node)
    node = T.volume_table(mrml.scene, rows, "volumes")
    out = logic.export_table(node, tmp_path / "export" / "volumes.csv")
    read = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(read) == 20 + 2 * len(C.GROUPS)  # the muscles, then the groups of each thigh
    assert read[0]["Muscle"] == "Right sartorius"
    assert float(read[0]["Volume (cm3)"]) == pytest.approx(rows[0].volume_cm3)
    assert all(r["Side"] in ("right", "left") for r in read)
    muscles, groups = read[:20], {r["Muscle"]: r for r in read[20:]}
    assert all(float(r["NAMA (%)"]) == 100 and float(r["SD HU"]) == 0 for r in muscles)  # every muscle voxel 50 HU
    right = sum(float(r["Volume (cm3)"]) for r in muscles if r["Side"] == "right")
    assert float(groups["Right all ten muscles"]["Volume (cm3)"]) == pytest.approx(right)
    assert groups["Right all ten muscles"]["Label"] == ""


def _phantom_ct_node(mrml, small_phantom):
    from ThighMuscleSegModuleLib.scene import volume_node_from_image

    return volume_node_from_image(mrml.scene, sitk.ReadImage(str(small_phantom / "ct.nii.gz")), "phantom CT")


def _wait(job, timeout):
    """The run's end; a run still going after ``timeout`` is cancelled, not left behind."""
    import subprocess

    try:
        return job.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        job.process.cancel(grace_s=5)
        job.discard()
        pytest.fail(f"thighseg segment did not finish within {timeout} s (stage {job.process.state.stage!r})")


def _stop(job):
    job.process.cancel(grace_s=5)
    job.discard()


@pytest.mark.slow  # a real thighseg subprocess
def test_segmentation_runs_in_a_subprocess_and_lands_in_the_scene(mrml, logic, small_phantom, random_model_file,
                                                                  request):
    from ThighMuscleSegModuleLib.tables import table_rows

    ct_node = _phantom_ct_node(mrml, small_phantom)
    nodes_before = mrml.scene.GetNumberOfNodes()
    job = logic.start_segmentation(ct_node, model=str(random_model_file), device="cpu")
    request.addfinalizer(lambda: _stop(job))  # whatever fails below, nothing is left running or on disk
    state = _wait(job, timeout=600)
    assert state.status == "done", state.message
    assert mrml.scene.GetNumberOfNodes() == nodes_before  # nothing touches the scene until finish
    result = logic.finish_segmentation(job, keep_outputs=True)
    seg = result.segmentation.GetSegmentation()
    assert seg.GetNumberOfSegments() == 20
    from ThighMuscleSegLib.framing import frames_from_json, notes_for_user

    flagged = [q["verdict"] for q in state.result["quality"].values() if q["to_check"]]  # thighs to check
    assert result.notes == notes_for_user(frames_from_json((job.out_dir / "frames.json").read_text(encoding="utf-8"))) + flagged
    gracilis = next(s for s in C.segments() if s.name == "Left gracilis")
    assert seg.GetSegment(seg.GetSegmentIdBySegmentName("Left gracilis")).GetTerminology() == \
        gracilis.slicer_terminology()
    assert result.segmentation.GetSegmentation().ContainsRepresentation("Closed surface")
    table = table_rows(result.volumes)
    csv_rows = measure.read_volumes_csv(job.out_dir / "volumes.csv")
    assert [r["Muscle"] for r in table[:20]] == [r.name for r in csv_rows]
    if (job.out_dir / "measurements.csv").is_file():  # the group rows and new columns come from it
        from ThighMuscleSegLib.measure.table import read_measurements_csv

        measured = read_measurements_csv(job.out_dir / "measurements.csv")
        assert [r["Muscle"] for r in table] == [m.name for m in measured]
        for t, m in zip(table, measured):
            for title, value in (("SD HU", m.sd_hu), ("IMAT (%)", m.imat_percent), ("CSA max (cm2)", m.csa_max_cm2)):
                assert float(t[title]) == pytest.approx(value, abs=1e-9, nan_ok=True)
        # Measured again in the module (as after an edit), from the frames and femur lines kept on the node:
        # the same numbers as thighseg segment's (measurements.csv keeps three decimals).
        again = logic.volumes_of(result.segmentation, ct_node)
        assert [r.name for r in again] == [m.name for m in measured]
        assert any(math.isfinite(m.csa_max_cm2) for m in measured)  # the small phantom lacks a femur end: no 50 %
        for r, m in zip(again, measured):
            for key in ("volume_cm3", "sd_hu", "imat_percent", "csa_50_cm2", "csa_max_cm2", "subcutaneous_fat_cm2"):
                assert getattr(r, key) == pytest.approx(getattr(m, key), abs=6e-4, nan_ok=True), (r.name, key)
    for t, c in zip(table, csv_rows):
        assert float(t["Volume (cm3)"]) == pytest.approx(c.volume_cm3, rel=1e-6, abs=1e-9)
        assert int(t["Voxels"]) == c.voxels
        assert t["Quality"] == c.quality in ("ok", "check")
        assert float(t["Confidence"]) == pytest.approx(c.confidence, abs=1e-9)
    disagreement = sitk.GetArrayFromImage(sitk.ReadImage(str(job.out_dir / "disagreement.nii.gz")))
    import slicer

    assert np.array_equal(slicer.util.arrayFromVolume(result.disagreement), disagreement)
    job.discard()
    assert not job.work_dir.exists()  # the CT copy and the outputs leave the temp folder


@pytest.mark.slow  # a real thighseg subprocess
def test_cancel_stops_the_run_and_leaves_the_scene_as_it_was(mrml, logic, small_phantom, random_model_file, request):
    import time

    ct_node = _phantom_ct_node(mrml, small_phantom)
    nodes_before = mrml.scene.GetNumberOfNodes()
    job = logic.start_segmentation(ct_node, model=str(random_model_file), device="cpu")
    request.addfinalizer(lambda: _stop(job))
    deadline = time.time() + 300
    while job.process.poll().stage in ("prepare", "start", "read") and time.time() < deadline:
        time.sleep(0.1)
    t0 = time.monotonic()
    job.process.cancel()
    assert time.monotonic() - t0 < 0.5  # Cancel gives the GUI back at once
    state = _wait(job, timeout=60)
    assert state.status == "cancelled"
    assert mrml.scene.GetNumberOfNodes() == nodes_before
    assert not job.out_dir.exists() or list(job.out_dir.iterdir()) == []
    with pytest.raises(RuntimeError, match="cancelled"):
        logic.finish_segmentation(job)
    job.discard()
    assert not job.work_dir.exists()  # no CT copy left in the temp folder


@pytest.mark.slow  # a real thighseg subprocess
def test_a_saved_training_case_is_read_by_thighseg_train(mrml, logic, small_phantom, tmp_path):
    from ThighMuscleSegLib.cli.main import main
    from ThighMuscleSegLib.models import load_model

    ct_node = _phantom_ct_node(mrml, small_phantom)
    seg = logic.import_labels(small_phantom / "labels.nii.gz", ct_node)  # stands for a corrected result
    logic.save_training_case(ct_node, seg, tmp_path / "dataset", "corrected01")
    out = tmp_path / "tuned.tmsmodel"
    assert main(["train", str(tmp_path / "dataset"), "--out", str(out), "--epochs", "1", "--steps-per-view", "1",
                 "--width", "4", "--device", "cpu", "--edge-cut", "0.5"]) == 0
    training = load_model(out).settings.training
    assert training["data"]["train_cases"] == ["corrected01"]
    assert training["augment"]["edge_cut"] == 0.5  # the model file says how it was trained
