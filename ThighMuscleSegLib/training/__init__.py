"""Training: framed cases as slices, augmentation, Dice loss, the loop, checkpoints.

Imports flow one way: ``loop`` (the entry point, ``train``: 2D / 2.5D) hands a 3D model to
``loop3d``; both use ``epochs`` (settings, records, validation, checkpoints) and the parts
(``data``, ``augment``, ``loss``), which import neither loop.
"""
