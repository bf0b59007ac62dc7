"""``thighseg frame``: not built yet (the Framing issue)."""

from __future__ import annotations

from .common import not_built


def add_arguments(parser) -> None:
    parser.add_argument("CT", help="CT file or DICOM folder")


def run(args) -> int:
    return not_built("frame", "the Framing issue")
