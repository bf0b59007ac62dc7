"""Framed thighs as training data: 3-channel slices of one view, batched.

A case folder (``ct.nii.gz`` + ``labels.nii.gz``) is framed by the same code as inference,
giving per thigh a HU grid and model class ids (left thighs mirrored). Slices are drawn
from every thigh along the view's axis with the same reformat (``gather_slices``) that
inference uses, so training and inference inputs cannot differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..inference.views import gather_slices, view_axis
from ..io import InputError
from ..models.settings import ModelSettings, window_hu


@dataclass
class FramedThigh:
    name: str  # "<case>/<side>"
    hu: np.ndarray  # float32 (z, y, x) Hounsfield units on the model grid
    ids: np.ndarray  # uint8 (z, y, x) model class ids 0..10


def find_cases(data: str | Path) -> list[Path]:
    """Case folders of a dataset (each with ct.nii.gz and labels.nii.gz), sorted by name."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder of cases")
    cases = sorted(p for p in root.iterdir() if (p / "ct.nii.gz").is_file() and (p / "labels.nii.gz").is_file())
    if not cases:
        raise InputError(f"{root} holds no cases: each case is a sub-folder with ct.nii.gz and labels.nii.gz "
                         "(as `thighseg phantom` writes them)")
    return cases


def split_cases(cases: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Whole cases go to validation (never one thigh of a case on each side of the split)."""
    if len(cases) < 2:
        return list(cases), []
    order = np.random.default_rng(seed).permutation(len(cases))
    n_val = min(max(1, int(round(val_fraction * len(cases)))), len(cases) - 1)
    val = sorted(cases[i] for i in order[:n_val])
    return [c for c in cases if c not in val], val


class SliceSampler:
    """All (thigh, slice) pairs of one view that show muscle, plus a share of empty ones."""

    def __init__(self, thighs: list[FramedThigh], view: str, empty_fraction: float = 0.1, seed: int = 0):
        self.thighs, self.view, self.axis = thighs, view, view_axis(view)
        rng = np.random.default_rng(seed)
        items = []
        for t, thigh in enumerate(thighs):
            other = tuple(a for a in range(3) if a != self.axis)
            has_muscle = (thigh.ids > 0).any(axis=other)
            for s in range(thigh.ids.shape[self.axis]):
                if has_muscle[s] or rng.random() < empty_fraction:
                    items.append((t, s))
        if not items:
            raise InputError("the training thighs hold no labelled muscle")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def epoch_order(self, generator: torch.Generator) -> list[tuple[int, int]]:
        return [self.items[i] for i in torch.randperm(len(self.items), generator=generator).tolist()]


def make_batch(thighs: list[FramedThigh], view: str, items: list[tuple[int, int]],
               settings: ModelSettings, windowed: dict[int, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, C, H, W) in 0..1 and labels (B, H, W) for the given (thigh, slice) items.

    ``windowed`` caches each thigh's windowed volume (built on first use)."""
    axis = view_axis(view)
    offsets = settings.channel_offsets_voxels()
    xs, ys = [], []
    for t, s in items:
        if t not in windowed:
            windowed[t] = window_hu(thighs[t].hu, settings.hu_window)
        xs.append(torch.from_numpy(gather_slices(windowed[t], axis, s, s + 1, offsets)[0]))
        ys.append(torch.from_numpy(np.take(thighs[t].ids, s, axis=axis).astype(np.int64)))
    return torch.stack(xs), torch.stack(ys)


def frame_case(case_dir: str | Path, label_interpolator: str = "nearest") -> list[FramedThigh]:
    """Both thighs of a dataset case on the model grid, framed exactly as inference does."""
    import SimpleITK as sitk

    from .. import framing
    from ..classes import ct_labels_to_model_ids
    from ..io import read_ct, same_geometry

    case = Path(case_dir)
    ct = read_ct(case / "ct.nii.gz")
    labels = sitk.ReadImage(str(case / "labels.nii.gz"))
    if not same_geometry(ct, labels, tol=1e-3):
        raise InputError(f"{case.name}: labels.nii.gz does not share the CT's geometry")
    out = []
    for frame in framing.frame_thighs(ct):
        hu = framing.to_grid(ct, frame, "linear")
        ids = ct_labels_to_model_ids(framing.to_grid(labels, frame, label_interpolator), frame.side)
        out.append(FramedThigh(f"{case.name}/{frame.side}", hu, ids))
    return out
