"""Entry point of ``thighseg``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from .. import __version__
from ..io import InputError
from ..progress import Cancelled

# Subcommand -> (module, one-line help). The order is the order of the help text.
COMMANDS: dict[str, tuple[str, str]] = {
    "phantom": ("phantom", "make anatomical thigh CT phantoms with labels (test bed, demo, training data)"),
    "frame": ("frame", "find, split, align and crop each thigh onto the model grid (and back)"),
    "segment": ("segment", "segment the thigh muscles of a CT (DICOM folder, NIfTI, NRRD, MHA)"),
    "batch": ("batch", "segment a cohort of CTs on Ray (local or a cluster): resumable, one table for all"),
    "change": ("change", "change per muscle against a prior scan, matched along each femur, with each muscle's "
                         "smallest detectable change"),
    "train": ("train", "train or fine-tune a 2D / 2.5D / 3D model on a folder of cases"),
    "evaluate": ("evaluate", "Dice, average surface distance and HD95 of predictions against ground truth"),
    "calibrate-quality": ("calibrate_quality", "fit the per-muscle quality flag (ok / check) on cases with ground "
                                               "truth: ROC, AUROC, threshold"),
    "compare": ("compare", "the paper's 2D vs 2.5D vs 3D comparison on one dataset"),
    "bench": ("bench", "time every stage and measure peak memory on a phantom CT"),
    "demo": ("demo", "run the main job on the bundled default and say what it did"),
    "web": ("web", "a browser UI on this computer: open a CT, segment, review, edit, export (needs the [web] extra)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thighseg",
        description="Thigh muscle segmentation in CT (2.5D U-Net of Haque et al.). "
                    "Phantom results are tests of the software, not clinical accuracy.",
    )
    parser.add_argument("--version", action="version", version=f"thighseg {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _load(module).add_arguments(p)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


DEBUG_HELP = "on an error, print the full traceback too (errors are otherwise one line)"


def _load(module: str):
    return importlib.import_module(f"{__package__}.{module}")


def _printable_anywhere() -> None:
    """Messages carry "×", "³" and "±"; on an ASCII console (LC_ALL=C without UTF-8 mode)
    print them escaped instead of dying with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and "utf" not in (stream.encoding or "").lower():
            stream.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _printable_anywhere()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module = _load(COMMANDS[args.command][0])
    debug = bool(getattr(args, "debug", False))
    try:
        return int(module.run(args) or 0)
    except InputError as e:
        return _say(args.command, f"error: {e}", 2, debug)
    except Cancelled:
        print(f"thighseg {args.command}: cancelled; nothing was written", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"thighseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        return _say(args.command, "error: not enough memory for this CT; close other programs, use a machine with "
                                  "more memory, or crop the CT to the thighs", 2, debug)
    except OSError as e:  # a file the run needed went away or could not be written
        where = f" ({e.filename})" if e.filename else ""
        return _say(args.command, f"error: {e.strerror or e}{where}", 2, debug)
    except Exception as e:  # noqa: BLE001 - a bug: one line for the user, the traceback with --debug
        return _say(args.command, f"internal error: {type(e).__name__}: {e}; run again with --debug for the "
                                  "traceback and please report it", 1, debug)


def _say(command: str, message: str, code: int, debug: bool) -> int:
    """One line on stderr (the traceback before it with --debug); ``code`` is the exit code."""
    if debug:
        traceback.print_exc()
    print(f"thighseg {command}: " + " ".join(message.split()), file=sys.stderr)
    return code


# Commands whose process may end without the interpreter's teardown once they return: their
# files are written, closed and moved into place, their threads joined. Freeing torch, ONNX
# Runtime and ITK at exit took 1.2-1.8 s of a 16 s segment run (0.2 s this way). Not batch:
# Ray shuts its workers down at exit.
FAST_EXIT_COMMANDS = ("segment",)


def entry() -> None:
    """The console script and ``python -m``: ``main``, then the exit (see FAST_EXIT_COMMANDS)."""
    code = main()
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if command in FAST_EXIT_COMMANDS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
