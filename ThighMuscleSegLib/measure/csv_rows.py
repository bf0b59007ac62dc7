"""The CSV plumbing every measurement table shares (volumes, measurements, profiles): one cell
format, atomic writing, and reading with the required columns checked and named."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict
from pathlib import Path

from ..io import InputError, atomic_path


def cell(value) -> str:
    """A CSV cell: empty for None and NaN, floats with three decimals."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def number(text: str | None) -> float:
    """A numeric cell back: NaN when empty."""
    return float(text) if text else math.nan


def write_dataclass_rows(rows: list, columns: tuple[str, ...], path: str | os.PathLike) -> Path:
    """Dataclass ``rows`` (fields in ``columns`` order) as a CSV at ``path``, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for row in rows:
                w.writerow([cell(v) for v in asdict(row).values()])
    return Path(path)


def read_rows(path: str | os.PathLike, required, kind: str) -> list[dict]:
    """The rows of ``path`` as dicts; a missing file or a missing ``required`` column is an
    InputError naming the ``kind`` of file expected (e.g. "volumes.csv")."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} does not exist")
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(required) - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{p.name} is not a thighseg {kind}: columns {sorted(missing)} are missing")
        return list(reader)
