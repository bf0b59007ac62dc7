"""Training: framed cases as slices, augmentation, Dice loss, the loop, checkpoints."""
