"""The phantom template: surfaces voxelized once into a labelled lower body (2 mm).

The surfaces may come in any frame: ``orient`` finds the body's own frame from its anatomy
and maps them into LPS; the template's z range follows the body's hip and knee.
Tissue values of the template label map: the CT thigh labels keep their own values 1-20,
the other tissues have the constants below. Rebuild the committed template with
``python -m ThighMuscleSegLib.phantom.template SURFACES_DIR``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.spatial import Delaunay

from ..classes import LEFT_OFFSET
from ..io import InputError
from ..progress import NULL, Progress
from .anatomy import THIGH_CLASS_OF, Structure, plan_structures, read_stl
from .orient import DISTAL, HEAD, SIDES, VHF_STL_TO_LPS_SHIFT, find_frame, midplane, mirror, sphere_fit
from .voxelize import Grid, voxelize

OTHER_MUSCLE = 21  # glutei, iliopsoas, lower-leg muscles...: muscle in CT, background in labels
CORTEX = 30
MARROW = 31
CARTILAGE = 32
INTERMUSCULAR_FAT = 33
SHAFT_MARROW = 34  # fatty marrow of the femoral shaft (the rest of MARROW is cancellous)
# Outside the muscle envelope the template holds no label; its depth map (mm from the
# envelope) decides per case where subcutaneous fat, skin and air are.
DEPTH_UNIT_MM = 0.25

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
# Reference placement of the VHF (STL frame -> its knee CT's LPS: x and y flipped, shifted),
# kept for reference: orient.find_frame lands the VHF exactly there.
STL_TO_LPS_SHIFT = VHF_STL_TO_LPS_SHIFT
# Template z range: from below the knee (mid-calf) to above the iliac crest, as shares of the
# femur (condyles to head centre, along z): the VHF's 396-1056 mm about its condyles
# (504.9 mm) and femoral heads (883.2 mm), so a taller body gets a longer range.
KNEE_MARGIN = 0.28783  # below the condyles
HIP_MARGIN = 0.45690  # above the femoral-head centres
VHF_FEMUR_LENGTH_MM = 378.3  # condyles to head centre along z (the mm constants of _femur)
MARGIN_MM = 44.0


@dataclass
class Template:
    labels: np.ndarray  # (z, y, x) uint8 tissue labels (the fat depth is computed per leg: synth.SplitTemplate)
    origin: tuple[float, float, float]
    spacing: float
    landmarks: dict  # femur head / condyle centres per side, mm LPS

    def image(self, arr: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(arr)
        img.SetOrigin(self.origin)
        img.SetSpacing((self.spacing,) * 3)
        return img


def _load_meshes(plan: list[Structure]) -> dict[tuple[str, str], np.ndarray]:
    """Every planned mesh in LPS (the body's frame found from its anatomy); one-sided
    structures mirrored about the body's midplane."""
    raw = {(s.side, s.key): read_stl(s.path) for s in plan if not s.mirrored}
    frame = find_frame(raw)
    meshes = {k: frame.apply(tri) for k, tri in raw.items()}
    normal, point = midplane(meshes)
    for s in plan:
        if s.mirrored:
            other = "left" if s.side == "right" else "right"
            meshes[(s.side, s.key)] = mirror(meshes[(other, s.key)], normal, point)
    return meshes


def _condyle_z(meshes: dict, side: str) -> float:
    """z of the condyle landmark: 45 % up the distal cartilage (as in _femur)."""
    z = meshes[(side, DISTAL)][..., 2]
    return float(z.min() + 0.45 * (z.max() - z.min()))


def z_range_mm(meshes: dict) -> tuple[float, float]:
    """Template z range (whole mm) from the hip and knee landmarks of LPS meshes (both sides)."""
    head = np.mean([sphere_fit(meshes[(s, HEAD)].reshape(-1, 3))[0][2] for s in SIDES])
    knee = np.mean([_condyle_z(meshes, s) for s in SIDES])
    length = head - knee
    return float(round(knee - KNEE_MARGIN * length)), float(round(head + HIP_MARGIN * length))


def _femur_scale(length_mm: float) -> float:
    """Femur length (condyles to head along z) relative to the VHF's, in steps of 1 %."""
    if length_mm <= 0:
        raise InputError("the femoral head is not above the condyles: the body's frame is wrong")
    return round(length_mm / VHF_FEMUR_LENGTH_MM, 2)


def _grid_points(grid: Grid, zs: np.ndarray) -> np.ndarray:
    nz, ny, nx = grid.shape
    return np.asarray(grid.origin) + grid.spacing * np.stack(np.meshgrid(
        np.arange(nx), np.arange(ny), zs, indexing="xy"), -1)


def _femur(labels: np.ndarray, grid: Grid, meshes: dict, side: str) -> tuple[np.ndarray, dict]:
    """Femur mask of one side: head (sphere in the head cartilage), condyles (hull of the distal
    cartilage), shaft (the hole the vasti leave, smoothed to a tube), neck and trochanter."""
    sp, org = grid.spacing, np.asarray(grid.origin)
    nz, ny, nx = grid.shape
    lateral = -1.0 if side == "right" else 1.0  # LPS: +x is the patient's left
    head_c, head_r = sphere_fit(meshes[(side, HEAD)].reshape(-1, 3))
    head_r = min(max(head_r - 2.0, 17.0), 26.0)
    dist = meshes[(side, DISTAL)].reshape(-1, 3)
    hull = Delaunay(dist[:: max(1, len(dist) // 4000)])
    lo, hi = dist.min(0), dist.max(0)
    mask = np.zeros(grid.shape, bool)
    z0, z1 = int((lo[2] - org[2]) / sp), int(np.ceil((hi[2] - org[2]) / sp)) + 1
    zz = np.arange(max(z0, 0), min(z1, nz))
    pts = _grid_points(grid, zz)  # (ny, nx, nzz, 3)
    inside = hull.find_simplex(pts.reshape(-1, 3)) >= 0
    mask[zz] = np.moveaxis(inside.reshape(ny, nx, len(zz)), 2, 0)
    condyle_c = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2] + 0.45 * (hi[2] - lo[2])])
    scale = _femur_scale(head_c[2] - condyle_c[2])  # offsets along the femur follow its length
    # Shaft: per slice, the hole inside this side's thigh muscles near the expected axis.
    side_vals = [v + (LEFT_OFFSET if side == "left" else 0) for v in range(1, 11)]
    muscles = np.isin(labels, side_vals)
    shaft_top = head_c[2] - 55.0 * scale  # about the lesser trochanter
    neck_base = np.array([head_c[0] + lateral * 38.0 * scale, head_c[1] + 8.0 * scale, shaft_top + 12.0 * scale])
    centres, radii, zs = [], [], []
    for k in range(int((hi[2] - 10 - org[2]) / sp), int((shaft_top - org[2]) / sp) + 1):
        z = org[2] + k * sp
        f = (z - condyle_c[2]) / (neck_base[2] - condyle_c[2])
        guess = condyle_c + f * (neck_base - condyle_c)
        filled = ndi.binary_fill_holes(muscles[k]) & ~muscles[k]
        lab, n = ndi.label(filled)
        best = _shaft_hole(lab, n, guess, grid)
        if best:
            zs.append(z); centres.append(best[:2]); radii.append(best[2])
    zs_all = np.arange(int((hi[2] - 10 - org[2]) / sp), int((shaft_top - org[2]) / sp) + 1)
    zphys = org[2] + zs_all * sp
    if len(zs) >= 5:
        cx, cy = _shaft_line(np.asarray(zs), np.asarray(centres), zphys, condyle_c, neck_base)
        r = np.clip(ndi.median_filter(np.interp(zphys, zs, radii), 9), 11.0, 17.0)
    else:  # no hole found (another data set): a straight tube between the landmarks
        f = (zphys - condyle_c[2]) / (neck_base[2] - condyle_c[2])
        cx = condyle_c[0] + f * (neck_base[0] - condyle_c[0])
        cy = condyle_c[1] + f * (neck_base[1] - condyle_c[1])
        r = np.full_like(zphys, 13.5)
    # Flare towards the condyles (metaphysis) and the trochanters.
    r = r + 10.0 * np.exp(-(zphys - hi[2]) / 30.0) + 6.0 * np.exp(-(shaft_top - zphys) / 15.0)
    yy, xx = np.mgrid[0:ny, 0:nx]
    X, Y = org[0] + xx * sp, org[1] + yy * sp
    for k, x0, y0, rr in zip(zs_all, cx, cy, r):
        if 0 <= k < nz:
            mask[k] |= (X - x0) ** 2 + (Y - y0) ** 2 <= rr ** 2
    top = np.array([cx[-1], cy[-1], zphys[-1]])
    _paint_capsule(mask, grid, head_c, head_c, head_r)
    _paint_capsule(mask, grid, head_c, top + [0, 0, 10.0], 15.0)  # neck
    troch = top + np.array([lateral * 22.0, 4.0, 18.0]) * scale
    _paint_capsule(mask, grid, top, troch, 17.0)  # greater trochanter
    marks = {"head": head_c.round(2).tolist(), "condyles": condyle_c.round(2).tolist(),
             "shaft_top": top.round(2).tolist()}
    return mask, marks


def _shaft_hole(lab: np.ndarray, n: int, guess: np.ndarray, grid: Grid) -> tuple | None:
    """The femur-sized hole (250-1300 mm2) nearest the expected axis (within 25 mm) among the
    ``n`` labelled holes of one slice: (x, y, radius) mm, or None."""
    sp, org = grid.spacing, np.asarray(grid.origin)
    best, best_d = None, 25.0
    for i in range(1, n + 1):
        yy, xx = np.nonzero(lab == i)
        area = len(xx) * sp * sp
        x, y = org[0] + xx.mean() * sp, org[1] + yy.mean() * sp
        d = float(np.hypot(x - guess[0], y - guess[1]))
        if 250 <= area <= 1300 and d < best_d:
            best, best_d = (x, y, np.sqrt(area / np.pi)), d
    return best


def _shaft_line(zs: np.ndarray, centres: np.ndarray, zphys: np.ndarray, bottom: np.ndarray,
                top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shaft centre line at ``zphys``: a cubic through the hole centres within their z range;
    beyond it straight on to the landmarks (condyles below, neck base above) rather than the
    cubic's extrapolation, which swings by centimetres with a slice more or less found."""
    px, py = np.polyfit(zs, centres[:, 0], 3), np.polyfit(zs, centres[:, 1], 3)
    z0, z1 = zs.min(), zs.max()

    def fit(z):
        return np.array([np.polyval(px, z), np.polyval(py, z)])

    out = fit(np.clip(zphys, z0, z1))
    for end, z_end, anchor in ((zphys < z0, z0, bottom), (zphys > z1, z1, top)):
        if end.any() and abs(anchor[2] - z_end) > 1e-6:
            f = np.clip((zphys[end] - z_end) / (anchor[2] - z_end), 0.0, 1.0)
            out[:, end] = fit(z_end)[:, None] + f * (anchor[:2] - fit(z_end))[:, None]
    return out[0], out[1]


def _paint_capsule(mask: np.ndarray, grid: Grid, a: np.ndarray, b: np.ndarray, r: float) -> None:
    sp, org = grid.spacing, np.asarray(grid.origin)
    lo = np.maximum(((np.minimum(a, b) - r - org) / sp).astype(int), 0)
    hi = np.minimum(((np.maximum(a, b) + r - org) / sp).astype(int) + 2, grid.shape[::-1])
    zz, yy, xx = np.mgrid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    p = np.stack([xx, yy, zz], -1) * sp + org
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-9), 0, 1)
    d = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)
    mask[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] |= d <= r


