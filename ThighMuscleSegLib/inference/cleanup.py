"""Clean-up: keep the largest 3D connected component of each class.

Components are 26-connected (faces, edges and corners): thin muscles such as the
sartorius and gracilis run obliquely, and their voxels on consecutive slices may touch
only at an edge. Voxels of smaller components become background (0); they are not
reassigned to another class, so the clean-up never invents a label.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FULL_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)


def keep_largest_components(labels: np.ndarray) -> np.ndarray:
    """A copy of ``labels`` with only the largest connected component of each non-zero class."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3-D volume, not {labels.ndim}-D")
    out = labels.copy()
    # Each class is labelled inside its own bounding box: far cheaper than the whole grid.
    for class_id, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == class_id
        components, count = ndimage.label(mask, structure=FULL_CONNECTIVITY)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        drop = mask & (components != sizes.argmax())
        out[box][drop] = 0
    return out
