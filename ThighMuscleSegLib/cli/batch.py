"""``thighseg batch INPUT... --out DIR``: a cohort of CTs on Ray, resumable (ThighMuscleSegLib.cohort)."""

from __future__ import annotations

import sys


from ..defaults import DEFAULT_BACK_INTERPOLATION, DEVICE_CHOICES


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="CT files, folders of CT files (NIfTI/NRRD/MHA; a dataset folder's case_NNN/ct.nii.gz), "
                             "DICOM trees (one case per study) or CSV manifests (case_id,path[,subject,date,height_cm,"
                             "series_uid]), in any mix")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: cases/<case_id>/ (the outputs of thighseg segment), cohort.csv, "
                             "cohort.parquet, cohort_report.png")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="Ray workers, each loading the model once (default: one per GPU with GPU workers, else "
                             "one per 2 CPU cores of the cluster)")
    parser.add_argument("--address", metavar="auto|HOST:PORT",
                        help="join an existing Ray cluster (ray start --head, KubeRay, Slurm); default: start a "
                             "local Ray on this machine")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto: GPU workers when the cluster has GPUs, else CPU workers (default: auto)")
    parser.add_argument("--cpus-per-worker", type=float, metavar="C",
                        help="CPU cores Ray gives each worker (default: the cluster's cores shared evenly; 1 for GPU "
                             "workers)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run the cases that failed in an earlier run again (else they are kept as failed)")
    parser.add_argument("--progress", choices=("human", "json"), default="human",
                        help="human: a progress bar on stderr; json: one JSON object per line on stdout")
    parser.add_argument("--model", metavar="FILE", help="model file (default: the bundled model)")
    parser.add_argument("--fusion", choices=("vote", "mean"), default="vote", help="as in thighseg segment")
    parser.add_argument("--back-interpolation", choices=("linear", "nearest"), default=DEFAULT_BACK_INTERPOLATION,
                        help="as in thighseg segment")


def run(args) -> int:
    from ..cohort.progress import BatchProgress
    from ..cohort.runner import BatchOptions, run_batch
    from ..io import InputError
    from ..progress import Cancelled

    if args.workers is not None and args.workers < 1:
        raise InputError("--workers must be at least 1")
    progress = BatchProgress(args.progress)
    options = BatchOptions(out=args.out, workers=args.workers, address=args.address, device=args.device,
                           retry_failed=args.retry_failed, model=args.model, fusion=args.fusion,
                           back_interpolation=args.back_interpolation, cpus_per_worker=args.cpus_per_worker)
    try:
        s = run_batch(args.inputs, options, progress)
    except Cancelled as e:  # the finished cases are kept and in the table: say so (not "nothing was written")
        progress.finish("cancelled", message=str(e))
        if args.progress == "json":
            print(f"thighseg batch: {e}", file=sys.stderr)
        return 130
    except InputError as e:
        progress.finish("error", message=str(e))
        raise
    message = (f"{s.total} case(s) in {s.seconds:.1f} s: {s.done} segmented, {s.skipped} kept from an earlier run, "
               f"{s.failed} failed")
    progress.finish("done", message=message, outputs=[p for p in (s.cohort_csv, s.cohort_parquet, s.cohort_report)
                                                      if p], seconds=s.seconds, workers=s.workers)
    if args.progress != "json":
        for p in (s.cohort_csv, s.cohort_parquet, s.cohort_report):
            if p:
                print(f"  {p}")
    return 1 if s.failed else 0
