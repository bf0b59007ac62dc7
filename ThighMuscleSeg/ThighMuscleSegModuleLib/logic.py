"""The module's logic without Qt: usable from Slicer's Python console, scripts and tests.

``ThighMuscleSeg.py`` mixes this class into its ScriptedLoadableModuleLogic; headless
tests use it directly against a slicer-core scene.

Threads: MRML is touched only on the calling (GUI) thread, and there only for what must be
read from the scene (one merged label export, array views); work over whole volumes (writing
the CT for the subprocess, measuring, writing a training case) runs on a worker thread and
comes back as a ``concurrent.futures.Future``. The blocking forms (``volumes_of``,
``save_training_case``, ``compare_with_prior``) wait for those futures, for scripts and tests.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ThighMuscleSegLib import io as tio
from ThighMuscleSegLib import measure

from . import follow_up as F
from . import scene as S
from . import tables as T
from .runner import ThighsegProcess

WORK_PREFIX = "ThighMuscleSeg-"
STALE_WORK_S = 24 * 3600  # work folders left by a crashed Slicer are removed after a day
VOLUMES_TABLE_ROLE = "ThighMuscleSegVolumes"  # segmentation node -> its volume table
CHANGE_TABLE_ROLE = "ThighMuscleSegChange"  # segmentation node -> its change-since-prior table

_workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ThighMuscleSeg")


@dataclass
class SegmentationJob:
    """A running ``thighseg segment``: poll ``process`` from a timer, then ``finish_segmentation``
    (or ``discard()`` after a cancelled or failed run)."""

    process: ThighsegProcess
    ct_node: object
    work_dir: Path
    out_dir: Path

    def discard(self) -> None:
        """Remove the run's work folder (the CT copy and the outputs) once the process is over."""
        if self.process.finished():
            shutil.rmtree(self.work_dir, ignore_errors=True)
        else:
            self.process.when_finished(lambda: shutil.rmtree(self.work_dir, ignore_errors=True))


@dataclass
class SegmentationResult:
    segmentation: object
    volumes: object  # vtkMRMLTableNode
    disagreement: object  # vtkMRMLLabelMapVolumeNode
    out_dir: Path  # removed after loading unless finish_segmentation(keep_outputs=True)
    notes: list[str]  # what the user must know about the result (a thigh cut by the scan, ...)
    ct_node: object = None  # the CT it was made from
    edited: bool = False  # set by the panel once the user edits it: ``volumes`` then no longer holds
    frames: list | None = None  # the run's ThighFrames (frames.json): measuring and comparing need no new search


def remove_stale_work_dirs(parent: str | Path | None = None, older_than_s: float = STALE_WORK_S) -> list[Path]:
    """Work folders of earlier runs that nothing cleaned up (Slicer crashed or was killed)."""
    removed = []
    now = time.time()
    for path in Path(parent or tempfile.gettempdir()).glob(WORK_PREFIX + "*"):
        try:
            if path.is_dir() and now - path.stat().st_mtime > older_than_s:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        except OSError:
            continue
    return removed


