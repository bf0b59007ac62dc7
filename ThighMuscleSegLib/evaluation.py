"""Scoring predictions against ground truth over cases: pairing, per-label tables, CSV, markdown.

Two scopes. ``"ct"``: the whole CT, so muscle that lies outside the analysed 360 mm fields
(the top of a long sartorius, a hamstring origin) counts as missed. ``"field"``: only the
voxels inside the fields the model analysed (read from the ``frames.json`` that
``thighseg segment`` writes beside its labels), as the paper scores its cropped volumes.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import classes as C
from . import framing
from . import io as tio
from . import metrics as M

LABEL_FILE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


def collect_label_files(path: str | Path) -> dict[str, Path]:
    """Case name -> label file. A file is one case; a folder holds case sub-folders with
    ``labels.nii.gz`` (the dataset contract) or label files named by case."""
    p = Path(path)
    if p.is_file():
        return {_stem(p): p}
    if not p.is_dir():
        raise tio.InputError(f"{p} does not exist")
    found: dict[str, Path] = {}
    for child in sorted(p.iterdir()):
        if child.is_dir() and (child / "labels.nii.gz").is_file():
            found[child.name] = child / "labels.nii.gz"
        elif child.is_file() and child.name.endswith(LABEL_FILE_SUFFIXES):
            found[_stem(child)] = child
    if not found:
        raise tio.InputError(f"{p} holds no label files (case folders with labels.nii.gz, or .nii.gz/.nrrd files)")
    return found


def _stem(p: Path) -> str:
    name = p.name
    for suffix in (".seg.nrrd",) + LABEL_FILE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return p.stem


def pair_cases(pred: str | Path, gt: str | Path) -> list[tuple[str, Path, Path]]:
    preds, gts = collect_label_files(pred), collect_label_files(gt)
    if len(preds) == 1 and len(gts) == 1:
        (name, p), (_, g) = next(iter(preds.items())), next(iter(gts.items()))
        return [(name, p, g)]
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise tio.InputError(f"no prediction for ground-truth case(s): {', '.join(missing)}")
    return [(name, preds[name], gts[name]) for name in sorted(gts)]


SCOPES = ("ct", "field")


def score_case(pred_path: Path, gt_path: Path, scope: str = "ct") -> list[M.LabelScore]:
    pred, gt = sitk.ReadImage(str(pred_path)), sitk.ReadImage(str(gt_path))
    if not tio.same_geometry(pred, gt, tol=1e-3):
        raise tio.InputError(f"{pred_path.name} and {gt_path.name} do not share a geometry (size, spacing, origin, direction)")
    p, g = sitk.GetArrayViewFromImage(pred), sitk.GetArrayViewFromImage(gt)
    if scope == "field":
        inside = framing.field_mask(analysed_frames(pred_path), gt)
        p, g = np.where(inside, p, 0), np.where(inside, g, 0)
    return M.score_labels(p, g, gt.GetSpacing())


def analysed_frames(pred_path: Path) -> list[framing.ThighFrame]:
    """The frames a prediction was made in: ``frames.json`` beside its label file."""
    path = Path(pred_path).parent / "frames.json"
    if not path.is_file():
        raise tio.InputError(f"scoring in the analysed field needs {path}, which thighseg segment writes beside "
                             "labels.nii.gz; segment again, or score the whole CT (--scope ct)")
    try:
        return framing.frames_from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as err:
        raise tio.InputError(f"{path} is not a frames.json written by thighseg ({err})") from None


def evaluate(pred: str | Path, gt: str | Path, progress=None, scope: str = "ct") -> list[dict]:
    """One row per case and label, as dicts with a ``case`` key."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
    rows = []
    pairs = pair_cases(pred, gt)
    for n, (case, p, g) in enumerate(pairs):
        if progress is not None:
            progress.update("evaluate", n / len(pairs), f"scoring {case}")
        rows += [{"case": case, **asdict(score)} for score in score_case(p, g, scope)]
    return rows


def per_label_summary(rows: list[dict]) -> list[dict]:
    """Mean ± SD per label over cases where the label is in the ground truth."""
    by_label: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        if r["gt_voxels"] > 0:
            by_label[r["label_value"]].append(r)
    names = {s.label_value: s.name for s in C.segments()}
    out = []
    for value in sorted(by_label):
        rs = by_label[value]
        entry = {"label_value": value, "name": names.get(value, str(value)), "cases": len(rs)}
        for key in ("dice", "asd_mm", "hd95_mm"):
            vals = np.array([r[key] for r in rs], float)
            vals = vals[~np.isnan(vals)]
            entry[f"{key}_mean"] = float(vals.mean()) if vals.size else float("nan")
            entry[f"{key}_sd"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        out.append(entry)
    return out


def overall(summary: list[dict]) -> dict:
    """Mean over labels of the per-label means (each label counts once)."""
    return {key: float(np.nanmean([s[f"{key}_mean"] for s in summary])) if summary else float("nan")
            for key in ("dice", "asd_mm", "hd95_mm")}


def markdown_table(summary: list[dict]) -> str:
    lines = ["| label | muscle | cases | Dice | ASD (mm) | HD95 (mm) |", "| --- | --- | --- | --- | --- | --- |"]
    for s in summary:
        lines.append(f"| {s['label_value']} | {s['name']} | {s['cases']} | "
                     f"{s['dice_mean']:.3f} ± {s['dice_sd']:.3f} | {s['asd_mm_mean']:.2f} ± {s['asd_mm_sd']:.2f} | "
                     f"{s['hd95_mm_mean']:.2f} ± {s['hd95_mm_sd']:.2f} |")
    o = overall(summary)
    lines.append(f"| all | mean over labels | | {o['dice']:.3f} | {o['asd_mm']:.2f} | {o['hd95_mm']:.2f} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: str | Path) -> Path:
    with tio.atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["case"])
            w.writeheader()
            w.writerows(rows)
    return Path(path)
