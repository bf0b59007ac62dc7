"""The peer networks of ``thighseg bench --peers``, configured as their tools configure them, and
the tools' sliding windows. Random weights: only compute is compared. Sources (read, not copied;
docs/peers.md has the whole derivation):

* TotalSegmentator ``--fast`` (github.com/wasserth/TotalSegmentator, 2026-08,
  ``map_tasks_config.py``: task 297, resample 3.0 mm, trainer
  ``nnUNetTrainer_4000epochs_NoMirroring``, plans ``nnUNetPlans``, 3d_fullres; ``nnunet.py``:
  ``nnUNetPredictor(tile_step_size=0.8 for the "total" task, use_gaussian=True,
  use_mirroring=False)`` because ``tta`` defaults to False). Plans: patch 112 x 112 x 128 in
  the dataset's (x, y, z) order (its dataset.json reads images with ``NibabelIOWithReorient``),
  so (z, y, x) = 128 x 112 x 112; 117 structures + background.
* nnU-Net v2 3d_fullres at 1.5 mm (github.com/MIC-DKFZ/nnUNet, 2026-07): patch 128^3,
  ``nnUNetPredictor`` defaults tile_step_size 0.5 and Gaussian weighting (sigma 1/8 of the
  patch); mirroring off as TotalSegmentator's 1.5 mm models run (``NoMirroring`` trainers; with
  nnU-Net's default mirroring it would cost 8x). One network, not TotalSegmentator's five parts.
* MONAI Auto3DSeg SegResNet (github.com/Project-MONAI/research-contributions,
  ``auto3dseg/algorithm_templates/segresnet``, 2025-05): ``SegResNetDS(init_filters=32,
  blocks_down=(1, 2, 2, 4, 4), dsdepth=4)``, ``SlidingWindowInfererAdapt(sw_batch_size=1,
  overlap=0.625, mode="gaussian")``, roi from ``auto_adjust_network_settings``: the default
  224 x 224 x 144 (x, y, z) capped at the image, grown by 1.15 up to the default's voxel count,
  then floored to a multiple of 2^(levels-1); resolution 1.5 mm assumed (Auto3DSeg takes the
  dataset's median spacing).

Both nnU-Net plans follow nnU-Net's planner for isotropic spacing: pool an axis while it is at
least 8 voxels (bottleneck edge >= 4), features 32 doubling to at most 320, 3^3 kernels, two
convs per stage, InstanceNorm (affine), LeakyReLU 0.01, conv bias, no deep supervision.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

TOTALSEG_TOTAL_CLASSES = 118  # background + 117 structures of the "total" task


@dataclass(frozen=True)
class PeerSpec:
    name: str
    tool: str
    spacing_mm: float
    arch: str                   # "plain_unet" (nnU-Net) or "segresnet_ds" (Auto3DSeg)
    window: str                 # "nnunet" (tile step) or "monai" (overlap)
    step: float                 # nnU-Net tile_step_size, or MONAI overlap
    num_classes: int
    patch: tuple[int, int, int] | None = None  # (z, y, x); None: Auto3DSeg's rule on the image


def default_peers(our_classes: int) -> tuple[PeerSpec, ...]:
    """The three peers of the README table. TotalSegmentator fast keeps its own 118 classes (it
    is that model); the two 1.5 mm networks stand for a thigh model trained with those tools, so
    they get our classes (the head is a small part of the cost either way)."""
    return (
        PeerSpec("nnunet_fast_3mm", "TotalSegmentator --fast (nnU-Net 3d_fullres, task 297)", 3.0,
                 "plain_unet", "nnunet", 0.8, TOTALSEG_TOTAL_CLASSES, (128, 112, 112)),
        PeerSpec("nnunet_fullres_1.5mm", "nnU-Net v2 3d_fullres", 1.5, "plain_unet", "nnunet", 0.5,
                 our_classes, (128, 128, 128)),
        PeerSpec("segresnet_1.5mm", "MONAI Auto3DSeg SegResNet (SegResNetDS)", 1.5, "segresnet_ds", "monai",
                 0.625, our_classes, None),
    )


def auto3dseg_roi(image_zyx: tuple[int, ...], default_xyz=(224, 224, 144), levels_limit: int = 5) -> tuple:
    """Auto3DSeg segresnet's roi for one image size (isotropic spacing, no GPU auto-scaling,
    at most 20 classes), in (z, y, x), and its number of levels."""
    image = [float(s) for s in reversed(image_zyx)]  # (x, y, z) as Auto3DSeg orders RAS images
    roi = [min(r, s) for r, s in zip(default_xyz, image)]
    target = math.prod(default_xyz)
    while math.prod(roi) < target:
        grown = [min(r * 1.15, s) for r, s in zip(roi, image)]
        if math.prod(grown) == math.prod(roi):
            break
        roi = grown
    levels = int(min(min(math.floor(math.log2(r)) for r in roi), levels_limit))
    factor = 2 ** (levels - 1)
    roi = [int(factor * max(2, math.floor(r / factor))) for r in roi]
    return tuple(reversed(roi)), levels


def nnunet_strides(patch: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Per-stage strides of nnU-Net's planner for an isotropic patch: pool every axis still at
    least 8 voxels; a lone poolable axis only while it is at least 12 (bottleneck edge >= 4)."""
    size, strides = list(patch), [tuple(1 for _ in patch)]
    while True:
        axes = [i for i, s in enumerate(size) if s >= 8]
        if not axes or (len(axes) == 1 and size[axes[0]] < 12):
            return strides
        strides.append(tuple(2 if i in axes else 1 for i in range(len(size))))
        size = [math.ceil(s / 2) if i in axes else s for i, s in enumerate(size)]


