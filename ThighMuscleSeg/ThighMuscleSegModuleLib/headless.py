"""A real, headless 3D Slicer scene from PyPI's ``slicer-core`` (no Qt, no Slicer app),
for the tests and for rendering pictures outside Slicer.

What the Slicer application does at start-up for the modules we use, done by hand:
an application logic with the Colors, Volumes and Segmentations logics registered on it,
and the segmentation converter rules registered before any segmentation node is made
(closed surfaces need them).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

_rules_registered = False


@dataclass
class SlicerScene:
    scene: object
    app_logic: object
    logics: dict

    def clear(self) -> None:
        self.scene.Clear(0)


def register_converter_rules() -> None:
    global _rules_registered
    if _rules_registered:
        return
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    for rule in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule(),
                 slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule()):
        factory.RegisterConverterRule(rule)
    _rules_registered = True


def make_scene() -> SlicerScene:
    import slicer

    register_converter_rules()
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    logics = {}
    for name, cls in (("Colors", slicer.vtkSlicerColorLogic),
                      ("Volumes", slicer.vtkSlicerVolumesLogic),
                      ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic)):
        logic = cls()
        logic.SetMRMLApplicationLogic(app_logic)
        logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic(name, logic)
        logics[name] = logic
    # slicer.util reaches module logics through slicer.modules.<name>.logic(), as in the app.
    slicer.modules = SimpleNamespace(**{
        name.lower(): SimpleNamespace(logic=(lambda lg=logic: lg)) for name, logic in logics.items()})
    return SlicerScene(scene, app_logic, logics)
