"""``thighseg bench``: not built yet (the Engine issue)."""

from __future__ import annotations

from .common import not_built


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    return not_built("bench", "the Engine issue")
