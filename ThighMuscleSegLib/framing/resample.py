"""CT -> model grid (one resample per thigh) and model grid -> CT (exact inverse transform).

The forward transform of a frame is an affine map of grid points to CT points; SimpleITK
resamples with it directly from the stored CT (int16), so no full-resolution float copy of
the CT is made. Going back, each thigh's grid is resampled only into the CT sub-block its
field covers, and a voxel takes the label of the thigh on whose side of the split between
the legs it lies, so touching thighs never claim each other's voxels.

Labels going back: ``"nearest"`` (this function's default) or ``"linear"``, which
interpolates each label's indicator linearly and keeps the largest (boundaries fall between
grid voxels rather than on a 2 mm staircase; ``thighseg segment`` uses it, see
``defaults.DEFAULT_BACK_INTERPOLATION``): one nearest resample, and linear votes only where a
voxel's interpolation cell holds two labels. The disagreement map goes back in the same pass.
Labels going forward use ``"nearest"`` (or ``"label"``, SimpleITK's label-Gaussian vote,
smoother but slow).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import SimpleITK as sitk

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


def _affine(f) -> tuple[np.ndarray, np.ndarray]:
    """(origin, steps) of an affine map ``f`` of 3-vectors: f(v) = origin + steps @ v (steps'
    columns: the image of each unit vector, less the origin)."""
    origin = np.asarray(f(np.zeros(3)), float)
    return origin, np.stack([np.asarray(f(np.eye(3)[a]), float) - origin for a in range(3)], axis=1)


def _side_mask(frame: ThighFrame, ijk_to_point, shape_zyx) -> np.ndarray | None:
    """(z, y, x) bool: voxels on this frame's side of the midline between the legs (None
    when there is no other thigh). Points are affine in the voxel index, so each slice's CT
    x and z come from two small ramps, and the midline is looked up per voxel."""
    if not frame.split_midline:
        return None
    knots = np.array(frame.split_midline, float)
    origin, columns = _affine(ijk_to_point)
    steps = columns.T  # steps[a]: the point's change per voxel along index axis a
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


# Both thighs are put back at once (faster on two cores) unless their CT blocks are so large that
# both at once would hold too many block-size maps (each thigh: its labels and map back, the side
# mask, a paste mask: ~4 bytes a voxel): a 512 × 512 × 500 CT (two blocks of ~50 M voxels) stays
# parallel, a 512 × 512 × 1000 one (~105 M each) goes one thigh at a time, so its peak memory
# stays under 3 GB (``thighseg bench --slices 1000``).
PARALLEL_BLOCKS_MAX_VOXELS = 128_000_000


def _field_box(frame: ThighFrame, reference: sitk.Image) -> tuple[list[int], list[int]] | None:
    """Start index and size (x, y, z) of the CT block that holds the frame's field."""
    return _block_around(frame.corners_ct(), reference)


def _content_box(frame: ThighFrame, reference: sitk.Image, grids: list[np.ndarray]
                 ) -> tuple[list[int], list[int]] | None:
    """The part of the field's block (``_field_box``) that can receive a non-zero value of
    ``grids`` (the frame's (z, y, x) grids going back), or None when they are all zero: the rest
    of the block would only be resampled to zeros (on the bench CT, whose extent already cuts the
    fields' blocks, this is 82 % and 87 % of them; less where the scan reaches past the muscles).

    A CT point takes grid values from the grid voxels around it (within one voxel, and at most
    half a voxel beyond the grid's edge, as the interpolation clamps there), so the grid's
    non-zero box, one voxel larger on each side, holds every point that can."""
    field = _field_box(frame, reference)
    if field is None:
        return None
    shape = np.array(frame.grid_shape)
    nonzero = [np.zeros(n, bool) for n in shape]
    for grid in grids:
        for axis in range(3):
            nonzero[axis] |= np.asarray(grid).any(axis=tuple(a for a in range(3) if a != axis))
    if not nonzero[0].any():
        return None
    lo = np.array([np.flatnonzero(n)[0] for n in nonzero], float) - 1
    hi = np.array([np.flatnonzero(n)[-1] for n in nonzero], float) + 1
    lo, hi = np.maximum(lo, -0.5), np.minimum(hi, shape - 0.5)
    corners = np.array([[(lo, hi)[i][2], (lo, hi)[j][1], (lo, hi)[k][0]] for i, j, k in np.ndindex(2, 2, 2)])
    box = _block_around(frame.index_to_ct(corners), reference)  # corners in (x, y, z) index order
    if box is None:
        return None
    start = np.maximum(box[0], field[0])
    stop = np.minimum(np.add(box[0], box[1]), np.add(field[0], field[1]))
    return None if np.any(stop <= start) else (start.tolist(), (stop - start).tolist())


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


