"""One phantom case: a bilateral lower-body CT with its thigh-muscle labels.

case = template (pre-voxelized) -> per-muscle atrophy/hypertrophy -> backward resampling
through pose, elastic warp and scale onto a scanner grid -> subcutaneous fat and skin from the
envelope depth -> Hounsfield values, blur, noise, a patient table.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..progress import NULL, Progress
from . import composition
from .deform import make_deformation
from .muscles import apply_factors, draw_factors
from .template import DATA_DIR, DEPTH_UNIT_MM, Template, build_template, load_template

GENERATOR_VERSION = f"phantom-1.0 (thighseg {__version__})"
SIZES = {
    # matrix, pixel mm range, slice mm range, most slices
    "full": (512, (0.6, 0.95), (1.0, 2.0), 400),
    "small": (256, (1.7, 2.0), (2.5, 3.5), 200),
}
COARSE_MM = 6.0  # spacing of the displacement field handed to SimpleITK


@dataclass
class PhantomCase:
    ct: sitk.Image  # int16 HU
    labels: sitk.Image  # uint8, right 1-10, left 11-20
    params: dict  # JSON-serializable: what case.json holds


@functools.lru_cache(maxsize=4)
def _template(anatomy: str | None) -> Template:
    return load_template(DATA_DIR) if anatomy is None else build_template(anatomy)


def _body_bounds(t: Template) -> tuple[np.ndarray, np.ndarray]:
    zz, yy, xx = np.nonzero(t.labels[::2, ::2, ::2])
    idx_lo = np.array([xx.min(), yy.min(), zz.min()]) * 2
    idx_hi = np.array([xx.max(), yy.max(), zz.max()]) * 2
    org = np.asarray(t.origin)
    return org + idx_lo * t.spacing, org + idx_hi * t.spacing


def _scanner_grid(rng, size: str, t: Template, deform, params: dict):
    """Origin, spacing and size of the CT; the field of view follows the deformed body."""
    matrix, pix_rng, sl_rng, max_slices = SIZES[size]
    lo, hi = _body_bounds(t)
    marks = t.landmarks
    knee_z = min(marks[s]["condyles"][2] for s in ("right", "left"))
    hip_z = max(marks[s]["head"][2] for s in ("right", "left"))
    top_q, bottom_q = min(hi[2] - 4, hip_z + 140.0), knee_z - 60.0  # iliac crest .. below the knee
    if rng.uniform() < 0.3:  # a shorter field that may cut the thigh
        length = rng.uniform(0.45, 0.8) * (top_q - bottom_q)
        start = rng.uniform(bottom_q, top_q - length)
        bottom_q, top_q = start, start + length
        params["field"] = "partial"
    else:
        params["field"] = "hips to below the knees"
    centre_q = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, 0])
    ends = deform.forward(np.array([[centre_q[0], centre_q[1], bottom_q], [centre_q[0], centre_q[1], top_q]]))
    z0, z1 = sorted([ends[0, 2], ends[1, 2]])
    pixel = float(rng.uniform(*pix_rng))
    thick = max(float(rng.uniform(*sl_rng)), (z1 - z0) / (max_slices - 1))
    nz = int((z1 - z0) / thick) + 1
    c = deform.forward(centre_q[None] + [0, 0, (top_q + bottom_q) / 2])[0]
    c[:2] += rng.uniform(-15, 15, 2)
    c[1] += 25.0 * pixel / 0.8  # leave room for the table below the body
    origin = np.array([c[0] - pixel * (matrix - 1) / 2, c[1] - pixel * (matrix - 1) / 2, z0])
    params.update({"matrix": matrix, "pixel_mm": round(pixel, 4), "slice_mm": round(thick, 4), "slices": nz})
    return origin, np.array([pixel, pixel, thick]), (matrix, matrix, nz)


def _reference(origin, spacing, size) -> sitk.Image:
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetOrigin([float(v) for v in origin])
    ref.SetSpacing([float(v) for v in spacing])
    return ref


def _displacement(deform, origin, spacing, size) -> sitk.DisplacementFieldTransform:
    ext = np.asarray(spacing) * (np.asarray(size) - 1)
    n = np.ceil(ext / COARSE_MM).astype(int) + 3
    o = np.asarray(origin) - COARSE_MM
    g = np.stack(np.meshgrid(*[o[i] + COARSE_MM * np.arange(n[i]) for i in range(3)], indexing="ij"), -1)
    pts = g.reshape(-1, 3)
    disp = (deform.backward(pts) - pts).reshape(n[0], n[1], n[2], 3).transpose(2, 1, 0, 3)
    field = sitk.GetImageFromArray(disp.astype(np.float64), isVector=True)
    field.SetOrigin(o.tolist())
    field.SetSpacing([COARSE_MM] * 3)
    return sitk.DisplacementFieldTransform(field)


def make_case(seed: int, *, size: str = "full", anatomy: Path | None = None,
              progress: Progress | None = None) -> PhantomCase:
    """Synthesize one case; the same seed (and anatomy) gives the same case."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    progress = progress or NULL
    progress.update("phantom", 0.0, f"case seed {seed}: template")
    t = _template(None if anatomy is None else str(Path(anatomy).resolve()))
    rng = np.random.default_rng(seed)
    params: dict = {"seed": int(seed), "size": size, "generator": GENERATOR_VERSION,
                    "anatomy": "bundled VHF template" if anatomy is None else str(anatomy)}
    lo, hi = _body_bounds(t)
    deform = make_deformation(rng, t.landmarks, (lo + hi) / 2, hi - lo, params)
    factors = draw_factors(rng)
    params["muscle_volume_factor"] = {str(k): round(v, 3) for k, v in factors.items()}
    origin, spacing, shape = _scanner_grid(rng, size, t, deform, params)
    origin_sh = origin  # physical shift is already inside the deformation
    progress.update("phantom", 0.15, "atrophy and hypertrophy")
    labels_t = apply_factors(t.labels, factors)
    progress.update("phantom", 0.3, "resampling onto the scanner grid")
    ref = _reference(origin_sh, spacing, shape)
    tf = _displacement(deform, origin_sh, spacing, shape)
    lab_img = sitk.Resample(t.image(labels_t), ref, tf, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    dep_img = sitk.Resample(t.image(t.depth.astype(np.float32) * DEPTH_UNIT_MM), ref, tf,
                            sitk.sitkLinear, 255.0, sitk.sitkFloat32)
    progress.update("phantom", 0.6, "Hounsfield values, blur and noise")
    tissue = sitk.GetArrayFromImage(lab_img)
    depth = sitk.GetArrayFromImage(dep_img)
    ct, labels = composition.compose(rng, tissue, depth, spacing, params)
    ct_img = sitk.GetImageFromArray(ct)
    ct_img.CopyInformation(ref)
    lab_out = sitk.GetImageFromArray(labels)
    lab_out.CopyInformation(ref)
    marks = {s: np.array([t.landmarks[s]["head"], t.landmarks[s]["condyles"]]) for s in ("right", "left")}
    params["femur_axis"] = {s: dict(zip(("proximal", "distal"), deform.forward(m).round(2).tolist()))
                            for s, m in marks.items()}
    zs = np.nonzero(((labels >= 1) & (labels <= 20)).any(axis=(1, 2)))[0]
    params["thigh_z_range_mm"] = ([round(float(origin[2] + spacing[2] * zs.min()), 2),
                                   round(float(origin[2] + spacing[2] * zs.max()), 2)] if zs.size else None)
    params["origin"] = [round(float(v), 3) for v in origin]
    progress.update("phantom", 1.0, f"case seed {seed} done")
    return PhantomCase(ct_img, lab_out, params)
