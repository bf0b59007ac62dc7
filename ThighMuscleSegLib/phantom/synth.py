"""One phantom case: a bilateral lower-body CT with its thigh-muscle labels.

case = a body drawn from the population (``population.draw_body``: size, muscle volumes,
atrophy pattern, fat, muscle attenuation, scanner) -> template (pre-voxelized) with femoral
vessels (and sometimes metal) -> per-muscle atrophy/hypertrophy and septa -> backward
resampling through pose, elastic warps and scale onto a scanner grid -> subcutaneous fat and
skin from the envelope depth -> Hounsfield values, blur, noise, a patient table.
``population="template"`` makes the one-body phantoms of generator 1.0, unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..progress import NULL, Progress
from . import composition
from .deform import make_deformation
from .followup import FollowUp, cut_slices, rescan_appearance, scan_rng, shrink_labels
from .muscles import add_septa, apply_factors, draw_factors
from .population import DEFAULT_POPULATION, POPULATIONS, Body, draw_body
from .vessels import paint_metal, paint_vessels
from .template import DATA_DIR, DEPTH_UNIT_MM, Template, build_template, envelope_depth, load_template

GENERATOR_VERSION = f"phantom-1.0 (thighseg {__version__})"  # population="template"
POPULATION_GENERATOR_VERSION = f"phantom-2.0 (thighseg {__version__})"  # population="adult"
SIZES = {
    # matrix, pixel mm range, slice mm range, most slices
    "full": (512, (0.6, 0.95), (1.0, 2.0), 320),  # <= 320 slices keeps a case near 15 s
    "small": (256, (1.7, 2.0), (2.5, 3.5), 200),
}
MAX_FIELD_OF_VIEW_MM = 500.0  # a CT scanner's largest display field of view
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


def _scanner_grid(rng, size: str, t: Template, deform, params: dict, body: Body | None = None,
                  follow: FollowUp | None = None):
    """Origin, spacing and size of the CT; the field of view follows the deformed body.
    ``follow.cut_field`` removes whole slices at the knee (bottom) or hip (top) end."""
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
    thick = float(rng.uniform(*sl_rng))
    offset = rng.uniform(-15, 15, 2)
    if body is not None and size == "full":  # the body's scanner: 0.6-1 mm pixels, 0.6-5 mm slices
        pixel, thick, offset = body.appearance["pixel_mm"], body.appearance["slice_mm"], body.appearance["fov_offset_mm"]
        # As a radiographer would, widen the field of view to the body (hips, scaled, with its
        # fat), up to the scanner's 500 mm: a large patient is not cut by a small field.
        width = (hi[0] - lo[0]) * body.girth_scale[0] + 2.0 * body.subcutaneous_fat_mm
        pixel = float(min(max(pixel, 1.04 * width / matrix), MAX_FIELD_OF_VIEW_MM / matrix))
    thick = max(thick, (z1 - z0) / (max_slices - 1))
    nz = int((z1 - z0) / thick) + 1
    if follow is not None and follow.cut_field:
        knee, hip = cut_slices(follow, thick)
        if nz - knee - hip < 2:
            raise ValueError(f"cutting {follow.cut_field} mm leaves no field ({nz} slices of {thick:.2f} mm)")
        z0, nz = z0 + knee * thick, nz - knee - hip
    c = deform.forward(centre_q[None] + [0, 0, (top_q + bottom_q) / 2])[0]
    c[:2] += offset
    c[1] += 25.0 * pixel / 0.8  # leave room for the table below the body
    origin = np.array([c[0] - pixel * (matrix - 1) / 2, c[1] - pixel * (matrix - 1) / 2, z0])
    params.update({"matrix": matrix, "pixel_mm": round(pixel, 4), "slice_mm": round(thick, 4), "slices": nz})
    return origin, np.array([pixel, pixel, thick]), (matrix, matrix, nz)


def _reference(origin, spacing, size) -> sitk.Image:
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetOrigin([float(v) for v in origin])
    ref.SetSpacing([float(v) for v in spacing])
    return ref


def _field(deform, side: str, origin, spacing, size):
    """The ``side`` leg's backward map as a coarse displacement field, and the CT index box
    where that leg's body (with up to 5 cm of fat) can be."""
    ext = np.asarray(spacing) * (np.asarray(size) - 1)
    n = np.ceil(ext / COARSE_MM).astype(int) + 3
    o = np.asarray(origin) - COARSE_MM
    g = np.stack(np.meshgrid(*[o[i] + COARSE_MM * np.arange(n[i]) for i in range(3)], indexing="ij"), -1)
    pts = g.reshape(-1, 3)
    q = deform.backward(pts, side)
    disp = (q - pts).reshape(n[0], n[1], n[2], 3).transpose(2, 1, 0, 3)
    field = sitk.GetImageFromArray(disp.astype(np.float64), isVector=True)
    field.SetOrigin(o.tolist())
    field.SetSpacing([COARSE_MM] * 3)
    return sitk.DisplacementFieldTransform(field), q.reshape(n[0], n[1], n[2], 3), o


