"""A cartoon of two thighs in CT (fat, 10 muscle sectors around a femur) for output tests
and benchmarks: known labels, HU and geometry, any size."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ThighMuscleSegLib import classes as C


def synthetic_thighs(size_xyz=(96, 80, 60), spacing=(4.0, 4.0, 6.0), direction=None,
                     origin=(-190.0, -160.0, 500.0)) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """(ct int16 HU, labels uint8 right 1-10 / left 11-20, disagreement uint8) in one geometry."""
    nx, ny, nz = size_xyz
    x = (np.arange(nx) - (nx - 1) / 2) * spacing[0]
    y = (np.arange(ny) - (ny - 1) / 2) * spacing[1]
    xx, yy = np.meshgrid(x, y)  # (ny, nx), mm from the centre; +x = patient's left
    ct = np.full((nz, ny, nx), -1000, np.int16)
    labels = np.zeros((nz, ny, nx), np.uint8)
    half_width = nx * spacing[0] / 2
    for side, cx in (("right", -0.45 * half_width), ("left", 0.45 * half_width)):
        dx = xx - cx if side == "right" else cx - xx  # mirror the left thigh
        r = np.hypot(dx, yy)
        sector = ((np.arctan2(yy, dx) + np.pi) / (2 * np.pi) * C.NUM_MUSCLES).astype(int) % C.NUM_MUSCLES
        outer = 0.4 * half_width
        for z0, z1, scale in _bands(nz):
            ro = outer * scale
            body = r < ro
            muscle = (r >= 0.22 * outer) & (r < 0.85 * ro)
            bone = r < 0.18 * outer
            sl = slice(z0, z1)
            ct[sl][:, body] = -100
            ct[sl][:, muscle] = 50 + (sector[muscle] * 2)
            ct[sl][:, bone] = 700
            labels[sl][:, muscle] = (sector[muscle] + 1 + (C.LEFT_OFFSET if side == "left" else 0)).astype(np.uint8)
    disagreement = np.zeros_like(labels)
    edges = labels[:, :, 1:] != labels[:, :, :-1]
    disagreement[:, :, 1:][edges & (labels[:, :, 1:] > 0)] = 1
    images = []
    for arr in (ct, labels, disagreement):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        if direction is not None:
            img.SetDirection(direction)
        images.append(img)
    return tuple(images)  # type: ignore[return-value]


def _bands(nz: int):
    """Thighs taper from hip to knee: a few bands of decreasing radius."""
    edges = np.linspace(0, nz, 6).astype(int)
    for i in range(5):
        yield edges[i], edges[i + 1], 0.75 + 0.06 * i
