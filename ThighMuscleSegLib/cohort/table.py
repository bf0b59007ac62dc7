"""The cohort table (``cohort.csv``, ``cohort.parquet``) and the records it is rebuilt from.

One row per case. The first columns (:data:`BASE_COLUMNS`) say what the case is and what
happened to it; then every column of ``volumes.csv`` that measures (not the ones naming the row),
for each side and muscle: ``<side>_<muscle>_<column>``, e.g. ``right_vastus_lateralis_volume_cm3``,
``left_gracilis_mean_hu``, ``right_adductors_quality``; then the columns of ``measurements.csv``
that ``volumes.csv`` lacks, the same way for each muscle (e.g. ``right_vastus_lateralis_imat_percent``)
and for each group of a thigh (e.g. ``left_quadriceps_volume_cm3``,
``right_all_muscles_subcutaneous_fat_cm2``). A column that either file gains later is added at the
end; none is ever removed.

``status``: ``done`` (segmented by this run), ``skipped`` (its results, complete and made from an
unchanged input, were kept from an earlier run: the measurements are those in its folder),
``failed`` (``error`` says why; it has no case folder). A ``done`` or ``skipped`` row has its folder
``cases/<case_id>/`` and every folder has its row.

The records (``.thighseg-batch/records.jsonl`` in the output folder, one JSON line appended and
flushed per finished case, the last line of a case winning) are what resume reads; the tables
are written from them, each through a temporary file and an atomic rename.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from .. import classes as C
from ..io import atomic_path

BASE_COLUMNS = ("case_id", "input", "subject", "date", "height_cm", "status", "error", "seconds", "device",
                "cpu_seconds", "peak_rss_mb", "host", "thighs", "flagged", "notes", "input_sha256", "finished_at")
NUMERIC_BASE = {"height_cm", "seconds", "cpu_seconds", "peak_rss_mb"}
STATUSES = ("done", "failed", "skipped")
RECORDS = Path(".thighseg-batch") / "records.jsonl"
ID_COLUMNS = ("label_value", "muscle", "side", "name")  # volumes.csv columns that name a row, not measure it


def measure_fields() -> tuple[str, ...]:
    """The measuring columns of ``volumes.csv``, in its order (from ``measure.CSV_COLUMNS``)."""
    from ..measure import CSV_COLUMNS

    return tuple(c for c in CSV_COLUMNS if c not in ID_COLUMNS)


def composition_fields(group: str | None = None) -> tuple[str, ...]:
    """The columns of ``measurements.csv`` the table takes for a muscle (``group`` None: those
    ``volumes.csv`` lacks) or for the group ``group`` (all that measure; the subcutaneous fat
    only on the all-muscles row, where it is measured). The height is a base column."""
    from ..measure.table import MEASUREMENT_COLUMNS

    skip = set(ID_COLUMNS) | {"kind", "height_cm"}
    if group is None:
        skip |= set(measure_fields()) | {"subcutaneous_fat_cm2", "subcutaneous_fat_plane"}
    elif group != "all_muscles":
        skip |= {"subcutaneous_fat_cm2", "subcutaneous_fat_plane"}
    return tuple(c for c in MEASUREMENT_COLUMNS if c not in skip)


def measurement_column_names() -> list[str]:
    cols = [f"{side}_{m.key}_{col}" for side in C.SIDES for m in C.CLASSES for col in measure_fields()]
    cols += [f"{side}_{m.key}_{col}" for side in C.SIDES for m in C.CLASSES for col in composition_fields()]
    cols += [f"{side}_{g.key}_{col}" for side in C.SIDES for g in C.GROUPS for col in composition_fields(g.key)]
    return cols


def columns_for(rows: list[dict]) -> list[str]:
    cols = list(BASE_COLUMNS) + measurement_column_names()
    known = set(cols)
    extra = sorted({k for r in rows for k in r if k not in known and k != "measurements"})
    return cols + extra


def flat(row: dict) -> dict:
    """A row with its measurements spread into columns."""
    out = {k: v for k, v in row.items() if k != "measurements"}
    out.update(row.get("measurements") or {})
    return out


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(round(v, 6))
    return str(v)


def write_tables(out_dir: str | os.PathLike, rows: list[dict]) -> tuple[Path, Path | None]:
    """``cohort.csv`` and ``cohort.parquet`` (when pyarrow is installed) of ``rows``, atomically."""
    out_dir = Path(out_dir)
    flat_rows = [flat(r) for r in sorted(rows, key=lambda r: r["case_id"])]
    cols = columns_for(flat_rows)
    csv_path = out_dir / "cohort.csv"
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for r in flat_rows:
                w.writerow([_cell(r.get(c)) for c in cols])
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return csv_path, None
    arrays, fields = [], []
    for c in cols:
        values = [r.get(c) for r in flat_rows]
        typ = _arrow_type(pa, c, values)
        if typ == pa.string():
            values = [None if v is None else str(v) for v in values]
        elif typ == pa.float64():
            values = [None if v is None or v == "" else float(v) for v in values]
        arrays.append(pa.array(values, type=typ))
        fields.append(pa.field(c, typ))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    pq_path = out_dir / "cohort.parquet"
    with atomic_path(pq_path) as tmp:
        pq.write_table(table, str(tmp))
    return csv_path, pq_path


def _arrow_type(pa, col: str, values: list):
    if col in NUMERIC_BASE:
        return pa.float64()
    if col in BASE_COLUMNS:
        return pa.string()
    if col.endswith("_voxels"):
        return pa.int64() if all(v is None or isinstance(v, int) for v in values) else pa.float64()
    if col.endswith("_quality"):
        return pa.string()
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
        return pa.float64()
    return pa.string()


def read_table(path: str | os.PathLike) -> list[dict]:
    """``cohort.csv`` back as dicts of strings (for tests and quick looks)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class Records:
    """Append-only per-case records of an output folder; ``latest[case_id]`` is the last one."""

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / RECORDS
        self.latest: dict[str, dict] = {}
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.latest[rec["row"]["case_id"]] = rec
                    except (ValueError, KeyError, TypeError):
                        continue  # a line torn by a crash: that case simply runs again

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.latest[record["row"]["case_id"]] = record