# Linear votes, fast: a CT voxel lies in one cell of eight grid voxels (its interpolation
# cell); where the eight hold one label, that label wins (the linear weights sum to one), so one
# nearest resample from an image of the cells (one voxel per cell, centred between grid voxels)
# gives every such voxel its label, and only voxels in cells of two or more labels are voted on.
_MIXED = 0xFF  # a cell's value when its corners hold more than one label (model ids are 0..10)
_VOTE_CHUNK = 1 << 18  # points voted at once: bounds their (points x labels) shares to ~25 MB


def _paste(frames: list[ThighFrame], reference: sitk.Image, interpolator: str,
           label_grids: dict[str, np.ndarray] | None, extra_grids: dict[str, np.ndarray] | None
           ) -> tuple[sitk.Image | None, sitk.Image | None]:
    """Each thigh's grids into its CT block (the two thighs at once: resampling releases the
    GIL), each block pasted into the CT-size maps as soon as it is done, in frame
    order (a later thigh's voxels win): (CT labels, extra)."""
    grids_of = label_grids if label_grids is not None else extra_grids
    todo = [f for f in frames if f.side in grids_of]
    boxes = {f.side: _content_box(f, reference, [g[f.side] for g in (label_grids, extra_grids) if g is not None])
             for f in todo}
    block_voxels = sum(int(np.prod(b[1])) for b in boxes.values() if b is not None)
    parallel = len(todo) > 1 and block_voxels <= PARALLEL_BLOCKS_MAX_VOXELS
    outs = [None if grids is None else np.zeros(reference.GetSize()[::-1], np.uint8)
            for grids in (label_grids, extra_grids)]

    def back(frame: ThighFrame):
        pick = lambda grids: None if grids is None else grids[frame.side]  # noqa: E731
        box = boxes[frame.side]
        return None if box is None else (box, _block_back(frame, _sub_block(reference, *box), interpolator,
                                                          pick(label_grids), pick(extra_grids)))

    with ThreadPoolExecutor(len(todo) if parallel else 1) as pool:
        for done in [pool.submit(back, f) for f in todo]:
            placed = done.result()
            if placed is None:
                continue
            (start, size), maps = placed
            for out, values in zip(outs, maps):
                if out is not None:
                    block = out[start[2]:start[2] + size[2], start[1]:start[1] + size[1], start[0]:start[0] + size[0]]
                    np.copyto(block, values, where=values > 0)
            del placed, maps  # a dense CT's next thigh needs the memory
    images = [None if out is None else sitk.GetImageFromArray(out) for out in outs]
    for img in images:
        if img is not None:
            img.CopyInformation(reference)
    return images[0], images[1]


