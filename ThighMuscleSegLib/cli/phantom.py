"""``thighseg phantom``: not built yet (the Phantoms issue)."""

from __future__ import annotations

from .common import not_built


def add_arguments(parser) -> None:
    parser.add_argument("OUT_DIR", help="folder to write the cases into")


def run(args) -> int:
    return not_built("phantom", "the Phantoms issue")
