"""Slice augmentation on the GPU or CPU, a whole batch at once.

The paper's geometric augmentation: ±10 % scale, ±10 px shift, ±20° rotation, one random
affine per slice (bilinear for the image channels, nearest for the labels). Added here,
because phantoms are cleaner than patients: a small intensity change (±5 % contrast and
±0.03 offset of the windowed 0..1 range, about ±10 HU) and Gaussian noise (σ ≤ 0.02).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentSettings:
    scale: float = 0.10
    shift_px: float = 10.0
    rotation_deg: float = 20.0
    contrast: float = 0.05
    offset: float = 0.03
    noise_sigma: float = 0.02


def random_affine(n: int, size_hw: tuple[int, int], cfg: AugmentSettings, generator: torch.Generator,
                  device=None) -> torch.Tensor:
    """(n, 2, 3) matrices for ``affine_grid`` in normalized coordinates."""
    u = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731  uniform in [-1, 1)
    scale = 1 + cfg.scale * u()
    angle = u() * math.radians(cfg.rotation_deg)
    h, w = size_hw
    tx = u() * cfg.shift_px * 2 / w  # normalized coordinates span 2 over the width
    ty = u() * cfg.shift_px * 2 / h
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    return theta.to(device=device, dtype=torch.float32)


def augment_batch(images: torch.Tensor, labels: torch.Tensor, cfg: AugmentSettings,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N, C, H, W) windowed 0..1, labels (N, H, W) int64 -> augmented copies."""
    n, _, h, w = images.shape
    theta = random_affine(n, (h, w), cfg, generator, device=images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    lab = F.grid_sample(labels[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)[:, 0].long()
    contrast = 1 + cfg.contrast * (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1)
    offset = cfg.offset * (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1)
    sigma = cfg.noise_sigma * torch.rand(n, 1, 1, 1, generator=generator)
    noise = torch.randn(out.shape, generator=generator) * sigma
    out = out * contrast.to(out.device) + offset.to(out.device) + noise.to(out.device)
    return out.clamp_(0, 1), lab
