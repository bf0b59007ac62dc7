"""CT -> model grid (one resample per thigh) and model grid -> CT (exact inverse transform).

The forward transform of a frame is an affine map of grid points to CT points; SimpleITK
resamples with it directly from the stored CT (int16), so no full-resolution float copy of
the CT is made. Going back, each thigh's grid is resampled only into the CT sub-block its
field covers, and a voxel takes the label of the thigh on whose side of the split between
the legs it lies, so touching thighs never claim each other's voxels.

Labels going back: ``"nearest"`` (this function's default) or ``"linear"``, which
interpolates each label's indicator linearly and keeps the largest (boundaries fall between
grid voxels rather than on a 2 mm staircase; ``thighseg segment`` uses it, see
``defaults.DEFAULT_BACK_INTERPOLATION``). Labels going forward use
``"nearest"`` (or ``"label"``, SimpleITK's label-Gaussian vote, smoother but slow).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..classes import model_ids_to_ct_labels
from .frame import ThighFrame

AIR_HU = -1000.0
_INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "label": sitk.sitkLabelGaussian}


def grid_reference(frame: ThighFrame) -> sitk.Image:
    ref = sitk.Image([int(v) for v in frame.grid_shape[::-1]], sitk.sitkUInt8)
    ref.SetSpacing([frame.spacing_mm] * 3)
    ref.SetOrigin(tuple(frame.grid_origin()))
    return ref


def grid_to_ct_transform(frame: ThighFrame) -> sitk.AffineTransform:
    """Maps grid points to CT points (what Resample needs to pull CT values onto the grid)."""
    t = sitk.AffineTransform(3)
    t.SetMatrix(tuple(frame.linear().ravel()))
    t.SetTranslation(tuple(float(v) for v in frame.centre))
    return t


def _side_mask(frame: ThighFrame, ijk_to_point, shape_zyx) -> np.ndarray | None:
    """(z, y, x) bool: voxels on this frame's side of the midline between the legs (None
    when there is no other thigh). Points are affine in the voxel index, so each slice's CT
    x and z come from two small ramps, and the midline is looked up per voxel."""
    if not frame.split_midline:
        return None
    knots = np.array(frame.split_midline, float)
    origin = ijk_to_point(np.zeros(3))
    steps = [ijk_to_point(np.eye(3)[a]) - origin for a in range(3)]
    nz, ny, nx = shape_zyx
    jj, ii = np.meshgrid(np.arange(ny, dtype=np.float32), np.arange(nx, dtype=np.float32), indexing="ij")
    mask = np.empty(shape_zyx, bool)
    flat = abs(steps[0][2]) < 1e-9 and abs(steps[1][2]) < 1e-9  # axial CT slices: one z per slice
    for k in range(nz):
        base = origin + k * steps[2]
        x = base[0] + ii * np.float32(steps[0][0]) + jj * np.float32(steps[1][0])
        z = base[2] if flat else base[2] + ii * np.float32(steps[0][2]) + jj * np.float32(steps[1][2])
        mid = np.interp(z, knots[:, 0], knots[:, 1])
        mask[k] = (x < mid) if frame.side == "right" else (x >= mid)
    return mask


def to_grid(image: sitk.Image, frame: ThighFrame, interpolator: str = "linear",
            default: float | None = None) -> np.ndarray:
    """``image`` (CT or CT-space labels) on the frame's grid, (z, y, x).

    CT ("linear") comes back as float32 HU with the other leg's side of the split set to air;
    labels ("label" / "nearest") come back as uint8 with the other side set to 0."""
    is_labels = interpolator != "linear"
    fill = default if default is not None else (0.0 if is_labels else AIR_HU)
    out_type = sitk.sitkUInt8 if is_labels else sitk.sitkFloat32
    grid = sitk.Resample(image, grid_reference(frame), grid_to_ct_transform(frame), _INTERPOLATORS[interpolator],
                         fill, out_type)
    arr = sitk.GetArrayFromImage(grid)
    mask = _side_mask(frame, lambda ijk: frame.index_to_ct(ijk[None])[0], arr.shape)
    if mask is not None:
        arr[~mask] = fill
    return arr


# Both thighs are put back at once (twice as fast on two cores) unless their CT blocks are so
# dense that the float shares of both at once would cost more than ~1 GB: a 512 × 512 × 500 CT
# (two blocks of ~50 M voxels) stays parallel, a 512 × 512 × 1000 one (~105 M each) goes one
# thigh at a time and keeps its peak memory under 3 GB (``thighseg bench --slices 1000``).
PARALLEL_BLOCKS_MAX_VOXELS = 128_000_000


def _field_box(frame: ThighFrame, reference: sitk.Image) -> tuple[list[int], list[int]] | None:
    """Start index and size (x, y, z) of the CT block that holds the frame's field."""
    return _block_around(frame.corners_ct(), reference)


