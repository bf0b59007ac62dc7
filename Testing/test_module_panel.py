"""The panel's own code (ThighMuscleSeg.py) driven as Slicer's timers drive it: the real logic on a
real MRML scene (slicer-core), real child processes, real slicer.util; only Qt and the
scripted-module base classes, which exist only inside the Slicer application, are stand-ins."""

import importlib
import json
import sys
import time
import types
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import blocky_labels, make_image


class Timer:
    def __init__(self):
        self.active, self.interval, self.slots = False, 0, []

    def setInterval(self, ms):
        self.interval = ms

    def setSingleShot(self, on):
        pass

    def connect(self, signal, slot):
        self.slots.append(slot)

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class Widget(SimpleNamespace):
    def __init__(self, **kw):
        super().__init__(text="", enabled=True, visible=True, toolTip="", value=0, checked=False, **kw)


class Selector(Widget):
    def __init__(self, node=None):
        super().__init__()
        self.node = node

    def currentNode(self):
        return self.node

    def setCurrentNode(self, node):
        self.node = node


class Table(Widget):
    def __init__(self):
        super().__init__()
        self.rowCount, self.cells, self.props = 0, {}, {}

    def clear(self):
        self.cells = {}

    def setColumnCount(self, n):
        self.columns = n

    def setHorizontalHeaderLabels(self, labels):
        self.header = list(labels)

    def setRowCount(self, n):
        self.rowCount = n

    def setItem(self, r, c, item):
        self.cells[r, c] = item.text

    def resizeColumnsToContents(self):
        pass

    def setProperty(self, key, value):
        self.props[key] = value


class Picture(Widget):
    def setPixmap(self, pixmap):
        self.pixmap = pixmap


@pytest.fixture
def panel(mrml, monkeypatch, tmp_path):
    import slicer

    qt = types.ModuleType("qt")
    qt.QTimer = Timer
    qt.QTableWidgetItem = lambda text: SimpleNamespace(text=text)
    qt.QPixmap = lambda path: SimpleNamespace(path=path)
    monkeypatch.setitem(sys.modules, "qt", qt)
    base = type("Base", (), {"__init__": lambda self, *a, **k: None})
    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleLogic", "ScriptedLoadableModuleWidget",
                 "ScriptedLoadableModuleTest"):
        setattr(slm, name, base)
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", slm)
    qt.Qt = SimpleNamespace(WaitCursor=3)
    app = SimpleNamespace(testingEnabled=lambda: True, connect=lambda *a: None,
                          setOverrideCursor=lambda cursor: None, restoreOverrideCursor=lambda: None)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    shown = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **k: shown.append(("error", text)))
    monkeypatch.setattr(slicer.util, "warningDisplay", lambda text, **k: shown.append(("warning", text)))
    monkeypatch.delitem(sys.modules, "ThighMuscleSeg", raising=False)
    module = importlib.import_module("ThighMuscleSeg")
    from ThighMuscleSegModuleLib.scene import volume_node_from_image

    w = module.ThighMuscleSegWidget()
    w.logic = module.ThighMuscleSegLogic()
    w.timer, w.workTimer, w.volumesTimer = Timer(), Timer(), Timer()
    ct = volume_node_from_image(mrml.scene, make_image(np.full((24, 40, 48), -50, np.int16)), "CT")
    w.ui = SimpleNamespace(
        segmentButton=Widget(), progressBar=Widget(), statusLabel=Widget(), inputVolumeSelector=Selector(ct),
        segmentationSelector=Selector(), priorSegmentationSelector=Selector(), priorVolumeSelector=Selector(),
        changeSummaryLabel=Widget(), changePictureLabel=Picture(), editSegmentsButton=Widget(),
        saveTrainingCaseButton=Widget(), comparePriorButton=Widget(), exportTableButton=Widget(),
        volumesTable=Table(), changeTable=Table(), manualRangeCheckBox=Widget(), thighRangeWidget=Widget(),
        modelPathLineEdit=Widget(currentPath=""), deviceComboBox=Widget(currentText="cpu"))
    w.updateButtons()
    return SimpleNamespace(widget=w, ct=ct, shown=shown, scene=mrml.scene, tmp=tmp_path)


def _column(table, title):
    """Muscle name -> the cell of column ``title`` of a table as the panel shows it."""
    c = table.header.index(title)
    return {table.cells[r, 0]: table.cells[r, c] for r in range(table.rowCount)}


def _job(panel, code, outputs=None):
    from ThighMuscleSegModuleLib.logic import SegmentationJob
    from ThighMuscleSegModuleLib.runner import ThighsegProcess

    work = panel.tmp / "ThighMuscleSeg-run"
    out = work / "result"
    out.mkdir(parents=True)
    for name, write in (outputs or {}).items():
        write(out / name)
    process = ThighsegProcess([], command=[sys.executable, "-c", code])
    process.start()
    return SegmentationJob(process, panel.ct, work, out)