def format_notes(notes) -> str:
    """The result's notes as sentences for a message box (empty notes are skipped)."""
    sentences = []
    for note in notes or ():
        text = str(note).strip().rstrip(".")
        if text:
            sentences.append(text[0].upper() + text[1:] + ".")
    return "\n\n".join(sentences)


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
        """The CT of a volume node as a library image (LPS), checked to be usable (a copy)."""
        return tio.check_ct(S.image_from_volume_node(volume_node), volume_node.GetName())

    def import_labels(self, labels_path: str | Path, ct_node=None, name: str | None = None):
        """Load a CT-space label file (right 1-10, left 11-20) as a segmentation node
        with the class table's names, colours and terminology."""
        labels = sitk.ReadImage(str(labels_path))
        node_name = name or (f"{ct_node.GetName()} thigh muscles" if ct_node is not None else "Thigh muscles")
        return S.segmentation_from_labels(self.scene, labels, node_name, reference_node=ct_node)

    def labels_image(self, segmentation_node, ct_node) -> sitk.Image:
        """The segmentation as a CT-space label map, each segment at its class-table value.

        Segments are matched by name, else by terminology, never by their label value (which
        Slicer renumbers); others (a user's extra segment) are left out. Edited segments are
        read as they are now; where segments overlap, the later one wins."""
        S.check_volume_node(ct_node)
        return S.image_from_array(S.labels_array(segmentation_node, ct_node), S.lps_geometry(ct_node))

    # --- segmentation in a separate process ---------------------------------------------
    def start_segmentation(self, ct_node, model: str | None = None, device: str = "auto",
                           thigh_range: tuple[float, float] | None = None) -> SegmentationJob:
        """Start ``thighseg segment`` on the CT; returns at once. The CT goes to the
        subprocess as an uncompressed NRRD written on a worker thread."""
        S.check_volume_node(ct_node)
        if thigh_range is not None:
            thigh_range = S.check_thigh_range(ct_node, thigh_range)
        remove_stale_work_dirs()
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX))
        ct_path = work / "ct.nrrd"
        write_ct = S.nrrd_writer(ct_node, ct_path)
        out = work / "result"
        args = ["segment", str(ct_path), "--out", str(out), "--progress", "json", "--device", device]
        if model:
            args += ["--model", str(model)]
        if thigh_range:
            args += ["--thigh-range", repr(thigh_range[0]), repr(thigh_range[1])]
        process = ThighsegProcess(args, prepare=write_ct)
        process.start()
        return SegmentationJob(process, ct_node, work, out)

    def finish_segmentation(self, job: SegmentationJob, keep_outputs: bool = False) -> SegmentationResult:
        """Bring a finished run's outputs into the scene (the scene is untouched until now).
        If loading fails, the nodes added so far are removed again. The work folder is removed
        afterwards unless ``keep_outputs``."""
        state = job.process.state
        if state.status != "done":
            raise RuntimeError(f"segmentation {state.status}: {state.message}")
        added = []
        try:
            seg = self.import_labels(job.out_dir / "labels.nii.gz", job.ct_node)
            added.append(seg)
            seg.CreateClosedSurfaceRepresentation()
            volumes = T.volume_table(self.scene, read_result_rows(job.out_dir),
                                     f"{job.ct_node.GetName()} muscle volumes")
            added.append(volumes)
            seg.SetNodeReferenceID(VOLUMES_TABLE_ROLE, volumes.GetID())
            frames_json = job.out_dir / "frames.json"
            # Kept on the node: measuring and comparing it later need no new search.
            F.keep_frames(seg, job.ct_node, frames_json.read_text(encoding="utf-8") if frames_json.is_file() else None)
            frames = F.frames_of(seg, job.ct_node)
            disagreement = S.volume_node_from_image(self.scene,
                                                    sitk.ReadImage(str(job.out_dir / "disagreement.nii.gz")),
                                                    f"{job.ct_node.GetName()} view disagreement",
                                                    "vtkMRMLLabelMapVolumeNode")
            added.append(disagreement)
            notes = list(state.result.get("notes", []))
        except BaseException:
            S.remove_nodes(self.scene, reversed(added))
            raise
        finally:
            if not keep_outputs:
                job.discard()
        return SegmentationResult(seg, volumes, disagreement, job.out_dir, notes, ct_node=job.ct_node, frames=frames)

    # --- tables, new ground truth, follow-up -------------------------------------------
    def start_volumes(self, segmentation_node, ct_node, frames: list | None = None) -> Future:
        """The volume table's rows of a segmentation as it is now (``tables.TableRow``: per muscle
        and side, then the groups): the labels are merged here (one C++ call), the measuring runs
        on a worker thread. The run's frames and femur lines, kept on the node (or ``frames``), add
        the subcutaneous fat and the cross-sectional areas along the femur."""
        snap = self._snapshot(segmentation_node, ct_node)
        frames = frames if frames is not None else snap.frames
        return _workers.submit(_measure, snap.ct_voxels, snap.labels, snap.geometry, list(frames or ()),
                               snap.lines or {})

    def volumes_of(self, segmentation_node, ct_node, frames: list | None = None) -> list[T.TableRow]:
        return self.start_volumes(segmentation_node, ct_node, frames).result()

    def volume_table_for(self, segmentation_node, rows: list[T.TableRow]):
        """The segmentation's volume table, filled with ``rows``: the one made for it before
        (refilled in place), else a new one referenced from the segmentation node."""
        table = segmentation_node.GetNodeReference(VOLUMES_TABLE_ROLE)
        name = f"{segmentation_node.GetName()} volumes"
        if table is not None and table.GetScene() is self.scene:
            return T.volume_table(self.scene, rows, name, node=table)
        table = T.volume_table(self.scene, rows, name)
        segmentation_node.SetNodeReferenceID(VOLUMES_TABLE_ROLE, table.GetID())
        return table

    def export_table(self, table_node, path: str | Path) -> Path:
        T.export_csv(table_node, path)
        return Path(path)

    def start_save_training_case(self, ct_node, segmentation_node, dataset_dir: str | Path, case_name: str) -> Future:
        """Write ct.nii.gz, labels.nii.gz and case.json into DATASET/CASE (the dataset
        contract that ``thighseg train --init`` reads) on a worker thread; Future of the
        case folder. An existing case is never replaced."""
        case = Path(dataset_dir) / case_name
        if case.exists():
            raise FileExistsError(f"{case} already exists: choose another case name")
        S.check_volume_node(ct_node)
        labels = S.labels_array(segmentation_node, ct_node)
        ct_voxels = _volume_view(ct_node)
        geometry = S.lps_geometry(ct_node)
        info = {"source": "ThighMuscleSeg Slicer module", "ct_node": ct_node.GetName(),
                "segmentation_node": segmentation_node.GetName()}
        return _workers.submit(_write_training_case, case, ct_voxels, labels, geometry, info)

    def save_training_case(self, ct_node, segmentation_node, dataset_dir: str | Path, case_name: str) -> Path:
        return self.start_save_training_case(ct_node, segmentation_node, dataset_dir, case_name).result()

    def start_compare_with_prior(self, current_node, prior_node, ct_node, prior_ct_node=None,
                                 picture: str | Path | None = None) -> Future:
        """Future of the ``ChangeReport`` (``measure.change``) of the current segmentation against
        the prior one, matched along each femur; ``prior_ct_node`` is the prior's CT (default: the
        current CT); with ``picture``, change.png is drawn there too. ``change_table`` puts the
        report into the scene."""
        current = self._snapshot(current_node, ct_node)
        prior = self._snapshot(prior_node, prior_ct_node or ct_node)
        return _workers.submit(F.compare, prior, current, picture)

    def _snapshot(self, segmentation_node, ct_node) -> F.Snapshot:
        S.check_volume_node(ct_node)
        return F.Snapshot(_volume_view(ct_node), S.labels_array(segmentation_node, ct_node), S.lps_geometry(ct_node),
                          F.frames_of(segmentation_node, ct_node), F.femur_lines_of(segmentation_node, ct_node))

    def change_table(self, current_node, report):
        """The change table of ``current_node``, replacing the one made for it before."""
        previous = current_node.GetNodeReference(CHANGE_TABLE_ROLE)
        table = T.change_table(self.scene, F.change_rows(report), f"{current_node.GetName()} change since prior")
        current_node.SetNodeReferenceID(CHANGE_TABLE_ROLE, table.GetID())
        if previous is not None:
            S.remove_nodes(self.scene, [previous])
        return table

    def compare_with_prior(self, current_node, prior_node, ct_node, prior_ct_node=None,
                           picture: str | Path | None = None):
        """The change table (volume, CSA at 50 %, mean HU, IMAT, each against its smallest
        detectable change) of the current segmentation against the prior; blocking."""
        report = self.start_compare_with_prior(current_node, prior_node, ct_node, prior_ct_node, picture).result()
        return self.change_table(current_node, report)


