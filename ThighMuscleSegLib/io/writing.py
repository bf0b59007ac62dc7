"""Writing images without ever damaging the user's files, and saying plainly why a write failed.

Writers go through a temporary name in the destination folder and an atomic rename, so a
crash, a full disk or a cancel never leaves a half-written file behind and never overwrites an
existing file with a broken one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

import SimpleITK as sitk

from .errors import OutputError

# errno -> what the user is told (after "cannot write ... :") and what to do.
_WRITE_PROBLEMS = {
    errno.ENOSPC: ("the disk is full", "free some space or choose another --out folder"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or choose another --out folder"),
    errno.EFBIG: ("a file grew past the size this system allows (file size limit)",
                  "raise the limit (ulimit -f) or choose another --out folder"),
    errno.EACCES: ("permission was denied", "make the folder writable or choose another --out folder"),
    errno.EPERM: ("the operation is not permitted", "make the folder writable or choose another --out folder"),
    errno.EROFS: ("the file system is read-only", "choose another --out folder"),
    errno.ENOENT: ("the output folder disappeared while writing (deleted, or its disk unmounted)",
                   "check the folder and run again"),
    errno.ESTALE: ("the network folder went away while writing", "check the share and run again"),
    errno.EIO: ("the disk reported an input/output error", "check the disk and run again"),
    errno.ENOTDIR: ("a part of the output path is a file, not a folder", "choose another --out folder"),
}


def describe_write_error(e: OSError, where: str | os.PathLike) -> str:
    """One line: what went wrong writing into ``where`` and what to do."""
    what, todo = _WRITE_PROBLEMS.get(e.errno, (e.strerror or type(e).__name__, "check the output folder"))
    return f"cannot write the results to {where}: {what}; {todo}"


def output_error(e: OSError, where: str | os.PathLike) -> OutputError:
    return OutputError(describe_write_error(e, where))


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temporary path beside ``dest``; on success it replaces ``dest`` atomically.

    On any error (disk full, cancel) the temporary file is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(dest.suffixes)  # keep .nii.gz so writers pick the right format
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name.split('.')[0]}-", suffix=suffix, dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomically(data: bytes, dest: str | os.PathLike) -> Path:
    """``data`` as the file ``dest``, through ``atomic_path`` (whole or not at all)."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(image: sitk.Image, dest: str | os.PathLike, compress: bool = True) -> Path:
    """Write an image atomically (format from the suffix; .nii.gz on all cores, see gzipio).

    A full disk or a lost permission is an ``OSError`` with its errno (ITK's own writer only
    says "could not write", so its failure is turned into the errno that the folder shows)."""
    from ..gzipio import write_nifti_gz
    from .integrity import verify_written

    with atomic_path(dest) as tmp:
        try:
            if compress and str(dest).endswith(".nii.gz"):
                write_nifti_gz(image, tmp)
            else:
                sitk.WriteImage(image, str(tmp), compress)
                verify_written(tmp)  # ITK only prints a short write
        except RuntimeError as e:
            need = image.GetNumberOfPixels() * image.GetNumberOfComponentsPerPixel() * image.GetSizeOfPixelComponent()
            raise _os_error_of_failed_write(Path(tmp), e, need) from None
    return Path(dest)


def _os_error_of_failed_write(path: Path, e: RuntimeError, need: int = 0) -> OSError:
    """ITK reports a failed write as a RuntimeError without the reason: find it from the free
    space, the file size limit, or a small write."""
    with contextlib.suppress(OSError):
        if shutil.disk_usage(path.parent).free < need:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource  # not on Windows

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and soft < need:
            return OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(path))
    found = probe_write(path.parent)
    if found is not None:
        return found
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return OSError(errno.EIO, lines[-1] if lines else "ITK could not write the file", str(path))


def probe_write(folder: str | os.PathLike) -> OSError | None:
    """The error a small write into ``folder`` meets now (disk full, no permission, gone), if any."""
    probe = Path(folder) / f".thighseg-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    except OSError as found:
        return found
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return None