def _poll_until_idle(w, timeout=30):
    deadline = time.monotonic() + timeout
    while w.job is not None:
        assert time.monotonic() < deadline
        w.onPoll()  # what the 250 ms timer calls
        time.sleep(0.02)


DONE = json.dumps({"stage": "done", "percent": 100, "message": "segmented 2 thigh(s)",
                   "notes": ["", "the right thigh is cut by the scan at its knee end"]})


def test_a_result_that_fails_to_load_resets_the_button_and_leaves_the_scene(panel):
    w = panel.widget
    w.job = _job(panel, f"print({DONE!r})")  # a run that 'succeeded' but wrote nothing
    w.updateButtons()
    assert w.ui.segmentButton.text == "Cancel"
    nodes = panel.scene.GetNumberOfNodes()
    _poll_until_idle(w)
    assert w.ui.segmentButton.text == "Segment thighs" and w.ui.segmentButton.enabled
    assert not w.ui.progressBar.visible
    assert "Failed to load" in w.ui.statusLabel.text
    assert panel.scene.GetNumberOfNodes() == nodes
    assert not (panel.tmp / "ThighMuscleSeg-run").exists()


def test_a_finished_run_lands_with_its_table_and_notes_an_empty_note_included(panel):
    from ThighMuscleSegLib import measure
    from ThighMuscleSegLib.measure.table import measurement_rows, write_measurements_csv

    arr = blocky_labels()
    hu = np.where(arr > 0, 40 + arr, -50).astype(np.int16)  # every muscle normal-attenuation muscle
    fat = (arr == 1) & (np.arange(arr.shape[2])[None, None, :] % 2 == 0)
    hu[fat] = -100  # half of the right sartorius (alternate columns) is intramuscular fat
    ct, labels = make_image(hu), make_image(arr)
    outputs = {
        "labels.nii.gz": lambda p: sitk.WriteImage(labels, str(p)),
        "disagreement.nii.gz": lambda p: sitk.WriteImage(make_image(np.zeros_like(arr)), str(p)),
        "volumes.csv": lambda p: measure.write_volumes_csv(measure.muscle_volumes(ct, labels), p),
        "measurements.csv": lambda p: write_measurements_csv(measurement_rows(ct, labels), p),
    }
    w = panel.widget
    w.job = _job(panel, f"print({DONE!r})", outputs)
    _poll_until_idle(w)
    assert w.result is not None and w.ui.segmentationSelector.currentNode() is w.result.segmentation
    assert w.ui.volumesTable.rowCount == 20 + 2 * 4  # the muscles, then four groups per thigh
    imat, nama = _column(w.ui.volumesTable, "IMAT (%)"), _column(w.ui.volumesTable, "NAMA (%)")
    share = 100 * fat.sum() / (arr == 1).sum()
    assert float(imat["Right sartorius"]) == pytest.approx(share, abs=0.05)  # the panel shows one decimal
    assert float(nama["Right sartorius"]) == pytest.approx(100 - share, abs=0.05)
    assert float(imat["Left gracilis"]) == 0 and float(nama["Left gracilis"]) == 100
    volume = {k: float(v) for k, v in _column(w.ui.volumesTable, "Volume (cm3)").items()}
    quadriceps = sum(volume[f"Right {m}"] for m in ("rectus femoris", "vastus lateralis", "vastus intermedius",
                                                    "vastus medialis"))
    assert volume["Right quadriceps"] == pytest.approx(quadriceps, abs=0.25)  # sum of four one-decimal cells
    assert _column(w.ui.volumesTable, "Label")["Right quadriceps"] == ""
    assert panel.shown == [("warning", "The right thigh is cut by the scan at its knee end.")]
    assert w.ui.segmentButton.text == "Segment thighs"
    assert not (panel.tmp / "ThighMuscleSeg-run").exists()


