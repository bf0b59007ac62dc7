"""What a radiologist's edits do to a segmentation in Slicer, and what the module then saves
and measures: real MRML (slicer-core), the real methods that renumber label values."""

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import blocky_labels, make_image
from ThighMuscleSegLib import classes as C

SPACING, ORIGIN = (0.8, 0.8, 2.0), (-100.0, 50.0, 600.0)


@pytest.fixture
def logic(mrml):
    from ThighMuscleSegModuleLib.logic import SceneLogic

    return SceneLogic(mrml.scene)


@pytest.fixture
def case(mrml, logic, tmp_path):
    """A CT node, its 20-muscle segmentation node and the label array it came from."""
    from ThighMuscleSegModuleLib.scene import volume_node_from_image

    arr = blocky_labels()
    hu = (np.where(arr > 0, 40, -90) + arr).astype(np.int16)  # each muscle its own HU
    ct_node = volume_node_from_image(mrml.scene, make_image(hu, SPACING, ORIGIN), "patient CT")
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(make_image(arr, SPACING, ORIGIN), str(path))
    return ct_node, logic.import_labels(path, ct_node), arr


def _sid(seg_node, name):
    return seg_node.GetSegmentation().GetSegmentIdBySegmentName(name)


def _label_value(seg_node, name):
    return seg_node.GetSegmentation().GetSegment(_sid(seg_node, name)).GetLabelValue()


def test_separated_segment_whose_label_value_slicer_reset_to_1_still_saves_as_itself(case, logic, tmp_path):
    ct_node, seg, arr = case
    segmentation = seg.GetSegmentation()
    segmentation.SeparateSegmentLabelmap(_sid(seg, "Left gracilis"))  # what overlap-allowed editing does
    assert _label_value(seg, "Left gracilis") == 1 == _label_value(seg, "Right sartorius")
    assert segmentation.GetNumberOfLayers() == 2
    assert np.array_equal(sitk.GetArrayFromImage(logic.labels_image(seg, ct_node)), arr)
    saved = logic.save_training_case(ct_node, seg, tmp_path / "dataset", "edited01")
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(saved / "labels.nii.gz"))), arr)
    rows = {r.name: r for r in logic.volumes_of(seg, ct_node)}
    assert rows["Left gracilis"].voxels == (arr == 16).sum()
    assert rows["Right sartorius"].voxels == (arr == 1).sum()
    assert rows["Left gracilis"].mean_hu == pytest.approx(40 + 16)


def test_merged_and_collapsed_layers_renumber_label_values_and_nothing_changes(case, logic):
    ct_node, seg, arr = case
    segmentation = seg.GetSegmentation()
    for name in ("Left gracilis", "Right vastus lateralis", "Left semimembranosus"):
        segmentation.SeparateSegmentLabelmap(_sid(seg, name))
    segmentation.MergeSegmentLabelmaps([_sid(seg, "Left gracilis"), _sid(seg, "Right vastus lateralis")])
    segmentation.CollapseBinaryLabelmaps(False)
    values = {e.name: _label_value(seg, e.name) for e in C.segments()}
    assert any(values[e.name] != e.label_value for e in C.segments())  # Slicer did renumber
    assert np.array_equal(sitk.GetArrayFromImage(logic.labels_image(seg, ct_node)), arr)


def test_an_overlapping_edit_on_its_own_layer_is_saved_under_the_edited_muscle(case, logic):
    import slicer

    ct_node, seg, arr = case
    gracilis = _sid(seg, "Left gracilis")
    seg.GetSegmentation().SeparateSegmentLabelmap(gracilis)
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(seg, gracilis, ct_node)
    grown = mask.copy()
    grown[arr == 1] = 1  # painted over the right sartorius with overlap allowed
    slicer.util.updateSegmentBinaryLabelmapFromArray(grown, seg, gracilis, ct_node)
    out = sitk.GetArrayFromImage(logic.labels_image(seg, ct_node))
    assert (out == 16).sum() == (arr == 16).sum() + (arr == 1).sum()  # later segment on top
    assert (out == 1).sum() == 0
    untouched = (arr != 1) & (arr != 16)
    assert np.array_equal(out[untouched], arr[untouched])


