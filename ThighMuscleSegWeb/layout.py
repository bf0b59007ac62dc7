"""The page: a left panel (open, segment, save, export | trame-slicer's segment editor), the four
views (axial, coronal, sagittal, 3D) and the measurements table under them. Widgets only: every
button calls a handler of ``app.ThighSegWebApp``; what they show comes from its ``ts_*`` state."""

from __future__ import annotations

from trame.ui.vuetify3 import VAppLayout
from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_slicer.app.ui import SegmentEditorUI
from trame_slicer.app.ui.segmentation import SegmentEditorUndoRedoUI

NOT_CLINICAL = "Not for clinical use: trained and tested on phantoms only."
COLUMNS = (("Muscle", "name"), ("Side", "side"), ("Label", "label"), ("Volume (cm\u00b3)", "volume"),
           ("Voxels", "voxels"), ("Mean HU", "mean_hu"), ("IMAT (%)", "imat"), ("CSA 50 % (cm\u00b2)", "csa50"),
           ("Asymmetry R-L (%)", "asymmetry"), ("Quality", "quality"))


def _download(app, kind: str, filename: str, mime: str) -> str:
    trigger = app.server.controller.trigger_name(lambda: app.export(kind))
    return f"utils.download('{filename}', trigger('{trigger}'), '{mime}')"


def _open_panel(app) -> None:
    ctrl = app.server.controller
    html.Div("1. Open a CT", classes="text-subtitle-2 mt-2")
    v3.VFileInput(label="Upload a CT (NIfTI, NRRD, MHA; several files: one DICOM series)", multiple=True,
                  density="compact", prepend_icon="mdi-file-upload", disabled=("ts_busy || ts_running",),
                  change=f"trigger('{ctrl.trigger_name(app.upload)}', [$event.target.files])", id="ts-upload",
                  hide_details=True, classes="mb-2")
    with html.Div(v_if="ts_inputs.length", classes="d-flex align-center"):
        v3.VSelect(label="or pick one from the data folder", items=("ts_inputs",), v_model=("ts_input",),
                   density="compact", hide_details=True, id="ts-input")
        v3.VBtn("Open", click=app.open_selected, disabled=("!ts_input || ts_busy || ts_running",),
                classes="ml-2", variant="tonal", id="ts-open")
    html.Div("CT: {{ ts_ct_name }}", v_if="ts_ct_name", classes="text-body-2 mt-1", id="ts-ct-name")


def _segment_panel(app) -> None:
    html.Div("2. Segment", classes="text-subtitle-2 mt-4")
    with html.Div(classes="d-flex"):
        v3.VSelect(label="Model", items=("ts_models",), v_model=("ts_model",), density="compact", hide_details=True,
                   classes="mr-2", disabled=("ts_running",))
        v3.VSelect(label="Device", items=("ts_devices",), v_model=("ts_device",), density="compact",
                   hide_details=True, style="max-width: 110px;", disabled=("ts_running",))
    with html.Div(classes="d-flex mt-2"):
        v3.VBtn("Segment thighs", click=app.segment, color="primary", id="ts-segment",
                disabled=("!ts_ct_name || ts_running || ts_busy",))
        v3.VBtn("Cancel", click=app.cancel, classes="ml-2", variant="tonal", id="ts-cancel",
                disabled=("!ts_running",))
    v3.VProgressLinear(model_value=("ts_percent",), height=8, classes="mt-3", color="primary", id="ts-progress",
                       indeterminate=("ts_busy && !ts_running",))
    html.Div("{{ ts_stage }}{{ ts_stage && ts_message ? ': ' : '' }}{{ ts_message }}",
             classes="text-caption", id="ts-stage")
    html.Div("{{ ts_status }}", id="ts-status", style="display: none;")


def _messages() -> None:
    v3.VAlert(text=("ts_error",), v_if="ts_error", type="error", density="compact", classes="mt-2",
              id="ts-error", closable=True, click_close="ts_error = ''")
    v3.VAlert(text=("ts_info",), v_if="ts_info", type="info", density="compact", classes="mt-2", id="ts-info",
              style="white-space: pre-line;")
    v3.VAlert(v_if="ts_flagged.length", type="warning", density="compact", classes="mt-2", id="ts-flagged",
              text=("'Check first (the three views disagree or the result is doubtful): ' + ts_flagged.join(', ')",))


