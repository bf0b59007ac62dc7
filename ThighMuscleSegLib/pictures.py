"""report.png and profiles.png of a segmentation, drawn in a forked child where the process
allows it (``forked``), else here.

In a child, report.png is begun as soon as the labels exist (its slices, the disagreement
panel and the 3D surfaces need nothing else) while this process measures; ``finish`` sends it
the volumes and the notes, and forks a second child for profiles.png; both send their bytes
back. Drawing holds Python's lock for most of its time, so in this process it would stall the
measuring and writing; in a child it runs on another core. The drawing modules (matplotlib,
vtk: 0.3-0.5 s to import) are imported here beforehand, on a thread while the model and the CT
are read (``preload``, from ``thighseg segment``), so that no child imports them again; a child
forks only once that thread has ended.
"""

from __future__ import annotations

import threading
from typing import Callable

import SimpleITK as sitk

REPORT, PROFILES = "report.png", "profiles.png"
_preloading: threading.Thread | None = None


def preload() -> None:
    """Import the drawing modules on a thread now (once per process); a child forks only after it ended."""
    global _preloading
    if _preloading is None:
        _preloading = threading.Thread(target=_import_drawing, name="thighseg-preload", daemon=True)
        _preloading.start()


def _import_drawing() -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401

    try:
        import vtkmodules.vtkFiltersCore  # noqa: F401
        import vtkmodules.vtkRenderingCore  # noqa: F401
        import vtkmodules.vtkRenderingOpenGL2  # noqa: F401
    except ImportError:  # the report's 3D panel says so itself
        pass


class Pictures:
    """Both pictures of one segmentation: ``Pictures(...)``, later ``finish(...)``, then
    ``write(path_of)`` (or ``cancel()``)."""

    def __init__(self, ct: sitk.Image, labels: sitk.Image, disagreement: sitk.Image | None, title: str):
        from .forked import ForkedCall, forking_allowed

        self._images, self._title = (ct, labels, disagreement), title
        self._rest: tuple | None = None
        self._child = self._profiles_child = None
        if forking_allowed():
            from .heap import release_freed_memory

            _wait_for_preload()
            # Freed pages kept by this process would be the child's too, and each one reused here
            # afterwards would be copied for it: hand them back first (``heap``).
            release_freed_memory()
            self._child = ForkedCall(_draw_report, ct, labels, disagreement, title, later=True)

    def finish(self, volumes: list, notes: list[str], profile_rows: list) -> None:
        """What the pictures still need: volumes.csv's rows, the notes, profiles.csv's rows."""
        self._rest = (volumes, list(notes), profile_rows)
        if self._child is not None:
            from .forked import ForkedCall
            from .render_profiles import profiles_png

            self._child.send((volumes, list(notes)))
            self._profiles_child = ForkedCall(profiles_png, profile_rows, title=self._title)

    def write(self, path_of: Callable[[str], object]) -> None:
        """Both files (atomically), from the child's bytes or drawn here."""
        from .io import write_bytes_atomically

        if self._rest is None:
            raise RuntimeError("Pictures.write before finish")
        if self._child is not None:
            pngs = {REPORT: self._child.result(), PROFILES: self._profiles_child.result()}
        else:
            pngs = _draw_both(*self._images, self._title, later=lambda: self._rest)
        for name, png in pngs.items():
            write_bytes_atomically(png, path_of(name))

    def cancel(self) -> None:
        for child in (self._child, self._profiles_child):
            if child is not None:
                child.cancel()


def _wait_for_preload() -> None:
    if _preloading is not None:
        _preloading.join()


def _draw_report(ct: sitk.Image, labels: sitk.Image, disagreement: sitk.Image | None, title: str,
                 later: Callable[[], tuple]) -> bytes:
    """report.png's bytes; ``later()`` gives (volumes, notes) when they are needed."""
    from .render import report_png

    return report_png(ct, labels, disagreement=disagreement, title=title, later=later)


def _draw_both(ct: sitk.Image, labels: sitk.Image, disagreement: sitk.Image | None, title: str,
               later: Callable[[], tuple]) -> dict[str, bytes]:
    """{file name: PNG bytes}, both drawn here; ``later()`` gives (volumes, notes, profile rows)."""
    from .render import report_png
    from .render_profiles import profiles_png

    rest: dict = {}

    def volumes_and_notes() -> tuple:
        rest["volumes"], rest["notes"], rest["rows"] = later()
        return rest["volumes"], rest["notes"]

    report = report_png(ct, labels, disagreement=disagreement, title=title, later=volumes_and_notes)
    return {REPORT: report, PROFILES: profiles_png(rest["rows"], title=title)}
