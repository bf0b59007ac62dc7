"""Freed memory kept for the next array, not handed back to the system (glibc only).

A CT's job allocates and frees a few arrays of 100-300 MB each (the CT, both thighs' blocks,
the CT-size label and disagreement maps). By default glibc maps each such block afresh and
unmaps it on free, so the next one is faulted in again page by page; ITK's buffers get no huge
pages, so on this project's development machine a new 131 MB image costs about 50 ms that way
against 3 ms from kept pages. Measured on the bench CT (``scripts/ab_segment.py --old`` the
commit before, 4 alternating rounds, twice, 2026-12-04): 0.91 and 0.96 of the end-to-end time.

What it costs: freed memory stays with the process, so ``pipeline.write_outputs`` hands it back
(``release_freed_memory``) before the outputs make theirs; with that, ``thighseg bench`` peaks at
1 644 MB on the 500-slice CT (1 584 MB before) and 2 427 MB on the 1000-slice one (2 642 MB
before). Called by the commands that segment a CT (``segment``, a cohort worker), never on
import: a library user's process stays as they set it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1  # free memory at the heap's top above this is returned to the system
_M_MMAP_THRESHOLD = -3  # blocks from this size up are mapped (and unmapped on free) on their own
_KEEP_UP_TO = 2**31 - 1  # mallopt takes an int: 2 GiB, larger than any single array of a CT's job


def _glibc():
    """The C library where it is glibc on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - musl and others have neither
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Tell glibc to serve large blocks from the heap and keep freed heap memory; True where
    it took (Linux with glibc), False elsewhere (nothing changes there)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO)) and bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_UP_TO))


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system now (glibc's malloc_trim; elsewhere nothing)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
