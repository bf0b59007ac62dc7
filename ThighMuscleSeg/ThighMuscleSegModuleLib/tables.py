"""The module's tables as MRML table nodes (shown in the panel, exported as CSV).

The volume table is one row per muscle and side (``volumes.csv``: volume, quality flag; and
``measurements.csv``: HU spread, fat infiltration, cross-sectional areas) and then the group
rows of each thigh (quadriceps, hamstrings, adductor group, all ten; ``classes.GROUPS``).
Building the rows needs no Qt and no MRML (``merge_rows``); only ``_fill`` touches vtk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ThighMuscleSegLib.measure import MuscleVolume

NAN = math.nan


@dataclass(frozen=True)
class TableRow:
    """One row of the volume table: a muscle on one side, or a group of one thigh."""

    kind: str  # "muscle" | "group" (as in measurements.csv)
    label_value: int | None  # 1-20; None for a group
    muscle: str  # class key or group key
    side: str
    name: str
    voxels: int
    volume_cm3: float
    mean_hu: float
    sd_hu: float = NAN
    imat_percent: float = NAN
    lama_percent: float = NAN
    nama_percent: float = NAN
    csa_50_cm2: float = NAN
    csa_max_cm2: float = NAN
    csa_max_percent: float = NAN
    subcutaneous_fat_cm2: float = NAN  # the all-muscles row of each thigh only
    asymmetry_percent: float = NAN
    confidence: float = NAN
    quality: str = ""

    @property
    def label(self) -> str:
        return "" if self.label_value is None else str(self.label_value)


_FROM_MEASUREMENTS = ("sd_hu", "imat_percent", "lama_percent", "nama_percent", "csa_50_cm2", "csa_max_cm2",
                      "csa_max_percent", "subcutaneous_fat_cm2")


def from_volume(v: MuscleVolume, m=None) -> TableRow:
    """A muscle's row from its ``volumes.csv`` row and, when there, its ``measurements.csv`` row."""
    extra = {k: float(getattr(m, k)) for k in _FROM_MEASUREMENTS} if m is not None else {}
    return TableRow("muscle", v.label_value, v.muscle, v.side, v.name, v.voxels, v.volume_cm3, v.mean_hu,
                    asymmetry_percent=v.asymmetry_percent, confidence=v.confidence, quality=v.quality, **extra)


def from_group(m) -> TableRow:
    """A group's row from its ``measurements.csv`` row (``measure.table.MeasurementRow``)."""
    return TableRow("group", None, m.muscle, m.side, m.name, m.voxels, m.volume_cm3, m.mean_hu,
                    **{k: float(getattr(m, k)) for k in _FROM_MEASUREMENTS})


def merge_rows(volumes: list[MuscleVolume], measurements: list | None = None) -> list[TableRow]:
    """The volume table's rows: each muscle (volumes.csv order) with its measurements, matched by
    label value, then the group rows. Without measurements (a result of an older thighseg) the
    new columns are empty and there are no group rows."""
    by_label = {m.label_value: m for m in measurements or () if m.kind == "muscle"}
    rows = [from_volume(v, by_label.get(v.label_value)) for v in volumes]
    return rows + [from_group(m) for m in measurements or () if m.kind == "group"]


VOLUME_COLUMNS = (("Muscle", "name", "string"), ("Side", "side", "string"), ("Label", "label", "string"),
                  ("Volume (cm3)", "volume_cm3", "double"), ("Mean HU", "mean_hu", "double"),
                  ("SD HU", "sd_hu", "double"), ("IMAT (%)", "imat_percent", "double"),
                  ("LAMA (%)", "lama_percent", "double"), ("NAMA (%)", "nama_percent", "double"),
                  ("CSA 50 % (cm2)", "csa_50_cm2", "double"), ("CSA max (cm2)", "csa_max_cm2", "double"),
                  ("CSA max at (% femur)", "csa_max_percent", "double"),
                  ("Subcutaneous fat 50 % (cm2)", "subcutaneous_fat_cm2", "double"),
                  ("Asymmetry R-L (%)", "asymmetry_percent", "double"), ("Voxels", "voxels", "int"),
                  ("Quality", "quality", "string"), ("Confidence", "confidence", "double"))
# (title, change.csv column, kind): the change since a prior (``follow_up.change_rows``, rows as dicts).
CHANGE_COLUMNS = (("Muscle", "name", "string"), ("Side", "side", "string"),
                  ("Prior (cm3)", "volume_prior_cm3", "double"), ("Current (cm3)", "volume_current_cm3", "double"),
                  ("Change (cm3)", "volume_change_cm3", "double"), ("Change (%)", "volume_change_percent", "double"),
                  ("SDC (%)", "volume_sdc_percent", "double"), ("Volume verdict", "volume_verdict", "string"),
                  ("CSA 50 % change (%)", "csa50_change_percent", "double"),
                  ("CSA 50 % verdict", "csa50_verdict", "string"),
                  ("Mean HU change", "mean_hu_change", "double"), ("Mean HU verdict", "mean_hu_verdict", "string"),
                  ("IMAT change (pp)", "imat_change_pp", "double"), ("IMAT verdict", "imat_verdict", "string"),
                  ("Compared from (% femur)", "common_from_percent", "double"),
                  ("Compared to (% femur)", "common_to_percent", "double"), ("Aligned at", "aligned_at", "string"))


def _fill(table_node, rows, columns) -> None:
    import vtk

    table = table_node.GetTable()
    table.Initialize()
    arrays = []
    for title, _, kind in columns:
        arr = {"string": vtk.vtkStringArray, "int": vtk.vtkIntArray, "double": vtk.vtkDoubleArray}[kind]()
        arr.SetName(title)
        table.AddColumn(arr)
        arrays.append(arr)
    table.SetNumberOfRows(len(rows))
    for r, row in enumerate(rows):
        for c, (_, attr, kind) in enumerate(columns):
            value = row[attr] if isinstance(row, dict) else getattr(row, attr)
            if kind == "string":
                table.SetValue(r, c, vtk.vtkVariant(str(value)))
            elif kind == "int":
                table.SetValue(r, c, vtk.vtkVariant(int(value)))
            else:
                table.SetValue(r, c, vtk.vtkVariant(float(value) if value is not None and not _isnan(value) else math.nan))
    table.Modified()
    table_node.Modified()


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def volume_table(scene, rows: list[TableRow] | list[MuscleVolume], name: str, node=None):
    """A table node of ``rows`` (``MuscleVolume`` rows get empty measurement columns); with
    ``node``, that table is refilled in place (no new node)."""
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    _fill(node, [r if isinstance(r, TableRow) else from_volume(r) for r in rows], VOLUME_COLUMNS)
    return node


def change_table(scene, rows: list[dict], name: str):
    """A table node of the change since a prior (``follow_up.change_rows``)."""
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    _fill(node, rows, CHANGE_COLUMNS)
    return node


def table_rows(table_node) -> list[dict]:
    """The table's rows as dicts keyed by column title, values in their column's type."""
    table = table_node.GetTable()
    columns = [table.GetColumn(c) for c in range(table.GetNumberOfColumns())]
    return [{col.GetName(): col.GetValue(r) for col in columns} for r in range(table.GetNumberOfRows())]


def export_csv(table_node, path) -> None:
    """Write the table as CSV (atomic, never over a half-written file)."""
    import csv

    from ThighMuscleSegLib.io import atomic_path

    rows = table_rows(table_node)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            w.writeheader()
            w.writerows(rows)
