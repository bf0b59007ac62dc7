"""What the page does, without any widget: one CT, its run, its result and its edits.

Everything that touches the scene goes through the Slicer module's ``SceneLogic`` (the same
calls as the module's buttons: ``start_segmentation`` runs ``thighseg segment --progress json``
in a subprocess, ``finish_segmentation`` loads its outputs, ``start_volumes`` measures an edited
segmentation, ``start_save_training_case`` writes a dataset case). The page's state is a plain
dict of JSON values (``PageState``) that the layout shows; ``app.py`` copies it into trame.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

from ThighMuscleSegLib import io as tio
from ThighMuscleSegModuleLib import scene as S
from ThighMuscleSegModuleLib.logic import (SceneLogic, SegmentationJob, SegmentationResult, format_notes,
                                           read_result_rows)

CT_WINDOW_LEVEL = (500.0, 50.0)  # soft tissue: fat and muscle apart
CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


@dataclass
class OpenCT:
    node: object
    path: Path  # what was read: a file or a DICOM folder
    dicom_files: list[str] | None  # the series a DICOM SEG can reference (DICOM input only)
    dicom_note: str = ""


@dataclass
class Session:
    """One user's CT and result. ``scene`` is trame-slicer's scene."""

    scene: object
    dataset_dir: Path
    logic: SceneLogic = field(init=False)
    ct: OpenCT | None = None
    job: SegmentationJob | None = None
    result: SegmentationResult | None = None
    rows: list = field(default_factory=list)  # tables.TableRow of the table shown
    flags: dict = field(default_factory=dict)  # label value -> quality flag of the run ("ok" / "check")

    def __post_init__(self):
        self.logic = SceneLogic(self.scene)

    # --- opening -----------------------------------------------------------------------
    @staticmethod
    def read(path: Path) -> tuple[sitk.Image, list[str] | None, str]:
        """Read a CT as ``thighseg segment`` does (worker thread): the image, its DICOM files."""
        image = tio.read_ct(path)
        files, note = tio.dicom_seg_sources(path, image)
        return image, files, note

    def load_ct(self, path: Path, image: sitk.Image, files, note: str) -> object:
        """Put the CT read by ``read`` into the scene, replacing the previous CT and result."""
        self.close()
        name = _display_name(path)
        node = S.volume_node_from_image(self.scene, image, name)
        display = node.GetDisplayNode()
        display.SetAutoWindowLevel(False)
        display.SetWindowLevel(*CT_WINDOW_LEVEL)
        self.ct = OpenCT(node, Path(path), files, note)
        return node

    def close(self) -> None:
        if self.job is not None:
            self.cancel()
        self._drop_result()
        if self.ct is not None:
            S.remove_nodes(self.scene, [self.ct.node])
            self.ct = None

    def _drop_result(self) -> None:
        if self.result is not None:
            r = self.result
            S.remove_nodes(self.scene, [r.segmentation, r.volumes, r.disagreement])
        self.result, self.rows, self.flags = None, [], {}

    # --- the run -----------------------------------------------------------------------
    def start(self, model: str | None, device: str) -> SegmentationJob:
        if self.ct is None:
            raise tio.InputError("open a CT first")
        if self.job is not None:
            raise tio.InputError("a segmentation is running: wait for it or cancel it")
        self._drop_result()
        self.job = self.logic.start_segmentation(self.ct.node, model=model or None, device=device)
        return self.job

    def cancel(self) -> None:
        """Stop the run; its work folder (CT copy, staged outputs) goes once the process has ended."""
        job, self.job = self.job, None
        if job is not None:
            job.process.cancel()
            job.discard()

    def poll(self):
        """The run's ``RunState``; when it has ended the job is released (and discarded unless done)."""
        state = self.job.process.poll()
        if state.status in ("cancelled", "error"):
            job, self.job = self.job, None
            job.discard()
        return state

    def finish(self) -> SegmentationResult:
        """Load a finished run into the scene (the module's ``finish_segmentation``)."""
        job, self.job = self.job, None
        try:
            self.result = self.logic.finish_segmentation(job, keep_outputs=True)
            self.rows = read_result_rows(job.out_dir)  # what the run's volume table was filled with
        finally:
            job.discard()
        self.flags = {r.label_value: r.quality for r in self.rows if r.kind == "muscle"}
        return self.result

    def notes_text(self) -> str:
        return format_notes(self.result.notes if self.result else ())

    # --- after an edit -----------------------------------------------------------------
    def start_measuring(self):
        """Future of the table rows of the segmentation as edited now (snapshot taken here)."""
        r = self.result
        return self.logic.start_volumes(r.segmentation, self.ct.node, r.frames)

    def set_rows(self, rows: list) -> None:
        self.rows = list(rows)
        if self.result is not None:
            self.result.edited = True

    # --- saving and exporting ----------------------------------------------------------
    def start_save(self, case_name: str):
        """Future of the written case folder: ``SceneLogic.start_save_training_case``, the module's button."""
        self._need_result()
        name = (case_name or "").strip()
        if not CASE_NAME.match(name):
            raise tio.InputError("a case name is letters, digits, '_', '-' or '.', starting with a letter or digit")
        return self.logic.start_save_training_case(self.ct.node, self.result.segmentation, self.dataset_dir, name)

    def table_csv(self, folder: Path) -> Path:
        """The table as CSV, written by the module's table export (the table node refilled first)."""
        self._need_result()
        table = self.logic.volume_table_for(self.result.segmentation, self.rows)
        return self.logic.export_table(table, folder / "volumes.csv")

    def seg_nrrd(self, folder: Path) -> Path:
        from ThighMuscleSegLib.segnrrd import write_seg_nrrd

        self._need_result()
        return write_seg_nrrd(self._labels(), folder / "segmentation.seg.nrrd")

    def dicom_seg(self, folder: Path) -> Path:
        from ThighMuscleSegLib.dicomseg import write_dicom_seg

        self._need_result()
        if not self.ct.dicom_files:
            raise tio.InputError(self.ct.dicom_note or "a DICOM SEG needs a CT opened from a DICOM series")
        return write_dicom_seg(self._labels(), self.ct.dicom_files, folder / "segmentation.dcm")

    def _labels(self) -> sitk.Image:
        return self.logic.labels_image(self.result.segmentation, self.ct.node)

    def _need_result(self) -> None:
        if self.result is None or self.ct is None:
            raise tio.InputError("segment the thighs first")


def _display_name(path: Path) -> str:
    """The file's name without its suffix; with its folder's when that is all it says ("case_000 ct")."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)] or name
            break
    return f"{path.parent.name} {name}" if name.lower() in ("ct", "image", "volume") and path.parent.name else name


def row_dict(row, flag: str) -> dict:
    """A table row as the page shows it (strings, fixed decimals: what the user reads)."""
    def num(v, digits):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"

    return {"label": row.label, "kind": row.kind, "name": row.name, "side": row.side, "voxels": int(row.voxels),
            "volume": num(row.volume_cm3, 2), "mean_hu": num(row.mean_hu, 1), "imat": num(row.imat_percent, 1),
            "csa50": num(row.csa_50_cm2, 2), "asymmetry": num(row.asymmetry_percent, 1), "quality": flag or ""}


def new_work_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="ThighMuscleSegWeb-"))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
