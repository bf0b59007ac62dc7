"""The simplified U-Net of the method, in 2D (one per view) and 3D (the baseline).

Two down/up levels with a skip connection each, plus a bottleneck: widths w, 2w, 4w.
Each block is two 3x3 convolutions with batch norm and ReLU. Inputs of any size are
padded by edge replication to a multiple of 4 (two poolings) and the output is cropped
back, so the same net serves the 180x128 coronal/sagittal slices and any test grid.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .settings import ModelSettings

LEVELS = 2  # poolings; inputs are padded to a multiple of 2**LEVELS


def _block(dims: int, cin: int, cout: int) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    return nn.Sequential(conv(cin, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True),
                         conv(cout, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """U-Net with two skips; ``dims`` 2 (slices, N C H W) or 3 (volumes, N C D H W)."""

    def __init__(self, dims: int, in_channels: int, num_classes: int, width: int):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, not {dims}")
        self.dims = dims
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        w = width
        self.enc0 = _block(dims, in_channels, w)
        self.enc1 = _block(dims, w, 2 * w)
        self.bottleneck = _block(dims, 2 * w, 4 * w)
        self.up1 = up(4 * w, 2 * w, 2, stride=2)
        self.dec1 = _block(dims, 4 * w, 2 * w)
        self.up0 = up(2 * w, w, 2, stride=2)
        self.dec0 = _block(dims, 2 * w, w)
        self.head = conv(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, same spatial size as ``x``."""
        size = x.shape[2:]
        m = 2 ** LEVELS
        pad: list[int] = []
        for s in reversed(size):  # F.pad lists the last axis first
            pad += [0, (-s) % m]
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        pool = F.max_pool2d if self.dims == 2 else F.max_pool3d
        e0 = self.enc0(x)
        e1 = self.enc1(pool(e0, 2))
        b = self.bottleneck(pool(e1, 2))
        d1 = self.dec1(torch.cat([self.up1(b), e1], dim=1))
        d0 = self.dec0(torch.cat([self.up0(d1), e0], dim=1))
        out = self.head(d0)
        if any(pad):
            out = out[(slice(None), slice(None)) + tuple(slice(0, s) for s in size)]
        return out


def build_net(settings: ModelSettings) -> UNet:
    """An untrained net shaped by ``settings`` (2D for 2.5d/2d, 3D for 3d)."""
    return UNet(settings.dims, settings.in_channels, settings.num_classes, settings.width)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
