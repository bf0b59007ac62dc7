"""The training loop of the 2D and 2.5D models (one U-Net per view), with validation,
checkpoints, resume, fine-tuning and throughput.

Each epoch trains every view's net on its own shuffled slices (the paper trains the three
views independently), then validates by running the real inference path (``predict_thigh``:
three views, voting, clean-up) on the validation thighs. The best epoch by mean validation
Dice is what the model file keeps. Deterministic for a seed on the CPU.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..inference.device import resolve_device, torch_threads
from ..models import Model, ModelSettings, build_net, load_model, save_model
from .augment import augment_batch
from .data import FramedThigh, SliceSampler, make_batch
from .epochs import (EpochRecord, TrainConfig, best_description, checkpoint_path, initial_settings,
                     save_checkpoint, validate)
from .loop3d import train_3d
from .loss import dice_loss

__all__ = ["EpochRecord", "TrainConfig", "checkpoint_path", "epoch_lr", "train"]


def epoch_lr(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (1-based): constant, or cosine from lr to lr_final."""
    if cfg.lr_final is None or cfg.epochs <= 1:
        return cfg.lr
    t = (epoch - 1) / (cfg.epochs - 1)
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + np.cos(np.pi * t))


def train(train_thighs: list[FramedThigh], val_thighs: list[FramedThigh], cfg: TrainConfig,
          out: str | Path, init: str | Path | None = None, resume: bool = False, progress=None,
          log: Callable[[str], None] = print, data_summary: dict | None = None) -> Path:
    """Train, checkpoint every epoch, and write the best epoch as a model file at ``out``."""
    if cfg.architecture == "3d":
        return train_3d(train_thighs, val_thighs, cfg, out, init, resume, progress, log, data_summary)
    init_model = load_model(init) if init else None
    settings = initial_settings(cfg, init_model)
    dev, why = resolve_device(cfg.device)
    if why:
        log(why)
    torch.manual_seed(cfg.seed)
    nets = {v: (copy.deepcopy(init_model.net(v)) if init_model else build_net(settings)).to(dev)
            for v in settings.views}
    optims = {v: torch.optim.Adam(nets[v].parameters(), lr=cfg.lr) for v in settings.views}
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[EpochRecord] = []
    best = {"dice": -1.0, "epoch": 0, "states": {v: copy.deepcopy(n.state_dict()) for v, n in nets.items()}}
    start_epoch = 1
    ckpt = checkpoint_path(out)
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        for v in settings.views:
            nets[v].load_state_dict(state["nets"][v])
            optims[v].load_state_dict(state["optims"][v])
        gen.set_state(state["generator"])
        history = [EpochRecord(**r) for r in state["history"]]
        best = state["best"]
        start_epoch = state["epoch"] + 1
        log(f"resuming after epoch {state['epoch']} from {ckpt}")
    # Samplers only when epochs remain: a run resumed past its last epoch (stopped early with a
    # smaller --epochs) just writes its best epoch, without its data.
    samplers = ({v: SliceSampler(train_thighs, v, cfg.empty_fraction, cfg.seed) for v in settings.views}
                if start_epoch <= cfg.epochs else {})
    windowed: dict[int, torch.Tensor] = {}
    t_start = time.perf_counter()
    with torch_threads(cfg.threads):
        for epoch in range(start_epoch, cfg.epochs + 1):
            for optim in optims.values():  # from the epoch alone, so that a resumed run continues it
                for group in optim.param_groups:
                    group["lr"] = epoch_lr(cfg, epoch)
            t0 = time.perf_counter()
            losses, seen = {}, 0
            for v in settings.views:
                losses[v], n = _train_view(nets[v], optims[v], samplers[v], train_thighs, v, settings,
                                           cfg, gen, windowed, dev, progress, epoch)
                seen += n
            train_s = time.perf_counter() - t0
            model = Model(settings, nets)
            val = validate(model, val_thighs, str(dev))
            for net in nets.values():
                net.train()
            rec = EpochRecord(epoch, losses, val, seen / max(train_s, 1e-9), time.perf_counter() - t0)
            history.append(rec)
            score = val if np.isfinite(val) else -float(np.mean(list(losses.values())))
            if score > best["dice"]:
                best = {"dice": score, "epoch": epoch,
                        "states": {v: copy.deepcopy(n.state_dict()) for v, n in nets.items()}}
            save_checkpoint(ckpt, nets, optims, gen, epoch, history, best)
            eta = (time.perf_counter() - t_start) / (epoch - start_epoch + 1) * (cfg.epochs - epoch)
            log(f"epoch {epoch}/{cfg.epochs}: loss " + ", ".join(f"{v} {l:.3f}" for v, l in losses.items())
                + f"; validation Dice {val:.3f}; {rec.slices_per_s:.1f} slices/s; ETA {eta / 60:.1f} min")
    for v, state in best["states"].items():
        nets[v].load_state_dict(state)
    validated = bool(val_thighs) or bool((data_summary or {}).get("val_cases"))
    summary = {"epochs": cfg.epochs, "best_epoch": best["epoch"], "best_val_dice": best["dice"] if validated else None,
               "device": str(dev), "config": {k: v for k, v in asdict(cfg).items() if k != "augment"},
               "augment": asdict(cfg.augment), "history": [asdict(r) for r in history],
               "init": str(init) if init else None, "data": data_summary or {},
               "train_slices_per_s": float(np.mean([r.slices_per_s for r in history])) if history else None}
    final = ModelSettings.from_dict({**settings.to_dict(), "training": summary})
    path = save_model(out, final, {v: n.cpu() for v, n in nets.items()})
    log(f"wrote {path} (best epoch {best['epoch']}, {best_description(best, validated)})")
    return path


def _train_view(net, optim, sampler: SliceSampler, thighs, view, settings, cfg: TrainConfig, gen,
                windowed, dev, progress, epoch) -> tuple[float, int]:
    net.train()
    order = sampler.epoch_order(gen)
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    if cfg.steps_per_view:
        batches = batches[: cfg.steps_per_view]
    total, seen = 0.0, 0
    for b, items in enumerate(batches):
        x, y = make_batch(thighs, view, items, settings, windowed)
        x, y = augment_batch(x, y, cfg.augment, gen, view)
        loss = dice_loss(net(x.to(dev)), y.to(dev))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        total += loss.item() * len(items)
        seen += len(items)
        if progress is not None:
            frac = ((epoch - 1) + (b + 1) / len(batches)) / cfg.epochs
            progress.update("train", frac, f"epoch {epoch}/{cfg.epochs} {view}: batch {b + 1}/{len(batches)}")
    return total / max(seen, 1), seen
