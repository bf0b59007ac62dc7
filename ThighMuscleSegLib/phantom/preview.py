"""A preview picture of a case: three axial levels, a coronal and a sagittal slice, labels
overlaid (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..classes import segments
from ..io import atomic_path


def _colours() -> np.ndarray:
    lut = np.zeros((256, 4))
    for s in segments():
        lut[s.label_value] = [*(c / 255 for c in s.color), 0.45]
    return lut


def write_preview(ct: sitk.Image, labels: sitk.Image, dest: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = sitk.GetArrayViewFromImage(ct)
    lab = sitk.GetArrayViewFromImage(labels)
    sx, sy, sz = ct.GetSpacing()
    zs = np.nonzero(((lab >= 1) & (lab <= 20)).any(axis=(1, 2)))[0]
    z_lo, z_hi = (zs.min(), zs.max()) if zs.size else (0, a.shape[0] - 1)
    levels = [int(z_lo + f * (z_hi - z_lo)) for f in (0.8, 0.5, 0.25)]  # proximal, mid, distal
    lut = _colours()
    cols = np.nonzero(lab[levels[1]] > 0)[1]
    x_right = int(np.percentile(cols[lab[levels[1]][lab[levels[1]] > 0] <= 10], 50)) if cols.size and (lab[levels[1]] > 0).any() and (lab[levels[1]][lab[levels[1]] > 0] <= 10).any() else a.shape[2] // 2
    y_mid = int(np.nonzero(lab[levels[1]] > 0)[0].mean()) if (lab[levels[1]] > 0).any() else a.shape[1] // 2
    views = [(f"axial z={ct.GetOrigin()[2] + k * sz:.0f} mm", a[k], lab[k], sy / sx) for k in levels]
    views.append(("coronal", a[::-1, y_mid, :], lab[::-1, y_mid, :], sz / sx))
    views.append(("sagittal (right thigh)", a[::-1, :, x_right], lab[::-1, :, x_right], sz / sy))
    fig, axes = plt.subplots(1, 5, figsize=(25, 6.5))
    for ax, (name, img, lb, aspect) in zip(axes, views):
        ax.imshow(img, cmap="gray", vmin=-200, vmax=300, aspect=aspect, interpolation="nearest")
        ax.imshow(lut[lb], aspect=aspect, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title or "phantom (labels: right 1-10, left 11-20; image left = patient right)")
    fig.tight_layout()
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, dpi=55, format="png")
    plt.close(fig)
    return dest
