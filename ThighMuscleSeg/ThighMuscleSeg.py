"""ThighMuscleSeg: one click from CT to thigh muscles, volumes and new ground truth.

A thin 3D Slicer module: the panel wires widgets to ``ThighMuscleSegLogic``; the logic
converts nodes to and from the library's images (``ThighMuscleSegModuleLib``), and the
pure-Python library ``ThighMuscleSegLib`` does the work.
"""

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

from ThighMuscleSegModuleLib.logic import SceneLogic


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


class ThighMuscleSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: widgets in, logic calls out. No processing here."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        panel = slicer.util.loadUI(self.resourcePath("UI/ThighMuscleSeg.ui"))
        self.layout.addWidget(panel)
        self.ui = slicer.util.childWidgetVariables(panel)
        panel.setMRMLScene(slicer.mrmlScene)
        self.logic = ThighMuscleSegLogic()
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateButtons)
        self.updateButtons()

    def cleanup(self):
        self.removeObservers()

    def updateButtons(self, *_):
        has_ct = self.ui.inputVolumeSelector.currentNode() is not None
        self.ui.segmentButton.enabled = has_ct
        self.ui.segmentButton.toolTip = "Segment the thighs of the selected CT" if has_ct else "Select a CT volume first"

    def onSegmentButton(self):
        # The segmentation run (subprocess, progress, cancel) arrives with the Slicer module issue.
        self.ui.statusLabel.text = "Segmentation is not available in this version of the module yet."


class ThighMuscleSegLogic(ScriptedLoadableModuleLogic, SceneLogic):
    """Scriptable from Slicer's Python console: ``ThighMuscleSegLogic().import_labels(path, ctNode)``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        SceneLogic.__init__(self)


class ThighMuscleSegTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: Reload and Test in the module panel, or Slicer --python-code."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_import_labels_gives_twenty_named_segments()

    def test_import_labels_gives_twenty_named_segments(self):
        import tempfile

        import numpy as np
        import SimpleITK as sitk

        from ThighMuscleSegLib import classes as C

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
            self.assertEqual(segment.GetTerminology(), seg.slicer_terminology())
        logging.info("ThighMuscleSegTest passed")
        self.delayDisplay("Test passed")
