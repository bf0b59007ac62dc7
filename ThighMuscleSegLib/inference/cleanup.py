"""Clean-up: keep the largest 3D connected component of each class.

Components are 26-connected (faces, edges and corners): thin muscles such as the
sartorius and gracilis run obliquely, and their voxels on consecutive slices may touch
only at an edge. Voxels of smaller components become background (0); they are not
reassigned to another class, so the clean-up never invents a label.

Where the views read beyond the analysed field (``framing.ThighFrame.reach_mm``), only a
component that reaches into the field's slices can be kept: the reach is there to complete
the ends of muscles the field holds, and a thigh muscle lying wholly beyond a 360 mm field
about the femur's middle is a false one (seen on a 262 mm scan ending at the hips, where a
vastus medialis sliver lost to a larger false blob 140 mm away in the reach).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FULL_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)


def keep_largest_components(labels: np.ndarray, within: slice = slice(None)) -> np.ndarray:
    """A copy of ``labels`` with only the largest connected component of each non-zero class
    among those with voxels in the z slices ``within`` (the analysed field; default all)."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3-D volume, not {labels.ndim}-D")
    out = labels.copy()
    z_lo, z_hi, _ = within.indices(labels.shape[0])
    everywhere = (z_lo, z_hi) == (0, labels.shape[0])
    # Each class is labelled inside its own bounding box: far cheaper than the whole grid.
    for class_id, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == class_id
        components, count = ndimage.label(mask, structure=FULL_CONNECTIVITY)
        if count <= 1 and everywhere:
            continue
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        sizes[0] = 0
        if not everywhere:  # only components reaching into the field's slices
            inside = np.zeros(count + 1, bool)
            lo, hi = max(z_lo - box[0].start, 0), max(z_hi - box[0].start, 0)
            inside[np.unique(components[lo:hi])] = True
            sizes[~inside] = 0
        drop = mask & (components != sizes.argmax()) if sizes.any() else mask
        out[box][drop] = 0
    return out
