"""``thighseg train DATA --out MODEL``: train or fine-tune a 2D / 2.5D / 3D model."""

from __future__ import annotations

import sys
from pathlib import Path

from ..defaults import DEFAULT_EDGE_CUT, DEVICE_CHOICES
from ..progress import Progress, human_sink, json_lines_sink


def add_arguments(parser) -> None:
    parser.add_argument("data", metavar="DATA", nargs="+",
                        help="folder(s) of cases (sub-folders with ct.nii.gz and labels.nii.gz)")
    parser.add_argument("--out", required=True, metavar="MODEL", help="model file to write (.tmsmodel)")
    parser.add_argument("--arch", choices=("2.5d", "2d", "3d"), default="2.5d", help="default: 2.5d (the paper's)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--init", metavar="MODEL", help="fine-tune this model (the edit-and-retrain loop)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (paper: 1e-4)")
    parser.add_argument("--lr-final", type=float, metavar="LR",
                        help="decay the learning rate to this over the epochs (cosine); default: constant")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--width", type=int, help="first-level channels (default per architecture)")
    parser.add_argument("--steps-per-view", type=int, help="cap on batches per view and epoch")
    parser.add_argument("--edge-cut", type=float, default=DEFAULT_EDGE_CUT, metavar="SHARE",
                        help=f"share of slices cut by a simulated scan edge (augmentation; default {DEFAULT_EDGE_CUT}, "
                             "0 turns it off)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of cases held out for validation")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument("--resume", action="store_true", help="continue from MODEL.ckpt when it exists")
    parser.add_argument("--progress", choices=("human", "json"), default="human")


def run(args) -> int:
    from ..io import InputError
    from ..training.augment import AugmentSettings
    from ..training.data import find_cases, frame_case, split_cases
    from ..training.loop import TrainConfig, train

    out = Path(args.out)
    if not 0 <= args.edge_cut <= 1:
        raise InputError(f"--edge-cut is a share of slices, 0 to 1, not {args.edge_cut}")
    if out.exists() and not args.resume and not (args.init and Path(args.init).resolve() == out.resolve()):
        raise InputError(f"{out} exists: choose another --out (models are never overwritten silently)")
    cases = [c for folder in args.data for c in find_cases(folder)]
    train_cases, val_cases = split_cases(cases, args.val_fraction, args.seed)
    sink = json_lines_sink(sys.stdout) if args.progress == "json" else human_sink(sys.stderr)
    progress = Progress({"frame": 1, "train": 9}, sink=sink)
    thighs = {"train": [], "val": []}
    finished = _finished_epochs(out) if args.resume else 0
    for n, case in enumerate([] if finished >= args.epochs else train_cases + val_cases):
        progress.update("frame", n / len(cases), f"framing {case.name}")
        thighs["train" if case in train_cases else "val"] += frame_case(case)
    log = print if args.progress == "human" else (lambda m: sink({"stage": "log", "message": m}))
    if finished >= args.epochs:
        log(f"{out}.ckpt holds {finished} epochs (>= --epochs {args.epochs}): writing its best epoch")
    else:
        log(f"{len(train_cases)} training cases ({len(thighs['train'])} thighs), "
            f"{len(val_cases)} validation cases ({len(thighs['val'])} thighs)")
    cfg = TrainConfig(architecture=args.arch, epochs=args.epochs, seed=args.seed, lr=args.lr, lr_final=args.lr_final,
                      batch_size=args.batch_size, width=args.width, steps_per_view=args.steps_per_view,
                      device=args.device,
                      augment=AugmentSettings(edge_cut=args.edge_cut))
    data_summary = {"train_cases": [c.name for c in train_cases], "val_cases": [c.name for c in val_cases],
                    "folders": [str(Path(d)) for d in args.data]}
    path = train(thighs["train"], thighs["val"], cfg, out, init=args.init, resume=args.resume,
                 progress=progress, log=log, data_summary=data_summary)
    progress.finish("done", outputs=[str(path)])
    return 0


def _finished_epochs(out: Path) -> int:
    """Epochs already in ``out``'s checkpoint (0 without one)."""
    from ..training.loop import checkpoint_path

    ckpt = checkpoint_path(out)
    if not ckpt.is_file():
        return 0
    import torch

    return int(torch.load(ckpt, weights_only=False, map_location="cpu")["epoch"])