def _block_around(points_ct: np.ndarray, reference: sitk.Image) -> tuple[list[int], list[int]] | None:
    """Start index and size (x, y, z) of the block of ``reference`` that holds the points
    (with a voxel to spare), or None when it lies outside."""
    corners = np.array([reference.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in c))
                        for c in points_ct])
    size = np.array(reference.GetSize())
    lo = np.clip(np.floor(corners.min(axis=0)).astype(int) - 1, 0, size)
    hi = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 2, 0, size)
    if np.any(hi <= lo):
        return None
    return lo.tolist(), (hi - lo).tolist()


def _sub_block(reference: sitk.Image, start, size) -> sitk.Image:
    """An empty image on ``reference``'s voxel grid: ``size`` voxels from index ``start`` (x, y, z)."""
    sub = sitk.Image([int(v) for v in size], sitk.sitkUInt8)
    sub.SetSpacing(reference.GetSpacing())
    sub.SetDirection(reference.GetDirection())
    sub.SetOrigin(reference.TransformIndexToPhysicalPoint([int(v) for v in start]))
    return sub


def _paste(grids: dict[str, np.ndarray], frames: list[ThighFrame], reference: sitk.Image,
           interpolator: str, to_ct_values) -> sitk.Image:
    """Each thigh's grid into its CT block (the two thighs at once: resampling and numpy
    release the GIL), then the blocks into one CT-size map, in frame order."""
    out = np.zeros(reference.GetSize()[::-1], np.uint8)
    todo = [f for f in frames if f.side in grids]
    boxes = [_field_box(f, reference) for f in todo]
    block_voxels = sum(int(np.prod(b[1])) for b in boxes if b is not None)
    parallel = len(todo) > 1 and block_voxels <= PARALLEL_BLOCKS_MAX_VOXELS
    with ThreadPoolExecutor(len(todo) if parallel else 1) as pool:
        placed = list(pool.map(lambda f: _block_back(grids[f.side], f, reference, interpolator, to_ct_values), todo))
    for block_of_ct in placed:
        if block_of_ct is None:
            continue
        (start, size), values, keep = block_of_ct
        block = out[start[2]:start[2] + size[2], start[1]:start[1] + size[1], start[0]:start[0] + size[0]]
        block[keep] = values[keep]
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(reference)
    return img


def _block_back(grid: np.ndarray, frame: ThighFrame, reference: sitk.Image, interpolator: str, to_ct_values):
    """((start, size), values, keep) of one thigh in its CT block, or None outside the CT."""
    box = _field_box(frame, reference)
    if box is None:
        return None
    sub = _sub_block(reference, *box)
    inverse = grid_to_ct_transform(frame).GetInverse()
    grid = np.ascontiguousarray(grid, dtype=np.uint8)
    if interpolator == "linear":
        back = _labels_by_linear_votes(grid, frame, sub, inverse)
    else:
        grid_img = sitk.GetImageFromArray(grid)
        grid_img.CopyInformation(grid_reference(frame))
        back = sitk.GetArrayFromImage(sitk.Resample(grid_img, sub, inverse, _INTERPOLATORS[interpolator], 0,
                                                    sitk.sitkUInt8))
    values = to_ct_values(back, frame.side)
    mask = _side_mask(frame, lambda ijk: np.array(sub.TransformContinuousIndexToPhysicalPoint(
        tuple(float(v) for v in ijk))), values.shape)
    keep = values > 0 if mask is None else (values > 0) & mask
    return box, values, keep