def _block_back(frame: ThighFrame, sub: sitk.Image, interpolator: str, ids: np.ndarray | None,
                extra: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(CT label values, extra values) of one thigh in its CT block ``sub``, 0 on the other
    thigh's side of the split (None for a map not asked for)."""
    inverse = grid_to_ct_transform(frame).GetInverse()
    id_back = extra_back = None
    if ids is not None:  # the CT label values of this side, put back
        ids = np.ascontiguousarray(ids, np.uint8)
        ct_values = model_ids_to_ct_labels(np.arange(_MIXED), frame.side)
        if interpolator == "linear":
            id_back = _linear_back(ids, ct_values, frame, sub, inverse)
        else:
            id_back = _resample(ct_values[ids], grid_reference(frame), sub, inverse, _INTERPOLATORS[interpolator])
    if extra is not None:
        extra_back = _resample(extra, grid_reference(frame), sub, inverse, sitk.sitkNearestNeighbor)
    maps = (id_back, extra_back)
    shape = next(m for m in maps if m is not None).shape
    mask = _side_mask(frame, lambda ijk: np.array(sub.TransformContinuousIndexToPhysicalPoint(
        tuple(float(v) for v in ijk))), shape)
    if mask is not None:
        for values in maps:
            if values is not None:
                np.multiply(values, mask, out=values)
    return maps


def _linear_back(ids: np.ndarray, ct_values: np.ndarray, frame: ThighFrame, sub: sitk.Image, inverse) -> np.ndarray:
    """The block ``sub`` (z, y, x) by linear votes of the model ids (see ``_MIXED`` above), as
    ``ct_values[id]``."""
    padded = np.pad(ids, 1, mode="edge")  # grid index -1 and n read the edge: linear interpolation's clamping
    cells = _cell_image(padded, frame)
    uniform = cells[0] != _MIXED
    cells[0][uniform] = ct_values[cells[0][uniform]]
    back = _resample(cells[0], cells[1], sub, inverse, sitk.sitkNearestNeighbor)
    mixed = np.flatnonzero(back == _MIXED)
    votes = _linear_votes(padded, _block_to_grid_index(frame, sub, inverse), np.unravel_index(mixed, back.shape))
    back.reshape(-1)[mixed] = ct_values[votes]
    return back


def _cell_image(padded: np.ndarray, frame: ThighFrame) -> tuple[np.ndarray, sitk.Image]:
    """The cells' values and geometry, from the ids padded by one edge voxel all round: cell k
    (per axis -1..n-1) spans grid voxels k and k + 1 (clamped at the edge), centred half a voxel
    past voxel k. A cell holds its corners' label, or ``_MIXED``; so does an edge cell holding
    muscle, since the grid's edge falls inside it (beyond it linear interpolation gives nothing)."""
    n = [size - 1 for size in padded.shape]  # cells per axis: the grid's voxels + 1
    corners = [padded[dz:dz + n[0], dy:dy + n[1], dx:dx + n[2]] for dz, dy, dx in np.ndindex(2, 2, 2)]
    low, high = np.minimum.reduce(corners), np.maximum.reduce(corners)
    cells = np.where(low == high, low, np.uint8(_MIXED)).astype(np.uint8)
    for axis in range(3):
        for end in (0, -1):
            face = tuple(end if a == axis else slice(None) for a in range(3))
            cells[face][high[face] > 0] = _MIXED  # a basic slice: a view written in place
    geometry = sitk.Image([int(v) for v in n[::-1]], sitk.sitkUInt8)
    geometry.SetSpacing([frame.spacing_mm] * 3)
    geometry.SetOrigin(tuple(frame.grid_origin() - 0.5 * frame.spacing_mm))
    return cells, geometry


def _resample(grid: np.ndarray, geometry: sitk.Image, sub: sitk.Image, inverse, interpolator) -> np.ndarray:
    """``grid`` (uint8, laid out as ``geometry``) resampled into the CT block ``sub``."""
    grid_img = sitk.GetImageFromArray(np.ascontiguousarray(grid, dtype=np.uint8))
    grid_img.CopyInformation(geometry)
    return sitk.GetArrayFromImage(sitk.Resample(grid_img, sub, inverse, interpolator, 0, sitk.sitkUInt8))


def _block_to_grid_index(frame: ThighFrame, sub: sitk.Image, inverse) -> tuple[np.ndarray, np.ndarray]:
    """(A, b): the grid's continuous index (z, y, x) of the block voxel (z, y, x) is A @ v + b
    (all three maps are affine: the block's index to its points, the frame's inverse, the grid's index)."""
    grid = grid_reference(frame)

    def grid_index(zyx) -> np.ndarray:
        point = sub.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in zyx[::-1]))
        return np.array(grid.TransformPhysicalPointToContinuousIndex(inverse.TransformPoint(point)))[::-1]

    b, a = _affine(grid_index)
    return a, b


