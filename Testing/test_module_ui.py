"""The panel's .ui file and the widget names the module code uses agree."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

MODULE = Path(__file__).resolve().parent.parent / "ThighMuscleSeg"
UI = MODULE / "Resources" / "UI" / "ThighMuscleSeg.ui"

# The widget contract of the panel: name -> Qt/CTK/MRML class.
EXPECTED = {
    "inputVolumeSelector": "qMRMLNodeComboBox",
    "modelPathLineEdit": "ctkPathLineEdit",
    "deviceComboBox": "QComboBox",
    "manualRangeCheckBox": "QCheckBox",
    "thighRangeWidget": "ctkRangeWidget",
    "segmentButton": "QPushButton",
    "progressBar": "QProgressBar",
    "statusLabel": "QLabel",
    "segmentationSelector": "qMRMLNodeComboBox",
    "showDisagreementCheckBox": "QCheckBox",
    "volumesTable": "QTableWidget",
    "exportTableButton": "QPushButton",
    "editSegmentsButton": "QPushButton",
    "saveTrainingCaseButton": "QPushButton",
    "priorSegmentationSelector": "qMRMLNodeComboBox",
    "comparePriorButton": "QPushButton",
    "changeTable": "QTableWidget",
    "priorVolumeSelector": "qMRMLNodeComboBox",
    "changeSummaryLabel": "QLabel",
    "changePictureLabel": "QLabel",
}


def ui_widgets():
    root = ET.parse(UI).getroot()
    return {w.get("name"): w.get("class") for w in root.iter("widget")}


def used_widget_names():
    code = (MODULE / "ThighMuscleSeg.py").read_text(encoding="utf-8")
    return set(re.findall(r"self\.ui\.(\w+)", code))


def test_every_widget_the_code_uses_exists_with_the_expected_class():
    widgets = ui_widgets()
    for name in used_widget_names():
        assert name in widgets, f"ThighMuscleSeg.py uses ui.{name}, which the .ui file lacks"
        assert name in EXPECTED, f"ui.{name} is used but not in this test's contract"
    for name, cls in EXPECTED.items():
        assert widgets.get(name) == cls, f"{name}: .ui has {widgets.get(name)}, expected {cls}"


def test_custom_widgets_are_declared_and_node_selectors_get_the_scene():
    root = ET.parse(UI).getroot()
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    assert {c for c in used if c.startswith(("ctk", "qMRML"))} <= declared
    receivers = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    selectors = {n for n, c in ui_widgets().items() if c == "qMRMLNodeComboBox"}
    assert selectors == receivers


def test_device_choices_match_the_cli():
    root = ET.parse(UI).getroot()
    combo = next(w for w in root.iter("widget") if w.get("name") == "deviceComboBox")
    choices = [i.find("property/string").text for i in combo.findall("item")]
    assert choices == ["auto", "cpu", "cuda"]
