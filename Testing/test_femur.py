"""The femur line (measure.femur) and the slab table (measure.slabs): hand-made volumes with
known answers, phantoms with their recorded femur, and the real Visible Human Female CT."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import VHF, make_image
from ThighMuscleSegLib.framing.frame import ThighFrame
from ThighMuscleSegLib.measure import muscle_volumes
from ThighMuscleSegLib.measure.femur import FemurLine, covered_range, find_femur
from ThighMuscleSegLib.measure.hu_ranges import IMAT, LAMA, NAMA
from ThighMuscleSegLib.measure.slabs import read_slabs_csv, slab_table, write_slabs_csv


def _line(side="right", origin=(0.0, 0.0, 0.0), axis=(0.0, 0.0, 1.0), knee=-200.0, hip=200.0, covered=(-180.0, 180.0)):
    return FemurLine(side, origin, axis, knee, hip, covered)


def test_femur_line_levels_and_round_trip():
    axis = np.array([0.1, -0.2, 1.0])
    axis /= np.linalg.norm(axis)
    line = _line(origin=(10.0, 20.0, 30.0), axis=tuple(axis), knee=-190.0, hip=210.0)
    assert line.length_mm == pytest.approx(400.0)
    p = line.point_at_percent(25.0)
    assert line.t_mm(p[None])[0] == pytest.approx(-90.0)
    assert line.percent(line.t_mm(p[None]))[0] == pytest.approx(25.0)
    assert FemurLine.from_dict(line.to_dict()) == line
    cut = _line(knee=None)
    assert cut.length_mm is None and FemurLine.from_dict(cut.to_dict()) == cut
    with pytest.raises(ValueError, match="unknown"):
        cut.percent([0.0])


def test_covered_range_is_the_ct_and_the_field_together():
    # A CT of 2 mm slices from z = -100 to +98 mm; an upright frame at z = 0: its field
    # spans +-180 mm, so the CT's slices limit it (half a slice beyond the first and last centres).
    ct = make_image(np.zeros((100, 8, 8), np.int16), spacing=(40.0, 40.0, 2.0), origin=(-140.0, -140.0, -100.0))
    frame = ThighFrame("right", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (-100.0, 98.0))
    assert covered_range(ct, frame) == pytest.approx((-101.0, 99.0))
    # Tilted 10 degrees: the thigh's cross-section reaches further up and down the slices.
    a = math.radians(10.0)
    tilted = ThighFrame("right", (0.0, 0.0, 0.0), (math.sin(a), 0.0, math.cos(a)), (-100.0, 98.0))
    lo, hi = covered_range(ct, tilted)
    assert lo > -101.0 / math.cos(a) and hi < 99.0 / math.cos(a)
    assert hi - lo > 150.0


def _labelled_blocks(rng) -> tuple[sitk.Image, sitk.Image]:
    lab = np.zeros((40, 30, 50), np.uint8)
    lab[3:30, 5:12, 4:20] = 3  # right
    lab[10:38, 15:25, 25:45] = 14  # left
    lab[0:5, 0:3, 0:3] = 20
    hu = rng.normal(20.0, 60.0, lab.shape).astype(np.int16)
    spacing, direction = (0.8, 0.9, 3.0), (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    return (make_image(hu, spacing, (5.0, -3.0, 100.0), direction),
            make_image(lab, spacing, (5.0, -3.0, 100.0), direction))


def test_slab_volumes_sum_to_the_muscle_volume_exactly(tmp_path):
    ct, labels = _labelled_blocks(np.random.default_rng(1))
    axis = np.array([0.2, 0.1, 1.0]) / np.linalg.norm([0.2, 0.1, 1.0])
    lines = {"right": _line("right", (0.0, 0.0, 150.0), tuple(axis)),
             "left": _line("left", (30.0, 0.0, 140.0), (0.0, 0.0, 1.0))}
    table = slab_table(ct, labels, lines)
    volumes = {v.label_value: v for v in muscle_volumes(ct, labels)}
    hu = sitk.GetArrayFromImage(ct).astype(float)
    lab = sitk.GetArrayFromImage(labels)
    for value in (3, 14, 20):
        rows = table.select(value)
        assert rows.voxels.sum() == volumes[value].voxels
        assert rows.volume_cm3.sum() == pytest.approx(volumes[value].volume_cm3, rel=1e-12)
        inside = hu[lab == value]
        assert rows.hu_sum.sum() == pytest.approx(inside.sum())
        assert rows.hu_sq_sum.sum() == pytest.approx((inside ** 2).sum())
        for r, counted in ((IMAT, rows.imat_voxels), (LAMA, rows.lama_voxels), (NAMA, rows.nama_voxels)):
            assert counted.sum() == int(r.contains(inside).sum())
        assert np.allclose(rows.t_mm / table.slab_mm, np.round(rows.t_mm / table.slab_mm))
    back = read_slabs_csv(write_slabs_csv(table, tmp_path / "slabs.csv"))
    assert back.label_values() == [3, 14, 20]
    assert np.array_equal(back.voxels, table.voxels) and np.allclose(back.t_mm, table.t_mm)
    assert np.allclose(back.volume_cm3, table.volume_cm3) and np.allclose(back.hu_sum, table.hu_sum, atol=0.1)


def test_a_voxel_falls_in_the_slab_of_its_centre():
    # 1 mm voxels at z = -5..4, an upright line: slab n (2 mm) holds t in [2n - 1, 2n + 1).
    lab = np.zeros((10, 2, 2), np.uint8)
    lab[:, 0, 0] = 1
    labels = make_image(lab, origin=(0.0, 0.0, -5.0))
    ct = make_image(np.zeros_like(lab, np.int16), origin=(0.0, 0.0, -5.0))
    table = slab_table(ct, labels, {"right": _line()})
    assert dict(zip(table.t_mm.tolist(), table.voxels.tolist())) == {-4.0: 2, -2.0: 2, 0.0: 2, 2.0: 2, 4.0: 2}


def _bone_rod_ct(end_lo: float, end_hi: float, slice_mm: float, noise: float, seed: int = 0):
    """A tilted bone rod (cortex 1200 HU, marrow 150 HU, radius 14 mm) in muscle, its ends
    rounded like the condyles and the femoral head, reaching from t = end_lo to end_hi; below
    it a tibia-like block, above it an acetabulum-like cup, each across a 3 mm joint space."""
    rng = np.random.default_rng(seed)
    a = math.radians(5.0)
    axis = np.array([math.sin(a), 0.0, math.cos(a)])
    sp = (0.8, 0.8, slice_mm)  # a CT's pixels: the 3 mm joint spaces stay open in the plane
    shape = (int(380 / slice_mm), 88, 150)
    origin = np.array([-60.0, -35.0, -200.0])
    zz, yy, xx = np.meshgrid(*[origin[i] + sp[i] * np.arange(n) for i, n in zip((2, 1, 0), shape)], indexing="ij")
    p = np.stack([xx, yy, zz], -1)
    t = p @ axis
    r = np.linalg.norm(p - t[..., None] * axis, axis=-1)
    radius = 14.0
    lo_c, hi_c = end_lo + radius, end_hi - radius  # centres of the rounded ends
    d = np.where(t < lo_c, np.hypot(r, t - lo_c), np.where(t > hi_c, np.hypot(r, t - hi_c), r))
    hu = np.full(shape, 40.0, np.float32)
    hu[d <= radius] = 150.0
    hu[(d <= radius) & (d >= radius - 3.0)] = 1200.0
    hu[(t <= end_lo - 3.0) & (t >= end_lo - 60.0) & (r <= 30.0)] = 400.0  # tibial plateau
    cup = np.hypot(r, t - hi_c)
    hu[(t > hi_c) & (cup >= radius + 3.0) & (cup <= radius + 8.0)] = 1000.0  # acetabular roof
    hu += rng.normal(0.0, noise, shape)
    ct = make_image(hu.astype(np.int16), sp, tuple(origin))
    return ct, ThighFrame("right", (0.0, 0.0, 0.0), tuple(axis), (-200.0, 200.0))


@pytest.mark.parametrize("slice_mm,noise", [(2.0, 10.0), (5.0, 30.0)])
def test_femur_ends_of_a_hand_made_rod(slice_mm, noise):
    ct, frame = _bone_rod_ct(-150.0, 130.0, slice_mm, noise)
    line = find_femur(ct, frame)
    assert line.knee_end_mm == pytest.approx(-150.0, abs=3.0)
    if slice_mm <= 3.0:
        assert line.hip_end_mm == pytest.approx(130.0, abs=3.0)
    else:  # the known limit (femur_ends): 5 mm slices close the 3 mm joint below the head's top
        assert 127.0 <= line.hip_end_mm <= 138.0


def test_an_end_cut_by_the_scan_is_not_reported():
    ct, frame = _bone_rod_ct(-300.0, 300.0, 3.0, 10.0)
    line = find_femur(ct, frame)
    assert line.knee_end_mm is None and line.hip_end_mm is None and line.length_mm is None


# --- phantoms: the ends against the femur the phantom was built from -------------------------

@pytest.fixture(scope="module")
def template_femur() -> dict:
    """Per side, from the VHF meshes the phantom template is built from (phantom.template._femur):
    the painted femoral head's radius, the condyles' distal end below the condyle landmark along
    the template's shaft axis (the condyles are the hull of the distal cartilage), and the
    head-to-condyles distance the case's scale is measured by."""
    from ThighMuscleSegLib.phantom.anatomy import read_stl
    from ThighMuscleSegLib.phantom.orient import VHF_STL_TO_LPS_SHIFT, sphere_fit
    from ThighMuscleSegLib.phantom.synth import _shaft_axis_points, _template

    if not VHF.is_dir():
        pytest.skip(f"shared anatomy not found at {VHF} (set THIGHSEG_SHARED_DATA)")
    vhf = VHF
    t = _template(None)
    shaft = _shaft_axis_points(t)
    shift = np.array(VHF_STL_TO_LPS_SHIFT)
    out = {}
    for side in ("right", "left"):
        name = side.capitalize()

        def mesh(part):
            p = read_stl(vhf / "surfaces" / name / f"VHF_{name}_Cartilage_{part}_smooth.stl").reshape(-1, 3)
            return np.stack([shift[0] - p[:, 0], shift[1] - p[:, 1], p[:, 2]], 1)  # the VHF's STL -> LPS

        _, r = sphere_fit(mesh("FemurHead"))
        marks = t.landmarks[side]
        head, condyles = np.array(marks["head"]), np.array(marks["condyles"])
        axis = (shaft[side][0] - shaft[side][1]) / np.linalg.norm(shaft[side][0] - shaft[side][1])
        out[side] = {"head_radius": min(max(r - 2.0, 17.0), 26.0),  # as template._femur paints it
                     "knee_below": float(((mesh("FemurDistal") - condyles) @ axis).min()),
                     "length": float(np.linalg.norm(head - condyles))}
    return out