def _linear_votes(padded: np.ndarray, affine: tuple[np.ndarray, np.ndarray], where: tuple[np.ndarray, ...]
                  ) -> np.ndarray:
    """The label of each block voxel ``where`` (z, y, x index arrays) by linear votes of the
    model ids ``padded`` by one edge voxel all round: each
    label's indicator interpolated trilinearly (corners clamped at the grid's edge, outside it
    nothing, as SimpleITK's linear interpolator does), the largest share wins, ties go to the
    background, then to the lower id. Points in float64, weights in float32 (half the memory
    traffic; a float tie may fall the other way, 1 voxel in 10^7 on the bench CT)."""
    a, b = affine
    shape = np.array(padded.shape) - 2  # the grid's
    flat = padded.reshape(-1)
    strides = np.array([(shape[1] + 2) * (shape[2] + 2), shape[2] + 2, 1], np.int32)
    offsets = np.array([dz * strides[0] + dy * strides[1] + dx for dz, dy, dx in np.ndindex(2, 2, 2)], np.int32)
    out = np.zeros(len(where[0]), np.uint8)
    for lo in range(0, len(out), _VOTE_CHUNK):
        c = a @ np.stack([w[lo:lo + _VOTE_CHUNK] for w in where]).astype(np.float64) + b[:, None]  # (3, points)
        inside = np.all((c >= -0.5) & (c < (shape - 0.5)[:, None]), axis=0)
        base = np.floor(c)
        t = (c - base).astype(np.float32)
        corner = strides @ (base.astype(np.int32) + 1)  # corner (0, 0, 0) in the padded grid
        along = [(1 - t[k], t[k]) for k in range(3)]
        across = [along[1][dy] * along[2][dx] for dy, dx in np.ndindex(2, 2)]
        weights = np.stack([along[0][dz] * w for dz in range(2) for w in across])  # (8, points)
        labels = flat[corner[None, :] + offsets[:, None]]  # (8, points)
        out[lo:lo + len(inside)] = np.where(inside, _largest_share(labels, weights), 0)
    return out


def _largest_share(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per point (columns), the label whose corners' weights sum highest (ties: the lower label).
    Most cells hold two labels, the lowest and the highest: their two shares are compared
    directly (half the time of summing every label's share); the few cells of three or more
    labels are summed per label."""
    low, high = labels.min(axis=0), labels.max(axis=0)
    share_low = (weights * (labels == low)).sum(axis=0)
    share_high = (weights * (labels == high)).sum(axis=0)
    winner = np.where(share_high > share_low, high, low)
    many = np.flatnonzero(((labels != low) & (labels != high)).any(axis=0))
    if many.size:
        count = int(labels.max()) + 1
        rows = (count * np.arange(many.size, dtype=np.int32))[None, :]
        shares = np.bincount((labels[:, many] + rows).reshape(-1), weights[:, many].reshape(-1),
                             minlength=count * many.size).reshape(-1, count)
        winner[many] = np.argmax(shares, axis=1)
    return winner


def from_grid(grids: dict[str, np.ndarray], frames: list[ThighFrame], reference: sitk.Image,
              interpolator: str = "nearest") -> sitk.Image:
    """Model-id grids (0..10) of each side -> one CT-space label map (right 1-10, left 11-20)."""
    return _paste(frames, reference, interpolator, grids, None)[0]


def labels_and_map_to_ct(label_grids: dict[str, np.ndarray], map_grids: dict[str, np.ndarray],
                         frames: list[ThighFrame], reference: sitk.Image, interpolator: str = "nearest"
                         ) -> tuple[sitk.Image, sitk.Image]:
    """``from_grid(label_grids)`` and ``map_to_ct(map_grids)`` at once (one pass over the blocks)."""
    return _paste(frames, reference, interpolator, label_grids, map_grids)


def map_to_ct(grids: dict[str, np.ndarray], frames: list[ThighFrame], reference: sitk.Image) -> sitk.Image:
    """Any small-integer grid maps (e.g. the disagreement count) -> CT geometry, nearest."""
    return _paste(frames, reference, "nearest", None, grids)[1]


def field_mask(frames: list[ThighFrame], reference: sitk.Image) -> np.ndarray:
    """(z, y, x) bool in ``reference``'s geometry: the voxels some thigh's field covers (on
    that thigh's side of the split): the region the model analysed."""
    ones = {f.side: np.ones(f.grid_shape, np.uint8) for f in frames}
    return sitk.GetArrayFromImage(map_to_ct(ones, frames, reference)) > 0
