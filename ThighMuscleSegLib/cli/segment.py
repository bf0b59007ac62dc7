"""``thighseg segment INPUT --out DIR``: the thigh muscles of a CT, in the CT's geometry."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from .. import io as tio
from ..defaults import DEFAULT_BACK_INTERPOLATION, DEVICE_CHOICES, default_model_path
from ..progress import Cancelled, Progress, human_sink, json_lines_sink


def add_arguments(parser) -> None:
    parser.add_argument("input", metavar="INPUT", help="CT: a DICOM folder, or a .nii/.nii.gz/.nrrd/.mha file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created; existing results are kept "
                        "unless --overwrite)")
    parser.add_argument("--model", metavar="FILE", help="model file (default: the bundled model in Resources/Models)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto: CUDA or MPS when torch sees one, else the CPU (default: auto)")
    parser.add_argument("--progress", choices=("human", "json"), default="human",
                        help="json: one JSON object per line on stdout, for the Slicer module")
    parser.add_argument("--thigh-range", nargs=2, type=float, metavar=("Z_MIN", "Z_MAX"),
                        help="skip the automatic thigh search: superior-inferior range in mm (LPS z)")
    parser.add_argument("--engine", choices=("auto", "torch", "onnxruntime"), default="auto",
                        help="what runs the views' nets on the CPU (default auto: ONNX Runtime where installed, "
                             "else PyTorch; a GPU always uses PyTorch)")
    parser.add_argument("--fusion", choices=("vote", "mean"), default="vote",
                        help="combine the three views by winner-takes-all vote (paper) or mean probability")
    parser.add_argument("--back-interpolation", choices=("linear", "nearest"), default=DEFAULT_BACK_INTERPOLATION,
                        help="how the 2 mm labels go back into the CT: linear (each label's share interpolated; "
                             "smooth boundaries, default) or nearest (2 mm staircase, about 0.5 s faster)")
    parser.add_argument("--height-cm", type=_height_cm, metavar="CM",
                        help="the patient's height, for volume / height² in measurements.csv (default: DICOM "
                             "Patient's Size when the input is DICOM and has it; else none)")
    parser.add_argument("--series", metavar="UID", help="DICOM series instance UID when the folder holds several")
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    parser.add_argument("--allow-gaps", action="store_true",
                        help="a DICOM series with missing slices: interpolate across the gap (refused otherwise)")
    parser.add_argument("--allow-huge", action="store_true",
                        help="segment a CT of more than 4 GB of voxels (refused otherwise: it needs about 3 times "
                             "that in memory)")


def _height_cm(text: str) -> float:
    """A height in cm, refused unless plausible (30-260 cm: metres or inches typed in are caught)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 30.0 <= value <= 260.0:
        raise argparse.ArgumentTypeError(f"{value:g} cm is no adult or child height (give centimetres, 30-260)")
    return value


def _cancel_on_signals(progress: Progress) -> None:
    """SIGTERM (Slicer's Cancel) and Ctrl+C set the cancel flag; the next stage check stops
    the run and the staged outputs are removed."""
    def handler(signum, frame):  # noqa: ARG001
        progress.cancel()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(args) -> int:
    from ..models import load_model
    from ..outputs import check_output_folder
    from ..forked import allow_forking
    from ..pictures import preload as preload_pictures
    from ..heap import keep_freed_memory
    from ..pipeline import SEGMENT_STAGES, disagreement_share, segment_ct, write_outputs

    keep_freed_memory()  # the job's big arrays reuse each other's pages (ThighMuscleSegLib/heap.py)
    allow_forking()  # this process's threads are all its own: the pictures are drawn in forked children
    preload_pictures()  # their modules imported while the model and the CT are read (pictures.py)
    json_mode = args.progress == "json"
    progress = Progress(SEGMENT_STAGES, sink=json_lines_sink(sys.stdout) if json_mode else human_sink(sys.stderr))
    _cancel_on_signals(progress)
    t0 = time.perf_counter()
    try:
        check_output_folder(args.out, overwrite=args.overwrite)  # before a long run, not after it
        model_path = Path(args.model) if args.model else default_model_path()
        model = load_model(model_path, lazy=True)  # torch only if the nets are needed
        progress.update("read", 0.0, f"reading {args.input}")
        t_read = time.perf_counter()
        ct = tio.read_ct(args.input, series_uid=args.series, allow_gaps=args.allow_gaps, allow_huge=args.allow_huge,
                         thighs=True)
        read_s = time.perf_counter() - t_read
        dicom_files, no_seg = tio.dicom_seg_sources(args.input, ct)
        read_notes = tio.input_notes(ct) + ([no_seg] if no_seg else [])  # the series chosen, a gap, a tilt
        for note in read_notes:
            progress.update("read", 1.0, f"note: {note}")
        override = {"z_range_mm": tuple(args.thigh_range)} if args.thigh_range else None
        result = segment_ct(ct, model, device=args.device, override=override, progress=progress,
                            fusion=args.fusion, back_interpolation=args.back_interpolation,
                            log=lambda m: progress.update("infer", 0.0, m), engine=args.engine)
        t_write = time.perf_counter()
        written = write_outputs(result, args.out, dicom_files=dicom_files, overwrite=args.overwrite,
                                progress=progress, height_cm=getattr(args, "height_cm", None))
        stages = {"read": read_s, **result.seconds, "write": time.perf_counter() - t_write}
    except Cancelled:
        progress.finish("error", message="cancelled; no outputs were written")
        raise
    except tio.InputError as e:
        progress.finish("error", message=str(e))
        raise
    seconds = time.perf_counter() - t0
    share = disagreement_share(result)  # one pass over the label volumes, used twice below
    notes = read_notes + result.notes  # cut or missing thighs, muscles to check: the user must know
    verdicts = result.verdicts  # per thigh: the quality verdict and each muscle's flag
    progress.finish("done", message=f"segmented {len(result.frames)} thigh(s) in {seconds:.1f} s on {result.device}"
                    + "".join(f"; note: {n}" for n in notes),
                    outputs=[str(p) for p in written], seconds=round(seconds, 2), device=result.device, notes=notes,
                    sides=[f.side for f in result.frames], disagreement=round(share, 4), quality=verdicts,
                    stages={k: round(v, 3) for k, v in stages.items()})
    if not json_mode:
        print(f"{len(result.frames)} thigh(s) segmented in {seconds:.1f} s on {result.device}; "
              f"the views disagree on {100 * share:.1f} % of muscle voxels.")
        said = [v["verdict"] for v in verdicts.values()]
        for verdict in said:
            print(f"Quality: {verdict}.")
        for n in notes:
            if n not in said:  # a flagged thigh's verdict is a note too: printed once
                print(f"Note: {n}.")
        for p in written:
            print(f"  {p}")
    return 0
