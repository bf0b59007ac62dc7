"""A picture of the framed thighs: each thigh's grid in three planes, as the model sees it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import classes as C
from . import framing as F
from . import io as tio


def _overlay_colours() -> np.ndarray:
    lut = np.zeros((C.NUM_MODEL_CLASSES, 4))
    for m in C.CLASSES:
        lut[m.model_id] = [*(v / 255 for v in m.color), 0.45]
    return lut


def write_frames_preview(ct, frames, path: str | Path, labels=None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lut = _overlay_colours()
    fig, axes = plt.subplots(len(frames), 3, figsize=(11, 4.2 * len(frames)), squeeze=False)
    for row, frame in zip(axes, frames):
        hu = F.to_grid(ct, frame, "linear")
        ids = C.ct_labels_to_model_ids(F.to_grid(labels, frame, "nearest"), frame.side) if labels is not None else None
        z, y, x = (s // 2 for s in hu.shape)
        planes = (("axial (mid-thigh)", hu[z], None if ids is None else ids[z]),
                  ("coronal", hu[:, y, :][::-1], None if ids is None else ids[:, y, :][::-1]),
                  ("sagittal", hu[:, :, x][::-1], None if ids is None else ids[:, :, x][::-1]))
        for ax, (title, img, lab) in zip(row, planes):
            ax.imshow(img, cmap="gray", vmin=-160, vmax=240, interpolation="nearest")
            if lab is not None:
                ax.imshow(lut[lab], interpolation="nearest")
            ax.set_title(f"{frame.side} thigh{' (mirrored)' if frame.mirror else ''}: {title}", fontsize=9)
            ax.axis("off")
    fig.suptitle("Framed thighs on the model grid (2 mm, 256 × 256 × 360 mm), window −160..240 HU", fontsize=10)
    fig.tight_layout()
    with tio.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)
