"""``thighseg phantom``: anatomical thigh CT phantoms with labels."""

from __future__ import annotations

import time
from pathlib import Path

from ..io import InputError
from ..phantom.population import DEFAULT_POPULATION, HOLDOUT_REGIONS, POPULATIONS
from ..progress import Progress, human_sink, json_lines_sink


def add_arguments(parser) -> None:
    parser.add_argument("OUT_DIR", help="folder to write the cases into (case_000/, case_001/, ...)")
    parser.add_argument("--cases", type=int, default=1, help="number of cases (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first case; case i uses seed+i")
    parser.add_argument("--anatomy", type=Path, default=None,
                        help="folder of *_<Left|Right>_<Muscle|Bone|Cartilage>_<Name>.stl surfaces of "
                             "one body, in any frame (found from its anatomy; docs/phantom.md) "
                             "(default: the bundled Visible Human Female template)")
    parser.add_argument("--population", choices=POPULATIONS, default=DEFAULT_POPULATION,
                        help="adult (default): each case draws a body (size, muscle volumes, atrophy, fat, "
                             "scanner); template: the one template body, as generator 1.0 made them")
    parser.add_argument("--select", choices=("all", "train", "holdout") + HOLDOUT_REGIONS, default="all",
                        help="only seeds whose drawn body is outside (train) or inside (holdout, or one region) "
                             "the population regions held out from training; default all")
    parser.add_argument("--format", choices=("nifti", "dicom"), default="nifti",
                        help="dicom also writes case_NNN/dicom/ (a CT series)")
    parser.add_argument("--size", choices=("full", "small"), default="full",
                        help="full: 512x512 scanner grid; small: 256x256, ~2 mm (fast)")
    parser.add_argument("--preview", action="store_true", help="write case_NNN/preview.png")
    parser.add_argument("--calibration", action="store_true",
                        help="print the phantom's Hounsfield values against the real CT in ../shared")
    parser.add_argument("--rescan", type=int, default=0, metavar="K",
                        help="follow-up: the K-th rescan of each case's body (same body, new leg pose, table "
                             "position, field of view, pixel and slice size, noise); 0: the first scan (default)")
    parser.add_argument("--shrink", action="append", default=[], metavar="[SIDE:]MUSCLE=PERCENT",
                        help="follow-up: the muscle lost PERCENT of its volume, on both sides or on SIDE "
                             "(right|left), e.g. vastus_lateralis=10 or left:adductors=15; repeatable")
    parser.add_argument("--cut-field", action="append", default=[], metavar="END=MM",
                        help="follow-up: the scanned field ends MM earlier at the hip or knee end, e.g. knee=40; "
                             "repeatable")
    parser.add_argument("--progress", choices=("human", "json"), default="human")


def run(args) -> int:
    from ..phantom.population import seeds_in
    from ..phantom.synth import make_case
    from ..phantom.writer import write_case

    if args.calibration:
        _print_calibration()
    if args.cases < 1:
        raise InputError("--cases must be at least 1")
    follow = _followup(args)
    out = Path(args.OUT_DIR)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    sink = json_lines_sink() if args.progress == "json" else human_sink()
    progress = Progress({"phantom": 0.8, "write": 0.2}, sink)
    written = []
    seeds = list(range(args.seed, args.seed + args.cases))
    if args.select != "all":
        if args.population != "adult":
            raise InputError("--select picks bodies of the adult population: use it with --population adult")
        seeds = seeds_in(args.select, args.seed, args.cases)
    for i, seed in enumerate(seeds):
        t0 = time.perf_counter()
        try:
            case = make_case(seed, size=args.size, anatomy=args.anatomy, progress=progress,
                             population=args.population, followup=follow)
        except ValueError as e:  # a field cut away entirely
            raise InputError(f"seed {seed}: {e}") from None
        t1 = time.perf_counter()
        folder = write_case(case, out / f"case_{i:03d}", args.format)
        if args.preview:
            from ..phantom.preview import write_preview

            write_preview(case.ct, case.labels, folder / "preview.png", f"seed {seed}")
        t2 = time.perf_counter()
        progress.update("write", (i + 1) / args.cases,
                        f"{folder}: synthesis {t1 - t0:.1f} s, writing {t2 - t1:.1f} s")
        written.append(str(folder))
    progress.finish("done", outputs=written)
    return 0


def _followup(args):
    """The follow-up options as a FollowUp (None when none is given: the original cases)."""
    from ..phantom.followup import FollowUp, parse_cut, parse_shrink

    try:
        follow = FollowUp(args.rescan, parse_shrink(args.shrink), parse_cut(args.cut_field))
    except ValueError as e:
        raise InputError(str(e)) from None
    if follow.rescan and args.population != "adult":
        raise InputError("--rescan rescans a body of the adult population: the template population draws its fat "
                         "and muscle attenuation with the scanner")
    return None if follow.is_original else follow


def _print_calibration() -> None:
    from ..phantom.hounsfield import calibration_table

    import os

    shared = Path(os.environ.get("THIGHSEG_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    ct_dir = shared / "visible-human-female" / "ct"
    if not ct_dir.is_dir():
        raise InputError(f"real CT not found at {ct_dir}: the calibration needs ../shared/data")
    print(calibration_table(ct_dir))
