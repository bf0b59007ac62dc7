"""Hounsfield values of the phantom tissues, calibrated against the real VHF CT.

``TISSUE_HU`` holds (mean, texture sd) per tissue. The means come from ``measure_real_ct``
run on ../shared/data/visible-human-female/ct (knee and pelvis; the numbers it printed are in
``REFERENCE_MEASURED``); ``thighseg phantom --calibration`` prints the comparison again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

# Values the phantom uses: (mean HU, sd of the tissue's own texture).
TISSUE_HU: dict[str, tuple[float, float]] = {
    "air": (-1000.0, 0.0),
    "fat": (-104.0, 8.0),
    "muscle": (40.0, 8.0),  # the cadaver's 35 HU; living muscle is 40-60 HU
    "marrow": (150.0, 40.0),  # cancellous bone of the epiphyses (knee, hip), as measured
    "shaft_marrow": (-30.0, 20.0),  # adult femoral shaft: fatty (yellow) marrow, not in the CTs
    "cortical_bone": (1280.0, 120.0),
    "skin": (10.0, 10.0),  # the real shell reads lower through partial volume with air
    "cartilage": (110.0, 10.0),
    "table": (150.0, 20.0),
}
# Same tissues measured by ``measure_real_ct`` on the shared knee + pelvis CT (cadaver).
REFERENCE_MEASURED: dict[str, float] = {
    "fat": -104.0, "muscle": 35.0, "marrow": 156.0, "cortical_bone": 1278.0, "skin": -52.0}


def _mode(values: np.ndarray, lo: float, hi: float) -> float:
    v = values[(values >= lo) & (values <= hi)]
    if v.size == 0:
        return float("nan")
    hist, edges = np.histogram(v, bins=int(hi - lo) // 2)
    hist = ndi.gaussian_filter1d(hist.astype(float), 2)
    return float((edges[hist.argmax()] + edges[hist.argmax() + 1]) / 2)


def measure_real_ct(ct_dir: str | Path) -> dict[str, float]:
    """Tissue HU of the real CTs in ``ct_dir``: histogram modes for fat and muscle, the outer
    body shell for skin, bone interiors for marrow, the densest bone voxels for cortex."""
    out: dict[str, list[float]] = {k: [] for k in ("fat", "muscle", "marrow", "cortical_bone", "skin")}
    for f in sorted(Path(ct_dir).glob("*.nii*")):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(f))).astype(np.float32)
        body = ndi.binary_fill_holes(a > -400, structure=np.ones((1, 3, 3))) if a.ndim == 3 else a > -400
        body = np.stack([ndi.binary_fill_holes(s) for s in (a > -400)])
        inner = ndi.binary_erosion(body, np.ones((1, 3, 3)), iterations=3)
        soft = a[inner]
        out["fat"].append(_mode(soft, -200, -30))
        out["muscle"].append(_mode(soft, 0, 120))
        shell = body & ~ndi.binary_erosion(body, np.ones((1, 3, 3)), iterations=2)
        out["skin"].append(float(np.median(a[shell & (a > -200)])))
        bone = np.stack([ndi.binary_fill_holes(s) for s in (a > 300)])
        core = ndi.binary_erosion(bone, np.ones((1, 3, 3)), iterations=4)
        if core.any():
            out["marrow"].append(float(np.median(a[core])))
        dense = a[bone & (a > 300)]
        if dense.size:
            out["cortical_bone"].append(float(np.percentile(dense, 90)))
    return {k: float(np.nanmean(v)) for k, v in out.items() if v}


def calibration_table(ct_dir: str | Path) -> str:
    """A printable comparison of the phantom's HU with the real CT's."""
    measured = measure_real_ct(ct_dir)
    rows = [f"{'tissue':<14}{'phantom HU':>12}{'real CT HU':>12}{'diff':>8}"]
    for k, v in measured.items():
        mean = TISSUE_HU[k][0]
        rows.append(f"{k:<14}{mean:>12.0f}{v:>12.0f}{mean - v:>8.0f}")
    return "\n".join(rows)
