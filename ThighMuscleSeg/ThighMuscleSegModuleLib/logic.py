"""The module's logic without Qt: usable from Slicer's Python console, scripts and tests.

``ThighMuscleSeg.py`` mixes this class into its ScriptedLoadableModuleLogic; headless
tests use it directly against a slicer-core scene.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib import io as tio
from ThighMuscleSegLib import measure

from . import scene as S
from . import tables as T
from .runner import ThighsegProcess


@dataclass
class SegmentationJob:
    """A running ``thighseg segment``: poll ``process`` from a timer, then ``finish_segmentation``."""

    process: ThighsegProcess
    ct_node: object
    work_dir: Path
    out_dir: Path


@dataclass
class SegmentationResult:
    segmentation: object
    volumes: object  # vtkMRMLTableNode
    disagreement: object  # vtkMRMLLabelMapVolumeNode
    out_dir: Path
    notes: list[str]  # what the user must know about the result (a thigh cut by the scan, ...)


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

    # --- nodes <-> library images -------------------------------------------------------
    def ct_image(self, volume_node) -> sitk.Image:
        """The CT of a volume node as a library image (LPS), checked to be usable."""
        return tio.check_ct(S.image_from_volume_node(volume_node), volume_node.GetName())

    def import_labels(self, labels_path: str | Path, ct_node=None, name: str | None = None):
        """Load a CT-space label file (right 1-10, left 11-20) as a segmentation node
        with the class table's names, colours and terminology."""
        labels = sitk.ReadImage(str(labels_path))
        node_name = name or (f"{ct_node.GetName()} thigh muscles" if ct_node is not None else "Thigh muscles")
        return S.segmentation_from_labels(self.scene, labels, node_name, reference_node=ct_node)

    def labels_image(self, segmentation_node, ct_node) -> sitk.Image:
        """The segmentation as a CT-space label map, each segment at its class-table value.

        Segments are matched by label value, else by name; others (a user's extra segment)
        are left out. Edited segments are read as they are now."""
        import slicer

        by_name = {s.name: s.label_value for s in C.segments()}
        valid = set(by_name.values())
        segmentation = segmentation_node.GetSegmentation()
        ct = self.ct_image(ct_node)
        out = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8)
        for i in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(i)
            value = segment.GetLabelValue() if segment.GetLabelValue() in valid else by_name.get(segment.GetName())
            if value is None:
                continue
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segmentation.GetNthSegmentID(i),
                                                             ct_node)
            out[mask > 0] = value
        return tio.image_like(out, ct)

    # --- segmentation in a separate process ---------------------------------------------
    def start_segmentation(self, ct_node, model: str | None = None, device: str = "auto",
                           thigh_range: tuple[float, float] | None = None) -> SegmentationJob:
        """Write the CT to a temporary file and start ``thighseg segment`` on it."""
        work = Path(tempfile.mkdtemp(prefix="ThighMuscleSeg-"))
        ct_path = work / "ct.nrrd"
        sitk.WriteImage(self.ct_image(ct_node), str(ct_path), True)
        out = work / "result"
        args = ["segment", str(ct_path), "--out", str(out), "--progress", "json", "--device", device]
        if model:
            args += ["--model", str(model)]
        if thigh_range:
            args += ["--thigh-range", str(thigh_range[0]), str(thigh_range[1])]
        process = ThighsegProcess(args)
        process.start()
        return SegmentationJob(process, ct_node, work, out)

    def finish_segmentation(self, job: SegmentationJob) -> SegmentationResult:
        """Bring a finished run's outputs into the scene (the scene is untouched until now)."""
        state = job.process.state
        if state.status != "done":
            raise RuntimeError(f"segmentation {state.status}: {state.message}")
        seg = self.import_labels(job.out_dir / "labels.nii.gz", job.ct_node)
        seg.CreateClosedSurfaceRepresentation()
        volumes = T.volume_table(self.scene, measure.read_volumes_csv(job.out_dir / "volumes.csv"),
                                 f"{job.ct_node.GetName()} muscle volumes")
        disagreement = S.volume_node_from_image(self.scene, sitk.ReadImage(str(job.out_dir / "disagreement.nii.gz")),
                                                f"{job.ct_node.GetName()} view disagreement",
                                                "vtkMRMLLabelMapVolumeNode")
        notes = list(state.result.get("notes", []))
        return SegmentationResult(seg, volumes, disagreement, job.out_dir, notes)

    # --- tables, new ground truth, follow-up -------------------------------------------
    def volumes_of(self, segmentation_node, ct_node) -> list[measure.MuscleVolume]:
        return measure.muscle_volumes(self.ct_image(ct_node), self.labels_image(segmentation_node, ct_node))

    def export_table(self, table_node, path: str | Path) -> Path:
        T.export_csv(table_node, path)
        return Path(path)

    def save_training_case(self, ct_node, segmentation_node, dataset_dir: str | Path, case_name: str) -> Path:
        """Write ct.nii.gz, labels.nii.gz and case.json into DATASET/CASE (the dataset
        contract that ``thighseg train --init`` reads). An existing case is never replaced."""
        case = Path(dataset_dir) / case_name
        if case.exists():
            raise FileExistsError(f"{case} already exists: choose another case name")
        ct = self.ct_image(ct_node)
        labels = self.labels_image(segmentation_node, ct_node)
        case.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{case_name}-", dir=case.parent))
        try:
            sitk.WriteImage(sitk.Cast(ct, sitk.sitkInt16), str(staging / "ct.nii.gz"), True)
            sitk.WriteImage(labels, str(staging / "labels.nii.gz"), True)
            info = {"source": "ThighMuscleSeg Slicer module", "ct_node": ct_node.GetName(),
                    "segmentation_node": segmentation_node.GetName(),
                    "labels_present": sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(labels)) if v)}
            (staging / "case.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
            staging.rename(case)
        except BaseException:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
            raise
        return case

    def compare_with_prior(self, current_node, prior_node, ct_node, prior_ct_node=None):
        """Per-muscle change (cm³ and %) from a prior segmentation to the current one."""
        current = self.volumes_of(current_node, ct_node)
        prior = self.volumes_of(prior_node, prior_ct_node or ct_node)
        changes = measure.compare_with_prior(current, prior)
        return T.change_table(self.scene, changes, f"{current_node.GetName()} change since prior")
