"""How much of the true muscle the views read, by how far they read beyond the field's ends.

    .venv/bin/python scripts/reach_share.py data/eval [--reach 0 30 60]

For every ``SET/pred/case_*`` of a ``make evaluate-model`` folder (its frames.json) and the
``SET/cases/case_*/labels.nii.gz`` beside it: the share of the true muscle voxels inside the
fields read with each reach (capped, per end, at the reach the segmentation had, i.e. where the
scan goes on). Prints one line per case and the mean per reach (docs/framing.md, "Reach").
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ThighMuscleSegLib import framing


def shares(pred: Path, case: Path, reaches: list[float]) -> list[float]:
    truth = sitk.ReadImage(str(case / "labels.nii.gz"))
    muscle = sitk.GetArrayFromImage(truth) > 0
    frames = framing.frames_from_json((pred / "frames.json").read_text(encoding="utf-8"))
    out = []
    for reach in reaches:
        read = [dataclasses.replace(f, reach_mm=tuple(min(reach, r) for r in f.reach_mm)).reading() for f in frames]
        out.append(float((framing.field_mask(read, truth) & muscle).sum() / muscle.sum()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_folder", type=Path)
    ap.add_argument("--reach", type=float, nargs="+", default=[0.0, 30.0, 60.0])
    a = ap.parse_args()
    rows = []
    for pred in sorted(a.eval_folder.glob("*/pred/case_*")):
        row = shares(pred, pred.parent.parent / "cases" / pred.name, a.reach)
        rows.append(row)
        print(pred.parent.parent.name, pred.name, " ".join(f"{v:.4f}" for v in row), flush=True)
    means = np.mean(rows, axis=0)
    print(f"{len(rows)} cases; mean share of the true muscle read, reach " + " / ".join(f"{r:g}" for r in a.reach)
          + " mm: " + " / ".join(f"{m:.4f}" for m in means))


if __name__ == "__main__":
    main()
