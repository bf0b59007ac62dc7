"""``thighseg segment``: not built yet (the Engine issue)."""

from __future__ import annotations

from .common import not_built


def add_arguments(parser) -> None:
    parser.add_argument("INPUT", help="CT file or DICOM folder")


def run(args) -> int:
    return not_built("segment", "the Engine issue")