def build_template(folder: str | Path, spacing: float = 2.0, progress: Progress = NULL) -> Template:
    """Voxelize an anatomy folder into a template (a few tens of seconds)."""
    plan = plan_structures(folder)
    meshes = _load_meshes(plan)
    allpts = np.concatenate([m.reshape(-1, 3) for m in meshes.values()])
    z_lo, z_hi = z_range_mm(meshes)
    lo = np.array([allpts[:, 0].min(), allpts[:, 1].min(), z_lo]) - [MARGIN_MM, MARGIN_MM, 0]
    hi = np.array([allpts[:, 0].max(), allpts[:, 1].max(), z_hi]) + [MARGIN_MM, MARGIN_MM, 0]
    shape = tuple(int(v) for v in np.ceil((hi - lo) / spacing)[::-1] + 1)
    grid = Grid(tuple(lo), spacing, shape)
    labels = np.zeros(shape, np.uint8)
    # Paint order: other muscles, bones, thigh muscles (win overlaps), femur, cartilage.
    def order(item):
        (side, key), _ = item
        return (0 if key.startswith("bone_") else 1 if key not in THIGH_CLASS_OF else 2
                if not key.startswith("cartilage_") else 3)
    items = sorted(meshes.items(), key=order)
    for n, ((side, key), tri) in enumerate(items):
        progress.update("template", n / len(items), f"voxelizing {side} {key}")
        m = voxelize(tri, grid)
        if key.startswith("bone_"):
            labels[m] = CORTEX
            labels[ndi.binary_erosion(m, iterations=1)] = MARROW
        elif key.startswith("cartilage_"):
            continue  # painted after the femur
        elif key in THIGH_CLASS_OF:
            labels[m] = THIGH_CLASS_OF[key] + (LEFT_OFFSET if side == "left" else 0)
        else:
            labels[m & (labels == 0)] = OTHER_MUSCLE
    landmarks = {}
    for side in ("right", "left"):
        femur, landmarks[side] = _femur(labels, grid, meshes, side)
        labels[femur] = CORTEX
        marrow = ndi.binary_erosion(femur, iterations=2)
        labels[marrow] = MARROW
        marks = landmarks[side]
        z0 = int((marks["condyles"][2] + 70 * _femur_scale(marks["head"][2] - marks["condyles"][2])
                  - grid.origin[2]) / spacing)
        z1 = int((landmarks[side]["shaft_top"][2] - 10 - grid.origin[2]) / spacing)
        labels[z0:z1][marrow[z0:z1]] = SHAFT_MARROW
    for (side, key), tri in items:
        if key.startswith("cartilage_") and "acetab" not in key:
            shell = ndi.binary_dilation(voxelize(tri, grid)) & ~np.isin(labels, (MARROW,))
            labels[shell & (labels != CORTEX)] = CARTILAGE
    progress.update("template", 0.95, "envelope and fat")
    body = labels > 0
    disk = ndi.generate_binary_structure(2, 1)
    env = np.zeros_like(body)
    for k in range(shape[0]):
        env[k] = ndi.binary_fill_holes(ndi.binary_closing(body[k], disk, iterations=5))
    labels[env & (labels == 0)] = INTERMUSCULAR_FAT
    return Template(labels, grid.origin, spacing, landmarks)


def envelope_depth(labels: np.ndarray, spacing: float) -> np.ndarray:
    """Distance outside the labelled envelope in DEPTH_UNIT_MM (computed when needed: it
    compresses badly, so it is not stored)."""
    depth_mm = ndi.distance_transform_edt(labels == 0, sampling=spacing)
    return np.clip(np.round(depth_mm / DEPTH_UNIT_MM), 0, 255).astype(np.uint8)


def save_template(t: Template, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(t.image(t.labels), str(folder / "template_labels.nii.gz"), True)
    (folder / "template.json").write_text(json.dumps(
        {"spacing": t.spacing, "origin": list(t.origin), "landmarks": t.landmarks}, indent=1), encoding="utf-8")


def load_template(folder: str | Path = DATA_DIR) -> Template:
    folder = Path(folder)
    meta = json.loads((folder / "template.json").read_text(encoding="utf-8"))
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "template_labels.nii.gz")))
    return Template(lab, tuple(meta["origin"]), float(meta["spacing"]), meta["landmarks"])


if __name__ == "__main__":
    import sys

    save_template(build_template(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else DATA_DIR)
