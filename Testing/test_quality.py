"""The per-muscle quality flag: features from the views, the score, the outputs, the calibration.

Views "made perfect" are the small phantom's own labels on the model grid, given to every view
with certain probabilities: the result a flawless model would give. Damaging them (the same
code the calibration uses) must flag the damaged muscle and only it."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib import framing
from ThighMuscleSegLib import quality as Q
from ThighMuscleSegLib.inference.predict import ViewOutputs, fuse_and_clean
from ThighMuscleSegLib.pipeline import assess_quality
from ThighMuscleSegLib.quality_damage import Damage, apply_damage

REPO = Path(__file__).resolve().parent.parent
VIEWS = ("axial", "coronal", "sagittal")


@pytest.fixture(scope="module")
def perfect(small_phantom):
    """(ct, frames, per-side ViewOutputs whose three views are the ground truth, certain)."""
    ct = sitk.ReadImage(str(small_phantom / "ct.nii.gz"))
    gt = sitk.ReadImage(str(small_phantom / "labels.nii.gz"))
    frames = framing.frame_thighs(ct)
    outputs = {}
    for f in frames:
        ids = C.ct_labels_to_model_ids(framing.to_grid(gt, f, "nearest"), f.side)
        prob = np.zeros((C.NUM_MODEL_CLASSES,) + ids.shape, np.float32)
        for k in range(C.NUM_MODEL_CLASSES):
            prob[k][ids == k] = len(VIEWS)
        outputs[f.side] = ViewOutputs({v: ids for v in VIEWS}, prob, "cpu", grid_hu=framing.to_grid(ct, f, "linear"))
    return ct, frames, outputs


def _assess(ct, frames, outputs):
    preds = {s: fuse_and_clean(o) for s, o in outputs.items()}
    labels = framing.from_grid({s: p.labels for s, p in preds.items()}, frames, ct, "nearest")
    volumes, quality = assess_quality(ct, labels, {s: p.stats for s, p in preds.items()})
    return volumes, {q.label_value: q for q in quality}


def test_perfect_views_are_ok_and_damaged_muscles_are_flagged(perfect):
    ct, frames, outputs = perfect
    _, clean = _assess(ct, frames, outputs)
    assert len(clean) == 20
    for q in clean.values():
        assert q.features["view_disagreement"] < 0.01  # the clean-up may drop a stray voxel
        assert q.features["low_margin"] == pytest.approx(0.0, abs=1e-6)
    # Perfect views leave only the anatomy's own features: a muscle of normal size and
    # symmetry is ok (a population phantom may carry a real asymmetry, which the flag weighs).
    plain = [q for q in clean.values() if q.features["asymmetry"] < 0.1 and q.features["volume_deviation"] < 0.1]
    assert len(plain) >= 10 and {q.quality for q in plain} == {"ok"}, {q.name: q.features for q in clean.values()}

    right = outputs["right"]
    gracilis, adductors = C.by_key("gracilis").model_id, C.by_key("adductors").model_id
    z = np.flatnonzero((right.view_labels["axial"] == gracilis).any(axis=(1, 2)))
    # Two views of three call the gracilis adductors: the vote follows them, the third view disagrees.
    swap = Damage("swap", gracilis, adductors, ("axial", "coronal"), (int(z[0]), int(z[-1]) + 1))
    views, prob = apply_damage(right.view_labels, right.prob_sum, right.view_labels["axial"], swap)
    _, damaged = _assess(ct, frames, {**outputs, "right": ViewOutputs(views, prob, "cpu")})
    flagged = {v for v, q in damaged.items() if q.quality == "check"}
    assert {C.by_key("gracilis").label_value("right"), C.by_key("adductors").label_value("right")} <= flagged
    assert damaged[C.by_key("gracilis").label_value("right")].features["view_disagreement"] > 0.2
    untouched = {C.by_key(k).label_value(s) for k in ("vastus_lateralis", "rectus_femoris", "semimembranosus")
                 for s in C.SIDES}
    assert not flagged & untouched

    drop = Damage("drop", C.by_key("sartorius").model_id, 0, VIEWS, (0, right.prob_sum.shape[1]))
    views, prob = apply_damage(right.view_labels, right.prob_sum, right.view_labels["axial"], drop)
    volumes, dropped = _assess(ct, frames, {**outputs, "right": ViewOutputs(views, prob, "cpu")})
    sartorius = dropped[C.by_key("sartorius").label_value("right")]
    assert sartorius.missing and sartorius.quality == "check" and sartorius.confidence == 0.0
    verdicts = Q.thigh_verdicts(list(dropped.values()))
    assert verdicts["right"]["verdict"].startswith("right thigh: 1 muscle to check (sartorius (missing))")
    row = next(v for v in volumes if v.label_value == sartorius.label_value)
    assert row.quality == "check" and row.voxels == 0


@pytest.mark.parametrize("kind", ["erode", "shift"])
def test_a_mistake_all_three_views_agree_on_is_flagged(perfect, kind):
    """The views agree, so their disagreement and margin cannot tell: the result's own shape
    and the image under it must (shape_evidence). The sartorius eroded by 4 mm, or moved by
    10 mm, along its whole length in every view."""
    ct, frames, outputs = perfect
    right = outputs["right"]
    muscle = C.by_key("sartorius")
    truth = right.view_labels["axial"] == muscle.model_id
    z = np.flatnonzero(truth.any(axis=(1, 2)))
    damage = Damage(kind, muscle.model_id, 0, VIEWS, (int(z[0]), int(z[-1]) + 1), 2 if kind == "erode" else 5, 2)
    views, prob = apply_damage(right.view_labels, right.prob_sum, right.view_labels["axial"], damage)
    wrong = ViewOutputs(views, prob, "cpu", grid_hu=right.grid_hu)
    drawn = fuse_and_clean(wrong).labels == muscle.model_id
    assert 2 * (drawn & truth).sum() / (drawn.sum() + truth.sum()) < 0.80  # a real failure
    _, damaged = _assess(ct, frames, {**outputs, "right": wrong})
    q = damaged[muscle.label_value("right")]
    assert q.features["view_disagreement"] < 0.01 and q.features["low_margin"] < 1e-6  # the views agree
    assert q.quality == "check", q.features
    evidence = ("unclaimed_rim", "share_deviation") if kind == "erode" else ("foreign_tissue", "unclaimed_rim")
    _, clean = _assess(ct, frames, outputs)
    for name in evidence:
        assert q.features[name] > clean[muscle.label_value("right")].features[name] + 0.1, name


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_close_neighbours_swapped_by_all_three_views_are_flagged(perfect, share):
    """Vastus lateralis and intermedius swapped in every view, along their whole length or the
    upper half: the views agree and both muscles keep a plausible size and shape; only their
    layout (the intermedius deeper, at every level) turns over, and the flag must see it."""
    ct, frames, outputs = perfect
    right = outputs["right"]
    lateralis, intermedius = C.by_key("vastus_lateralis"), C.by_key("vastus_intermedius")
    z = np.flatnonzero((right.view_labels["axial"] == lateralis.model_id).any(axis=(1, 2)))
    start = int(z[0]) if share == 1.0 else int(z[len(z) // 2])
    swap = Damage("swap", lateralis.model_id, intermedius.model_id, VIEWS, (start, int(z[-1]) + 1))
    views, prob = apply_damage(right.view_labels, right.prob_sum, right.view_labels["axial"], swap)
    _, damaged = _assess(ct, frames, {**outputs, "right": ViewOutputs(views, prob, "cpu", grid_hu=right.grid_hu)})
    _, clean = _assess(ct, frames, outputs)
    for muscle in (lateralis, intermedius):
        q, before = damaged[muscle.label_value("right")], clean[muscle.label_value("right")]
        assert q.features["view_disagreement"] < 0.01  # the views agree on the mistake
        assert q.features["flipped_share"] >= before.features["flipped_share"] + 0.2, (q.features, before.features)
        assert q.quality == "check", q.features
    assert damaged[C.by_key("gracilis").label_value("right")].quality == clean[
        C.by_key("gracilis").label_value("right")].quality  # a muscle beside neither keeps its flag


def test_a_side_that_was_not_segmented_has_no_flag(perfect):
    ct, frames, outputs = perfect
    right = [f for f in frames if f.side == "right"]
    pred = fuse_and_clean(outputs["right"])
    labels = framing.from_grid({"right": pred.labels}, right, ct, "nearest")
    volumes, quality = assess_quality(ct, labels, {"right": pred.stats})
    assert {q.side for q in quality} == {"right"}
    assert all(q.features["asymmetry"] == 0.0 for q in quality)  # no left thigh to compare with
    left_rows = [v for v in volumes if v.side == "left"]
    assert all(v.quality == "" and math.isnan(v.confidence) for v in left_rows)
    assert list(Q.thigh_verdicts(quality)) == ["right"]


def test_report_marks_flagged_muscles_in_red(tmp_path):
    from conftest import blocky_labels, make_image

    from ThighMuscleSegLib.measure import muscle_volumes
    from ThighMuscleSegLib.render import NOTE_RGB, check_marks, write_report_png

    arr = blocky_labels()
    ct = make_image(np.where(arr > 0, 50, -90).astype(np.int16), (2.0, 2.0, 4.0))
    labels = make_image(arr, (2.0, 2.0, 4.0))
    rows = muscle_volumes(ct, labels)
    ok = [r.__class__(**{**r.__dict__, "quality": "ok", "confidence": 0.95}) for r in rows]
    flagged = [r.__class__(**{**r.__dict__, "quality": "check" if r.muscle == "gracilis" else "ok"}) for r in rows]
    assert check_marks({r.label_value: r.quality for r in flagged}) == {"gracilis": "check R+L"}
    red = np.array([int(NOTE_RGB[i:i + 2], 16) for i in (1, 3, 5)])
    counts = []
    for name, volumes in (("ok.png", ok), ("check.png", flagged)):
        write_report_png(ct, labels, tmp_path / name, volumes=volumes)
        img = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name)))[..., :3].astype(int)
        panel = img[:, int(img.shape[1] * 0.77):]  # the legend and volume bars column
        counts.append(int((np.abs(panel - red).sum(axis=-1) < 60).sum()))
    assert counts[0] == 0 and counts[1] > 50


def test_volumes_csv_keeps_old_columns_and_reads_files_without_quality(tmp_path):
    from ThighMuscleSegLib.measure import CSV_COLUMNS, REQUIRED_COLUMNS, read_volumes_csv

    assert CSV_COLUMNS[:len(REQUIRED_COLUMNS)] == REQUIRED_COLUMNS
    assert CSV_COLUMNS[len(REQUIRED_COLUMNS):] == ("confidence", "quality")
    old = tmp_path / "volumes.csv"  # a prior study's file, written before the quality flag
    old.write_text(",".join(REQUIRED_COLUMNS) + "\n1,sartorius,right,Right sartorius,10,1.000,50.000,0.000\n")
    (row,) = read_volumes_csv(old)
    assert row.quality == "" and math.isnan(row.confidence) and row.volume_cm3 == 1.0


def _synthetic_samples(path: Path) -> None:
    """Three cases of 20 muscles: failures (Dice < 0.8) show more view disagreement."""
    rng = np.random.default_rng(3)
    cols = ["case", "label_value", "muscle", "side", "damaged", "dice", "missing", *Q.FEATURES]
    lines = [",".join(cols)]
    for case in range(3):
        for value in range(1, 21):
            bad = (value + case) % 4 == 0
            dice = rng.uniform(0.3, 0.75) if bad else rng.uniform(0.82, 0.97)
            # only the views' disagreement tells; every other feature is noise
            feats = [rng.uniform(0.2, 0.5) if bad else rng.uniform(0.0, 0.25),
                     *rng.uniform(0, 0.3, len(Q.FEATURES) - 1)]
            muscle, side = C.split_label_value(value)
            lines.append(",".join(map(str, [f"case_{case}", value, muscle.key, side, "", dice, False, *feats])))
    path.write_text("\n".join(lines) + "\n")


def test_calibration_command_writes_roc_auroc_and_threshold(tmp_path):
    samples = tmp_path / "samples.csv"
    _synthetic_samples(samples)
    out = tmp_path / "cal"
    r = subprocess.run([sys.executable, "-m", "ThighMuscleSegLib.cli.main", "calibrate-quality", "--samples",
                        str(samples), "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.iterdir()} >= {"quality_calibration.json", "roc.json", "roc.png", "summary.md"}
    roc = json.loads((out / "roc.json").read_text(encoding="utf-8"))
    curve = roc["curves"]["leave-one-case-out"]
    assert 0.8 < curve["auroc"] <= 1.0 and roc["curves"]["in sample"]["auroc"] >= curve["auroc"] - 0.05
    point = curve["at_threshold"]
    assert point["sensitivity"] >= 0.9 and point["positives"] == 15
    cal = Q.load_calibration(out / "quality_calibration.json")
    assert cal.weights[Q.FEATURES.index("view_disagreement")] > 0 and min(cal.weights) >= 0
    assert "AUROC" in (out / "summary.md").read_text(encoding="utf-8") and (out / "roc.png").stat().st_size > 10_000
    assert "AUROC" in r.stdout


def test_calibration_on_images_measures_clean_and_damaged_muscles(small_phantom, random_model_file, tmp_path):
    """The whole command on a real (small) phantom and a real (random) model: every muscle is
    segmented, damaged copies are added; a random model fails everywhere, so no threshold can be
    fitted, and the command says so after saving the samples."""
    from ThighMuscleSegLib.quality_report import read_samples_csv

    out = tmp_path / "cal"
    r = subprocess.run([sys.executable, "-m", "ThighMuscleSegLib.cli.main", "calibrate-quality", str(small_phantom),
                        "--model", str(random_model_file), "--damage-per-thigh", "1", "--out", str(out)],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 2 and "both below and above" in r.stderr, r.stderr
    rows = read_samples_csv(out / "samples.csv")
    assert sum(1 for s in rows if not s["damaged"]) == 20
    assert 1 <= sum(1 for s in rows if s["damaged"]) <= 4
    assert all(0.0 <= s["dice"] <= 1.0 and all(math.isfinite(s[f]) for f in Q.FEATURES) for s in rows)


def test_the_threshold_reaches_the_sensitivity_target_with_its_lower_bound():
    """On 100 positives, 90 flagged is a 90 % estimate but a lower bound near 84 %: the threshold
    goes on until the bound reaches 90 % (96 of 100 flagged here), not stopping at the estimate."""
    from ThighMuscleSegLib import quality_fit as F

    assert F.sensitivity_lower_bound(90, 100) == pytest.approx(0.8396, abs=1e-4)  # Wilson, z = 1.645
    positives = np.linspace(0.0, 0.5, 100)
    negatives = np.linspace(0.505, 1.0, 100)
    conf = np.concatenate([positives, negatives])
    y = np.concatenate([np.ones(100, bool), np.zeros(100, bool)])
    point = F.choose_threshold(conf, y, sensitivity=0.90)
    assert point["sensitivity_lower_bound"] >= 0.90
    assert point["flagged_positives"] == min(k for k in range(101) if F.sensitivity_lower_bound(k, 100) >= 0.90)
    assert point["false_alarm_rate"] == 0.0 and point["targets_met"]
    few = F.choose_threshold(conf[[0, 1, 150, 160]], y[[0, 1, 150, 160]], sensitivity=0.90)
    assert few["flagged_positives"] == 2 and few["flagged_negatives"] == 0  # too few to bound: catch them all
