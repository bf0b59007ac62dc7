import math

import torch

from ThighMuscleSegLib.training.augment import AugmentSettings, augment_batch, random_affine
from ThighMuscleSegLib.training.loss import dice_loss


def test_dice_loss_is_zero_for_a_perfect_prediction_and_high_for_a_wrong_one():
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, 4:10, 4:10] = 3
    perfect = torch.nn.functional.one_hot(target, 11).movedim(-1, 1).float() * 50
    assert dice_loss(perfect, target).item() < 1e-3
    wrong = torch.nn.functional.one_hot((target + 1) % 11, 11).movedim(-1, 1).float() * 50
    assert dice_loss(wrong, target).item() > 0.15


def test_dice_loss_has_gradients():
    logits = torch.randn(2, 11, 8, 8, requires_grad=True)
    target = torch.randint(0, 11, (2, 8, 8))
    dice_loss(logits, target).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_affines_stay_within_the_paper_ranges():
    g = torch.Generator().manual_seed(0)
    cfg = AugmentSettings()
    theta = random_affine(2000, (128, 128), cfg, g)
    scale = 1 / torch.sqrt(theta[:, 0, 0] ** 2 + theta[:, 1, 0] ** 2)
    angle = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert scale.min() >= 0.9 - 1e-4 and scale.max() <= 1.1 + 1e-4
    assert angle.abs().max() <= 20 + 1e-3 and angle.abs().max() > 15
    shift_px = theta[:, :, 2].abs() * 128 / 2
    assert shift_px.max() <= 10 + 1e-3 and shift_px.max() > 8


def test_augmentation_moves_image_and_labels_together_and_is_seeded():
    img = torch.zeros(4, 3, 64, 64)
    lab = torch.zeros(4, 64, 64, dtype=torch.long)
    img[:, :, 20:40, 25:45] = 0.8
    lab[:, 20:40, 25:45] = 5
    cfg = AugmentSettings(contrast=0, offset=0, noise_sigma=0)
    a_img, a_lab = augment_batch(img, lab, cfg, torch.Generator().manual_seed(3))
    b_img, b_lab = augment_batch(img, lab, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    inside = a_lab == 5
    assert inside.sum() > 0.7 * (lab == 5).sum()
    # Where the label says muscle, the image is bright: they moved together.
    assert a_img[:, 1][inside].mean() > 0.7
    assert set(a_lab.unique().tolist()) <= {0, 5}
    assert not math.isclose(float((a_lab == 5).float().mean()), float((lab == 5).float().mean()), rel_tol=1e-6)