def test_renamed_segment_is_matched_by_terminology_and_unknown_segments_are_left_out(case, logic):
    ct_node, seg, arr = case
    segmentation = seg.GetSegmentation()
    segmentation.GetSegment(_sid(seg, "Right rectus femoris")).SetName("RF (redrawn)")
    extra = segmentation.AddEmptySegment("", "Tumour")
    import slicer

    tumour = np.zeros_like(arr)
    tumour[0, :2, :2] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(tumour, seg, extra, ct_node)
    segmentation.SeparateSegmentLabelmap(extra)
    assert segmentation.GetSegment(extra).GetLabelValue() == 1  # a class-table value, yet no muscle
    out = sitk.GetArrayFromImage(logic.labels_image(seg, ct_node))
    assert np.array_equal(out, arr)


def test_volume_table_follows_edits_in_one_table_node(case, logic, mrml):
    import slicer

    from ThighMuscleSegModuleLib.tables import table_rows

    ct_node, seg, arr = case
    future = logic.start_volumes(seg, ct_node)  # measured on a worker thread
    table = logic.volume_table_for(seg, future.result(timeout=60))
    tables_before = mrml.scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems()
    sid = _sid(seg, "Right sartorius")
    slicer.util.updateSegmentBinaryLabelmapFromArray(np.zeros_like(arr), seg, sid, ct_node)  # erased
    again = logic.volume_table_for(seg, logic.volumes_of(seg, ct_node))
    assert again is table
    assert mrml.scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == tables_before
    rows = {r["Muscle"]: r for r in table_rows(table)}
    assert rows["Right sartorius"]["Voxels"] == 0
    assert rows["Left sartorius"]["Voxels"] == (arr == 11).sum()


def test_a_failed_load_leaves_the_scene_as_it_was_and_no_work_folder(mrml, logic, tmp_path):
    from ThighMuscleSegModuleLib.logic import SegmentationJob
    from ThighMuscleSegModuleLib.runner import ThighsegProcess
    from ThighMuscleSegModuleLib.scene import volume_node_from_image

    ct_node = volume_node_from_image(mrml.scene, make_image(np.zeros((8, 9, 10), np.int16)), "CT")
    work = tmp_path / "ThighMuscleSeg-run"
    out = work / "result"
    out.mkdir(parents=True)
    sitk.WriteImage(make_image(blocky_labels((8, 9, 10), [1])), str(out / "labels.nii.gz"))
    (out / "volumes.csv").write_text("not,a,volumes,file\n", encoding="utf-8")
    process = ThighsegProcess([])
    process.state.status = "done"
    process.state.result = {"notes": []}
    job = SegmentationJob(process, ct_node, work, out)
    from ThighMuscleSegModuleLib.scene import class_color_node

    class_color_node(mrml.scene)  # made once and kept: the class table is no result
    nodes_before = mrml.scene.GetNumberOfNodes()
    with pytest.raises(Exception, match="volumes.csv"):
        logic.finish_segmentation(job)
    assert mrml.scene.GetNumberOfNodes() == nodes_before
    assert not work.exists()


def test_without_colour_table_terminology_as_on_slicer_5_8_segments_still_carry_it(mrml):
    from ThighMuscleSegModuleLib.scene import class_color_node, segment_terminology, segmentation_from_labels

    node = segmentation_from_labels(mrml.scene, make_image(blocky_labels()), "5.8 style", with_terminology=False)
    color = class_color_node(mrml.scene)
    assert not (hasattr(color, "GetContainsTerminology") and color.GetContainsTerminology())
    seg = node.GetSegmentation()
    for entry in C.segments():
        segment = seg.GetSegment(seg.GetSegmentIdBySegmentName(entry.name))
        assert segment_terminology(segment) == entry.slicer_terminology()
        assert segment.GetTag("TerminologyEntry", __import__("vtk").reference("")) is True


def test_the_colour_table_is_made_once_and_complete(mrml):
    from ThighMuscleSegModuleLib.scene import COLOR_TABLE_NAME, class_color_node

    stray = mrml.scene.AddNewNodeByClass("vtkMRMLColorTableNode", COLOR_TABLE_NAME)  # e.g. a half-made one
    stray.SetNumberOfColors(3)
    node = class_color_node(mrml.scene)
    assert node is not stray and class_color_node(mrml.scene) is node
    assert node.GetNumberOfColors() == 21
    for entry in C.segments():
        assert node.GetColorName(entry.label_value) == entry.name


