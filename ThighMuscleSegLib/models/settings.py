"""Everything needed to use a trained network, kept beside its weights in the model file.

Windowing rule (the paper's "100 to 250 HU" read as -100..250 HU): clip the HU to the
window, then scale linearly so the window's low end is 0 and its high end is 1. Fat and
air become 0, dense bone 1; muscle (about 40 HU) lands near 0.4.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..classes import NUM_MODEL_CLASSES

ARCHITECTURES = ("2.5d", "2d", "3d")
VIEWS_25D = ("axial", "coronal", "sagittal")
VIEW_AXES = {"axial": 0, "coronal": 1, "sagittal": 2}  # the grid axis a view slices along
VOLUME_VIEW = "volume"  # the single "view" of the 3D baseline
DEFAULT_WIDTH = {"2.5d": 16, "2d": 16, "3d": 10}


@dataclass(frozen=True)
class ModelSettings:
    architecture: str = "2.5d"
    width: int = 16  # channels of the first level; levels below double it
    num_classes: int = NUM_MODEL_CLASSES
    grid_shape: tuple[int, int, int] = (180, 128, 128)  # (z, y, x) voxels of one framed thigh
    spacing_mm: float = 2.0
    hu_window: tuple[float, float] = (-100.0, 250.0)
    channel_offsets_mm: tuple[float, ...] = (-4.0, 0.0, 4.0)
    views: tuple[str, ...] = VIEWS_25D
    patch_shape: tuple[int, int, int] = (96, 128, 128)  # 3D baseline sliding window only
    version: str = "0"
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_architecture(cls, architecture: str, **overrides) -> "ModelSettings":
        """Defaults that fit ``architecture`` (views, width, input channels)."""
        base: dict[str, Any] = {"architecture": architecture,
                                "width": DEFAULT_WIDTH.get(architecture, 16)}
        if architecture == "2d":
            base["views"] = ("axial",)
        elif architecture == "3d":
            base["views"] = (VOLUME_VIEW,)
            base["channel_offsets_mm"] = (0.0,)
        base.update(overrides)
        return cls(**base).validated()

    @property
    def in_channels(self) -> int:
        return 1 if self.architecture == "3d" else len(self.channel_offsets_mm)

    @property
    def dims(self) -> int:
        return 3 if self.architecture == "3d" else 2

    def channel_offsets_voxels(self) -> tuple[int, ...]:
        """Neighbour offsets in slices; they must fall on whole voxels of the grid."""
        steps = [o / self.spacing_mm for o in self.channel_offsets_mm]
        if any(abs(s - round(s)) > 1e-6 for s in steps):
            raise ValueError(f"channel offsets {self.channel_offsets_mm} mm are not whole "
                             f"multiples of the {self.spacing_mm} mm grid spacing")
        return tuple(int(round(s)) for s in steps)

    def validated(self) -> "ModelSettings":
        """Self, or ValueError naming the first inconsistent setting."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture {self.architecture!r} is not one of {ARCHITECTURES}")
        expected = {"2.5d": VIEWS_25D, "2d": ("axial",), "3d": (VOLUME_VIEW,)}[self.architecture]
        if tuple(self.views) != expected:
            raise ValueError(f"a {self.architecture} model has views {expected}, not {tuple(self.views)}")
        if self.width < 1 or self.num_classes < 2:
            raise ValueError(f"width {self.width} and num_classes {self.num_classes} must be >=1 and >=2")
        if len(self.grid_shape) != 3 or len(self.patch_shape) != 3:
            raise ValueError("grid_shape and patch_shape need three sizes (z, y, x)")
        lo, hi = self.hu_window
        if not hi > lo:
            raise ValueError(f"HU window {self.hu_window} must have its high end above its low end")
        self.channel_offsets_voxels()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSettings":
        """Inverse of to_dict (JSON lists back to tuples); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown settings {unknown}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values).validated()


def window_hu(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """HU clipped to ``window`` and scaled to 0..1, as float32 (a new array)."""
    lo, hi = float(window[0]), float(window[1])
    out = np.clip(np.asarray(hu, dtype=np.float32), lo, hi)
    out -= lo
    out *= 1.0 / (hi - lo)
    return out