@dataclass
class SplitTemplate:
    """The template cut at the midline into a right and a left half, each with the fat depth
    of its own leg: a leg resampled through its own map only ever sees its own tissue."""

    template: Template
    midline_x: float
    depth: dict  # side -> depth array (DEPTH_UNIT_MM) of that half

    @property
    def cut(self) -> int:
        return int(round((self.midline_x - self.template.origin[0]) / self.template.spacing))

    def half(self, labels: np.ndarray, side: str) -> np.ndarray:
        out = np.zeros_like(labels)
        if side == "right":
            out[:, :, :self.cut] = labels[:, :, :self.cut]
        else:
            out[:, :, self.cut:] = labels[:, :, self.cut:]
        return out

    def image(self, arr: np.ndarray) -> sitk.Image:
        return self.template.image(arr)

    def near_body(self, q: np.ndarray, side: str) -> np.ndarray:
        t = self.template
        idx = np.rint((q - np.asarray(t.origin)) / t.spacing).astype(int)[..., ::-1]
        ok = np.all((idx >= 0) & (idx < t.labels.shape), axis=-1)
        out = np.zeros(q.shape[:-1], bool)
        i = idx[ok]
        out[ok] = self.depth[side][i[:, 0], i[:, 1], i[:, 2]] * DEPTH_UNIT_MM < 50.0
        return out


