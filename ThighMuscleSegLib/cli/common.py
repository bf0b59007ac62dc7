"""Small pieces shared by the subcommands."""

from __future__ import annotations

import sys

EXIT_NOT_BUILT = 3


def not_built(command: str, issue: str) -> int:
    """What a subcommand that does not exist yet says: plainly, with a non-zero exit."""
    print(f"thighseg {command}: not built yet ({issue}); nothing was done.", file=sys.stderr)
    return EXIT_NOT_BUILT