def _labels_by_linear_votes(grid: np.ndarray, frame: ThighFrame, sub: sitk.Image, inverse) -> np.ndarray:
    """Each label's indicator interpolated linearly into the CT block; the largest share wins.
    Boundaries land between grid voxels instead of on the nearest one's staircase.

    Linear weights sum to one, so the background's share is one minus the muscles' shares:
    only the muscles are resampled, each only over the CT voxels its own grid box reaches,
    and the float work stays inside the block that all the muscles reach."""
    winner = np.zeros(sub.GetSize()[::-1], np.uint8)
    # Each muscle's grid box, grown by one voxel: as far as linear interpolation reaches.
    boxes = {value: tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, grid.shape))
             for value, box in enumerate(ndimage.find_objects(grid), start=1) if box is not None}
    if not boxes:
        return winner
    union = tuple(slice(min(bx[a].start for bx in boxes.values()), max(bx[a].stop for bx in boxes.values()))
                  for a in range(3))
    muscles = _reach(union, frame, sub)
    if muscles is None:
        return winner
    m_lo, m_size = muscles
    best = np.zeros(m_size[::-1], np.float32)
    total = np.zeros(m_size[::-1], np.float32)
    won = winner[tuple(slice(m_lo[a], m_lo[a] + m_size[a]) for a in (2, 1, 0))]  # a view
    for value, box in boxes.items():
        reach = _reach(box, frame, sub)
        if reach is None:
            continue
        lo, size = reach
        indicator = sitk.GetImageFromArray((grid[box] == value).astype(np.float32))
        indicator.SetSpacing([frame.spacing_mm] * 3)
        indicator.SetOrigin(tuple(frame.grid_origin() + np.array([b.start for b in box[::-1]]) * frame.spacing_mm))
        share_img = sitk.Resample(indicator, _sub_block(sub, lo, size), inverse, sitk.sitkLinear, 0.0,
                                  sitk.sitkFloat32)
        share = sitk.GetArrayViewFromImage(share_img)  # no copy; share_img lives to the loop's end
        where = tuple(slice(lo[a] - m_lo[a], lo[a] - m_lo[a] + size[a]) for a in (2, 1, 0))
        total[where] += share
        better = share > best[where]
        np.copyto(best[where], share, where=better)  # views: no fancy-indexed copies
        np.copyto(won[where], np.uint8(value), where=better)
    total -= 1.0
    total += best  # best - (1 - total): > 0 where the best muscle beats the background
    np.copyto(won, np.uint8(0), where=total <= 0)  # ties go to the background
    return winner


def _reach(box: tuple[slice, ...], frame: ThighFrame, sub: sitk.Image) -> tuple[list[int], list[int]] | None:
    """Start and size (x, y, z) of the block of ``sub`` that the grid box (z, y, x) covers."""
    corners = frame.index_to_ct(np.array([[x, y, z] for x in (box[2].start, box[2].stop - 1)
                                          for y in (box[1].start, box[1].stop - 1)
                                          for z in (box[0].start, box[0].stop - 1)], float))
    return _block_around(corners, sub)


def from_grid(grids: dict[str, np.ndarray], frames: list[ThighFrame], reference: sitk.Image,
              interpolator: str = "nearest") -> sitk.Image:
    """Model-id grids (0..10) of each side -> one CT-space label map (right 1-10, left 11-20)."""
    return _paste(grids, frames, reference, interpolator, model_ids_to_ct_labels)


def map_to_ct(grids: dict[str, np.ndarray], frames: list[ThighFrame], reference: sitk.Image) -> sitk.Image:
    """Any small-integer grid maps (e.g. the disagreement count) -> CT geometry, nearest."""
    return _paste(grids, frames, reference, "nearest", lambda values, side: values)


def field_mask(frames: list[ThighFrame], reference: sitk.Image) -> np.ndarray:
    """(z, y, x) bool in ``reference``'s geometry: the voxels some thigh's field covers (on
    that thigh's side of the split): the region the model analysed."""
    ones = {f.side: np.ones(f.grid_shape, np.uint8) for f in frames}
    return sitk.GetArrayFromImage(map_to_ct(ones, frames, reference)) > 0
