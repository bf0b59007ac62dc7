"""``thighseg calibrate-quality DATA... --out DIR``: fit the per-muscle quality flag on cases with
ground truth (docs/quality.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..defaults import DEVICE_CHOICES, default_model_path


def add_arguments(parser) -> None:
    parser.add_argument("data", metavar="DATA", nargs="*",
                        help="case folders (ct.nii.gz + labels.nii.gz), or folders of them: held-out phantoms, "
                             "or corrected cases saved from Slicer")
    parser.add_argument("--samples", metavar="CSV",
                        help="instead of DATA: fit again on the samples.csv of an earlier run (no segmenting; e.g. "
                             "another --target-dice or --sensitivity)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="writes quality_calibration.json, roc.json, roc.png, summary.md, samples.csv")
    parser.add_argument("--model", metavar="FILE", help="model file (default: the bundled model)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="cpu")
    parser.add_argument("--damage-per-thigh", type=int, default=3, metavar="N",
                        help="deliberately damaged copies of each thigh's prediction, as extra failures (default 3; "
                             "0: only the real results)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the damages (default 0)")
    parser.add_argument("--scope", choices=("field", "ct"), default="field",
                        help="Dice inside the analysed fields (default) or over the whole CT")
    parser.add_argument("--target-dice", type=float, default=0.80, help="a muscle below this Dice is a failure")
    parser.add_argument("--sensitivity", type=float, default=0.90, help="share of failures to flag (default 0.90)")
    parser.add_argument("--false-alarms", type=float, default=0.10,
                        help="the false-alarm rate to stay within where possible (default 0.10)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the cases already measured in --out (samples.csv is written after every case)")
    parser.add_argument("--evaluate", action="store_true",
                        help="score the installed calibration on these cases instead of fitting one (nothing is "
                             "installed): ROC, AUROC, sensitivity and false alarms at its threshold")
    parser.add_argument("--prefer", choices=("sensitivity", "false-alarms"), default="sensitivity",
                        help="when both targets cannot be met: keep the sensitivity (default) or the false-alarm rate")
    parser.add_argument("--install", action="store_true",
                        help="also make this the library's calibration (ThighMuscleSegLib/data/quality_calibration.json)")


def run(args) -> int:
    from ..io import InputError
    from ..quality_calibration import calibrate

    if args.damage_per_thigh < 0:
        raise InputError("--damage-per-thigh must be 0 or more")
    if bool(args.data) == bool(args.samples):
        raise InputError("give either case folders (DATA) or --samples CSV")
    if args.evaluate and args.install:
        raise InputError("--evaluate scores the installed calibration: it cannot --install one")
    model = None if args.samples else (Path(args.model) if args.model else default_model_path())
    cal, report = calibrate(args.data, model, Path(args.out), damage_per_thigh=args.damage_per_thigh, seed=args.seed,
                            scope=args.scope, device=args.device, target_dice=args.target_dice,
                            sensitivity=args.sensitivity, false_alarms=args.false_alarms, prefer=args.prefer,
                            samples_csv=Path(args.samples) if args.samples else None, install=args.install,
                            evaluate_only=args.evaluate, resume=args.resume,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
    name, curve = next(iter(report["curves"].items()))
    point = curve["at_threshold"]
    print(f"{report['samples']} muscles ({report['positives']} below Dice {report['target_dice']:.2f}, "
          f"{report['damaged_samples']} damaged on purpose) from {len(report['cases'])} case(s)")
    print(f"AUROC {curve['auroc']:.3f} ({name}); threshold {report['threshold']:.3f}: sensitivity "
          f"{100 * point['sensitivity']:.1f} %, false alarms {100 * point['false_alarm_rate']:.1f} %"
          + ("" if point["targets_met"] else " (targets not met)"))
    print(f"wrote {Path(args.out) / 'summary.md'}, roc.png, roc.json, samples.csv"
          + ("" if args.evaluate else ", quality_calibration.json"))
    return 0
