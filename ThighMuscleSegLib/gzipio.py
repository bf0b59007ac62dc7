"""Fast .nii.gz writing: SimpleITK writes the NIfTI uncompressed, then blocks of it are
gzip-compressed at level 1 on all cores and written as consecutive gzip members.

The deflate is ISA-L's (the ``isal`` package) where installed, else zlib's: standard gzip either
way. Measured on the bench CT's label map (131 MB, 2026-12-04): zlib level 1 0.16 s (2.5 MB),
ISA-L level 1 0.024 s (2.1 MB); the disagreement map 0.53 s against 0.027 s; a noisy int16 CT
about 5 x faster, ~2 % larger.

Why: SimpleITK's NIfTI writer compresses on one thread at zlib's default level, which ignores
``SetCompressionLevel`` and takes ~4 s of CPU for a noisy 512 x 512 x 320 int16 CT; level 1
on two cores writes nearly the same size in a third of the time. A file of several gzip
members is standard gzip (RFC 1952, section 2.2): ITK, nibabel and ``gzip`` read it whole.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import SimpleITK as sitk

try:
    from isal import igzip as _gzip
    from isal import isal_zlib as _zlib
except ImportError:  # zlib's deflate: the same files, slower
    _gzip, _zlib = gzip, zlib

BLOCK_BYTES = 8 << 20  # large enough that splitting costs < 0.1 % in size
LEVEL = 1  # noisy int16 CT compresses only ~2 % better at zlib's default level 6


def gzip_file(src: str | os.PathLike, dest: str | os.PathLike, level: int = LEVEL,
              threads: int | None = None) -> None:
    """Compress ``src`` into ``dest`` as gzip members of ``BLOCK_BYTES`` each (zlib releases
    the GIL, so threads compress in parallel); at most 2 blocks per thread are in memory."""
    workers = threads or os.cpu_count() or 1
    with open(src, "rb") as fin, open(dest, "wb") as fout, ThreadPoolExecutor(workers) as pool:
        pending = []
        while True:
            block = fin.read(BLOCK_BYTES)
            if block:
                pending.append(pool.submit(_gzip.compress, block, level, mtime=0))
            if pending and (not block or len(pending) >= 2 * workers):
                fout.write(pending.pop(0).result())
            if not block and not pending:
                break


def gzip_stream(level: int = LEVEL):
    """A compressor object writing one gzip member (``compress(data)`` ... ``flush()``)."""
    return _zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: the gzip container


def write_nifti_gz(image: sitk.Image, dest: str | os.PathLike) -> None:
    """``image`` as a gzip-compressed NIfTI at ``dest`` (the caller makes ``dest`` atomic).
    The uncompressed NIfTI goes to a fresh temporary name beside it, never onto a user's file."""
    from .io.integrity import verify_written

    dest = Path(dest)
    fd, raw = tempfile.mkstemp(prefix=".raw-", suffix=".nii", dir=dest.parent)
    os.close(fd)
    try:
        sitk.WriteImage(image, raw, False)
        verify_written(raw)  # ITK only prints a short write (disk full, file size limit)
        gzip_file(raw, dest)
    finally:
        os.unlink(raw)