def _result_panel(app) -> None:
    with html.Div(v_if="ts_has_result"):
        v3.VSwitch(label="Show where the three views disagree", v_model=("ts_show_disagreement",),
                   density="compact", hide_details=True, color="primary", id="ts-disagreement")
        html.Div("3. Save as training case", classes="text-subtitle-2 mt-2")
        html.Div("into {{ ts_dataset }}", classes="text-caption")
        with html.Div(classes="d-flex align-center"):
            v3.VTextField(label="Case name", v_model=("ts_case_name",), density="compact", hide_details=True,
                          id="ts-case-name")
            v3.VBtn("Save as training case", click=app.save_case, classes="ml-2", variant="tonal", id="ts-save",
                    disabled=("ts_busy || ts_table_state === 'measuring'",))
        html.Div("{{ ts_saved }}", v_if="ts_saved", classes="text-caption text-success", id="ts-saved")
        html.Div("4. Export", classes="text-subtitle-2 mt-4")
        with html.Div(classes="d-flex flex-wrap"):
            v3.VBtn("Table (CSV)", click=_download(app, "csv", "volumes.csv", "text/csv"), variant="tonal",
                    classes="mr-2 mb-2", id="ts-export-csv", disabled=("ts_table_state === 'measuring'",))
            v3.VBtn("Segmentation (.seg.nrrd)",
                    click=_download(app, "seg", "segmentation.seg.nrrd", "application/octet-stream"),
                    variant="tonal", classes="mr-2 mb-2", id="ts-export-seg")
            v3.VBtn("DICOM SEG", v_if="ts_is_dicom",
                    click=_download(app, "dicom", "segmentation.dcm", "application/dicom"),
                    variant="tonal", classes="mb-2", id="ts-export-dicom")


def _table() -> None:
    with html.Div(v_if="ts_rows.length", classes="px-2", style="overflow-y: auto; height: 100%;"):
        html.Div("Measurements{{ ts_table_state === 'measuring' ? ' (updating after the edit...)' : "
                 "(ts_table_state === 'edited' ? ' (after your edits)' : '') }}",
                 classes="text-subtitle-2", id="ts-table-title")
        with v3.VTable(density="compact", fixed_header=True, id="ts-table"):
            with html.Thead(), html.Tr():
                for title, _ in COLUMNS:
                    html.Th(title)
            with html.Tbody():
                with html.Tr(v_for="row in ts_rows", key="row.kind + row.side + row.name",
                             classes=("row.quality === 'check' ? 'text-error font-weight-bold' : "
                                      "(row.kind === 'group' ? 'text-medium-emphasis' : '')",)):
                    for _, key in COLUMNS:
                        html.Td("{{ row.%s }}" % key)


def build_layout(app):
    with VAppLayout(app.server, full_height=True) as layout:
        layout.root.theme = "dark"
        with v3.VAppBar(density="compact"):
            v3.VToolbarTitle("ThighMuscleSeg: thigh muscles in CT")
            v3.VChip(NOT_CLINICAL, color="warning", size="small", classes="mr-4")
        with v3.VNavigationDrawer(permanent=True, width=420):
            with v3.VTabs(v_model=("ts_tab",), density="compact", grow=True):
                v3.VTab("Thighs", value="thighs", id="ts-tab-thighs")
                v3.VTab("Edit", value="edit", id="ts-tab-edit", disabled=("!ts_has_result",))
            with html.Div(v_show="ts_tab === 'thighs'", classes="pa-3"):
                _open_panel(app)
                _segment_panel(app)
                _messages()
                _result_panel(app)
            with html.Div(v_show="ts_tab === 'edit'", style="height: calc(100% - 48px); flex-direction: column;"):
                layout.segment_editor = SegmentEditorUI()
                with html.Div(classes="d-flex justify-center py-1"):
                    SegmentEditorUndoRedoUI(editor_ui=layout.segment_editor, row=True)
        with v3.VMain(), html.Div(style="height: calc(100vh - 48px); display: flex; flex-direction: column;"):
            with html.Div(style="flex: 3 1 0; min-height: 0; display: flex;"):
                app.layout_manager.initialize_layout_grid(layout)
            with html.Div(style="flex: 2 1 0; min-height: 0;"):
                _table()
    return layout