def _check_phantom_ends(folder, femur) -> int:
    """Each end the CT holds is found within 4 mm of the phantom's; each it lacks is None.
    Returns how many ends were checked as found."""
    from ThighMuscleSegLib import framing
    from ThighMuscleSegLib.measure.femur import femur_lines

    ct = sitk.ReadImage(str(folder / "ct.nii.gz"))
    params = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    lines = femur_lines(ct, framing.frame_thighs(ct))
    found = 0
    for side, line in lines.items():
        marks = params["femur_axis"][side]  # head and condyle centres, mapped into the case
        head, condyles = np.array(marks["proximal"]), np.array(marks["distal"])
        scale = np.linalg.norm(head - condyles) / femur[side]["length"]
        t_head, t_condyles = line.t_mm(np.array([head, condyles]))
        truth = {"hip": t_head + femur[side]["head_radius"] * scale,
                 "knee": t_condyles + femur[side]["knee_below"] * scale}
        for end, t in truth.items():
            value = line.hip_end_mm if end == "hip" else line.knee_end_mm
            index = ct.TransformPhysicalPointToContinuousIndex(tuple(np.array(line.origin) + t * np.array(line.axis)))
            if 3 < index[2] < ct.GetSize()[2] - 4:
                assert value == pytest.approx(t, abs=4.0), (folder.name, side, end)
                found += 1
            elif index[2] < -3 or index[2] > ct.GetSize()[2] + 2:
                assert value is None, (folder.name, side, end)
    return found


