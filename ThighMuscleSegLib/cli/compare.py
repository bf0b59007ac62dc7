"""``thighseg compare``: not built yet (the Training issue)."""

from __future__ import annotations

from .common import not_built


def add_arguments(parser) -> None:
    parser.add_argument("DATA", help="folder of cases")


def run(args) -> int:
    return not_built("compare", "the Training issue")
