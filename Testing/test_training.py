"""Training on tiny synthetic framed thighs: the loss falls, resume continues, --init fine-tunes."""

import numpy as np
import pytest
import torch

from ThighMuscleSegLib.models import ModelSettings, load_model
from ThighMuscleSegLib.training.data import FramedThigh, SliceSampler, make_batch
from ThighMuscleSegLib.training.loop import TrainConfig, checkpoint_path, train

SHAPE = (20, 24, 24)


def _thigh(seed: int) -> FramedThigh:
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, -100.0, np.float32) + rng.normal(0, 5, SHAPE).astype(np.float32)
    ids = np.zeros(SHAPE, np.uint8)
    for label, (y, x) in enumerate([(6, 6), (6, 16), (16, 6), (16, 16)], start=1):
        dy, dx = rng.integers(-1, 2, 2)
        ids[2:18, y + dy - 3:y + dy + 3, x + dx - 3:x + dx + 3] = label
        hu[ids == label] = 40.0 + 30 * label  # each muscle its own brightness: learnable
    return FramedThigh(f"synthetic/{seed}", hu, ids)


def _cfg(**kw):
    base = dict(architecture="2.5d", epochs=3, seed=0, lr=1e-2, batch_size=8, width=4, device="cpu", threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_slices_and_batches_come_from_the_inference_reformat():
    thighs = [_thigh(0)]
    sampler = SliceSampler(thighs, "coronal", empty_fraction=0.0, seed=0)
    assert all(0 <= s < SHAPE[1] for _, s in sampler.items)
    x, y = make_batch(thighs, "coronal", sampler.items[:4], ModelSettings(), {})
    assert x.shape == (4, 3, SHAPE[0], SHAPE[2]) and y.shape == (4, SHAPE[0], SHAPE[2])
    assert 0 <= float(x.min()) and float(x.max()) <= 1


def test_a_tiny_training_run_lowers_the_loss_and_writes_a_usable_model(tmp_path):
    lines = []
    out = train([_thigh(1), _thigh(2)], [_thigh(3)], _cfg(), tmp_path / "m.tmsmodel", log=lines.append)
    model = load_model(out)
    history = model.settings.training["history"]
    first, last = (np.mean(list(h["loss"].values())) for h in (history[0], history[-1]))
    assert last < first
    assert model.settings.training["best_val_dice"] >= 0
    assert any("validation Dice" in line for line in lines)
    assert checkpoint_path(out).is_file()


def test_resume_continues_after_the_last_checkpoint(tmp_path):
    out = tmp_path / "m.tmsmodel"
    train([_thigh(1)], [], _cfg(epochs=2), out, log=lambda m: None)
    out.unlink()  # keep the checkpoint, as after a crash before the model file
    lines = []
    train([_thigh(1)], [], _cfg(epochs=3), out, resume=True, log=lines.append)
    assert lines[0].startswith("resuming after epoch 2")
    history = load_model(out).settings.training["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_init_starts_from_the_given_model(tmp_path):
    base = train([_thigh(1)], [], _cfg(epochs=1), tmp_path / "base.tmsmodel", log=lambda m: None)
    tuned = train([_thigh(2)], [], _cfg(epochs=1, lr=0.0), tmp_path / "tuned.tmsmodel", init=base,
                  log=lambda m: None)
    a, b = load_model(base), load_model(tuned)
    for view in a.settings.views:
        wa = {k: v for k, v in a.net(view).state_dict().items() if "conv" in k or k.endswith("weight")}
        wb = b.net(view).state_dict()
        conv = [k for k in wa if wa[k].ndim == 4]
        assert conv and all(torch.equal(wa[k], wb[k]) for k in conv)
    assert b.settings.training["init"] == str(base)


def test_init_with_another_architecture_is_refused(tmp_path):
    from ThighMuscleSegLib.io import InputError

    base = train([_thigh(1)], [], _cfg(epochs=1), tmp_path / "base.tmsmodel", log=lambda m: None)
    with pytest.raises(InputError, match="--init model is 2.5d"):
        train([_thigh(1)], [], _cfg(architecture="2d", epochs=1), tmp_path / "x.tmsmodel", init=base,
              log=lambda m: None)


def test_a_run_stopped_early_writes_its_best_epoch_without_its_data(tmp_path):
    out = tmp_path / "m.tmsmodel"
    train([_thigh(1), _thigh(2)], [_thigh(3)], _cfg(epochs=3), out, log=lambda m: None)
    ckpt_best = torch.load(checkpoint_path(out), weights_only=False)["best"]
    out.unlink()
    # Stopped after epoch 3 of a longer plan: --epochs 3 --resume, no thighs framed.
    lines = []
    train([], [], _cfg(epochs=3), out, resume=True, log=lines.append, data_summary={"val_cases": ["case_x"]})
    model = load_model(out)
    assert model.settings.training["best_epoch"] == ckpt_best["epoch"]
    assert model.settings.training["best_val_dice"] == pytest.approx(ckpt_best["dice"])
    for view, state in ckpt_best["states"].items():
        assert all(torch.equal(state[k], v) for k, v in model.net(view).state_dict().items())
    assert "validation Dice" in lines[-1]


def test_a_3d_run_goes_through_the_3d_loop_resumes_and_writes_a_3d_model(tmp_path):
    out = tmp_path / "m3d.tmsmodel"
    cfg = _cfg(architecture="3d", epochs=1, width=2, batch_size=4, steps_per_view=2)
    train([_thigh(1)], [_thigh(3)], cfg, out, log=lambda m: None)
    model = load_model(out)
    assert model.settings.architecture == "3d"
    assert model.settings.training["patch"] == [min(p, s) for p, s in zip(model.settings.patch_shape, SHAPE)]
    lines = []
    train([_thigh(1)], [_thigh(3)], _cfg(architecture="3d", epochs=2, width=2, batch_size=4, steps_per_view=2),
          out, resume=True, log=lines.append)
    assert lines[0].startswith("resuming after epoch 1")
    assert [h["epoch"] for h in load_model(out).settings.training["history"]] == [1, 2]