def _whole_thigh_phantom(folder, seed: int, size: str):
    from ThighMuscleSegLib.phantom.synth import make_case
    from ThighMuscleSegLib.phantom.writer import write_case

    write_case(make_case(seed, size=size), folder)
    return folder


def test_femur_ends_on_the_shared_phantom(template_femur, small_phantom):
    assert _check_phantom_ends(small_phantom, template_femur) >= 1


@pytest.mark.slow  # makes a phantom of its own (~30 s)
@pytest.mark.parametrize("seed,size", [(3, "small"), (29, "full")])  # slices 3.1 mm; 4.85 mm (512 x 512)
def test_all_four_femur_ends_on_a_whole_thigh_phantom(template_femur, tmp_path, seed, size):
    """Phantoms whose field runs from the hips to below the knees: both femurs whole."""
    folder = _whole_thigh_phantom(tmp_path / f"case_{seed}", seed, size)
    assert _check_phantom_ends(folder, template_femur) == 4


# --- the real CT: the Visible Human Female's knee and pelvis ---------------------------------

def _vhf_frames() -> list[ThighFrame]:
    """Frames built by hand from the anatomy (the partial CTs hold no thigh to frame): the
    template's head and condyle centres lie in the same LPS frame as the VHF CT."""
    from ThighMuscleSegLib.phantom.template import load_template

    frames = []
    for side, marks in load_template().landmarks.items():
        head, condyles = np.array(marks["head"]), np.array(marks["condyles"])
        axis = (head - condyles) / np.linalg.norm(head - condyles)
        frames.append(ThighFrame(side, tuple((head + condyles) / 2), tuple(axis), (condyles[2], head[2]), "manual"))
    return frames


