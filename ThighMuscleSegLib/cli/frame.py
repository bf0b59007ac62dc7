"""``thighseg frame CT --out DIR``: each thigh on the model grid, its frame, and a round trip."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import classes as C
from .. import framing as F
from .. import io as tio
from .. import metrics


def add_arguments(parser) -> None:
    parser.add_argument("ct", metavar="CT", help="CT: a DICOM folder or a .nii/.nii.gz/.nrrd/.mha file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--labels", metavar="LABELS", help="CT-space labels (right 1-10, left 11-20) to frame too; "
                        "adds roundtrip.json with the per-class Dice of labels pushed to the grid and back")
    parser.add_argument("--thigh-range", nargs=2, type=float, metavar=("Z_MIN", "Z_MAX"),
                        help="search the thighs only in this superior-inferior range (mm)")
    parser.add_argument("--preview", action="store_true", help="draw the framed thighs in three planes (frames.png)")


def grid_image(arr: np.ndarray, frame: F.ThighFrame) -> sitk.Image:
    """A grid array as an image in grid coordinates (mm, centred on the field)."""
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(F.resample.grid_reference(frame))
    return img


def roundtrip(labels: sitk.Image, frames: list[F.ThighFrame]) -> dict:
    """Per-class Dice of labels -> grid -> CT inside the fields, beside what plain 2 mm
    axis-aligned sampling of the same labels keeps (the bound that 2 mm sampling allows)."""
    grids = {f.side: C.ct_labels_to_model_ids(F.to_grid(labels, f, "nearest"), f.side) for f in frames}
    back = sitk.GetArrayFromImage(F.from_grid(grids, frames, labels))
    field = F.field_mask(frames, labels)
    orig = sitk.GetArrayFromImage(labels)
    bound = sitk.GetArrayFromImage(_sampled_2mm(labels))
    rows = {}
    for seg in C.segments():
        inside = (orig == seg.label_value)
        total = int(inside.sum())
        if total == 0 or seg.side not in grids:
            continue
        rows[seg.name] = {"label_value": seg.label_value,
                          "dice_in_field": round(metrics.dice(back[field] == seg.label_value, inside[field]), 4),
                          "dice_2mm_axis_aligned": round(metrics.dice(bound[field] == seg.label_value, inside[field]), 4),
                          "share_in_field": round(float(inside[field].sum()) / total, 4)}
    return rows


def _sampled_2mm(labels: sitk.Image) -> sitk.Image:
    ref = sitk.Image([max(1, int(round(s * sp / 2.0))) for s, sp in zip(labels.GetSize(), labels.GetSpacing())],
                     sitk.sitkUInt8)
    ref.SetSpacing((2.0, 2.0, 2.0))
    ref.SetOrigin(labels.GetOrigin())
    ref.SetDirection(labels.GetDirection())
    coarse = sitk.Resample(labels, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.Resample(coarse, labels, sitk.Transform(), sitk.sitkNearestNeighbor, 0)


def run(args) -> int:
    out = Path(args.out)
    ct = tio.read_ct(args.ct, thighs=True)  # the sanity limits of segment: too small, odd HU, huge
    t0 = time.perf_counter()
    override = {"z_range_mm": tuple(args.thigh_range)} if args.thigh_range else None
    frames = F.frame_thighs(ct, override=override)
    seconds = time.perf_counter() - t0
    labels = sitk.ReadImage(args.labels) if args.labels else None
    if labels is not None and not tio.same_geometry(labels, ct, tol=1e-3):
        raise tio.InputError(f"{args.labels} does not share the CT's geometry")
    written = []
    for f in frames:
        hu = F.to_grid(ct, f, "linear")
        written.append(tio.write_image(grid_image(np.round(hu).astype(np.int16), f), out / f"{f.side}_ct.nii.gz"))
        if labels is not None:
            ids = C.ct_labels_to_model_ids(F.to_grid(labels, f, "nearest"), f.side)
            written.append(tio.write_image(grid_image(ids, f), out / f"{f.side}_labels.nii.gz"))
    with tio.atomic_path(out / "frames.json") as tmp:
        tmp.write_text(F.frames_to_json(frames, seconds=round(seconds, 3)), encoding="utf-8")
    written.append(out / "frames.json")
    for f in frames:
        print(f"{f.side} thigh: z = {f.z_range_mm[0]:.0f}..{f.z_range_mm[1]:.0f} mm, femur axis "
              f"{f.axis_angle_deg((0, 0, 1)):.1f}° from the CT's z axis ({f.found})" + "".join(f"; {n}" for n in f.notes))
    if labels is not None:
        rt = roundtrip(labels, frames)
        written.append(_write_json(rt, out / "roundtrip.json"))
        d = [r["dice_in_field"] for r in rt.values()]
        b = [r["dice_2mm_axis_aligned"] for r in rt.values()]
        print(f"round trip: Dice in the field {np.mean(d):.3f} mean, {np.min(d):.3f} min "
              f"(plain 2 mm sampling keeps {np.mean(b):.3f} mean, {np.min(b):.3f} min)")
    if args.preview:
        from ..render_frames import write_frames_preview

        written.append(write_frames_preview(ct, frames, out / "frames.png", labels=labels))
    print(f"framed in {seconds:.2f} s; wrote " + ", ".join(p.name for p in written))
    return 0


def _write_json(data, path: Path) -> Path:
    with tio.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path
