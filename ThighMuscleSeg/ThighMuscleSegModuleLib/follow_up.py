"""*Compare with prior*: two segmentations matched along each femur by the library's change
function (``measure.change.compare_images``), so a shorter prior scan is never read as atrophy.

No Qt and no MRML here: the logic takes a ``Snapshot`` of each (CT, labels) on the GUI thread
and hands them to ``compare`` on a worker thread. Each segmentation's thigh frames come from
the run that made it (kept on the segmentation node, ``FRAMES_ATTRIBUTE``, so they are saved
with the scene); a segmentation without them is framed again from its CT through the library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ThighMuscleSegLib import classes as C

from . import scene as S
from .tables import CHANGE_COLUMNS

FRAMES_ATTRIBUTE = "ThighMuscleSeg.frames"  # segmentation node attribute: the run's frames.json
FRAMES_CT_ATTRIBUTE = "ThighMuscleSeg.framesCT"  # ... and the ID of the CT node they belong to

@dataclass
class Snapshot:
    """One segmentation as the worker needs it: CT voxels, merged labels, geometry, frames."""

    ct_voxels: np.ndarray
    labels: np.ndarray
    geometry: object
    frames: list | None  # ThighFrames, or None: framed again from the CT
    lines: dict | None = None  # side -> FemurLine kept with the frames (measuring CSA needs them)

    def images(self):
        return S.image_from_array(self.ct_voxels, self.geometry), S.image_from_array(self.labels, self.geometry)


def _frames_json(segmentation_node, ct_node) -> str | None:
    """The kept frames.json text, when it belongs to ``ct_node`` (frames are positions in the
    CT they were found in: on another scan they would be wrong, so that one is framed anew)."""
    text = segmentation_node.GetAttribute(FRAMES_ATTRIBUTE)
    if not text or segmentation_node.GetAttribute(FRAMES_CT_ATTRIBUTE) != ct_node.GetID():
        return None
    return text


def frames_of(segmentation_node, ct_node) -> list | None:
    """The thigh frames kept on a segmentation node by the run that made it from ``ct_node``."""
    from ThighMuscleSegLib.framing import frames_from_json

    text = _frames_json(segmentation_node, ct_node)
    return frames_from_json(text) if text else None


def femur_lines_of(segmentation_node, ct_node) -> dict:
    """side -> FemurLine kept with those frames (empty if none, or an older thighseg's)."""
    import json

    from ThighMuscleSegLib.measure.femur import femur_lines_from_frames_json

    text = _frames_json(segmentation_node, ct_node)
    return femur_lines_from_frames_json(json.loads(text)) if text else {}


def keep_frames(segmentation_node, ct_node, frames_json: str | None) -> None:
    """Keep a run's frames.json text (frames and femur lines) on its segmentation node."""
    if frames_json:
        segmentation_node.SetAttribute(FRAMES_ATTRIBUTE, frames_json)
        segmentation_node.SetAttribute(FRAMES_CT_ATTRIBUTE, ct_node.GetID())


def compare(prior: Snapshot, current: Snapshot, picture: str | Path | None = None):
    """The ``ChangeReport`` of the current segmentation against the prior (and, with ``picture``,
    its change.png there). Frames missing on either side are found in its CT."""
    from ThighMuscleSegLib.framing import frame_thighs
    from ThighMuscleSegLib.measure.change import compare_images

    images = []
    for snap in (prior, current):
        ct, labels = snap.images()
        images += [ct, labels, snap.frames if snap.frames else frame_thighs(ct)]
    report = compare_images(*images)
    if picture is not None:
        from ThighMuscleSegLib.render_change import write_change_png

        write_change_png(report, picture)
    return report


def change_rows(report) -> list[dict]:
    """The change table's rows (one per muscle and side, right first): values by the change.csv
    column names of ``CHANGE_COLUMNS``, numbers as floats (nan where undefined)."""
    from ThighMuscleSegLib.measure.change_table import row

    kinds = {key: kind for _, key, kind in CHANGE_COLUMNS}
    out = []
    for m in report.muscles:
        cells = row(report, m)
        values = {k: (float(cells[k]) if cells[k] else math.nan) if kind == "double" else cells.get(k, "")
                  for k, kind in kinds.items() if k != "name"}
        muscle, side = C.split_label_value(m.label_value)
        out.append({**values, "name": muscle.side_name(side)})
    return out


def summary(report) -> str:
    """What the panel says under the table: the ranges compared, the verdicts and the notes."""
    lines = [report.summary()] + [f"Note: {n}." for n in report.notes]
    if report.sdc_source:
        lines.append(f"Smallest detectable changes: {report.sdc_source}.")
    return "\n".join(lines)
