import numpy as np
import pytest
from scipy import stats

from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib import comparison as CMP


def _rows(dice_of, n_cases=6):
    rows = []
    for case in range(n_cases):
        for seg in C.segments():
            d = dice_of(case, seg)
            rows.append({"case": f"c{case}", "label_value": seg.label_value, "dice": d,
                         "asd_mm": (1 - d) * 10, "hd95_mm": 0.0, "gt_voxels": 100})
    return rows


def test_paired_t_test_matches_scipy_on_the_paired_values():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, size=(6, 20))
    ref = _rows(lambda c, s: 0.90 + noise[c, s.label_value - 1])
    worse = _rows(lambda c, s: 0.85 + noise[c, s.label_value - 1] * 0.5)
    tests = CMP.paired_tests({"2D": worse, "2.5D": ref}, reference="2.5D")
    sart = next(t for t in tests if t.muscle == "Sartorius" and t.metric == "dice")
    a = [noise[c, 0] for c in range(6)] + [noise[c, 10] for c in range(6)]
    expected = stats.ttest_rel(0.85 + np.array(a) * 0.5, 0.90 + np.array(a))
    assert sart.n == 12
    assert sart.p == pytest.approx(expected.pvalue)
    assert sart.mark == "***"
    assert sart.mean_method < sart.mean_reference


def test_identical_methods_get_no_test_and_no_mark():
    rows = _rows(lambda c, s: 0.9)
    tests = CMP.paired_tests({"2D": rows, "2.5D": rows})
    assert all(np.isnan(t.p) and t.mark == "" for t in tests)


def test_only_pairs_scored_by_every_method_count():
    ref = _rows(lambda c, s: 0.9)
    other = [r for r in _rows(lambda c, s: 0.8) if r["case"] != "c0"]
    values = CMP.paired_values({"a": other, "2.5D": ref}, C.CLASSES[0], "dice")
    assert len(values["a"]) == len(values["2.5D"]) == 10


def test_figure_and_table_are_written(tmp_path):
    rng = np.random.default_rng(1)
    by_method = {m: _rows(lambda c, s, b=b: b + rng.normal(0, 0.02)) for m, b in
                 (("2D", 0.84), ("2.5D", 0.9), ("3D", 0.86))}
    tests = CMP.paired_tests(by_method)
    png = CMP.plot(by_method, tests, tmp_path / "compare.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    table = CMP.markdown_table(by_method, tests)
    assert table.count("\n") == 2 + 20
    assert "| Sartorius | Dice |" in table and "paired t-test vs 2.5D" in table