def build_net(spec: PeerSpec, patch: tuple[int, int, int]) -> tuple[nn.Module, dict]:
    """The peer's network with random weights (eval mode) and what was configured."""
    torch.manual_seed(0)
    if spec.arch == "plain_unet":
        from dynamic_network_architectures.architectures.unet import PlainConvUNet

        strides = nnunet_strides(patch)
        features = [min(32 * 2 ** i, 320) for i in range(len(strides))]
        net = PlainConvUNet(1, len(strides), features, nn.Conv3d, 3, strides, 2, spec.num_classes, 2,
                            conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                            nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=False)
        config = {"stages": len(strides), "features_per_stage": features, "strides": [list(s) for s in strides]}
    elif spec.arch == "segresnet_ds":
        from monai.networks.nets import SegResNetDS

        levels = int(min(min(math.floor(math.log2(p)) for p in patch), 5))  # Auto3DSeg: from the roi
        blocks_down = {5: (1, 2, 2, 4, 4), 4: (1, 2, 2, 4), 3: (1, 2, 4), 2: (1, 3), 1: (1,)}[max(1, min(levels, 5))]
        # INSTANCE, not Auto3DSeg's INSTANCE_NVFUSER: that fused kernel needs apex on CUDA and
        # falls back to the same InstanceNorm3d without it.
        net = SegResNetDS(spatial_dims=3, init_filters=32, in_channels=1, out_channels=spec.num_classes,
                          blocks_down=blocks_down, norm="INSTANCE", dsdepth=4)
        config = {"init_filters": 32, "blocks_down": list(blocks_down), "dsdepth": 4, "levels": levels}
    else:
        raise ValueError(f"unknown peer architecture {spec.arch!r}")
    config["params_m"] = round(sum(p.numel() for p in net.parameters()) / 1e6, 2)
    return net.eval(), config


def patch_for(spec: PeerSpec, image_zyx: tuple[int, ...]) -> tuple[int, int, int]:
    return spec.patch if spec.patch is not None else auto3dseg_roi(image_zyx)[0]