def test_femur_ends_on_the_real_knee_and_pelvis_ct(vhf):
    """The knee CT holds the condyles' distal end, the pelvis CT the femoral heads' tops; each
    is found within 4 mm (z) of the cartilage surfaces segmented from the same body's
    cryosections (bone lies just inside them; the meshes match the CT within 2-3 mm)."""
    from ThighMuscleSegLib.phantom.anatomy import read_stl
    from ThighMuscleSegLib.phantom.orient import VHF_STL_TO_LPS_SHIFT

    knee_ct = sitk.ReadImage(str(vhf / "ct" / "vhf_knee_ct.nii.gz"))
    pelvis_ct = sitk.ReadImage(str(vhf / "ct" / "vhf_pelvis_ct.nii.gz"))
    for frame in _vhf_frames():
        name = frame.side.capitalize()
        def z(part: str) -> np.ndarray:
            return read_stl(vhf / "surfaces" / name / f"VHF_{name}_Cartilage_{part}_smooth.stl")[..., 2]

        at_knee, at_hip = find_femur(knee_ct, frame), find_femur(pelvis_ct, frame)
        assert at_knee.hip_end_mm is None and at_hip.knee_end_mm is None
        knee_z = frame.centre[2] + at_knee.knee_end_mm * at_knee.axis[2]
        hip_z = frame.centre[2] + at_hip.hip_end_mm * at_hip.axis[2]
        assert knee_z == pytest.approx(float(z("FemurDistal").min()), abs=4.0), frame.side
        assert hip_z == pytest.approx(float(z("FemurHead").max()), abs=4.0), frame.side
