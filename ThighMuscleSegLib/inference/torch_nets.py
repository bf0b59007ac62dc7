"""The views' nets on PyTorch, for the lanes (``lanes.ViewNets``): on a GPU, and on the CPU where
ONNX Runtime is not installed or ``--engine torch`` asks for it.

For inference each net is a copy with batch norm folded into the convolution before it (eval
statistics: the same function, fewer operations) in channels-last layout; a batch's argmax and
softmax are taken on the device, and only they come back to the CPU.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .device import autocast_for


def inference_net(net: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``net`` for inference on ``device``: eval mode, batch norm folded into the
    convolutions, channels-last. The caller's net is left as it is (training validates with it)."""
    net = copy.deepcopy(net).eval()
    _fold_batch_norm(net)
    return net.to(device).to(memory_format=_layout(device))


def _layout(device: torch.device):
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format


def _fold_batch_norm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            setattr(module, name, nn.Sequential(*_folded(list(child))))
        else:
            _fold_batch_norm(child)


def _folded(layers: list[nn.Module]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d) and out and isinstance(out[-1], nn.Conv2d):
            out[-1] = fuse_conv_bn_eval(out[-1], layer)
        else:
            out.append(layer)
    return out


class TorchViewNets:
    """``lanes.ViewNets`` on PyTorch: the folded nets of ``nets`` (view -> net) on ``device``."""

    torch_threads = True

    def __init__(self, nets: dict[str, nn.Module], device: torch.device):
        self.dev = device
        self.device = str(device)
        self.nets = {v: inference_net(n, device) for v, n in nets.items()}

    def __call__(self, view: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode(), autocast_for(self.dev):
            batch = torch.from_numpy(x).to(self.dev).contiguous(memory_format=_layout(self.dev))
            logits = self.nets[view](batch)
            labels = logits.argmax(dim=1).to(torch.uint8)
            probs = logits.float().softmax(dim=1).permute(0, 2, 3, 1)  # channels-last: no copy on CPU
        return labels.cpu().numpy(), probs.cpu().numpy()
