"""The heap kept for reuse (``ThighMuscleSegLib/heap.py``): a freed 256 MB block stays resident
and the next one reuses it; the trim before writing hands it back. In a child process, so
this test session's own allocator keeps glibc's defaults."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = r"""
import json, sys
import numpy as np
from ThighMuscleSegLib.heap import keep_freed_memory, release_freed_memory

def rss_mb():
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

kept = keep_freed_memory() if sys.argv[1] == "keep" else False
start = rss_mb()
block = np.ones(256 * 2**20, np.uint8)  # touched: resident
del block
after_free = rss_mb()
release_freed_memory()
print(json.dumps({"kept": kept, "start": start, "after_free": after_free, "after_trim": rss_mb()}))
"""


def _child(mode: str) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, encoding="utf-8",
                       check=True)
    return json.loads(r.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_freed_block_stays_for_reuse_until_the_trim_before_writing():
    kept, default = _child("keep"), _child("default")
    assert kept["kept"] and not default["kept"]
    assert kept["after_free"] - kept["start"] > 200  # the 256 MB stayed resident
    assert kept["after_trim"] - kept["start"] < 50  # and went back with the trim
    assert default["after_free"] - default["start"] < 50  # glibc's default: unmapped on free
