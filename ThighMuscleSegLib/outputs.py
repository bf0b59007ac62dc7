"""The output folder of ``thighseg segment``: everything appears at once, or nothing.

Files are written into a hidden staging folder inside the output folder and moved into place
only when all of them are complete, so a failure, a full disk or a cancel leaves no partial
outputs; existing results are never overwritten unless the caller asks for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .io import InputError

SEGMENT_OUTPUTS = ("segmentation.seg.nrrd", "labels.nii.gz", "disagreement.nii.gz", "volumes.csv",
                   "report.png", "frames.json", "segmentation.dcm")


class StagedOutputs:
    """``with StagedOutputs(folder) as stage: write stage.path('labels.nii.gz') ...``"""

    def __init__(self, folder: str | os.PathLike, names=SEGMENT_OUTPUTS, overwrite: bool = False):
        self.folder = Path(folder)
        self.names = tuple(names)
        self.overwrite = overwrite
        self.staging: Path | None = None
        self.written: list[Path] = []

    def __enter__(self) -> "StagedOutputs":
        existing = [n for n in self.names if (self.folder / n).exists()]
        if existing and not self.overwrite:
            raise InputError(f"{self.folder} already holds results ({', '.join(existing)}); "
                             "choose another --out folder or pass --overwrite")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=".thighseg-staging-", dir=self.folder))
        return self

    def path(self, name: str) -> Path:
        assert self.staging is not None, "use StagedOutputs as a context manager"
        return self.staging / name

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.staging is not None
        try:
            if exc_type is None:
                for staged in sorted(self.staging.iterdir()):
                    target = self.folder / staged.name
                    os.replace(staged, target)
                    self.written.append(target)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
