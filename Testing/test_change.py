"""``thighseg change``: femur alignment, the common range, within-error marking, a phantom pair.

Known answers on hand-made slab tables (a muscle of constant cross-section along the femur),
then a phantom pair: one body, the current scan with the right vastus lateralis shrunk by
10 %, the prior a rescan of it (new pose, field, slices, noise) whose field stops well short
at the knee. The pair's tables are computed from the phantoms' true labels through the same
library calls ``segment`` uses for its femur lines and slabs (``framing.frame_thighs``,
``femur.femur_lines``, ``slabs.slab_table``), not from a model's segmentation, so that the test
takes seconds; the repeatability table (``make repeatability``) is what judges the changes.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ThighMuscleSegLib.measure.change import (BEYOND, RERUN, WITHIN, ChangeError, ResultTables, align, area_at,
                                              compare, load_result, load_sdc, tables_from_images)
from ThighMuscleSegLib.measure.change_table import CSV_COLUMNS, read_change_csv, write_change_csv
from ThighMuscleSegLib.measure.femur import FemurLine
from ThighMuscleSegLib.measure.slabs import SlabTable, write_slabs_csv

VOXEL_MM3 = 1.0


def line(side="right", knee=-200.0, hip=220.0, covered=(-180.0, 180.0)) -> FemurLine:
    return FemurLine(side, (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), knee, hip, covered)


def slabs(muscles: dict[int, tuple[float, float, float, float, float]], slab_mm: float = 2.0) -> SlabTable:
    """label -> (t_from, t_to, CSA cm², mean HU, IMAT share): constant cross-section slabs."""
    cols = {k: [] for k in ("label", "t", "vox", "vol", "hu", "hu2", "imat")}
    for v, (lo, hi, csa, hu, imat) in sorted(muscles.items()):
        for n in range(int(math.ceil(lo / slab_mm)), int(math.floor(hi / slab_mm)) + 1):
            vol = csa * slab_mm / 10.0
            vox = int(round(vol * 1000.0 / VOXEL_MM3))
            cols["label"].append(v), cols["t"].append(n * slab_mm), cols["vox"].append(vox)
            cols["vol"].append(vox * VOXEL_MM3 / 1000.0), cols["hu"].append(vox * hu)
            cols["hu2"].append(vox * hu * hu), cols["imat"].append(int(round(vox * imat)))
    a = {k: np.array(v) for k, v in cols.items()}
    zeros = np.zeros_like(a["vox"])
    return SlabTable(slab_mm, a["label"].astype(np.int64), a["t"].astype(float), a["vox"].astype(np.int64), a["vol"],
                     a["hu"].astype(float), a["hu2"].astype(float), a["imat"].astype(np.int64), zeros, zeros)


def test_alignment_at_the_hip_end_maps_the_prior_onto_the_current_femur():
    a = align("right", line(knee=-200, hip=200, covered=(-150, 180)), line(knee=-190, hip=230))
    assert a.end == "hip" and a.shift_mm == 30.0
    assert a.common_mm == (-120.0, 180.0)  # the prior's -150 mm lies at -120 mm of the current femur
    assert a.knee_t_mm == -190.0 and a.length_mm == 420.0
    assert a.percent(-190.0) == 0.0 and a.percent(230.0) == 100.0 and a.t_at(50) == 20.0


def test_alignment_at_the_knee_end_when_a_scan_lacks_the_hip():
    a = align("left", line("left", knee=-180, hip=None, covered=(-180, 100)), line("left", knee=-200, hip=210))
    assert a.end == "knee" and a.shift_mm == -20.0
    assert a.common_mm == (-180.0, 80.0)
    assert a.length_mm == 410.0  # from the scan that holds both ends
    # Neither scan holds both ends: no femur length, so no levels in % of it.
    b = align("left", line("left", hip=None), line("left", hip=None))
    assert b.length_mm is None and b.percent(0.0) is None and b.t_at(50) is None


def test_no_common_end_or_no_overlap_is_a_clear_error():
    with pytest.raises(ChangeError, match="no femur end is in both scans.*prior: the knee end; current: the hip end"):
        align("right", line(hip=None), line(knee=None))
    with pytest.raises(ChangeError, match="cover no common part of the femur"):
        align("right", line(covered=(100, 180)), line(covered=(-180, 50)))


def test_volumes_csa_hu_and_imat_over_the_common_range_only():
    # Prior: the same muscles, seen on a femur line shifted by -30 mm, covering 31.3 mm less at
    # the knee end. Muscle 1 is unchanged, muscle 3 lost 10 % of its cross-section and got
    # fattier; the prior's whole muscle is smaller (less of it is in the scan), not the muscle.
    prior = ResultTables({"right": line(knee=-230, hip=190, covered=(-181.3, 150))},
                         slabs({1: (-230, 170, 10.0, 45.0, 0.02), 3: (-230, 170, 20.0, 50.0, 0.01)}))
    current = ResultTables({"right": line(knee=-200, hip=220)},
                           slabs({1: (-200, 200, 10.0, 45.0, 0.02), 3: (-200, 200, 18.0, 40.0, 0.05)}))
    sdc = {"sartorius": {"volume_percent": 5.0}, "vastus_lateralis": {"volume_percent": 5.0, "mean_hu": 3.0,
                                                                      "imat_pp": 5.0}}
    report = compare(prior, current, sdc)
    a = report.alignments["right"]
    assert a.end == "hip" and a.shift_mm == 30.0 and a.common_mm == (-151.3, 180.0)
    by = {m.label_value: m for m in report.muscles}
    assert sorted(by) == [1, 3]
    common_cm = (180.0 - -151.3) / 10.0  # the slab cut by the range counts with its share
    assert by[1].volume_prior_cm3 == pytest.approx(10.0 * common_cm, rel=1e-9)
    assert by[1].volume_current_cm3 == pytest.approx(10.0 * common_cm, rel=1e-9)
    assert by[1].volume_change_percent == pytest.approx(0.0, abs=1e-9)
    assert by[3].volume_change_percent == pytest.approx(-10.0, rel=1e-9)
    assert by[3].volume_change_cm3 == pytest.approx(-2.0 * common_cm, rel=1e-9)
    for level in (25, 50, 75):  # 25 % lies at -95 mm: inside the common range
        assert by[3].csa_prior_cm2[level] == pytest.approx(20.0) and by[3].csa_current_cm2[level] == pytest.approx(18.0)
    assert by[3].mean_hu_change == pytest.approx(-10.0) and by[3].imat_change_pp == pytest.approx(4.0, abs=0.01)
    assert by[1].verdict("volume_percent") == WITHIN and by[3].verdict("volume_percent") == BEYOND
    assert by[3].verdict("mean_hu") == BEYOND and by[3].verdict("imat_pp") == WITHIN
    assert by[1].verdict("mean_hu") == "no SDC"
    assert report.beyond() == [by[3]]
    assert "1 of 2 muscle volumes changed beyond measurement error: right vastus lateralis -10.0 %" in report.summary()


def test_csa_between_slab_centres_and_a_level_outside_the_common_range():
    t = slabs({1: (0, 10, 10.0, 40.0, 0.0)}, slab_mm=2.0)
    assert area_at(t, 4.0) == pytest.approx(10.0) and area_at(t, 11.0) == pytest.approx(5.0)  # halfway to empty
    assert area_at(t, -5.0) == 0.0
    report = compare(ResultTables({"right": line(covered=(0, 180))}, t),
                     ResultTables({"right": line()}, t))  # 25 % of the femur = -95 mm: the prior lacks it
    m = report.muscles[0]
    assert math.isnan(m.csa_prior_cm2[25]) and math.isnan(m.csa_change_percent(25)) and m.verdict("csa25_percent") == ""
    assert m.csa_current_cm2[50] == pytest.approx(10.0)  # 50 % = 10 mm: a slab centre


def test_a_side_that_cannot_be_matched_is_left_out_with_its_reason():
    t = slabs({3: (-200, 200, 18.0, 40.0, 0.05), 13: (-200, 200, 18.0, 40.0, 0.05)})
    prior = ResultTables({"right": line(), "left": line("left", hip=None)}, t)
    current = ResultTables({"right": line(), "left": line("left", knee=None)}, t)
    report = compare(prior, current)
    assert list(report.alignments) == ["right"] and [m.label_value for m in report.muscles] == [3]
    assert report.notes == ["not compared: the left thigh: no femur end is in both scans (prior: the knee end; current: "
                            "the hip end), so the scans cannot be matched along the femur; compare scans that both "
                            "hold the knee or both hold the hip"]
    with pytest.raises(ChangeError, match="the right thigh: no femur end"):
        compare(ResultTables({"right": line(hip=None)}, t), ResultTables({"right": line(knee=None)}, t))


def _result_folder(folder, tables: ResultTables):
    folder.mkdir()
    (folder / "frames.json").write_text(json.dumps({"frames": [], "femur": {s: ln.to_dict()
                                                                           for s, ln in tables.lines.items()}}),
                                        encoding="utf-8")
    write_slabs_csv(tables.slabs, folder / "slabs.csv")
    return folder


def test_result_folders_round_trip_and_older_results_say_what_to_do(tmp_path):
    tables = ResultTables({"right": line()}, slabs({3: (-200, 200, 18.0, 40.0, 0.05)}))
    back = load_result(_result_folder(tmp_path / "r", tables))
    assert back.lines == tables.lines and np.allclose(back.slabs.volume_cm3, tables.slabs.volume_cm3, atol=1e-6)
    old = tmp_path / "old"
    old.mkdir()
    (old / "frames.json").write_text(json.dumps({"frames": []}), encoding="utf-8")
    with pytest.raises(ChangeError, match="no slabs.csv.*" + RERUN):
        load_result(old)
    write_slabs_csv(tables.slabs, old / "slabs.csv")
    with pytest.raises(ChangeError, match="no femur lines.*" + RERUN):
        load_result(old)


# --- a phantom pair ---------------------------------------------------------------------

SEED = 20003  # an adult training body whose rescan 1 has a field from the hips to below the knees
KNEE_CUT_MM = 170.0  # the prior's field stops this much higher at the knee: it loses the knee end


@pytest.fixture(scope="module")
def pair():
    from ThighMuscleSegLib.framing import frame_thighs
    from ThighMuscleSegLib.phantom.followup import FollowUp
    from ThighMuscleSegLib.phantom.synth import make_case

    cases = {"prior": make_case(SEED, size="small", followup=FollowUp(rescan=1, cut_field={"knee": KNEE_CUT_MM})),
             "current": make_case(SEED, size="small", followup=FollowUp(shrink={3: 10.0}))}
    return {k: (c, tables_from_images(c.ct, c.labels, frame_thighs(c.ct))) for k, c in cases.items()}


def test_a_shrunk_muscle_in_a_longer_scan_is_found_and_the_others_are_unchanged(pair):
    sdc, source = load_sdc()
    assert sdc, "ThighMuscleSegLib/data/repeatability.json is missing: run make repeatability"
    (_, prior), (current_case, current) = pair["prior"], pair["current"]
    assert current_case.params["followup"]["shrink_percent"] == {"3": 10.0}
    report = compare(prior, current, sdc, source)
    for side, a in report.alignments.items():
        assert a.end == "hip"  # the prior holds no knee end
        covered = current.lines[side].covered_mm
        assert (covered[1] - covered[0]) - (a.common_mm[1] - a.common_mm[0]) >= 40.0  # 4 cm or more less
    by = {m.label_value: m for m in report.muscles}
    vl = by[3]
    print({m.label_value: round(m.volume_change_percent, 2) for m in report.muscles})
    assert abs(vl.volume_change_percent - -10.0) <= vl.sdc["volume_percent"]  # -10 % +- its SDC
    assert by[3 + 10].volume_change_percent > vl.volume_change_percent + 5.0  # the left one did not shrink
    for v, m in by.items():
        if v != 3:
            assert m.verdict("volume_percent") == WITHIN, (m.side, m.muscle, m.volume_change_percent)
    # Without the matching, the prior's shorter field alone changes every muscle that reaches it:
    whole_p, whole_c = prior.slabs.volume_by_label(), current.slabs.volume_by_label()
    naive = {v: 100.0 * (whole_c[v] / whole_p[v] - 1.0) for v in whole_p if v in whole_c}
    assert sum(abs(naive[v]) > sdc[by[v].muscle]["volume_percent"] for v in naive if v != 3) >= 3


def test_thighseg_change_writes_the_table_the_picture_and_a_summary(pair, tmp_path, capsys):
    from ThighMuscleSegLib.cli.main import main

    prior = _result_folder(tmp_path / "prior", pair["prior"][1])
    current = _result_folder(tmp_path / "current", pair["current"][1])
    out = tmp_path / "change"
    assert main(["change", str(prior), str(current), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith("compared over right") and "muscle volumes" in said
    rows = read_change_csv(out / "change.csv")
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 20
    vl = next(r for r in rows if r["side"] == "right" and r["muscle"] == "vastus_lateralis")
    change, sdc = float(vl["volume_change_percent"]), float(vl["volume_sdc_percent"])
    assert change < -5.0 and vl["aligned_at"] == "hip"
    assert vl["volume_verdict"] == (BEYOND if abs(change) >= sdc else WITHIN)
    png = (out / "change.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["change", str(prior), str(current), "--out", str(out)]) == 2  # kept without --overwrite
    assert main(["change", str(tmp_path), str(current), "--out", str(out), "--overwrite"]) == 2
    assert "not a thighseg segment result" in capsys.readouterr().err


def test_write_change_csv_leaves_undefined_numbers_empty(tmp_path):
    t = slabs({1: (0, 10, 10.0, 40.0, 0.0)})
    report = compare(ResultTables({"right": line(covered=(0, 180))}, t), ResultTables({"right": line()}, t))
    row = read_change_csv(write_change_csv(report, tmp_path / "change.csv"))[0]
    assert row["csa25_prior_cm2"] == "" and row["volume_sdc_percent"] == "" and row["volume_verdict"] == "no SDC"


# --- the phantom follow-up options -------------------------------------------------------

def test_a_rescan_keeps_the_body_and_draws_a_new_scanner(pair):
    prior, current = pair["prior"][0].params, pair["current"][0].params
    body_p, body_c = dict(prior["body"]), dict(current["body"])
    app_p, app_c = body_p.pop("appearance"), body_c.pop("appearance")
    assert body_p == body_c and prior["muscle_volume_factor"] == current["muscle_volume_factor"]
    assert (app_p["metal"], app_p["metal_side"]) == (app_c["metal"], app_c["metal_side"])  # the implant stays
    assert app_p["noise_hu"] != app_c["noise_hu"] and prior["pose"] != current["pose"]
    assert prior["followup"] == {"rescan": 1, "shrink_percent": {}, "cut_field_mm": {"knee": KNEE_CUT_MM}}


def test_shrink_peels_only_that_muscle_by_its_percent():
    from ThighMuscleSegLib.phantom.followup import FollowUp, shrink_labels
    from ThighMuscleSegLib.phantom.synth import _template

    labels = _template(None).labels
    before = np.bincount(labels.ravel(), minlength=256)
    after = np.bincount(shrink_labels(labels, FollowUp(shrink={3: 10.0, 17: 2.5})).ravel(), minlength=256)
    assert after[3] == before[3] - round(0.10 * before[3]) and after[17] == before[17] - round(0.025 * before[17])
    others = [v for v in range(1, 21) if v not in (3, 17)]
    assert np.array_equal(after[others], before[others])
    assert shrink_labels(labels, FollowUp()) is labels


def test_follow_up_options_parse_and_cut_whole_slices():
    from ThighMuscleSegLib.phantom.followup import FollowUp, cut_slices, parse_cut, parse_shrink

    assert parse_shrink(["vastus_lateralis=10"]) == {3: 10.0, 13: 10.0}
    assert parse_shrink(["left:adductors=15"]) == {17: 15.0}
    assert parse_cut(["knee=40", "hip=10"]) == {"knee": 40.0, "hip": 10.0}
    for bad in (["vastus=10"], ["middle:adductors=5"], ["adductors"]):
        with pytest.raises(ValueError, match="--shrink"):
            parse_shrink(bad)
    with pytest.raises(ValueError, match="--cut-field"):
        parse_cut(["ankle=40"])
    assert cut_slices(FollowUp(cut_field={"knee": 40.0, "hip": 9.0}), 3.0) == (14, 3)  # rounded up: >= the mm asked
    assert FollowUp().is_original and not FollowUp(rescan=1).is_original
    with pytest.raises(ValueError):
        FollowUp(shrink={3: 100.0})