def test_the_terminology_file_is_loaded_once_and_resolves_every_segment(mrml):
    import slicer
    import vtk

    from ThighMuscleSegModuleLib.scene import load_terminology

    terminologies = slicer.vtkSlicerTerminologiesModuleLogic()
    assert load_terminology(terminologies) == C.TERMINOLOGY_CONTEXT
    assert load_terminology(terminologies) == C.TERMINOLOGY_CONTEXT
    names = vtk.vtkStringArray()
    terminologies.GetLoadedTerminologyNames(names)
    assert [names.GetValue(i) for i in range(names.GetNumberOfValues())].count(C.TERMINOLOGY_CONTEXT) == 1
    for entry in C.segments():
        found = slicer.vtkSlicerTerminologyEntry()
        assert terminologies.FindTypeInTerminologyBy3dSlicerLabel(C.TERMINOLOGY_CONTEXT, entry.name.lower(), found)
        ours = entry.slicer_terminology().split("~")
        theirs = terminologies.SerializeTerminologyEntry(found).split("~")
        assert [p.split("^")[:2] for p in theirs[1:4]] == [p.split("^")[:2] for p in ours[1:4]], entry.name


def test_the_ct_goes_to_the_subprocess_as_raw_nrrd_with_its_geometry(mrml, tmp_path):
    from ThighMuscleSegModuleLib.scene import nrrd_writer, volume_node_from_image

    arr = (np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7) - 100)
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    image = make_image(arr, (0.7, 0.9, 2.5), (10.0, -20.0, 30.0), direction)
    node = volume_node_from_image(mrml.scene, image, "CT")
    path = nrrd_writer(node, tmp_path / "ct.nrrd")()
    assert b"encoding: raw" in path.read_bytes()[:400]
    back = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(back), arr)
    assert np.allclose(back.GetSpacing(), image.GetSpacing())
    assert np.allclose(back.GetOrigin(), image.GetOrigin())
    assert np.allclose(back.GetDirection(), image.GetDirection())


def test_manual_thigh_range_is_checked_against_the_ct(mrml):
    from ThighMuscleSegModuleLib.scene import check_thigh_range, ct_z_range_mm, volume_node_from_image

    node = volume_node_from_image(mrml.scene, make_image(np.zeros((50, 4, 4), np.int16), (1, 1, 2.0),
                                                        (0, 0, -300.0)), "CT")
    assert ct_z_range_mm(node) == pytest.approx((-300.0, -202.0))
    assert check_thigh_range(node, (-210.0, -290.0)) == (-290.0, -210.0)
    with pytest.raises(ValueError, match="outside the CT"):
        check_thigh_range(node, (0.0, 99.0))  # the range widget's untouched default
    with pytest.raises(ValueError, match="too short"):
        check_thigh_range(node, (-250.0, -250.0))


def test_notes_become_sentences_and_an_empty_note_is_skipped():
    from ThighMuscleSegModuleLib.logic import format_notes

    assert format_notes(["the right thigh is cut by the scan", "", "  "]) == "The right thigh is cut by the scan."
    assert format_notes([]) == ""


def test_stale_work_folders_are_removed_and_recent_ones_kept(tmp_path):
    import os
    import time

    from ThighMuscleSegModuleLib.logic import WORK_PREFIX, remove_stale_work_dirs

    old, new, other = tmp_path / f"{WORK_PREFIX}old", tmp_path / f"{WORK_PREFIX}new", tmp_path / "other"
    for p in (old, new, other):
        p.mkdir()
        (p / "ct.nrrd").write_bytes(b"x")
    past = time.time() - 3 * 24 * 3600
    os.utime(old, (past, past))
    os.utime(other, (past, past))
    assert remove_stale_work_dirs(tmp_path) == [old]
    assert not old.exists() and new.exists() and other.exists()


def test_an_import_adds_only_the_segmentation_and_its_display(mrml):
    from ThighMuscleSegModuleLib.scene import class_color_node, segmentation_from_labels

    class_color_node(mrml.scene)
    before = {mrml.scene.GetNthNode(i).GetID() for i in range(mrml.scene.GetNumberOfNodes())}
    node = segmentation_from_labels(mrml.scene, make_image(blocky_labels()), "muscles")
    added = {mrml.scene.GetNthNode(i).GetClassName() for i in range(mrml.scene.GetNumberOfNodes())
             if mrml.scene.GetNthNode(i).GetID() not in before}
    assert added == {"vtkMRMLSegmentationNode", "vtkMRMLSegmentationDisplayNode"}, added
    assert node.GetSegmentation().GetNumberOfSegments() == 20
