"""The module's logic without Qt: usable from Slicer's Python console, scripts and tests.

``ThighMuscleSeg.py`` mixes this class into its ScriptedLoadableModuleLogic; headless
tests use it directly against a slicer-core scene.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from ThighMuscleSegLib import io as tio

from . import scene as S


class SceneLogic:
    """What the module does to the scene. ``scene`` defaults to ``slicer.mrmlScene``."""

    def __init__(self, scene=None):
        self._scene = scene

    @property
    def scene(self):
        if self._scene is not None:
            return self._scene
        import slicer

        return slicer.mrmlScene

    def ct_image(self, volume_node) -> sitk.Image:
        """The CT of a volume node as a library image (LPS), checked to be usable."""
        return tio.check_ct(S.image_from_volume_node(volume_node), volume_node.GetName())

    def import_labels(self, labels_path: str | Path, ct_node=None, name: str | None = None):
        """Load a CT-space label file (right 1-10, left 11-20) as a segmentation node
        with the class table's names, colours and terminology."""
        labels = sitk.ReadImage(str(labels_path))
        node_name = name or (f"{ct_node.GetName()} thigh muscles" if ct_node is not None else "Thigh muscles")
        return S.segmentation_from_labels(self.scene, labels, node_name, reference_node=ct_node)
