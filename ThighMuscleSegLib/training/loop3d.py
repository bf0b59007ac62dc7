"""Training of the 3D U-Net baseline on random patches of the framed thighs.

Same loss, optimizer, validation and model file as the 2D / 2.5D loop; the paper's
in-plane augmentation (±10 % scale, ±10 px shift, ±20° rotation about the long axis) is
applied to whole patches with a 3D affine that leaves the long axis alone.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import io as tio
from ..inference.device import resolve_device, torch_threads
from ..models import Model, ModelSettings, VOLUME_VIEW, build_net, load_model, save_model
from ..models.settings import window_hu
from .augment import random_affine
from .epochs import EpochRecord, best_description, checkpoint_path, initial_settings, save_checkpoint, validate
from .loss import dice_loss


def _random_patch(thigh, patch, gen: torch.Generator, hu_window) -> tuple[torch.Tensor, torch.Tensor]:
    starts = [int(torch.randint(0, max(s - p, 0) + 1, (1,), generator=gen)) for s, p in zip(thigh.ids.shape, patch)]
    box = tuple(slice(a, a + p) for a, p in zip(starts, patch))
    x = torch.from_numpy(window_hu(thigh.hu[box], hu_window))[None]
    y = torch.from_numpy(thigh.ids[box].astype(np.int64))
    return x, y


def _augment_3d(x: torch.Tensor, y: torch.Tensor, cfg, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, 1, D, H, W), y (N, D, H, W): one in-plane affine per patch, depth untouched."""
    n, _, d, h, w = x.shape
    t2 = random_affine(n, (h, w), cfg.augment, gen)
    theta = torch.zeros(n, 3, 4)
    theta[:, :2, :2] = t2[:, :, :2]  # grid x, y are W, H: the in-plane axes
    theta[:, :2, 3] = t2[:, :, 2]
    theta[:, 2, 2] = 1.0
    grid = F.affine_grid(theta, [n, 1, d, h, w], align_corners=False)
    xa = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ya = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return xa, ya[:, 0].long()


def train_3d(train_thighs, val_thighs, cfg, out, init, resume, progress, log, data_summary) -> Path:
    init_model = load_model(init) if init else None
    settings: ModelSettings = initial_settings(cfg, init_model)
    dev, why = resolve_device(cfg.device)
    if why:
        log(why)
    torch.manual_seed(cfg.seed)
    net = (copy.deepcopy(init_model.net(VOLUME_VIEW)) if init_model else build_net(settings)).to(dev)
    optim = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    patch = tuple(min(p, s) for p, s in zip(settings.patch_shape, train_thighs[0].ids.shape))
    steps = cfg.steps_per_view or max(1, len(train_thighs) * 4)
    batch = max(1, cfg.batch_size // 4)  # whole patches are large: fewer per step
    history, start_epoch = [], 1
    best = {"dice": -1.0, "epoch": 0, "states": {VOLUME_VIEW: copy.deepcopy(net.state_dict())}}
    ckpt = checkpoint_path(out)
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["nets"][VOLUME_VIEW])
        optim.load_state_dict(state["optims"][VOLUME_VIEW])
        gen.set_state(state["generator"])
        history, best, start_epoch = [EpochRecord(**r) for r in state["history"]], state["best"], state["epoch"] + 1
        log(f"resuming after epoch {state['epoch']} from {ckpt}")
    with torch_threads(cfg.threads):
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0, total, seen = time.perf_counter(), 0.0, 0
            net.train()
            for step in range(steps):
                picks = torch.randint(0, len(train_thighs), (batch,), generator=gen).tolist()
                xs, ys = zip(*(_random_patch(train_thighs[i], patch, gen, settings.hu_window) for i in picks))
                x, y = _augment_3d(torch.stack(xs), torch.stack(ys), cfg, gen)
                loss = dice_loss(net(x.to(dev)), y.to(dev))
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                total, seen = total + loss.item() * batch, seen + batch
                if progress is not None:
                    progress.update("train", ((epoch - 1) + (step + 1) / steps) / cfg.epochs,
                                    f"epoch {epoch}/{cfg.epochs} 3D: patch batch {step + 1}/{steps}")
            train_s = time.perf_counter() - t0
            val = validate(Model(settings, {VOLUME_VIEW: net}), val_thighs, str(dev))
            slices = seen * patch[0]
            rec = EpochRecord(epoch, {VOLUME_VIEW: total / max(seen, 1)}, val, slices / max(train_s, 1e-9),
                              time.perf_counter() - t0)
            history.append(rec)
            score = val if np.isfinite(val) else -rec.loss[VOLUME_VIEW]
            if score > best["dice"]:
                best = {"dice": score, "epoch": epoch, "states": {VOLUME_VIEW: copy.deepcopy(net.state_dict())}}
            save_checkpoint(ckpt, {VOLUME_VIEW: net}, {VOLUME_VIEW: optim}, gen, epoch, history, best)
            log(f"epoch {epoch}/{cfg.epochs}: 3D loss {rec.loss[VOLUME_VIEW]:.3f}; validation Dice {val:.3f}; "
                f"{rec.slices_per_s:.1f} slice-equivalents/s")
    net.load_state_dict(best["states"][VOLUME_VIEW])
    summary = {"epochs": cfg.epochs, "best_epoch": best["epoch"],
               "best_val_dice": best["dice"] if val_thighs else None, "device": str(dev),
               "config": {k: v for k, v in asdict(cfg).items() if k != "augment"}, "augment": asdict(cfg.augment),
               "history": [asdict(r) for r in history], "init": str(init) if init else None,
               "data": data_summary or {}, "patch": list(patch)}
    final = ModelSettings.from_dict({**settings.to_dict(), "training": summary})
    path = save_model(out, final, {VOLUME_VIEW: net.cpu()})
    log(f"wrote {path} (best epoch {best['epoch']}, {best_description(best, val_thighs)})")
    return path
