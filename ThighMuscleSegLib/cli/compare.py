"""``thighseg compare DATA``: the paper's 2D vs 2.5D vs 3D comparison on one dataset.

The three architectures are trained with the same settings on the same training cases and
evaluated (3D Dice and ASD per muscle and side, in the CT) on the same held-out cases; the
figure shows paired box plots per muscle with paired t-tests against 2.5D.
"""

from __future__ import annotations

from pathlib import Path

from .. import io as tio

ARCHES = (("2D", "2d"), ("2.5D", "2.5d"), ("3D", "3d"))


def add_arguments(parser) -> None:
    parser.add_argument("data", metavar="DATA", help="folder of cases (ct.nii.gz + labels.nii.gz)")
    parser.add_argument("--test", metavar="DIR", help="held-out cases (default: a share of DATA)")
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--out", required=True, metavar="DIR", help="models, predictions, compare.png, compare.md")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-view", type=int, help="cap on batches per view and epoch")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from .. import comparison as CMP
    from .. import evaluation as E
    from ..models import load_model
    from ..pipeline import segment_ct
    from ..training.data import find_cases, frame_case, split_cases
    from ..training.loop import TrainConfig, train

    out = Path(args.out)
    cases = find_cases(args.data)
    if args.test:
        train_cases, test_cases = cases, find_cases(args.test)
    else:
        train_cases, test_cases = split_cases(cases, args.test_fraction, args.seed)
    if not test_cases:
        raise tio.InputError("no held-out cases: give --test DIR or more cases")
    print(f"{len(train_cases)} training cases, {len(test_cases)} held-out cases: " + ", ".join(c.name for c in test_cases))
    thighs = [t for c in train_cases for t in frame_case(c)]
    rows_by_method = {}
    for title, arch in ARCHES:
        model_path = out / f"model_{arch}.tmsmodel"
        if not model_path.exists():
            cfg = TrainConfig(architecture=arch, epochs=args.epochs, seed=args.seed, lr=args.lr,
                              steps_per_view=args.steps_per_view)
            train(thighs, [], cfg, model_path, log=lambda m, t=title: print(f"[{t}] {m}"))
        model = load_model(model_path)
        pred_dir = out / f"pred_{arch}"
        for case in test_cases:
            target = pred_dir / case.name / "labels.nii.gz"
            if not target.exists():
                ct = tio.read_ct(case / "ct.nii.gz")
                tio.write_image(segment_ct(ct, model, device="auto").labels, target)
        rows_by_method[title] = _evaluate_cases(pred_dir, test_cases)
        E.write_csv(rows_by_method[title], out / f"scores_{arch}.csv")
    tests = CMP.paired_tests(rows_by_method, reference="2.5D")
    CMP.plot(rows_by_method, tests, out / "compare.png",
             title=f"2D vs 2.5D vs 3D U-Net on {len(test_cases)} held-out phantom cases (paired t-tests vs 2.5D)")
    table = CMP.markdown_table(rows_by_method, tests)
    with tio.atomic_path(out / "compare.md") as tmp:
        tmp.write_text(table, encoding="utf-8")
    print(table, end="")
    for title, rows in rows_by_method.items():
        o = E.overall(E.per_label_summary(rows))
        print(f"{title}: mean Dice {o['dice']:.3f}, mean ASD {o['asd_mm']:.2f} mm")
    print(f"wrote {out / 'compare.png'} and {out / 'compare.md'}")
    return 0


def _evaluate_cases(pred_dir: Path, cases: list[Path]) -> list[dict]:
    from dataclasses import asdict

    from ..evaluation import score_case

    rows = []
    for case in cases:
        rows += [{"case": case.name, **asdict(s)} for s in score_case(pred_dir / case.name / "labels.nii.gz",
                                                                         case / "labels.nii.gz")]
    return rows

