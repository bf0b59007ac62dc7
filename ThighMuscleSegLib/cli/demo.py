"""``thighseg demo``: the main job on the bundled default, saying plainly what it did."""

from __future__ import annotations

from pathlib import Path

from .. import classes as C


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="demo-output", help="folder for the demo's outputs (default: demo-output)")


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "classes.csv"
    lines = ["label_value,name,snomed_or_private_code,code_meaning,code_source"]
    for s in C.segments():
        code = s.muscle.code
        lines.append(f'{s.label_value},{s.name},{code.scheme}:{code.value},{code.meaning},"{s.muscle.code_source}"')
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"Wrote the class table ({len(C.segments())} labels) to {table}.")
    print("Segmentation is not built yet: this demo will run phantom -> segment -> report once it lands.")
    return 0