def test_cancel_gives_the_gui_back_at_once_and_the_run_ends_cancelled(panel):
    w = panel.widget
    code = "import time; print('{\"stage\": \"read\", \"percent\": 2}', flush=True); time.sleep(120)"
    w.job = _job(panel, code)
    deadline = time.monotonic() + 30
    while w.job.process.poll().stage != "read":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process = w.job.process
    t0 = time.monotonic()
    w.onSegmentButton()  # the button says Cancel while running
    assert time.monotonic() - t0 < 0.2
    assert w.ui.segmentButton.text == "Cancelling…" and not w.ui.segmentButton.enabled
    _poll_until_idle(w)
    assert process.state.status == "cancelled"
    assert w.ui.statusLabel.text.startswith("Cancelled")
    assert w.ui.segmentButton.text == "Segment thighs"
    deadline = time.monotonic() + 10
    while (panel.tmp / "ThighMuscleSeg-run").exists():  # removed once the process is gone
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_selecting_and_editing_a_segmentation_measures_it_again_off_the_gui_thread(panel):
    import slicer

    w = panel.widget
    path = panel.tmp / "labels.nii.gz"
    arr = blocky_labels()
    sitk.WriteImage(make_image(arr), str(path))
    seg = w.logic.import_labels(path, panel.ct)
    w.ui.segmentationSelector.setCurrentNode(seg)
    w.onSegmentationChanged(seg)
    assert w.volumesTimer.active
    w.refreshVolumes()  # the timer fired
    w.volumesFuture.result(timeout=60)
    w.onBackgroundPoll()
    rows = _column(w.ui.volumesTable, "Voxels")
    assert rows["Right sartorius"] == str((arr == 1).sum())
    sid = seg.GetSegmentation().GetSegmentIdBySegmentName("Right sartorius")
    slicer.util.updateSegmentBinaryLabelmapFromArray(np.zeros_like(arr), seg, sid, panel.ct)  # an edit
    assert w.volumesTimer.active  # the observer saw it
    w.refreshVolumes()
    w.volumesFuture.result(timeout=60)
    w.onBackgroundPoll()
    rows = _column(w.ui.volumesTable, "Voxels")
    assert rows["Right sartorius"] == "0"
    assert len(w.ui.volumesTable.props) == 1
    tables = panel.scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems()
    w.refreshVolumes()
    w.volumesFuture.result(timeout=60)
    w.onBackgroundPoll()
    assert panel.scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == tables  # no new table node
    w.cleanup()


class RangeWidget(Widget):
    def setRange(self, lo, hi):
        self.range = (lo, hi)

    def setValues(self, lo, hi):
        self.minimumValue, self.maximumValue = lo, hi


def test_ticking_the_thigh_range_starts_from_the_cts_extent_not_0_to_99(panel):
    w = panel.widget
    w.ui.thighRangeWidget = RangeWidget(minimumValue=0.0, maximumValue=99.0)
    w.onManualRangeToggled(True)
    assert (w.ui.thighRangeWidget.minimumValue, w.ui.thighRangeWidget.maximumValue) == (0.0, 23.0)  # 24 slices of 1 mm


def test_compare_with_prior_and_save_as_training_case_run_on_workers_and_land(panel, monkeypatch, small_phantom):
    import qt

    from ThighMuscleSegModuleLib.scene import volume_node_from_image

    w = panel.widget
    ct = volume_node_from_image(panel.scene, sitk.ReadImage(str(small_phantom / "ct.nii.gz")), "phantom CT")
    w.ui.inputVolumeSelector.setCurrentNode(ct)
    current = w.logic.import_labels(small_phantom / "labels.nii.gz", ct, name="now")
    prior = w.logic.import_labels(small_phantom / "labels.nii.gz", ct, name="prior")
    w.ui.segmentationSelector.setCurrentNode(current)
    w.ui.priorSegmentationSelector.setCurrentNode(prior)
    w.onComparePrior()
    w.onComparePrior()  # twice: the second table replaces the first
    while w.background:
        w.onBackgroundPoll()
        time.sleep(0.02)
    assert panel.shown == []
    assert w.ui.changeTable.rowCount == 20
    assert set(_column(w.ui.changeTable, "Change (%)").values()) == {"0.0"}  # the same labels on the same CT
    assert panel.scene.GetNodesByName("now change since prior").GetNumberOfItems() == 1
    assert w.ui.changeSummaryLabel.text.startswith("compared over right")
    assert open(w.ui.changePictureLabel.pixmap.path, "rb").read(4) == b"\x89PNG"
    w.ui.inputVolumeSelector.setCurrentNode(panel.ct)
    dataset = panel.tmp / "dataset"
    monkeypatch.setattr(qt, "QFileDialog", SimpleNamespace(getExistingDirectory=lambda *a: str(dataset)), raising=False)
    monkeypatch.setattr(qt, "QInputDialog", SimpleNamespace(getText=lambda *a: "case01"), raising=False)
    monkeypatch.setattr(qt, "QLineEdit", SimpleNamespace(Normal=0), raising=False)
    w.onSaveTrainingCase()
    while w.background:
        w.onBackgroundPoll()
        time.sleep(0.02)
    assert (dataset / "case01" / "labels.nii.gz").is_file()
    assert w.ui.statusLabel.text.startswith("Saved")
    w.onSaveTrainingCase()  # the same name again: refused with a message, nothing replaced
    assert w.background == []
