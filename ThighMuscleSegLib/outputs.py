"""The output folder of ``thighseg segment``: everything appears at once, or nothing.

Files are written into a hidden staging folder inside the output folder and moved into place
only when all of them are complete, so a failure, a full disk or a cancel leaves no partial
outputs; existing results are never overwritten unless the caller asks for it. A write that
fails (disk full, permission lost, the folder deleted mid-run) is an ``OutputError`` that says
so in one line; the staging folder, and an output folder made for this run, are removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from .io import InputError, OutputError, describe_write_error
from .io.writing import probe_write

MARKER = ".thighseg-run"  # in the staging folder from its start: a folder made again by a writer lacks it
SEGMENT_OUTPUTS = ("segmentation.seg.nrrd", "labels.nii.gz", "disagreement.nii.gz", "volumes.csv",
                   "measurements.csv", "report.png", "frames.json", "slabs.csv", "profiles.csv",
                   "profiles.png", "segmentation.dcm")


def check_output_folder(folder: str | os.PathLike, names=SEGMENT_OUTPUTS, overwrite: bool = False) -> None:
    """Refuse at once (before a long run) an output folder that cannot take the results."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder} is a file, not a folder: choose a folder for the results")
    existing = [n for n in names if (folder / n).exists()]
    if existing and not overwrite:
        raise InputError(f"{folder} already holds results ({', '.join(existing)}); "
                         "choose another --out folder or pass --overwrite")
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"--out {folder}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        found = probe_write(parent) or PermissionError(errno.EACCES, "Permission denied")
        raise OutputError(describe_write_error(found, parent))


class StagedOutputs:
    """``with StagedOutputs(folder) as stage: write stage.path('labels.nii.gz') ...``"""

    def __init__(self, folder: str | os.PathLike, names=SEGMENT_OUTPUTS, overwrite: bool = False):
        self.folder = Path(folder)
        self.names = tuple(names)
        self.overwrite = overwrite
        self.staging: Path | None = None
        self.written: list[Path] = []
        self._created: list[Path] = []  # folders made for this run, removed again when it fails

    def __enter__(self) -> "StagedOutputs":
        existing = [n for n in self.names if (self.folder / n).exists()]
        if existing and not self.overwrite:
            raise InputError(f"{self.folder} already holds results ({', '.join(existing)}); "
                             "choose another --out folder or pass --overwrite")
        try:
            missing = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
            self.folder.mkdir(parents=True, exist_ok=True)
            self._created = missing  # innermost first
            self.staging = Path(tempfile.mkdtemp(prefix=".thighseg-staging-", dir=self.folder))
            (self.staging / MARKER).write_bytes(b"")
            self._identity = _identity(self.folder, self.staging)
        except OSError as e:
            self._remove_created()
            raise OutputError(describe_write_error(e, self.folder)) from None
        return self

    def path(self, name: str) -> Path:
        assert self.staging is not None, "use StagedOutputs as a context manager"
        self._still_there()
        return self.staging / name

    def _still_there(self) -> None:
        """The output folder deleted mid-run must not be made again by a writer (atomic_path
        makes missing parents): the folders must be the very ones made at the start."""
        # inode numbers may be reused at once by a folder made again: the marker file tells
        if not (self.staging / MARKER).is_file() or _identity(self.folder, self.staging) != self._identity:
            raise FileNotFoundError(errno.ENOENT, "the output folder disappeared while writing", str(self.folder))

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.staging is not None
        failure = exc if isinstance(exc, OSError) else None
        if exc_type is None:
            try:
                self._still_there()
                for staged in sorted(p for p in self.staging.iterdir() if p.name != MARKER):
                    target = self.folder / staged.name
                    os.replace(staged, target)
                    self.written.append(target)
            except OSError as e:  # all or nothing: take back what was already moved
                failure = e
                for target in self.written:
                    with contextlib.suppress(OSError):
                        target.unlink()
                self.written = []
        elif failure is None and isinstance(exc, Exception) and not isinstance(exc, InputError):
            failure = probe_write(self.staging)  # a writer that hides its errno (ITK, VTK): was it the disk?
        left = self._remove_staging()
        if failure is None and exc_type is None:
            return None
        self._remove_created()
        if _identity(self.folder)[0] not in (None, self._identity[0]):  # made again by a writer: ours, empty
            with contextlib.suppress(OSError):
                self.folder.rmdir()
        if failure is None:
            return None  # not a write problem: the caller's exception goes on
        message = describe_write_error(failure, self.folder) + "; nothing was written and the input was not touched"
        if left:
            message += f" (the staging folder {left} could not be removed: delete it by hand)"
        raise OutputError(message) from (exc or failure)

    def _remove_staging(self) -> Path | None:
        """Remove the staging folder; the path when it could not be (no permission left)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        return self.staging if self.staging.exists() else None

    def _remove_created(self) -> None:
        for folder in self._created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: never anything that holds files


def _identity(*folders: Path) -> tuple:
    """(device, inode) of each folder, None for one that is gone."""
    out = []
    for f in folders:
        try:
            st = os.stat(f)
            out.append((st.st_dev, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)
