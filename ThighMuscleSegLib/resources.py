"""Slicer's colour table and terminology file, generated from the class table.

``python -m ThighMuscleSegLib.resources`` rewrites ``Resources/``; a test compares the
committed files with what this module makes, so they cannot drift from ``classes``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from . import classes as C

REPO_ROOT = Path(__file__).resolve().parent.parent
RESOURCES = REPO_ROOT / "Resources"
COLOR_TABLE_NAME = "ThighMuscleSeg.csv"
TERMINOLOGY_NAME = "SegmentationCategoryTypeModifier-ThighMuscleSeg.term.json"

_CODE_COLUMNS = ("CodingScheme", "CodeValue", "CodeMeaning")


def color_table_csv() -> str:
    """Slicer's CSV colour table (5.8+): label value, name, RGBA and terminology columns."""
    header = ["LabelValue", "Name", "Color_R", "Color_G", "Color_B", "Color_A"]
    for part in ("Category", "Type", "TypeModifier", "Region", "RegionModifier"):
        header += [f"{part}_{c}" for c in _CODE_COLUMNS]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerow([0, C.BACKGROUND_NAME, 0, 0, 0, 0] + [""] * 15)
    for seg in C.segments():
        code_cols = []
        for code in (C.CATEGORY, seg.muscle.code, seg.laterality):
            code_cols += [code.scheme, code.value, code.meaning]
        code_cols += [""] * 6  # region and its modifier: the type already names the structure
        w.writerow([seg.label_value, seg.name, *seg.color, 255] + code_cols)
    return out.getvalue()


def _code_json(code: C.Code, context_group: str, cid: str) -> dict:
    return {
        "CodeMeaning": code.meaning,
        "CodingSchemeDesignator": code.scheme,
        "CodeValue": code.value,
        "contextGroupName": context_group,
        "cid": cid,
    }


def terminology_json() -> str:
    """A Slicer terminology context (dcmqi segment-context schema) with the 10 muscles."""
    types = []
    for m in C.CLASSES:
        t = _code_json(m.code, "ThighMuscleSeg thigh muscles", "")
        t.update({"3dSlicerLabel": m.name.lower(), "recommendedDisplayRGBValue": list(m.color)})
        t["Modifier"] = []
        for side in C.SIDES:
            mod = _code_json(C.LATERALITY[side], "Laterality", "244")
            mod.update({"3dSlicerLabel": m.side_name(side).lower(),
                        "recommendedDisplayRGBValue": list(m.side_color(side))})
            t["Modifier"].append(mod)
        types.append(t)
    category = _code_json(C.CATEGORY, "Segmentation Property Categories", "7150")
    category["Type"] = types
    doc = {
        "SegmentationCategoryTypeContextName": C.TERMINOLOGY_CONTEXT,
        "@schema": "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/segment-context-schema.json#",
        "SegmentationCodes": {"Category": [category]},
    }
    return json.dumps(doc, indent=2) + "\n"


def expected_files() -> dict[str, str]:
    return {COLOR_TABLE_NAME: color_table_csv(), TERMINOLOGY_NAME: terminology_json()}


def write(folder: Path = RESOURCES) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected_files().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write(Path(sys.argv[1]) if len(sys.argv) > 1 else RESOURCES):
        print(f"wrote {p}")