def _volume_view(node):
    import slicer

    return slicer.util.arrayFromVolume(node)  # a view; it keeps its VTK array (the voxels) alive


def _measure(ct_voxels: np.ndarray, labels: np.ndarray, geometry, frames: list, lines: dict) -> list[T.TableRow]:
    from ThighMuscleSegLib.measure.table import measurement_rows

    ct, label_image = S.image_from_array(ct_voxels, geometry), S.image_from_array(labels, geometry)
    volumes = measure.muscle_volumes(ct, label_image)
    profiles = None
    if lines:  # the CSA profiles along each femur, as thighseg segment measures them
        from ThighMuscleSegLib.measure.profiles import csa_profiles
        from ThighMuscleSegLib.measure.slabs import slab_table

        profiles = csa_profiles(slab_table(ct, label_image, lines), lines)
    return T.merge_rows(volumes, measurement_rows(ct, label_image, frames, lines=lines or None, profiles=profiles))


def read_result_rows(out_dir: Path) -> list[T.TableRow]:
    """The volume table of a ``thighseg segment`` result: volumes.csv with measurements.csv
    (when the result has one: an older thighseg wrote only volumes.csv)."""
    from ThighMuscleSegLib.measure.table import read_measurements_csv

    path = Path(out_dir) / "measurements.csv"
    measurements = read_measurements_csv(path) if path.is_file() else None
    return T.merge_rows(measure.read_volumes_csv(Path(out_dir) / "volumes.csv"), measurements)


def _write_training_case(case: Path, ct_voxels: np.ndarray, labels: np.ndarray, geometry, info: dict) -> Path:
    ct = S.image_from_array(ct_voxels, geometry)
    label_image = S.image_from_array(labels, geometry)
    case.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{case.name}-", dir=case.parent))
    try:
        sitk.WriteImage(sitk.Cast(ct, sitk.sitkInt16), str(staging / "ct.nii.gz"), True)
        sitk.WriteImage(label_image, str(staging / "labels.nii.gz"), True)
        info = {**info, "labels_present": sorted(int(v) for v in np.flatnonzero(measure.label_counts(labels)) if v)}
        (staging / "case.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        if case.exists():
            raise FileExistsError(f"{case} already exists: choose another case name")
        staging.rename(case)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return case
