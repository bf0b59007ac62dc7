"""The colour table and terminology file in Resources/ are generated from the class table."""

import csv
import io
import json

from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib import resources as R


def test_committed_resources_match_the_class_table():
    for name, text in R.expected_files().items():
        committed = (R.RESOURCES / name).read_text(encoding="utf-8")
        assert committed == text, (
            f"Resources/{name} drifted from ThighMuscleSegLib/classes.py: "
            "run `python -m ThighMuscleSegLib.resources` and commit the result")


def test_color_table_rows_carry_names_colours_and_codes():
    rows = list(csv.DictReader(io.StringIO(R.color_table_csv())))
    assert len(rows) == 21
    for row, seg in zip(rows[1:], C.segments()):
        assert int(row["LabelValue"]) == seg.label_value
        assert row["Name"] == seg.name
        assert (int(row["Color_R"]), int(row["Color_G"]), int(row["Color_B"])) == seg.color
        assert row["Type_CodeValue"] == seg.muscle.code.value
        assert row["TypeModifier_CodeMeaning"] == seg.side.capitalize()


def test_terminology_lists_each_muscle_with_left_and_right():
    doc = json.loads(R.terminology_json())
    types = doc["SegmentationCodes"]["Category"][0]["Type"]
    assert [t["CodeValue"] for t in types] == [c.code.value for c in C.CLASSES]
    for t in types:
        assert {m["CodeMeaning"] for m in t["Modifier"]} == {"Left", "Right"}


def test_slicer_reads_the_committed_color_table(mrml):
    import slicer

    node = mrml.scene.AddNewNodeByClass("vtkMRMLColorTableNode", "ct")
    storage = slicer.vtkMRMLColorTableStorageNode()
    mrml.scene.AddNode(storage)
    storage.SetFileName(str(R.RESOURCES / R.COLOR_TABLE_NAME))
    assert storage.ReadData(node) == 1
    for seg in C.segments():
        assert node.GetColorName(seg.label_value) == seg.name
        term = node.GetTerminologyAsString(seg.label_value)
        assert seg.muscle.code.slicer_string() in term and seg.laterality.slicer_string() in term


def test_slicer_loads_the_committed_terminology():
    slicer = __import__("pytest").importorskip("slicer")
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    name = logic.LoadTerminologyFromFile(str(R.RESOURCES / R.TERMINOLOGY_NAME))
    assert name == C.TERMINOLOGY_CONTEXT
