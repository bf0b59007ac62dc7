"""Cross-sectional area profiles along the femur (measure.profiles, render_profiles): a tilted
cylinder with known area, the profile rows and summary, profiles.csv, and what
``thighseg segment``'s writer puts into frames.json, slabs.csv and profiles.csv."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import make_image
from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib.measure.femur import FemurLine
from ThighMuscleSegLib.measure.profiles import (LEVELS_PERCENT, csa_profiles, profile_summary, read_profiles_csv,
                                                write_profiles_csv)
from ThighMuscleSegLib.measure.slabs import read_slabs_csv, slab_table
from ThighMuscleSegLib.render_profiles import write_profiles_png


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _cylinder(radius: float, axis: np.ndarray, spacing, direction, half_length: float = 60.0):
    """Label 3 (right vastus lateralis... any right muscle) = a cylinder of ``radius`` around
    ``axis`` through the origin, |t| <= half_length, on a grid with ``spacing`` and ``direction``."""
    d = np.array(direction, float).reshape(3, 3)
    shape = (70, 90, 90)  # z, y, x
    centre_index = (np.array(shape[::-1]) - 1) / 2
    origin = -d @ (centre_index * np.array(spacing))  # the grid's centre at the origin
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    idx = np.stack([ii, jj, kk], -1).reshape(-1, 3) * np.array(spacing)
    p = idx @ d.T + origin
    t = p @ axis
    r = np.linalg.norm(p - t[:, None] * axis, axis=1)
    lab = ((r <= radius) & (np.abs(t) <= half_length)).reshape(shape).astype(np.uint8) * 3
    ct = make_image(np.full(shape, 40, np.int16), spacing, tuple(origin), tuple(d.ravel()))
    labels = make_image(lab, spacing, tuple(origin), tuple(d.ravel()))
    return ct, labels


def test_the_csa_of_a_tilted_cylinder_is_pi_r_squared():
    """Tilted ~22 deg against the image axes, anisotropic voxels and a rotated direction
    matrix: the slab volume / slab thickness is the area perpendicular to the axis."""
    axis = _unit([0.3, -0.25, 1.0])
    a = math.radians(25.0)
    direction = (math.cos(a), -math.sin(a), 0.0, math.sin(a), math.cos(a), 0.0, 0.0, 0.0, 1.0)
    radius = 18.0
    ct, labels = _cylinder(radius, axis, (0.8, 1.1, 2.5), direction)
    line = FemurLine("right", (0.0, 0.0, 0.0), tuple(axis), -50.0, 50.0, (-80.0, 80.0))
    slabs = slab_table(ct, labels, {"right": line})
    rows = [r for r in csa_profiles(slabs, {"right": line}) if r.label_value == 3]
    truth = math.pi * radius**2 / 100.0  # cm²
    inner = [r.area_cm2 for r in rows if 10 <= r.level_percent <= 90]  # |t| <= 40 mm: away from the caps
    assert len(inner) == 81
    assert np.allclose(inner, truth, rtol=0.04), (min(inner), max(inner), truth)
    assert np.mean(inner) == pytest.approx(truth, rel=0.01)


def _line(side: str, knee, hip, covered=(-100.0, 100.0)) -> FemurLine:
    return FemurLine(side, (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), knee, hip, covered)


def _two_sided_slabs():
    """Right vastus lateralis (3) and left vastus lateralis (13): columns of 1 mm voxels whose
    area grows with z; the CT spans z = -60..59 mm."""
    shape = (120, 40, 80)
    lab = np.zeros(shape, np.uint8)
    for k in range(shape[0]):
        n = 4 + k // 10  # side of the square cross-section, in voxels
        lab[k, 5:5 + n, 5:5 + n] = 3
        lab[k, 5:5 + n, 45:45 + n] = 13
    origin = (0.0, 0.0, -60.0)
    return (make_image(np.zeros(shape, np.int16), origin=origin), make_image(lab, origin=origin))


def test_profiles_by_level_with_uncovered_levels_empty(tmp_path):
    ct, labels = _two_sided_slabs()
    lines = {"right": _line("right", -100.0, 100.0, covered=(-60.5, 59.5)),
             "left": _line("left", -80.0, 120.0, covered=(-60.5, 59.5))}
    rows = csa_profiles(slab_table(ct, labels, lines), lines)
    assert {r.label_value for r in rows} == {s.label_value for s in C.segments()}
    right = [r for r in rows if r.label_value == 3]
    assert [r.level_percent for r in right] == list(LEVELS_PERCENT)
    for r in right:
        # Slabs wholly inside the covered range are centred at -58..58 mm; a value is the mean
        # of the three slabs (6 mm) around a centre, so values run from -56 to 56 mm.
        covered = -56.0 <= r.t_mm <= 56.0
        assert math.isnan(r.area_cm2) != covered, r
        if covered and abs(r.t_mm - round(r.t_mm / 2) * 2) < 1e-9:
            k = int(round(r.t_mm)) + 60  # plane index of t: the window holds planes k-3 .. k+2
            side = [4 + (kk // 10) for kk in range(k - 3, k + 3)]
            assert r.area_cm2 == pytest.approx(np.mean(np.square(side)) / 100.0)
    empty_muscle = [r for r in rows if r.label_value == 1 and not math.isnan(r.area_cm2)]
    assert empty_muscle and all(r.area_cm2 == 0.0 for r in empty_muscle)  # covered, no voxel: 0, not empty
    summary = profile_summary(rows)
    at = {r.level_percent: r.area_cm2 for r in right}
    assert summary[3]["csa_50_cm2"] == at[50.0] and summary[3]["csa_25_cm2"] == at[25.0]  # t = 0 and -50 mm
    assert math.isnan(at[10.0]) and math.isnan(at[90.0])  # t = -80 and +80 mm: not covered
    best = max((r for r in right if not math.isnan(r.area_cm2)), key=lambda r: r.area_cm2)
    assert summary[3]["csa_max_cm2"] == best.area_cm2 and summary[3]["csa_max_percent"] == best.level_percent
    back = read_profiles_csv(write_profiles_csv(rows, tmp_path / "profiles.csv"))
    assert len(back) == len(rows)
    for a, b in zip(rows, back):
        assert (a.side, a.muscle, a.label_value) == (b.side, b.muscle, b.label_value)
        for x, y in ((a.level_percent, b.level_percent), (a.t_mm, b.t_mm), (a.area_cm2, b.area_cm2)):
            assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, abs=1e-3)
    png = write_profiles_png(rows, tmp_path / "profiles.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_femur_length_the_profile_is_by_t(tmp_path):
    ct, labels = _two_sided_slabs()
    lines = {"right": _line("right", None, 100.0, covered=(-60.5, 59.5))}
    rows = csa_profiles(slab_table(ct, labels, lines), lines)
    assert {r.side for r in rows} == {"right"}
    right = [r for r in rows if r.label_value == 3]
    assert all(math.isnan(r.level_percent) for r in right)
    assert [r.t_mm for r in right] == [float(t) for t in range(-56, 57, 2)]
    summary = profile_summary(rows)[3]
    assert math.isnan(summary["csa_50_cm2"]) and math.isnan(summary["csa_max_percent"])
    assert summary["csa_max_cm2"] == max(r.area_cm2 for r in right)
    assert write_profiles_png(rows, tmp_path / "p.png").stat().st_size > 10_000


@pytest.mark.slow  # writes every output of segment (~1 min on a shared 2-core CPU)
def test_segment_outputs_hold_the_femur_lines_slabs_and_profiles(small_phantom, tmp_path):
    """What write_outputs (thighseg segment) writes, with the phantom's true labels standing in
    for a model's: frames.json's femur lines, slabs.csv summing to volumes.csv, profiles.csv."""
    from ThighMuscleSegLib import framing
    from ThighMuscleSegLib.measure import read_volumes_csv
    from ThighMuscleSegLib.pipeline import Segmentation, write_outputs

    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    labels = sitk.ReadImage(str(small_phantom / "labels.nii.gz"))
    frames = framing.frame_thighs(ct)
    zero = sitk.Image(labels.GetSize(), sitk.sitkUInt8)
    zero.CopyInformation(labels)
    out = tmp_path / "out"
    write_outputs(Segmentation(ct, labels, zero, frames, "cpu"), out)
    data = json.loads((out / "frames.json").read_text(encoding="utf-8"))
    lines = {side: FemurLine.from_dict(d) for side, d in data["femur"].items()}
    assert set(lines) == {f.side for f in frames}
    for f in frames:
        assert lines[f.side].origin == pytest.approx(f.centre) and lines[f.side].axis == pytest.approx(f.axis)
    slabs = read_slabs_csv(out / "slabs.csv")
    volumes = {v.label_value: v for v in read_volumes_csv(out / "volumes.csv")}
    for value, cm3 in slabs.volume_by_label().items():
        assert cm3 == pytest.approx(volumes[value].volume_cm3, abs=2e-3)
        assert slabs.select(value).voxels.sum() == volumes[value].voxels
    rows = read_profiles_csv(out / "profiles.csv")
    assert {r.label_value for r in rows} == {s.label_value for s in C.segments() if s.side in lines}
    assert (out / "profiles.png").stat().st_size > 10_000


@pytest.mark.parametrize("shape", [(3, 16, 16), (3, 7, 5), (1, 1, 9)])
def test_labelled_voxels_found_word_by_word_are_those_of_flatnonzero(shape):
    from ThighMuscleSegLib.measure.slabs import _labelled

    block = np.zeros(shape, np.uint8)
    rng = np.random.default_rng(3)
    block.reshape(-1)[rng.choice(block.size, size=max(1, block.size // 7), replace=False)] = rng.integers(1, 21)
    for part in (block, block[1:]):  # a slab of slices need not start on an aligned word
        flat, values = _labelled(part)
        assert np.array_equal(flat, np.flatnonzero(part)) and np.array_equal(values, part.reshape(-1)[flat])