def _resample_legs(split: SplitTemplate, labels_t: np.ndarray, deform, origin, spacing, shape):
    """Both legs' maps resampled onto one box of the CT grid; each voxel takes the leg whose
    envelope is nearer (legs pressed together: the right one), so the legs meet cleanly."""
    fields, boxes = {}, []
    for side in ("right", "left"):
        tf, q, o = _field(deform, side, origin, spacing, shape)
        fields[side] = tf
        idx = np.argwhere(split.near_body(q, side))
        if idx.size:
            boxes.append((o + (idx.min(0) - 1) * COARSE_MM, o + (idx.max(0) + 1) * COARSE_MM))
    size = np.asarray(shape)
    if not boxes:
        lo, hi = np.zeros(3, int), np.minimum(size, 2)
    else:
        lo = np.clip(np.floor((np.min([b[0] for b in boxes], 0) - origin) / spacing).astype(int), 0, size - 1)
        hi = np.clip(np.ceil((np.max([b[1] for b in boxes], 0) - origin) / spacing).astype(int) + 1, lo + 1, size)
    # The template holds 2 mm detail: below ~1.2 mm pixels, resample on a grid of 2x2 pixel
    # blocks (4x faster) and upsample: labels by repetition, the fat depth bilinearly.
    f = 2 if spacing[0] < 1.2 else 1
    for i in (0, 1):
        if (hi[i] - lo[i]) % f:
            hi[i] = min(hi[i] + 1, size[i]) if hi[i] < size[i] else hi[i]
            lo[i] = lo[i] - 1 if (hi[i] - lo[i]) % f else lo[i]
    coarse_sp = np.array([spacing[0] * f, spacing[1] * f, spacing[2]])
    coarse_org = origin + lo * spacing + [(f - 1) * spacing[0] / 2, (f - 1) * spacing[1] / 2, 0]
    coarse_size = np.array([(hi[0] - lo[0]) // f, (hi[1] - lo[1]) // f, hi[2] - lo[2]])
    box = _reference(coarse_org, coarse_sp, coarse_size)
    tissue = depth = None
    for side in ("right", "left"):
        lab = sitk.GetArrayFromImage(sitk.Resample(split.image(split.half(labels_t, side)), box, fields[side],
                                                   sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
        dep = sitk.GetArrayFromImage(sitk.Resample(split.image(split.depth[side]), box, fields[side],
                                                   sitk.sitkLinear, 255.0, sitk.sitkFloat32))
        if tissue is None:
            tissue, depth = lab, dep
        else:
            take = dep < depth
            tissue[take] = lab[take]
            depth[take] = dep[take]
    if f == 2:
        tissue = np.repeat(np.repeat(tissue, 2, axis=1), 2, axis=2)
        coarse = sitk.GetImageFromArray(depth)
        coarse.CopyInformation(box)
        fine = _reference(origin + lo * spacing, spacing, hi - lo)
        depth = sitk.GetArrayFromImage(sitk.Resample(coarse, fine, sitk.Transform(), sitk.sitkLinear, 255.0,
                                                     sitk.sitkFloat32))
    return tissue, depth * DEPTH_UNIT_MM, lo


@functools.lru_cache(maxsize=4)
def _with_vessels(anatomy: str | None) -> np.ndarray:
    t = _template(anatomy)
    return paint_vessels(t.labels, t)


def _body_labels(anatomy: str | None, body: Body, factors: dict) -> np.ndarray:
    """The template's tissue as this body has it: vessels, metal, muscle sizes, septa."""
    t = _template(anatomy)
    labels = _with_vessels(anatomy)
    if body.appearance["metal"] != "none":
        labels = paint_metal(labels, t, body.appearance["metal"], body.appearance["metal_side"])
    labels = apply_factors(labels, factors, into_neighbours=True)
    return add_septa(labels, body.septa_voxels)


@functools.lru_cache(maxsize=4)
def _split(anatomy: str | None) -> SplitTemplate:
    t = _template(anatomy)
    mid = (t.landmarks["right"]["head"][0] + t.landmarks["left"]["head"][0]) / 2
    s = SplitTemplate(t, mid, {})
    sides = ("right", "left")
    with ThreadPoolExecutor(2) as pool:  # SciPy's distance transform releases the GIL: 2.6 -> 0.8 s
        depths = pool.map(lambda side: envelope_depth(s.half(t.labels, side), t.spacing), sides)
        s.depth.update(zip(sides, depths))
    return s


def _shaft_axis_points(t: Template) -> dict[str, np.ndarray]:
    """Per side, two points (template mm) on the line fitted through the centres of the
    femoral shaft's fatty marrow: the anatomical long axis that framing measures (the
    head-to-condyles line in ``femur_axis`` is the mechanical axis, a few degrees off)."""
    from .template import SHAFT_MARROW

    zs, ys, xs = np.nonzero(t.labels == SHAFT_MARROW)
    pts = np.array(t.origin) + np.stack([xs, ys, zs], 1) * t.spacing
    mid_x = (t.landmarks["right"]["condyles"][0] + t.landmarks["left"]["condyles"][0]) / 2
    out = {}
    for side, sel in (("right", pts[:, 0] < mid_x), ("left", pts[:, 0] >= mid_x)):
        p = pts[sel]
        levels = np.unique(p[:, 2])
        centres = np.array([p[p[:, 2] == z].mean(axis=0) for z in levels])
        c = centres.mean(axis=0)
        d = np.linalg.svd(centres - c, full_matrices=False)[2][0]
        d = d if d[2] > 0 else -d
        half = (levels.max() - levels.min()) / 2 / d[2]
        out[side] = np.array([c + half * d, c - half * d])
    return out


def make_case(seed: int, *, size: str = "full", anatomy: Path | None = None,
              progress: Progress | None = None, population: str = DEFAULT_POPULATION,
              followup: FollowUp | None = None) -> PhantomCase:
    """Synthesize one case; the same seed, anatomy and population give the same case.
    ``followup``: the same body rescanned, with a muscle shrunk or the field cut (followup.py)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {', '.join(POPULATIONS)}, not {population!r}")
    progress = progress or NULL
    progress.update("phantom", 0.0, f"case seed {seed}: template")
    key = None if anatomy is None else str(Path(anatomy).resolve())
    split = _split(key)
    t = split.template
    rng = np.random.default_rng(seed)
    body = draw_body(seed) if population == "adult" else None
    follow = followup or FollowUp()
    srng = scan_rng(seed, follow, rng)
    if body is not None and follow.rescan:
        body = dataclasses.replace(body, appearance=rescan_appearance(srng, body.appearance))
    params: dict = {"seed": int(seed), "size": size,
                    "generator": GENERATOR_VERSION if body is None else POPULATION_GENERATOR_VERSION,
                    "population": population,
                    "anatomy": "bundled VHF template" if anatomy is None else str(anatomy)}
    if body is not None:
        params["body"] = body.to_params()
    if not follow.is_original:
        params["followup"] = follow.to_params()
    lo, hi = _body_bounds(t)
    deform = make_deformation(rng, t.landmarks, (lo + hi) / 2, hi - lo, params, body, pose_rng=srng)
    factors = draw_factors(rng)
    if body is not None:
        factors = dict(body.volume_factor)
    params["muscle_volume_factor"] = {str(k): round(v, 3) for k, v in factors.items()}
    origin, spacing, shape = _scanner_grid(srng, size, t, deform, params, body, follow)
    progress.update("phantom", 0.15, "atrophy and hypertrophy")
    labels_t = apply_factors(t.labels, factors) if body is None else _body_labels(key, body, factors)
    labels_t = shrink_labels(labels_t, follow)
    progress.update("phantom", 0.3, "resampling onto the scanner grid")
    tissue, depth, lo_i = _resample_legs(split, labels_t, deform, origin, spacing, shape)
    progress.update("phantom", 0.6, "Hounsfield values, blur and noise")
    ct, labels = composition.compose(srng, tissue, depth, spacing, params, shape[::-1], lo_i[::-1], body)
    ref = _reference(origin, spacing, shape)
    ct_img = sitk.GetImageFromArray(ct)
    ct_img.CopyInformation(ref)
    lab_out = sitk.GetImageFromArray(labels)
    lab_out.CopyInformation(ref)
    marks = {s: np.array([t.landmarks[s]["head"], t.landmarks[s]["condyles"]]) for s in ("right", "left")}
    params["femur_axis"] = {s: dict(zip(("proximal", "distal"), deform.forward(m).round(2).tolist()))
                            for s, m in marks.items()}
    params["femur_shaft_axis"] = {s: dict(zip(("proximal", "distal"), deform.forward(m).round(2).tolist()))
                                  for s, m in _shaft_axis_points(t).items()}
    zs = np.nonzero(((labels >= 1) & (labels <= 20)).any(axis=(1, 2)))[0]
    params["thigh_z_range_mm"] = ([round(float(origin[2] + spacing[2] * zs.min()), 2),
                                   round(float(origin[2] + spacing[2] * zs.max()), 2)] if zs.size else None)
    params["origin"] = [round(float(v), 3) for v in origin]
    progress.update("phantom", 1.0, f"case seed {seed} done")
    return PhantomCase(ct_img, lab_out, params)
