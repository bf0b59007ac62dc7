"""Vote, then clean: the 2D / 2.5D views' labels fused into one thigh's prediction.

The step after the nets (``predict``) and before de-cropping (``framing``): the fusion rule
(``voting``), the per-voxel disagreement and confidence, the clean-up (``cleanup``) and the
per-class agreement the quality flag reads (``agreement``).
"""

from __future__ import annotations

import time

import numpy as np

from . import cleanup, voting
from .agreement import class_stats
from .prediction import ThighPrediction, ViewOutputs


def fuse_and_clean(outputs: ViewOutputs, fusion: str = "vote", clean: bool = True,
                   progress=None, analysed: slice = slice(None)) -> ThighPrediction:
    """The views' fused labels, their disagreement, the clean-up and the per-class statistics.
    ``analysed``: the grid slices of the analysed field inside a longer read
    (``framing.ThighFrame.analysed_slices``): the kept part of each muscle must reach into
    them, and the statistics (the quality flag's evidence) are taken over them."""
    view_labels, prob_sum, seconds = outputs.view_labels, outputs.prob_sum, dict(outputs.seconds)
    t0 = time.perf_counter()
    if progress is not None:
        progress.update("fuse", 0.0, f"fusing {len(view_labels)} views ({fusion})")
    views = list(view_labels.values())
    fused = voting.fuse(views, prob_sum, fusion)
    disagree = voting.disagreement(views, fused)
    confidence = (np.take_along_axis(prob_sum, fused[None].astype(np.intp), axis=0)[0]
                  / len(views)).astype(np.float16)
    seconds["fuse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if progress is not None:
        progress.update("clean", 0.0, "keeping the largest connected part of each muscle")
    labels = cleanup.keep_largest_components(fused, within=analysed) if clean else fused.copy()
    seconds["clean"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    grid_hu = None if outputs.grid_hu is None else outputs.grid_hu[analysed]
    stats = class_stats([v[analysed] for v in views], prob_sum[:, analysed], fused[analysed], labels[analysed], grid_hu)
    seconds["agreement"] = time.perf_counter() - t0
    return ThighPrediction(labels, fused, disagree, confidence, view_labels, fusion, outputs.device, seconds,
                           stats)
