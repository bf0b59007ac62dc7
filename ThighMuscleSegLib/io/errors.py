"""The two kinds of error a user can act on; each message says what is wrong and what to do."""

from __future__ import annotations


class InputError(Exception):
    """The input cannot be used; the message says what is wrong and what to do."""


class OutputError(InputError):
    """The results cannot be written (disk full, no permission, the folder vanished); nothing
    was left behind and the input was not touched. An ``InputError`` so that every caller that
    reports input problems (exit code 2) reports this one the same way."""
