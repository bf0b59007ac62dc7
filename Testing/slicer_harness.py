"""The tests' headless Slicer scene (kept with the module: the screenshot command uses it too)."""

from ThighMuscleSegModuleLib.headless import SlicerScene, make_scene, register_converter_rules  # noqa: F401
