"""Volume tables as MRML table nodes (shown in the panel, exported as CSV)."""

from __future__ import annotations

import math

from ThighMuscleSegLib.measure import MuscleVolume, VolumeChange

VOLUME_COLUMNS = (("Muscle", "name", "string"), ("Side", "side", "string"), ("Label", "label_value", "int"),
                  ("Volume (cm3)", "volume_cm3", "double"), ("Mean HU", "mean_hu", "double"),
                  ("Asymmetry R-L (%)", "asymmetry_percent", "double"), ("Voxels", "voxels", "int"),
                  ("Quality", "quality", "string"), ("Confidence", "confidence", "double"))
CHANGE_COLUMNS = (("Muscle", "name", "string"), ("Side", "side", "string"),
                  ("Prior (cm3)", "prior_cm3", "double"), ("Current (cm3)", "current_cm3", "double"),
                  ("Change (cm3)", "change_cm3", "double"), ("Change (%)", "change_percent", "double"))


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
            value = getattr(row, attr)
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


def volume_table(scene, rows: list[MuscleVolume], name: str, node=None):
    """A table node of ``rows``; with ``node``, that table is refilled in place (no new node)."""
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    _fill(node, rows, VOLUME_COLUMNS)
    return node


def change_table(scene, rows: list[VolumeChange], name: str):
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
