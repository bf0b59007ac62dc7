"""``thighseg evaluate``: not built yet (the Training issue)."""

from __future__ import annotations

from .common import not_built


def add_arguments(parser) -> None:
    parser.add_argument("PRED", help="predicted labels (file or folder)")
    parser.add_argument("GT", help="ground-truth labels (file or folder)")


def run(args) -> int:
    return not_built("evaluate", "the Training issue")
