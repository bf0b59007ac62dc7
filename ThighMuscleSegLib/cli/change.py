"""``thighseg change PRIOR_RESULT CURRENT_RESULT --out DIR``: change per muscle against a prior scan."""

from __future__ import annotations

import sys
from pathlib import Path

from ..io import InputError
from ..progress import Progress, human_sink, json_lines_sink

STAGES = {"read": 2, "compare": 1, "write": 3}


def add_arguments(parser) -> None:
    parser.add_argument("prior", metavar="PRIOR_RESULT",
                        help="output folder of thighseg segment for the prior scan (or a batch case folder)")
    parser.add_argument("current", metavar="CURRENT_RESULT", help="the same for the current scan")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for change.csv and change.png (created)")
    parser.add_argument("--sdc", metavar="FILE", type=Path, default=None,
                        help="repeatability table (default: the bundled ThighMuscleSegLib/data/repeatability.json, "
                             "docs/repeatability.md)")
    parser.add_argument("--overwrite", action="store_true", help="replace change.csv and change.png already in --out")
    parser.add_argument("--progress", choices=("human", "json"), default="human",
                        help="json: one JSON object per line on stdout")


def run(args) -> int:
    from ..measure.change import load_result, compare
    from ..measure.change_table import write_change_csv
    from ..measure.change import load_sdc
    from ..render_change import write_change_png

    json_mode = args.progress == "json"
    progress = Progress(STAGES, sink=json_lines_sink(sys.stdout) if json_mode else human_sink(sys.stderr))
    out = Path(args.out)
    targets = [out / "change.csv", out / "change.png"]
    try:
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} exists and is not a folder")
        there = [p.name for p in targets if p.exists()]
        if there and not args.overwrite:
            raise InputError(f"{out} already holds {', '.join(there)}: pass --overwrite to replace them")
        if args.sdc is not None and not args.sdc.is_file():
            raise InputError(f"{args.sdc} does not exist")
        progress.update("read", 0.0, f"reading {args.prior}")
        prior = load_result(args.prior)
        progress.update("read", 0.5, f"reading {args.current}")
        current = load_result(args.current)
        sdc, source = load_sdc(args.sdc)
        progress.update("compare", 0.0, "aligning the femurs and comparing over the range both scans cover")
        report = compare(prior, current, sdc, source)
        for note in report.notes:
            progress.update("compare", 1.0, f"note: {note}")
        out.mkdir(parents=True, exist_ok=True)
        progress.update("write", 0.0, "writing change.csv")
        write_change_csv(report, targets[0])
        progress.update("write", 0.5, "drawing change.png")
        write_change_png(report, targets[1])
    except InputError as e:
        progress.finish("error", message=str(e))
        raise
    summary = report.summary()
    progress.finish("done", message=summary, outputs=[str(p) for p in targets], notes=report.notes)
    if not json_mode:
        print(summary)
        for n in report.notes:
            print(f"Note: {n}.")
        for p in targets:
            print(f"  {p}")
    return 0
