"""Deliberately damaged predictions: extra failures for calibrating the quality flag.

A good model seldom produces a muscle below Dice 0.80, so the calibration adds failures made
on purpose. They are made where the failure would arise: in what the views said (their
labels and summed probabilities, before fusion), so that the fusion, the disagreement, the
clean-up, the volumes and every quality feature are computed by the same code as for a real
result. Each damage hits one muscle (two for a swap), in 2 or all 3 views, over its whole
length or a contiguous half of it:

- ``swap``: the muscle and its most-touching neighbour exchange labels (a confusion);
- ``erode``: an in-plane rim of 1-3 voxels (2-6 mm) becomes background (under-segmentation);
- ``shift``: the muscle is moved by 2-6 voxels (4-12 mm) in-plane (a misplaced boundary);
- ``drop``: the muscle becomes background (a missed muscle).

With 2 of 3 views damaged the vote still follows them, but the third view disagrees; with all
3 the views agree on the wrong answer and only the volume and asymmetry can tell. The views'
summed probabilities are changed in proportion: a share ``len(views) / n_views`` of the
affected class's probability moves to the new class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from . import classes as C

KINDS = ("swap", "erode", "shift", "drop")
KIND_WEIGHTS = (0.35, 0.3, 0.25, 0.1)
IN_PLANE = np.zeros((3, 3, 3), bool)
IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class Damage:
    kind: str
    muscle: int  # model id (1..10)
    other: int  # the swap partner, else 0
    views: tuple[str, ...]
    z_range: tuple[int, int]  # grid slices affected, [start, stop)
    size: int = 0  # erosion radius or shift length, voxels
    axis: int = 2  # shift axis (1: y, 2: x) and sign in ``size``

    def describe(self) -> str:
        what = {"swap": f"swapped with {C.by_model_id(self.other).name.lower()}" if self.other else "swapped",
                "erode": f"eroded by {self.size} voxels", "drop": "dropped",
                "shift": f"shifted {self.size:+d} voxels along {'yx'[self.axis - 1]}"}[self.kind]
        return (f"{C.by_model_id(self.muscle).name.lower()} {what} in {len(self.views)} views, "
                f"slices {self.z_range[0]}-{self.z_range[1]}")

    def to_dict(self) -> dict:
        return asdict(self)


def neighbour(labels: np.ndarray, model_id: int) -> int:
    """The muscle that touches ``model_id`` most (0 when none does)."""
    mask = labels == model_id
    rim = ndimage.binary_dilation(mask, IN_PLANE, iterations=2) & ~mask
    counts = np.bincount(labels[rim], minlength=C.NUM_MODEL_CLASSES)[:C.NUM_MODEL_CLASSES]
    counts[0] = counts[model_id] = 0
    return int(counts.argmax()) if counts.max() > 0 else 0


def draw_damages(rng: np.random.Generator, labels: np.ndarray, views: tuple[str, ...], count: int) -> list[Damage]:
    """``count`` damages of distinct muscles present in the clean result ``labels`` (model ids)."""
    present = [k for k in range(1, C.NUM_MODEL_CLASSES) if (labels == k).any()]
    out = []
    for muscle in rng.permutation(present)[:count]:
        muscle = int(muscle)
        kind = str(rng.choice(KINDS, p=KIND_WEIGHTS))
        other = neighbour(labels, muscle) if kind == "swap" else 0
        if kind == "swap" and not other:
            kind = "erode"
        n_views = len(views) if kind == "drop" or len(views) < 3 else int(rng.choice([2, 3]))
        chosen = tuple(sorted(rng.choice(views, size=n_views, replace=False).tolist(), key=views.index))
        zs = np.flatnonzero((labels == muscle).any(axis=(1, 2)))
        z0, z1 = int(zs[0]), int(zs[-1]) + 1
        if rng.random() < 0.5:  # a contiguous half of the muscle's length
            half = max((z1 - z0) // 2, 1)
            z0 = int(rng.integers(z0, z1 - half + 1))
            z1 = z0 + half
        size = {"erode": int(rng.integers(1, 4)), "shift": int(rng.integers(2, 7)) * int(rng.choice([-1, 1]))}
        out.append(Damage(kind, muscle, other, chosen, (z0, z1), size.get(kind, 0), int(rng.choice([1, 2]))))
    return out


def apply_damage(view_labels: dict[str, np.ndarray], prob_sum: np.ndarray, reference: np.ndarray,
                 damage: Damage) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Damaged copies of the views' labels and summed probabilities; ``reference`` is the clean
    result (model ids), which says where the muscle is."""
    labels = {v: (lab.copy() if v in damage.views else lab) for v, lab in view_labels.items()}
    prob = prob_sum.copy()
    f = len(damage.views) / max(len(view_labels), 1)
    z = slice(*damage.z_range)
    a = damage.muscle
    ref = np.zeros(reference.shape, bool)
    ref[z] = reference[z] == a
    if damage.kind == "swap":
        b = damage.other
        for v in damage.views:
            lab = labels[v][z]
            is_a, is_b = lab == a, lab == b
            lab[is_a], lab[is_b] = b, a
        pa, pb = prob[a, z].copy(), prob[b, z].copy()
        prob[a, z] = (1 - f) * pa + f * pb
        prob[b, z] = (1 - f) * pb + f * pa
        return labels, prob
    if damage.kind == "drop":
        region = np.zeros(reference.shape, bool)
        region[z] = True
        _move(labels, prob, region, a, 0, damage.views, f)
    elif damage.kind == "erode":
        rim = ref & ~ndimage.binary_erosion(ref, IN_PLANE, iterations=damage.size)
        _move(labels, prob, rim, a, 0, damage.views, f)
    elif damage.kind == "shift":
        moved = np.roll(ref, damage.size, axis=damage.axis)
        _move(labels, prob, ref & ~moved, a, 0, damage.views, f)
        _move(labels, prob, moved & ~ref, None, a, damage.views, f)
    else:
        raise ValueError(f"unknown damage {damage.kind!r}; known: {KINDS}")
    return labels, prob


def _move(labels: dict[str, np.ndarray], prob: np.ndarray, region: np.ndarray, src: int | None, dst: int,
          views: tuple[str, ...], f: float) -> None:
    """In ``region``, the damaged views' ``src`` (None: any class) becomes ``dst``."""
    for v in views:
        lab = labels[v]
        lab[region & (lab == src) if src is not None else region] = dst
    idx = np.nonzero(region)
    if src is None:
        moved = np.zeros(len(idx[0]), prob.dtype)
        for k in range(prob.shape[0]):
            if k != dst:
                share = prob[(k,) + idx] * f
                prob[(k,) + idx] -= share
                moved += share
        prob[(dst,) + idx] += moved
    else:
        share = prob[(src,) + idx] * f
        prob[(src,) + idx] -= share
        prob[(dst,) + idx] += share
