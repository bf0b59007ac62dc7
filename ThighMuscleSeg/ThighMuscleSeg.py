"""ThighMuscleSeg: one click from CT to thigh muscles, volumes and new ground truth.

A thin 3D Slicer module (Slicer 5.8 to 5.13): the panel wires widgets to
``ThighMuscleSegLogic``; the logic converts nodes to and from the library's images
(``ThighMuscleSegModuleLib``), and the pure-Python library ``ThighMuscleSegLib`` does the work.
The GUI thread never waits on whole-volume work: segmentation runs in a subprocess, measuring
and writing on worker threads, and the panel polls both from timers.
"""

import contextlib
import logging
import os

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from ThighMuscleSegModuleLib.logic import SceneLogic  # also makes ThighMuscleSegLib importable


class ThighMuscleSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Thigh Muscle Segmentation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["ThighMuscleSeg developers"]
        self.parent.helpText = (
            "Segments the ten thigh muscles of both legs in CT with the 2.5D U-Net of Haque et al. "
            "Select a CT and click <b>Segment thighs</b>. The result is a segmentation with 20 named, "
            "coloured segments, their volumes, and a map of where the three views disagree. "
            "The bundled model was trained on phantoms, not patients: check every result.")
        self.parent.acknowledgementText = (
            "Anatomy of the test phantoms: Visible Human Female surfaces, Andreassen et al., "
            "Scientific Data 2022 (CC BY 4.0); Visible Human Project, National Library of Medicine.")
        # Segment Editor resolves the segments' terminology only once the file is loaded
        # (as SlicerTotalSegmentator does); the widget loads it too, for a module added later.
        slicer.app.connect("startupCompleted()", loadTerminology)


def loadTerminology():
    try:
        from ThighMuscleSegModuleLib.scene import load_terminology

        load_terminology(slicer.modules.terminologies.logic())
    except Exception:  # noqa: BLE001 - never stop Slicer's start-up over it
        logging.exception("ThighMuscleSeg: could not load its terminology file")


@contextlib.contextmanager
def reportedErrors(message, waitCursor=False):
    """Like ``slicer.util.tryWithErrorDisplay`` (which shows the error), but the error stops
    here: the code after the block (resetting buttons, timers) always runs."""
    try:
        with slicer.util.tryWithErrorDisplay(message, waitCursor=waitCursor):
            yield
    except Exception:  # noqa: BLE001 - shown to the user above
        logging.exception(message)


class ThighMuscleSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: widgets in, logic calls out. No processing here."""

    EDIT_EVENTS = ("SourceRepresentationModified", "SegmentAdded", "SegmentRemoved", "SegmentModified")

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.job = None
        self.cancelling = False
        self.result = None
        self.timer = None
        self.observedSegmentation = None
        self.volumesFuture = None
        self.volumesPending = False
        self.background = []  # (future, on_done, error message)

    def setup(self):
        import qt

        ScriptedLoadableModuleWidget.setup(self)
        panel = slicer.util.loadUI(self.resourcePath("UI/ThighMuscleSeg.ui"))
        self.layout.addWidget(panel)
        self.ui = slicer.util.childWidgetVariables(panel)
        panel.setMRMLScene(slicer.mrmlScene)
        self.logic = ThighMuscleSegLogic()
        loadTerminology()
        self.timer = qt.QTimer()
        self.timer.setInterval(250)
        self.timer.connect("timeout()", self.onPoll)
        self.workTimer = qt.QTimer()
        self.workTimer.setInterval(100)
        self.workTimer.connect("timeout()", self.onBackgroundPoll)
        self.volumesTimer = qt.QTimer()  # edits come in bursts (every paint stroke): measure after a pause
        self.volumesTimer.setSingleShot(True)
        self.volumesTimer.setInterval(1000)
        self.volumesTimer.connect("timeout()", self.refreshVolumes)
        self.ui.thighRangeWidget.setRange(-2000, 3000)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onInputVolumeChanged)
        self.ui.manualRangeCheckBox.connect("toggled(bool)", self.onManualRangeToggled)
        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentationChanged)
        self.ui.showDisagreementCheckBox.connect("toggled(bool)", self.onShowDisagreement)
        self.ui.exportTableButton.connect("clicked(bool)", self.onExportTable)
        self.ui.editSegmentsButton.connect("clicked(bool)", self.onEditSegments)
        self.ui.saveTrainingCaseButton.connect("clicked(bool)", self.onSaveTrainingCase)
        self.ui.comparePriorButton.connect("clicked(bool)", self.onComparePrior)
        self.updateButtons()

    def cleanup(self):
        if self.job is not None:
            self.job.process.cancel()
            self.job.discard()
            self.job = None
        for timer in (self.timer, getattr(self, "workTimer", None), getattr(self, "volumesTimer", None)):
            if timer is not None:
                timer.stop()
        self.removeObservers()

    # --- state -----------------------------------------------------------------------
    def updateButtons(self, *_):
        running = self.job is not None
        has_ct = self.ui.inputVolumeSelector.currentNode() is not None
        self.ui.segmentButton.text = ("Cancelling…" if self.cancelling else "Cancel" if running else "Segment thighs")
        self.ui.segmentButton.enabled = (running and not self.cancelling) or (not running and has_ct)
        self.ui.segmentButton.toolTip = ("Stop the run; the scene stays as it was" if running else
                                         "Find both thighs, run the three U-Nets and vote" if has_ct else
                                         "Select a CT volume first")
        self.ui.progressBar.visible = running
        has_seg = self.ui.segmentationSelector.currentNode() is not None
        for button in (self.ui.editSegmentsButton, self.ui.saveTrainingCaseButton, self.ui.comparePriorButton):
            button.enabled = has_seg and has_ct and not running
        self.ui.exportTableButton.enabled = self.ui.volumesTable.rowCount > 0

    def onInputVolumeChanged(self, node):
        self.onManualRangeToggled(self.ui.manualRangeCheckBox.checked)
        self.scheduleVolumes()
        self.updateButtons()

    def onManualRangeToggled(self, on):
        """The range starts as the CT's whole superior-inferior extent (never the widget's 0-99)."""
        ct = self.ui.inputVolumeSelector.currentNode()
        if on and ct is not None and ct.GetImageData() is not None:
            from ThighMuscleSegModuleLib.scene import ct_z_range_mm

            lo, hi = ct_z_range_mm(ct)
            self.ui.thighRangeWidget.setRange(lo, hi)
            self.ui.thighRangeWidget.setValues(lo, hi)

    # --- segmentation ----------------------------------------------------------------
    def onSegmentButton(self):
        if self.job is not None:
            self.job.process.cancel()  # returns at once; onPoll sees the run end
            self.cancelling = True
            self.ui.statusLabel.text = "Cancelling…"
            self.updateButtons()
            return
        from ThighMuscleSegModuleLib import dependencies

        missing = dependencies.missing()
        if missing:
            if not slicer.util.confirmOkCancelDisplay(dependencies.describe_missing(missing) + " Install now?"):
                return
            with reportedErrors("Could not install the packages.", waitCursor=True):
                dependencies.install(missing)
            if dependencies.missing():
                return
        thigh_range = None
        if self.ui.manualRangeCheckBox.checked:
            thigh_range = (self.ui.thighRangeWidget.minimumValue, self.ui.thighRangeWidget.maximumValue)
        with reportedErrors("Could not start the segmentation."):
            self.job = self.logic.start_segmentation(self.ui.inputVolumeSelector.currentNode(),
                                                     model=self.ui.modelPathLineEdit.currentPath or None,
                                                     device=self.ui.deviceComboBox.currentText,
                                                     thigh_range=thigh_range)
            self.cancelling = False
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = "Starting…"
            self.timer.start()
        self.updateButtons()

    def onPoll(self):
        try:
            self.pollJob()
        finally:
            self.updateButtons()  # whatever happened, the button tells the truth

    def pollJob(self):
        if self.job is None:
            self.timer.stop()
            return
        state = self.job.process.poll()
        self.ui.progressBar.value = int(state.percent)
        if not self.cancelling:
            self.ui.statusLabel.text = state.message
        if state.status == "running":
            return
        self.timer.stop()
        job, self.job, self.cancelling = self.job, None, False
        if state.status == "done":
            self.ui.statusLabel.text = "Loading the result…"
            with reportedErrors("Could not load the result.", waitCursor=True):
                self.result = self.logic.finish_segmentation(job)
                self.ui.segmentationSelector.setCurrentNode(self.result.segmentation)
                self.showTable(self.ui.volumesTable, self.result.volumes)
                self.ui.statusLabel.text = state.message
                self.warnAboutNotes(self.result.notes)
                return
            self.ui.statusLabel.text = "Failed to load the result: the scene is as it was."
            return
        job.discard()
        if state.status == "cancelled":
            self.ui.statusLabel.text = "Cancelled: nothing was added to the scene."
        else:
            self.ui.statusLabel.text = f"Failed: {state.message}"
            slicer.util.errorDisplay(state.message, windowTitle="Thigh muscle segmentation")

    def warnAboutNotes(self, notes):
        from ThighMuscleSegModuleLib.logic import format_notes

        text = format_notes(notes)  # e.g. a thigh cut by the scan: its volumes are too small
        if text:
            slicer.util.warningDisplay(text, windowTitle="Thigh muscle segmentation")

    # --- work on worker threads --------------------------------------------------------
    def runInBackground(self, future, onDone, errorMessage):
        self.background.append((future, onDone, errorMessage))
        self.workTimer.start()

    def onBackgroundPoll(self):
        waiting = []
        for future, onDone, errorMessage in self.background:
            if not future.done():
                waiting.append((future, onDone, errorMessage))
                continue
            with reportedErrors(errorMessage):
                onDone(future.result())
        self.background = waiting
        if not waiting:
            self.workTimer.stop()

    # --- volumes: measured again after every edit and on every selection ----------------
    def onSegmentationChanged(self, node):
        self.observeSegmentation(node)
        if node is None:
            self.ui.volumesTable.setRowCount(0)
        else:
            self.scheduleVolumes(at_once=True)
        self.updateButtons()

    def observeSegmentation(self, node):
        if self.observedSegmentation is not None:
            for event in self.EDIT_EVENTS:
                self.removeObserver(self.observedSegmentation, _event_id(event), self.onSegmentationEdited)
        self.observedSegmentation = node.GetSegmentation() if node is not None else None
        if self.observedSegmentation is not None:
            for event in self.EDIT_EVENTS:
                self.addObserver(self.observedSegmentation, _event_id(event), self.onSegmentationEdited)

    def onSegmentationEdited(self, caller=None, event=None):
        if self.result is not None and caller is self.result.segmentation.GetSegmentation():
            self.result.edited = True
        self.scheduleVolumes()

    def scheduleVolumes(self, at_once=False):
        if self.ui.segmentationSelector.currentNode() is None or self.ui.inputVolumeSelector.currentNode() is None:
            return
        self.volumesTimer.setInterval(0 if at_once else 1000)
        self.volumesTimer.start()

    def refreshVolumes(self):
        seg = self.ui.segmentationSelector.currentNode()
        ct = self.ui.inputVolumeSelector.currentNode()
        if seg is None or ct is None:
            return
        result = self.result
        if result is not None and seg is result.segmentation and ct is result.ct_node and not result.edited:
            self.showTable(self.ui.volumesTable, result.volumes)  # as segment measured it, with its quality flags
            return
        if self.volumesFuture is not None and not self.volumesFuture.done():
            self.volumesPending = True  # measured again when this one is over
            return
        self.ui.statusLabel.text = f"Measuring {seg.GetName()}…"
        with reportedErrors("Could not measure the muscles."):
            self.volumesFuture = self.logic.start_volumes(seg, ct)  # one merged export here, measuring on a worker

            def show(rows, seg=seg):
                if seg is self.ui.segmentationSelector.currentNode():
                    self.showTable(self.ui.volumesTable, self.logic.volume_table_for(seg, rows))
                    self.ui.statusLabel.text = f"Volumes of {seg.GetName()} as it is now."
                if self.volumesPending:
                    self.volumesPending = False
                    self.scheduleVolumes(at_once=True)
                self.updateButtons()

            self.runInBackground(self.volumesFuture, show, "Could not measure the muscles.")

    # --- results ---------------------------------------------------------------------
    def showTable(self, widget, table_node):
        import qt

        from ThighMuscleSegModuleLib.tables import table_rows

        rows = table_rows(table_node)
        columns = list(rows[0]) if rows else []
        widget.clear()
        widget.setColumnCount(len(columns))
        widget.setHorizontalHeaderLabels(columns)
        widget.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(columns):
                widget.setItem(r, c, qt.QTableWidgetItem(_format_cell(row[key])))
        widget.resizeColumnsToContents()
        widget.setProperty("tableNodeID", table_node.GetID())

    def onShowDisagreement(self, show):
        if self.result is not None:
            slicer.util.setSliceViewerLayers(label=self.result.disagreement if show else None, labelOpacity=0.6)

    def onExportTable(self):
        import qt

        path = qt.QFileDialog.getSaveFileName(None, "Export muscle volumes", "muscle_volumes.csv", "CSV (*.csv)")
        if path:
            node = slicer.mrmlScene.GetNodeByID(self.ui.volumesTable.property("tableNodeID"))
            with reportedErrors("Could not export the table."):
                self.logic.export_table(node, path)

    def onEditSegments(self):
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(self.ui.segmentationSelector.currentNode())
        editor.setSourceVolumeNode(self.ui.inputVolumeSelector.currentNode())

    def onSaveTrainingCase(self):
        import qt

        folder = qt.QFileDialog.getExistingDirectory(None, "Dataset folder for thighseg train")
        if not folder:
            return
        ct = self.ui.inputVolumeSelector.currentNode()
        name = qt.QInputDialog.getText(None, "Save as training case", "Case name:", qt.QLineEdit.Normal,
                                       ct.GetName().replace(" ", "_"))
        if name:
            with reportedErrors("Could not save the training case."):
                future = self.logic.start_save_training_case(ct, self.ui.segmentationSelector.currentNode(),
                                                             folder, name)
                self.ui.statusLabel.text = f"Saving {name}…"

                def saved(case):
                    self.ui.statusLabel.text = f"Saved {case}: fine-tune with thighseg train {folder} --init MODEL"

                self.runInBackground(future, saved, "Could not save the training case.")

    def onComparePrior(self):
        import tempfile

        prior = self.ui.priorSegmentationSelector.currentNode()
        if prior is None:
            slicer.util.errorDisplay("Select the prior segmentation first.")
            return
        current = self.ui.segmentationSelector.currentNode()
        ct = self.ui.inputVolumeSelector.currentNode()
        priorCt = self.ui.priorVolumeSelector.currentNode() or ct  # none: the prior was drawn on this CT
        picture = os.path.join(tempfile.mkdtemp(prefix="ThighMuscleSeg-"), "change.png")
        self.ui.statusLabel.text = "Matching the two scans along each femur…"
        with reportedErrors("Could not compare with the prior."):
            future = self.logic.start_compare_with_prior(current, prior, ct, priorCt, picture=picture)

            def show(report):
                import qt

                self.showTable(self.ui.changeTable, self.logic.change_table(current, report))
                from ThighMuscleSegModuleLib.follow_up import summary

                self.ui.changeSummaryLabel.text = summary(report)
                self.ui.changePictureLabel.setPixmap(qt.QPixmap(picture))
                self.ui.statusLabel.text = f"{current.GetName()} compared with {prior.GetName()}."

            self.runInBackground(future, show, "Could not compare with the prior.")


def _event_id(name):
    return getattr(slicer.vtkSegmentation, name)


def _format_cell(value) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.1f}"  # NaN: no value (e.g. asymmetry of absent muscles)
    return str(value)


class ThighMuscleSegLogic(ScriptedLoadableModuleLogic, SceneLogic):
    """Scriptable from Slicer's Python console: ``ThighMuscleSegLogic().import_labels(path, ctNode)``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        SceneLogic.__init__(self)


class ThighMuscleSegTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: Reload and Test in the module panel, or Slicer --python-code.
    The same logic is tested headless against slicer-core in the repository's Testing/."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_import_labels_gives_twenty_named_segments()
        self.setUp()
        self.test_whole_flow_on_a_phantom()

    def test_import_labels_gives_twenty_named_segments(self):
        import tempfile

        import numpy as np
        import SimpleITK as sitk

        from ThighMuscleSegLib import classes as C
        from ThighMuscleSegModuleLib.scene import segment_terminology

        self.delayDisplay("Importing a label map with all 20 thigh muscle labels")
        arr = np.zeros((20, 40, 60), np.uint8)
        for n, seg in enumerate(C.segments()):
            arr[5:15, 5 + 15 * (n // 10):15 + 15 * (n // 10), 3 * (n % 10) + 1:3 * (n % 10) + 3] = seg.label_value
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "labels.nii.gz")
            sitk.WriteImage(sitk.GetImageFromArray(arr), path)
            node = ThighMuscleSegLogic().import_labels(path)
        segmentation = node.GetSegmentation()
        self.assertEqual(segmentation.GetNumberOfSegments(), 20)
        for seg in C.segments():
            segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(seg.name))
            self.assertIsNotNone(segment, seg.name)
            self.assertEqual(segment_terminology(segment), seg.slicer_terminology())
        self.delayDisplay("Import test passed")

    def test_whole_flow_on_a_phantom(self):
        """Phantom CT -> Segment thighs (subprocess) -> segmentation, table, export,
        training case and prior comparison, as a user would click through them."""
        from ThighMuscleSegModuleLib import dependencies

        missing = dependencies.missing()
        if missing:  # a fresh Slicer: the import test above still ran
            self.delayDisplay("Whole-flow test skipped: " + dependencies.describe_missing(missing)
                              + " Click Segment thighs in the module panel to install them, then test again.")
            return
        import tempfile
        import time
        from pathlib import Path

        import qt

        from ThighMuscleSegLib.phantom.synth import make_case
        from ThighMuscleSegModuleLib.scene import volume_node_from_image
        from ThighMuscleSegModuleLib.tables import table_rows

        self.delayDisplay("Making a small phantom CT")
        ct_node = volume_node_from_image(slicer.mrmlScene, make_case(7, size="small").ct, "Phantom CT")
        logic = ThighMuscleSegLogic()
        self.delayDisplay("Segmenting (separate process)")
        job = logic.start_segmentation(ct_node, device="auto")
        deadline = time.time() + 900
        while job.process.poll().status == "running" and time.time() < deadline:
            slicer.app.processEvents(qt.QEventLoop.AllEvents, 200)
        self.assertEqual(job.process.state.status, "done", job.process.state.message)
        result = logic.finish_segmentation(job)
        self.assertEqual(result.segmentation.GetSegmentation().GetNumberOfSegments(), 20)
        self.assertFalse(job.work_dir.exists())
        rows = [r for r in table_rows(result.volumes) if r["Label"]]  # the muscles; then the groups
        self.assertEqual(len(rows), 20)
        self.assertGreater(sum(1 for r in rows if r["Volume (cm3)"] > 0), 15)
        with tempfile.TemporaryDirectory() as tmp:
            exported = logic.export_table(result.volumes, Path(tmp) / "volumes.csv")
            self.assertTrue(exported.is_file())
            case = logic.save_training_case(ct_node, result.segmentation, Path(tmp) / "dataset", "phantom07")
            self.assertTrue((case / "labels.nii.gz").is_file())
        change = table_rows(logic.compare_with_prior(result.segmentation, result.segmentation, ct_node))
        self.assertEqual(len(change), 20)
        self.assertTrue(all(r["Change (cm3)"] == 0 and r["Volume verdict"] != "beyond measurement error"
                            for r in change))
        self.delayDisplay("Whole-flow test passed")
