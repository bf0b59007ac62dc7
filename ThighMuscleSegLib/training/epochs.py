"""What the 2D / 2.5D loop (``loop``) and the 3D loop (``loop3d``) share: the settings, the
epoch records, validation through the real inference path, and the checkpoints.

Its own module so that ``loop`` can hand a 3D model to ``loop3d`` without the two importing
each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import io as tio
from .. import metrics
from ..classes import NUM_MUSCLES
from ..inference.predict import predict_thigh
from ..models import Model, ModelSettings
from .augment import AugmentSettings
from .data import FramedThigh


@dataclass
class TrainConfig:
    architecture: str = "2.5d"
    epochs: int = 10
    seed: int = 0
    lr: float = 1e-4  # the paper's Adam learning rate
    lr_final: float | None = None  # cosine decay from lr to this over the epochs (None: constant)
    batch_size: int = 8
    width: int | None = None
    steps_per_view: int | None = None  # cap on batches per view and epoch (None: all slices)
    empty_fraction: float = 0.1
    device: str = "auto"
    threads: int | None = None
    augment: AugmentSettings = field(default_factory=AugmentSettings)


@dataclass
class EpochRecord:
    epoch: int
    loss: dict[str, float]
    val_dice: float
    slices_per_s: float
    seconds: float


def checkpoint_path(model_path: str | Path) -> Path:
    return Path(str(model_path) + ".ckpt")


def best_description(best: dict, val_thighs) -> str:
    """How the kept epoch was chosen: validation Dice, or (no validation cases) the lowest loss."""
    if val_thighs:
        return f"validation Dice {best['dice']:.3f}"
    return f"no validation cases: lowest training loss {-best['dice']:.3f}"


def _mean_dice(pred_ids: np.ndarray, gt_ids: np.ndarray) -> float:
    scores = [metrics.dice(pred_ids == c, gt_ids == c) for c in range(1, NUM_MUSCLES + 1) if (gt_ids == c).any()]
    return float(np.mean(scores)) if scores else float("nan")


def validate(model: Model, thighs: list[FramedThigh], device: str) -> float:
    if not thighs:
        return float("nan")
    for net in model.nets.values():
        net.eval()
    # PyTorch, not ONNX Runtime: the weights change every epoch, an export each time would not pay
    dices = [_mean_dice(predict_thigh(t.hu, model, device=device, engine="torch").labels, t.ids) for t in thighs]
    return float(np.mean(dices))


def initial_settings(cfg: TrainConfig, init: Model | None) -> ModelSettings:
    if init is None:
        overrides = {"width": cfg.width} if cfg.width else {}
        return ModelSettings.for_architecture(cfg.architecture, **overrides)
    if init.settings.architecture != cfg.architecture:
        raise tio.InputError(f"--init model is {init.settings.architecture}, but --arch is {cfg.architecture}")
    return init.settings


def save_checkpoint(path: Path, nets, optims, gen, epoch, history, best) -> None:
    state = {"nets": {v: n.state_dict() for v, n in nets.items()},
             "optims": {v: o.state_dict() for v, o in optims.items()},
             "generator": gen.get_state(), "epoch": epoch,
             "history": [asdict(r) for r in history], "best": best}
    with tio.atomic_path(path) as tmp:
        torch.save(state, tmp)
