import math

import torch

from ThighMuscleSegLib.training.augment import AugmentSettings, augment_batch, random_affine, scan_edge_mask
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
    cfg = AugmentSettings(anisotropy=0.0)  # the paper's isotropic scale
    theta = random_affine(2000, (128, 128), cfg, g)
    scale = 1 / torch.sqrt(theta[:, 0, 0] ** 2 + theta[:, 1, 0] ** 2)
    angle = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert scale.min() >= 0.9 - 1e-4 and scale.max() <= 1.1 + 1e-4
    assert angle.abs().max() <= 20 + 1e-3 and angle.abs().max() > 15
    shift_px = theta[:, :, 2].abs() * 128 / 2
    assert shift_px.max() <= 10 + 1e-3 and shift_px.max() > 8


def test_anisotropic_scale_stretches_each_axis_on_its_own_within_its_range():
    g = torch.Generator().manual_seed(1)
    cfg = AugmentSettings(rotation_deg=0.0, shift_px=0.0)
    theta = random_affine(2000, (128, 128), cfg, g)
    sx, sy = 1 / theta[:, 0, 0], 1 / theta[:, 1, 1]
    ratio = sx / sy
    lo, hi = (1 - cfg.anisotropy) / (1 + cfg.anisotropy), (1 + cfg.anisotropy) / (1 - cfg.anisotropy)
    assert ratio.min() >= lo - 1e-4 and ratio.max() <= hi + 1e-4
    assert ratio.max() > 1.2 and ratio.min() < 1 / 1.2  # really anisotropic
    assert torch.allclose(theta[:, 0, 1], torch.zeros(2000)) and torch.allclose(theta[:, 1, 0], torch.zeros(2000))


def test_elastic_offsets_are_smooth_bounded_and_spare_the_unwarped_share():
    from ThighMuscleSegLib.training.augment import elastic_offsets

    cfg = AugmentSettings()
    off = elastic_offsets(64, (128, 128), cfg, torch.Generator().manual_seed(2))
    px = off * 128 / 2  # back to pixels
    warped = px.abs().amax(dim=(1, 2, 3)) > 0
    assert 0.25 < warped.float().mean() < 0.75  # about elastic_share of the slices
    assert px.abs().max() <= cfg.elastic_px * 1.5  # bicubic overshoots the control points a little
    assert px.abs().max() > 0.5 * cfg.elastic_px
    step = (px[:, 1:] - px[:, :-1]).abs().max()
    assert step < 0.75  # smooth, and no folds (a step of a pixel or more would fold the image)


def test_augmentation_moves_image_and_labels_together_and_is_seeded():
    img = torch.zeros(4, 3, 64, 64)
    lab = torch.zeros(4, 64, 64, dtype=torch.long)
    img[:, :, 20:40, 25:45] = 0.8
    lab[:, 20:40, 25:45] = 5
    cfg = AugmentSettings(contrast=0, offset=0, noise_sigma=0, edge_cut=0)
    a_img, a_lab = augment_batch(img, lab, cfg, torch.Generator().manual_seed(3))
    b_img, b_lab = augment_batch(img, lab, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    inside = a_lab == 5
    assert inside.sum() > 0.7 * (lab == 5).sum()
    # Where the label says muscle, the image is bright: they moved together.
    assert a_img[:, 1][inside].mean() > 0.7
    assert set(a_lab.unique().tolist()) <= {0, 5}
    assert not math.isclose(float((a_lab == 5).float().mean()), float((lab == 5).float().mean()), rel_tol=1e-6)


def test_scan_edge_cut_blanks_image_and_labels_beyond_one_straight_line():
    img = torch.full((6, 3, 64, 64), 0.6)
    lab = torch.full((6, 64, 64), 4, dtype=torch.long)
    still = AugmentSettings(scale=0, shift_px=0, rotation_deg=0, contrast=0, offset=0, noise_sigma=0, edge_cut=1,
                            anisotropy=0, elastic_px=0)
    out, out_lab = augment_batch(img, lab, still, torch.Generator().manual_seed(1), view="axial")
    cut = out_lab == 0
    assert cut.any(dim=(1, 2)).all() and (~cut).any(dim=(1, 2)).all()  # every slice cut, none wiped
    assert torch.equal(cut[:, None].expand_as(out), out == 0)  # image blank exactly where labels are
    assert torch.allclose(out[~cut[:, None].expand_as(out)], torch.tensor(0.6))


def test_scan_edge_runs_along_the_femur_in_long_views_and_any_way_in_axial_slices():
    cfg = AugmentSettings(edge_cut=1)
    size = (180, 128)  # H along the femur, as in the coronal and sagittal reformats
    long = scan_edge_mask(400, size, cfg, torch.Generator().manual_seed(2), "coronal")
    per_row = long.sum(dim=2).float()  # cut pixels in each row of each slice
    tilt = torch.rad2deg(torch.atan((per_row[:, -1] - per_row[:, 0]).abs() / (size[0] - 1)))
    assert tilt.max() <= cfg.edge_cut_tilt_deg + 1  # the line stays within 10° of the femur
    assert long[:, :, 0].any() and long[:, :, -1].any()  # both sides of the thigh get cut
    axial = scan_edge_mask(400, (128, 128), cfg, torch.Generator().manual_seed(2), "axial")
    for edge in (axial[:, 0, :], axial[:, -1, :], axial[:, :, 0], axial[:, :, -1]):
        assert edge.all(dim=1).any()  # some cuts take a whole top, bottom, left or right edge
    share = scan_edge_mask(4000, (8, 8), AugmentSettings(), torch.Generator().manual_seed(3), "axial")
    assert 0.2 < share.any(dim=(1, 2)).float().mean() < 0.3  # the default 25 %
    kept = (~axial).float().mean(dim=(1, 2))
    assert kept.min() > 0.5  # never more than half the slice: the femur, at the centre, stays


def test_cosine_learning_rate_runs_from_lr_to_lr_final_and_is_constant_without_it():
    from ThighMuscleSegLib.training.loop import TrainConfig, epoch_lr

    cfg = TrainConfig(epochs=11, lr=1e-3, lr_final=1e-5)
    rates = [epoch_lr(cfg, e) for e in range(1, 12)]
    assert math.isclose(rates[0], 1e-3) and math.isclose(rates[-1], 1e-5)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert math.isclose(rates[5], (1e-3 + 1e-5) / 2)
    assert epoch_lr(TrainConfig(epochs=11, lr=1e-3), 7) == 1e-3
