"""Slice augmentation on the GPU or CPU, a whole batch at once.

The paper's geometric augmentation: ±10 % scale, ±10 px shift, ±20° rotation, one random
affine per slice (bilinear for the image channels, nearest for the labels). Added here,
because phantoms are cleaner than patients: a small intensity change (±5 % contrast and
±0.03 offset of the windowed 0..1 range, about ±10 HU) and Gaussian noise (σ ≤ 0.02).

Added for a population of bodies (the paper's data were patients; one phantom body is not):
a different scale along each image axis (±15 %, thighs are not round alike) and, in half the
slices, a smooth elastic warp (up to 6 px = 12 mm, on a 5 × 5 control grid) that moves
muscle borders by different amounts in different places.

And a simulated scan edge: in a share of slices everything beyond a random straight line reads
as padding (0 after windowing) and background, as where a large thigh leaves the scanner's
field of view. In the long views the line runs along the femur (within 10°); in axial slices
it has any direction. Thighs cut by the scan's lateral edge were where the model made its
largest errors on test phantoms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..defaults import DEFAULT_EDGE_CUT


@dataclass(frozen=True)
class AugmentSettings:
    scale: float = 0.10
    shift_px: float = 10.0
    rotation_deg: float = 20.0
    contrast: float = 0.05
    offset: float = 0.03
    noise_sigma: float = 0.02
    edge_cut: float = DEFAULT_EDGE_CUT  # share of slices cut by a simulated scan edge
    edge_cut_tilt_deg: float = 10.0  # the line's tilt from the femur in the coronal and sagittal views
    anisotropy: float = 0.15  # extra scale along each axis on its own
    elastic_px: float = 6.0  # largest elastic displacement, pixels of the 2 mm grid
    elastic_share: float = 0.5  # share of slices warped elastically
    elastic_grid: int = 5  # control points per side


def random_affine(n: int, size_hw: tuple[int, int], cfg: AugmentSettings, generator: torch.Generator,
                  device=None) -> torch.Tensor:
    """(n, 2, 3) matrices for ``affine_grid`` in normalized coordinates."""
    u = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731  uniform in [-1, 1)
    scale = 1 + cfg.scale * u()
    angle = u() * math.radians(cfg.rotation_deg)
    h, w = size_hw
    tx = u() * cfg.shift_px * 2 / w  # normalized coordinates span 2 over the width
    ty = u() * cfg.shift_px * 2 / h
    sx, sy = scale * (1 + cfg.anisotropy * u()), scale * (1 + cfg.anisotropy * u())
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Sampling matrix = (rotation . diag(sx, sy))^-1: output pixel -> input position.
    theta = torch.stack([torch.stack([cos / sx, sin / sx, tx], 1), torch.stack([-sin / sy, cos / sy, ty], 1)], 1)
    return theta.to(device=device, dtype=torch.float32)


def elastic_offsets(n: int, size_hw: tuple[int, int], cfg: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """(n, H, W, 2) smooth displacements in normalized coordinates (zero for unwarped slices)."""
    h, w = size_hw
    g = cfg.elastic_grid
    coarse = (torch.rand(n, 2, g, g, generator=generator) * 2 - 1) * cfg.elastic_px
    coarse *= (torch.rand(n, 1, 1, 1, generator=generator) < cfg.elastic_share).float()
    fine = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    scale = torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)
    return (fine * scale).permute(0, 2, 3, 1)


def scan_edge_mask(n: int, size_hw: tuple[int, int], cfg: AugmentSettings, generator: torch.Generator,
                   view: str) -> torch.Tensor:
    """(n, H, W) bool, True beyond each chosen slice's simulated scan edge.

    The line lies 0.05..0.75 of the half-width from the slice centre (where the framing puts
    the femur), so a cut takes anything from half the thigh to a sliver of its edge."""
    h, w = size_hw
    chosen = torch.rand(n, generator=generator) < cfg.edge_cut
    u = torch.rand(n, generator=generator) * 2 - 1
    if view == "axial":
        angle = (u + 1) * math.pi  # the normal of the line: any direction
    else:  # H runs along the femur: the line's normal points across the slice (W), either way
        flip = (torch.rand(n, generator=generator) < 0.5).float() * math.pi
        angle = flip + u * math.radians(cfg.edge_cut_tilt_deg)
    dist = 0.05 + 0.7 * torch.rand(n, generator=generator)
    ys = torch.linspace(-1, 1, h)[None, :, None]
    xs = torch.linspace(-1, 1, w)[None, None, :]
    along = torch.cos(angle)[:, None, None] * xs + torch.sin(angle)[:, None, None] * ys
    return (along > dist[:, None, None]) & chosen[:, None, None]


def augment_batch(images: torch.Tensor, labels: torch.Tensor, cfg: AugmentSettings,
                  generator: torch.Generator, view: str = "axial") -> tuple[torch.Tensor, torch.Tensor]:
    """images (N, C, H, W) windowed 0..1, labels (N, H, W) int64 of one view -> augmented copies."""
    n, _, h, w = images.shape
    theta = random_affine(n, (h, w), cfg, generator, device=images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    if cfg.elastic_px > 0 and cfg.elastic_share > 0:
        grid = grid + elastic_offsets(n, (h, w), cfg, generator).to(grid.device)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    lab = F.grid_sample(labels[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)[:, 0].long()
    contrast = 1 + cfg.contrast * (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1)
    offset = cfg.offset * (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1)
    sigma = cfg.noise_sigma * torch.rand(n, 1, 1, 1, generator=generator)
    noise = torch.randn(out.shape, generator=generator) * sigma
    out = out * contrast.to(out.device) + offset.to(out.device) + noise.to(out.device)
    cut = scan_edge_mask(n, (h, w), cfg, generator, view).to(out.device)
    out = out.clamp_(0, 1).masked_fill_(cut[:, None], 0.0)  # padding carries no noise
    return out, lab.masked_fill_(cut, 0)
