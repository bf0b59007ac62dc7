"""``thighseg web``: trame-slicer's scene, views and segment editor with the module's logic.

The page's buttons call the handlers below; each does its work through ``Session`` (the Slicer
module's ``SceneLogic``) and writes what the page shows into the trame state. Slow work (reading
a CT, the segment subprocess, measuring, saving) runs off the event loop, so the page never
freezes; every failure becomes a sentence in ``ts_error``, never a dead page.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from pathlib import Path

from trame.app import TrameApp
from trame_slicer.app.logic import SegmentEditorLogic
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories

from ThighMuscleSegLib.io import InputError

from . import files as F
from .layout import build_layout
from .session import Session, new_work_dir, remove_tree, row_dict

POLL_S = 0.25
REMEASURE_DELAY_S = 0.4  # an edit's strokes come in bursts: measure once they pause


class ThighSegWebApp(TrameApp):
    def __init__(self, server=None, data_dir: Path | None = None, dataset_dir: Path = Path("thighseg-training-cases")):
        super().__init__(server)
        self.data_dir = Path(data_dir).resolve() if data_dir else None
        self.work = new_work_dir()  # uploads and exports; removed when the server stops
        self.slicer = SlicerApp()
        _share_scene_with_module(self.slicer)
        self.session = Session(self.slicer.scene, Path(dataset_dir).resolve())
        register_rca_factories(self.slicer.view_manager, self.server)
        self.layout_manager = LayoutManager(self.slicer.scene, self.slicer.view_manager, self.server)
        self.layout_manager.register_layout_dict(LayoutManager.default_grid_configuration())
        self.layout_manager.set_layout("Axial Primary")
        self.editor_logic = SegmentEditorLogic(self.server, self.slicer)
        self._edits = 0
        self._tasks: set = set()  # running background tasks (asyncio keeps only weak references)
        self._listening = False
        self._init_state()
        self.ui = build_layout(self)
        self.editor_logic.set_ui(self.ui.segment_editor)
        self.slicer.segmentation_editor.segmentation_modified.connect(self._on_edited)

    # --- state -------------------------------------------------------------------------
    def _init_state(self) -> None:
        s = self.state
        s.trame__title = "ThighMuscleSeg"
        s.ts_inputs = F.list_inputs(self.data_dir)
        s.ts_input = None
        s.ts_models = F.list_models(self.data_dir)
        s.ts_model = ""
        s.ts_devices = list(F.DEVICES)
        s.ts_device = "auto"
        s.ts_ct_name = ""
        s.ts_busy = False  # reading, saving or measuring
        s.ts_running = False
        s.ts_status = "idle"  # idle | open | running | done | cancelled | error
        s.ts_percent = 0
        s.ts_stage = ""
        s.ts_message = ""
        s.ts_error = ""
        s.ts_info = ""
        s.ts_flagged = []
        s.ts_rows = []
        s.ts_table_state = ""  # "" | "measuring" | "edited"
        s.ts_has_result = False
        s.ts_is_dicom = False
        s.ts_show_disagreement = False
        s.ts_case_name = ""
        s.ts_dataset = str(self.session.dataset_dir)
        s.ts_saved = ""
        s.ts_tab = "thighs"
        s.change("ts_show_disagreement")(self._on_disagreement_toggled)

    def _fail(self, error: BaseException) -> None:
        """An error as words in the page (a traceback on the server's console for bugs)."""
        if not isinstance(error, (InputError, OSError, ValueError, FileExistsError)):
            traceback.print_exception(error, file=sys.stderr)
        with self.state:
            self.state.ts_error = str(error) or type(error).__name__
            self.state.ts_busy = False

    def _show_rows(self) -> None:
        rows = [row_dict(r, self.session.flags.get(r.label_value, "")) for r in self.session.rows]
        self.state.ts_rows = rows
        self.state.ts_flagged = [r["name"] for r in rows if r["quality"] == "check"]

    # --- opening -----------------------------------------------------------------------
    def _spawn(self, coroutine) -> None:
        """Run a handler's slow part as a task: wslink serves one message at a time, and Cancel must get through."""
        task = asyncio.get_event_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def open_selected(self):
        path = self.state.ts_input
        if not path:
            return self._fail(InputError("choose a CT from the list first"))
        if not F.is_allowed(path, self.data_dir, self.work):
            return self._fail(InputError("that file is not one the page offered"))
        self._spawn(self._open(Path(path)))

    def upload(self, files):
        try:
            path = F.save_uploads(list(files or []), self.work / "uploads")
        except Exception as e:  # noqa: BLE001 - shown in the page
            return self._fail(e)
        self._spawn(self._open(path))

    async def _open(self, path: Path):
        with self.state:
            self.state.update({"ts_busy": True, "ts_error": "", "ts_info": "", "ts_saved": "",
                               "ts_message": f"reading {path.name}"})
        try:
            image, dicom_files, note = await asyncio.to_thread(Session.read, path)
            self._listening = False
            self.slicer.segmentation_editor.deactivate_effect()
            node = self.session.load_ct(path, image, dicom_files, note)
            dm = self.slicer.display_manager
            dm.show_volume_in_slice_background(node)
            dm.show_volume_in_slice_foreground(None)
            _set_label_layer(self.slicer, None)
            dm.reset_views()
        except Exception as e:  # noqa: BLE001 - shown in the page
            with self.state:
                self.state.update({"ts_status": "idle", "ts_ct_name": "", "ts_message": ""})
            return self._fail(e)
        with self.state:
            self.state.update({"ts_busy": False, "ts_status": "open", "ts_ct_name": node.GetName(),
                               "ts_message": "", "ts_rows": [], "ts_flagged": [], "ts_has_result": False,
                               "ts_is_dicom": bool(dicom_files), "ts_percent": 0, "ts_stage": "",
                               "ts_case_name": node.GetName().replace(" ", "_")[:60], "ts_table_state": ""})

    # --- segmenting --------------------------------------------------------------------
    def segment(self):
        try:
            model, device = self.state.ts_model or "", self.state.ts_device
            if device not in F.DEVICES or model not in {m["value"] for m in self.state.ts_models}:
                raise InputError("choose a model and a device from the lists")
            self._listening = False
            job = self.session.start(model, device)
        except Exception as e:  # noqa: BLE001 - shown in the page
            return self._fail(e)
        with self.state:
            self.state.update({"ts_running": True, "ts_status": "running", "ts_error": "", "ts_info": "",
                               "ts_saved": "", "ts_rows": [], "ts_flagged": [], "ts_has_result": False,
                               "ts_percent": 0, "ts_stage": "start", "ts_message": "starting thighseg segment",
                               "ts_show_disagreement": False})
        self._spawn(self._follow(job))

    async def _follow(self, job) -> None:
        while self.session.job is job:
            await asyncio.sleep(POLL_S)
            if self.session.job is not job:
                break  # cancelled from the page
            run = self.session.poll()
            with self.state:
                self.state.update({"ts_percent": round(run.percent, 1), "ts_stage": run.stage,
                                   "ts_message": run.message})
            if run.status == "done":
                self._show_result()
                return
            if run.status in ("error", "cancelled"):
                self._ended(run.status, run.message)
                return

    def cancel(self):
        if self.session.job is None:
            return
        self.session.cancel()
        self._ended("cancelled", "cancelled: nothing was kept")

    def _ended(self, status: str, message: str) -> None:
        with self.state:
            self.state.update({"ts_running": False, "ts_status": status, "ts_percent": 0, "ts_stage": ""})
            if status == "error":
                self.state.ts_error = message or "the segmentation failed"
                self.state.ts_message = ""
            else:
                self.state.ts_message = message

    def _show_result(self) -> None:
        try:
            result = self.session.finish()
            editor = self.slicer.segmentation_editor
            editor.set_active_segmentation(result.segmentation, self.session.ct.node)
            editor.set_surface_representation_enabled(True)
            self.slicer.display_manager.reset_views()
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._ended("error", "")
            return self._fail(e)
        with self.state:
            self.state.update({"ts_running": False, "ts_status": "done", "ts_has_result": True,
                               "ts_info": self.session.notes_text(), "ts_table_state": "", "ts_percent": 100,
                               "ts_message": "done"})
            self._show_rows()
        self._listening = True

    # --- after an edit -----------------------------------------------------------------
    def _on_edited(self, *_):
        if not self._listening or self.session.result is None:
            return
        self._edits += 1
        self._spawn(self._remeasure(self._edits))
        with self.state:
            self.state.ts_table_state = "measuring"

    async def _remeasure(self, edit: int):
        await asyncio.sleep(REMEASURE_DELAY_S)
        if edit != self._edits or self.session.result is None:
            return  # a later edit measures
        try:
            rows = await asyncio.wrap_future(self.session.start_measuring())
        except Exception as e:  # noqa: BLE001 - shown in the page
            return self._fail(e)
        if edit != self._edits:
            return
        self.session.set_rows(rows)
        with self.state:
            self._show_rows()
            self.state.ts_table_state = "edited"

    def _on_disagreement_toggled(self, ts_show_disagreement=False, **_):
        r = self.session.result
        _set_label_layer(self.slicer, r.disagreement.GetID() if (ts_show_disagreement and r) else None)

    # --- saving and exporting ----------------------------------------------------------
    def save_case(self):
        self._spawn(self._save_case())

    async def _save_case(self):
        with self.state:
            self.state.update({"ts_busy": True, "ts_error": "", "ts_saved": ""})
        try:
            folder = await asyncio.wrap_future(self.session.start_save(self.state.ts_case_name))
        except Exception as e:  # noqa: BLE001 - shown in the page
            return self._fail(e)
        with self.state:
            self.state.update({"ts_busy": False, "ts_saved": f"saved {folder}"})

    def export(self, kind: str):
        """The file's bytes as a download attachment, or None (and the reason in the page)."""
        folder = new_work_dir()
        try:
            writer = {"csv": self.session.table_csv, "seg": self.session.seg_nrrd, "dicom": self.session.dicom_seg}[kind]
            path = writer(folder)
            return self.server.protocol.addAttachment(path.read_bytes())
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._fail(e)
            return None
        finally:
            remove_tree(folder)

    def shutdown(self) -> None:
        self.session.close()
        remove_tree(self.work)


def _share_scene_with_module(slicer_app) -> None:
    """The module's helpers reach the scene and logics as inside Slicer (``slicer.mrmlScene``)."""
    from types import SimpleNamespace

    import slicer

    slicer.mrmlScene = slicer_app.scene
    slicer.modules = SimpleNamespace(
        volumes=SimpleNamespace(logic=lambda: slicer_app.volumes_logic),
        segmentations=SimpleNamespace(logic=lambda: slicer_app.segmentations_logic),
        colors=SimpleNamespace(logic=lambda: slicer_app.color_logic))
    from ThighMuscleSegModuleLib.headless import register_converter_rules

    register_converter_rules()


def _set_label_layer(slicer_app, volume_id: str | None) -> None:
    """Show a label map (the views' disagreement) over the CT in every slice view, or none."""
    nodes = slicer_app.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    for i in range(nodes.GetNumberOfItems()):
        composite = nodes.GetItemAsObject(i)
        composite.SetLabelVolumeID(volume_id)
        composite.SetLabelOpacity(0.8)
    for view in slicer_app.view_manager.get_slice_views():
        view.schedule_render()


def serve(host: str = "127.0.0.1", port: int = 8080, data_dir: Path | None = None,
          dataset_dir: Path = Path("thighseg-training-cases")) -> None:
    from trame.app import get_server

    sys.argv = sys.argv[:1]  # trame reads its own options from the command line: thighseg's are not for it
    server = get_server("thighseg-web", client_type="vue3")
    app = ThighSegWebApp(server, data_dir=data_dir, dataset_dir=dataset_dir)

    def ready(**_):
        shown = "127.0.0.1" if host in ("127.0.0.1", "localhost") else host
        print(f"thighseg web: serving http://{shown}:{server.port}/ (Ctrl+C stops)", flush=True)

    server.controller.on_server_ready.add(ready)
    try:
        server.start(host=host, port=port, open_browser=False, show_connection_info=False, timeout=0)
    finally:
        app.shutdown()
