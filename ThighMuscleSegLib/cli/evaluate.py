"""``thighseg evaluate PRED GT``: Dice, ASD and HD95 per class and side, mean ± SD."""

from __future__ import annotations

from pathlib import Path

from .. import evaluation as E
from .. import io as tio


def add_arguments(parser) -> None:
    parser.add_argument("pred", metavar="PRED", help="predicted labels: a label file, or a folder of cases / label files")
    parser.add_argument("gt", metavar="GT", help="ground truth: the same layout as PRED")
    parser.add_argument("--out", metavar="DIR", help="write scores.csv (per case and label) and summary.md here")
    parser.add_argument("--scope", choices=E.SCOPES, default="ct",
                        help="ct: score the whole CT (default); field: only the 360 mm fields the model analysed, "
                             "as the paper scores its crops (needs the frames.json that thighseg segment writes)")


def run(args) -> int:
    rows = E.evaluate(args.pred, args.gt, scope=args.scope)
    summary = E.per_label_summary(rows)
    table = E.markdown_table(summary)
    print(("Scored inside the analysed fields only.\n" if args.scope == "field" else "") + table, end="")
    if args.out:
        out = Path(args.out)
        E.write_csv(rows, out / "scores.csv")
        with tio.atomic_path(out / "summary.md") as tmp:
            tmp.write_text(table, encoding="utf-8")
        print(f"wrote {out / 'scores.csv'} and {out / 'summary.md'}")
    return 0
