"""``thighseg demo``: the main job on the bundled default, saying plainly what it did.

Makes one anatomical phantom CT (the project has no patient CT to ship), segments it with
the bundled model exactly as ``thighseg segment`` does, and scores the result against the
phantom's own labels. The score measures the software on a phantom, not clinical accuracy.
"""

from __future__ import annotations

from pathlib import Path

from ..defaults import DEVICE_CHOICES

DEMO_SEED = 2026  # a seed never used for training the bundled model


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="demo-output", help="folder for the demo's outputs (default: demo-output)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")


def run(args) -> int:
    from .. import evaluation as E
    from ..phantom.synth import make_case
    from ..phantom.writer import write_case
    from .main import main

    out = Path(args.out)
    case_dir = out / "phantom_case"
    if not (case_dir / "ct.nii.gz").is_file():
        print(f"1/3 making an anatomical phantom CT (seed {DEMO_SEED}, 512 x 512, Visible Human anatomy) in {case_dir}")
        write_case(make_case(DEMO_SEED, size="full"), case_dir)
    else:
        print(f"1/3 reusing the phantom CT in {case_dir}")
    seg_dir = out / "segmentation"
    print(f"2/3 segmenting it with the bundled model: thighseg segment {case_dir / 'ct.nii.gz'} --out {seg_dir}")
    code = main(["segment", str(case_dir / "ct.nii.gz"), "--out", str(seg_dir), "--device", args.device,
                 "--overwrite"])
    if code:
        return code
    print("3/3 scoring against the phantom's labels (a software check on a phantom, not clinical accuracy)")
    for scope, where in (("ct", "whole CT"), ("field", "inside the analysed fields")):
        summary = E.per_label_summary(E.evaluate(seg_dir / "labels.nii.gz", case_dir / "labels.nii.gz", scope=scope))
        o = E.overall(summary)
        print(f"   {where}: mean Dice {o['dice']:.3f}, mean ASD {o['asd_mm']:.2f} mm, mean HD95 {o['hd95_mm']:.2f} mm "
              f"over {len(summary)} muscle labels")
    print(f"Open {seg_dir / 'report.png'} for the picture, {seg_dir / 'volumes.csv'} for the volumes, or load "
          f"{seg_dir / 'segmentation.seg.nrrd'} with {case_dir / 'ct.nii.gz'} in 3D Slicer.")
    return 0