def autocast(device: torch.device, half: bool):
    if not half:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type != "cpu" else torch.bfloat16)


def gaussian_weights(patch: tuple[int, ...], device, dtype) -> torch.Tensor:
    """nnU-Net's importance map: a Gaussian centred on the tile (sigma 1/8 of each edge), peak 1."""
    axes = []
    for n in patch:
        x = torch.arange(n, dtype=torch.float64) - n // 2
        axes.append(torch.exp(-0.5 * (x / (n / 8.0)) ** 2))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (g / g.max()).clamp_min(float(g[g > 0].min())).to(device=device, dtype=dtype)


def nnunet_starts(size: int, tile: int, step: float) -> list[int]:
    """Tile origins along one axis: as few tiles as keep the step at most ``step`` x the tile,
    spread evenly from 0 to size - tile (nnU-Net's rule)."""
    if size <= tile:
        return [0]
    n = math.ceil((size - tile) / (tile * step)) + 1
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def nnunet_window(net: nn.Module, volume: torch.Tensor, patch, step: float, num_classes: int,
                  half: bool) -> tuple[torch.Tensor, int]:
    """Labels of ``volume`` (1, 1, z, y, x) by nnU-Net's sliding window: padded to at least the
    patch, one tile at a time, logits weighted by the Gaussian map and summed (in float16 on a
    GPU with ``half``, as nnU-Net keeps them on the device), argmax. Returns labels and tiles."""
    dev = volume.device
    shape = volume.shape[2:]
    pads = [max(0, p - s) for p, s in zip(patch, shape)]
    lo = [p // 2 for p in pads]
    pad_arg = []
    for lo_, p in reversed(list(zip(lo, pads))):
        pad_arg += [lo_, p - lo_]
    padded = torch.nn.functional.pad(volume, pad_arg)
    acc_dtype = torch.float16 if half and dev.type != "cpu" else torch.float32
    logits = torch.zeros((num_classes,) + tuple(padded.shape[2:]), dtype=acc_dtype, device=dev)
    weight = torch.zeros(tuple(padded.shape[2:]), dtype=acc_dtype, device=dev)
    g = gaussian_weights(tuple(patch), dev, acc_dtype)
    starts = [nnunet_starts(s, p, step) for s, p in zip(padded.shape[2:], patch)]
    tiles = 0
    for z in starts[0]:
        for y in starts[1]:
            for x in starts[2]:
                sl = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
                with autocast(dev, half):
                    out = net(padded[(slice(None), slice(None)) + sl])
                logits[(slice(None),) + sl] += out[0].to(acc_dtype) * g
                weight[sl] += g
                tiles += 1
    crop = tuple(slice(lo_, lo_ + s) for lo_, s in zip(lo, shape))
    labels = (logits[(slice(None),) + crop] / weight[crop]).argmax(dim=0).to(torch.uint8)
    return labels, tiles


def monai_window(net: nn.Module, volume: torch.Tensor, roi, overlap: float, half: bool) -> tuple[torch.Tensor, int]:
    """Labels by MONAI's ``sliding_window_inference`` as Auto3DSeg segresnet calls it (batch 1,
    Gaussian blending, its overlap); returns labels and the windows run."""
    from monai.inferers import sliding_window_inference

    calls = [0]

    def predictor(x):
        calls[0] += x.shape[0]
        return net(x)

    with autocast(volume.device, half):
        out = sliding_window_inference(volume, roi_size=tuple(roi), sw_batch_size=1, predictor=predictor,
                                       overlap=overlap, mode="gaussian")
    return out[0].argmax(dim=0).to(torch.uint8), calls[0]


def flops_of(net: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs (multiply and add counted apart) of one forward pass, counted on the meta device so
    that nothing is computed."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    meta_net = copy.deepcopy(net).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta_net(torch.empty(input_shape, device="meta"))
    return counter.get_total_flops()
