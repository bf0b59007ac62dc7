"""Calibrating the quality flag on cases with ground truth (``thighseg calibrate-quality``).

For each case (a dataset folder: ``ct.nii.gz`` + ``labels.nii.gz``): the CT is segmented as
``thighseg segment`` does (framing, the nets once per thigh, vote, clean-up, linear
back-interpolation), every muscle's quality features are computed (quality.py) and its Dice
against the ground truth is measured, by default only inside the analysed fields (``scope``
"field": muscle the model was never shown cannot be judged from what it said). Then, per
thigh, ``damage_per_thigh`` deliberately damaged copies of what the views said
(quality_damage.py) are fused and measured the same way; their damaged muscles are extra
samples, marked ``damaged`` in samples.csv.

A sample is positive when its Dice is below ``target_dice``. The logistic model is fitted on
all samples except missing muscles (always flagged by rule); the threshold is chosen on the
leave-one-case-out confidences (quality_fit.py), so the reported sensitivity and false-alarm
rate are those of cases the model was not fitted on.
"""

from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import __version__
from . import classes as C
from . import framing
from . import io as tio
from . import quality as Q
from . import quality_fit as F
from .defaults import DEFAULT_BACK_INTERPOLATION
from .inference.predict import ViewOutputs, fuse_and_clean, infer_views
from .measure import label_counts, voxel_volume_cm3
from .quality_damage import apply_damage, draw_damages

NUM_LABELS = 2 * C.NUM_MUSCLES + 1


def find_cases(paths) -> list[Path]:
    """Case folders (ct.nii.gz + labels.nii.gz) given as themselves or as folders of them."""
    cases = []
    for p in map(Path, paths):
        if (p / "ct.nii.gz").is_file() and (p / "labels.nii.gz").is_file():
            cases.append(p)
        elif p.is_dir():
            cases += sorted(c for c in p.iterdir() if (c / "ct.nii.gz").is_file() and (c / "labels.nii.gz").is_file())
        else:
            raise tio.InputError(f"{p} does not exist")
    if not cases:
        raise tio.InputError("no case folders (ct.nii.gz + labels.nii.gz) among " + ", ".join(map(str, paths)))
    return cases


def dice_by_label(pred: np.ndarray, gt: np.ndarray, inside: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dice per CT label value 0..20 (nan where both are empty) and ground-truth voxels."""
    p, g = pred.reshape(-1), gt.reshape(-1)
    m = None if inside is None else inside.reshape(-1)
    joint = np.zeros(NUM_LABELS * NUM_LABELS, np.int64)
    step = 1 << 20
    for s in range(0, p.size, step):
        code = p[s:s + step].astype(np.int16) * NUM_LABELS + g[s:s + step]
        if m is not None:
            code[~m[s:s + step]] = 0
        joint += np.bincount(code, minlength=NUM_LABELS * NUM_LABELS)[:NUM_LABELS * NUM_LABELS]
    joint = joint.reshape(NUM_LABELS, NUM_LABELS)
    denom = joint.sum(axis=1) + joint.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * np.diag(joint) / denom, np.nan), joint.sum(axis=0)


def _cm3(labels: sitk.Image) -> dict[int, float]:
    counts = label_counts(sitk.GetArrayViewFromImage(labels))
    return {v: float(counts[v]) * voxel_volume_cm3(labels) for v in range(1, NUM_LABELS)}


def case_ids(cases: list[Path]) -> list[str]:
    """A name per case, unique: the folder's name, with its parents where names repeat
    (``unseen/cases/case_000`` and ``template/cases/case_000``)."""
    for depth in range(1, 4):
        ids = ["/".join(c.resolve().parts[-depth:]) for c in cases]
        if len(set(ids)) == len(ids):
            return ids
    return [str(c) for c in cases]


def case_samples(case: Path, model, *, damage_per_thigh: int, rng: np.random.Generator, scope: str = "field",
                 device: str = "cpu", case_id: str | None = None, log=print) -> list[dict]:
    """Quality features and Dice of every muscle of one case, clean and damaged."""
    case_id = case_id or case.name
    ct = tio.read_ct(case / "ct.nii.gz")
    gt = sitk.ReadImage(str(case / "labels.nii.gz"))
    if not tio.same_geometry(ct, gt, tol=1e-3):
        raise tio.InputError(f"{case}: ct.nii.gz and labels.nii.gz do not share a geometry")
    gt_arr = sitk.GetArrayViewFromImage(gt)
    frames = framing.frame_thighs(ct)
    inside = framing.field_mask(frames, gt) if scope == "field" else None
    reading = {f.side: f for f in framing.reading_frames(frames)}  # as thighseg segment reads them
    analysed = framing.analysed_slices(frames)
    outputs, preds = {}, {}
    for side, frame in reading.items():
        outputs[side] = infer_views(framing.to_grid(ct, frame, "linear"), model, device=device)
        preds[side] = fuse_and_clean(outputs[side], analysed=analysed[side])
    labels = framing.from_grid({s: p.labels for s, p in preds.items()}, list(reading.values()), ct,
                               DEFAULT_BACK_INTERPOLATION)
    volumes = _cm3(labels)
    dice, gt_voxels = dice_by_label(sitk.GetArrayViewFromImage(labels), gt_arr, inside)
    stats = {s: p.stats for s, p in preds.items()}
    samples = [_sample(case_id, row, dice, gt_voxels, "") for row in Q.feature_rows(stats, volumes)]
    for frame in frames:
        side, out = frame.side, outputs[frame.side]
        for damage in draw_damages(rng, preds[side].labels, tuple(out.view_labels), damage_per_thigh):
            views, prob = apply_damage(out.view_labels, out.prob_sum, preds[side].labels, damage)
            pred = fuse_and_clean(ViewOutputs(views, prob, out.device, grid_hu=out.grid_hu), analysed=analysed[side])
            side_ct = framing.from_grid({side: pred.labels}, [reading[side]], ct, DEFAULT_BACK_INTERPOLATION)
            side_values = {m.label_value(side) for m in C.CLASSES}
            vols = {v: c for v, c in volumes.items() if v not in side_values} | \
                {v: c for v, c in _cm3(side_ct).items() if v in side_values}
            d, g = dice_by_label(sitk.GetArrayViewFromImage(side_ct), gt_arr, inside)
            targets = {C.by_model_id(m).label_value(side) for m in (damage.muscle, damage.other) if m}
            rows = Q.feature_rows({**stats, side: pred.stats}, vols)
            samples += [_sample(case_id, r, d, g, damage.describe()) for r in rows if r[0] in targets]
        log(f"  {case_id} {side}: {damage_per_thigh} damaged copies")
    return [s for s in samples if s is not None]


def _sample(case_id: str, row: tuple, dice: np.ndarray, gt_voxels: np.ndarray, damage: str) -> dict | None:
    value, key, side, feats, missing = row
    if gt_voxels[value] == 0:
        return None  # the muscle is not in the ground truth (in scope): nothing to judge
    return {"case": case_id, "label_value": value, "muscle": key, "side": side, "damaged": damage,
            "dice": float(dice[value]) if not np.isnan(dice[value]) else 0.0, "missing": missing, **feats}


def _arrays(samples: list[dict], target_dice: float):
    if not samples:
        raise tio.InputError("no samples: the cases hold no muscle to score")
    x = np.array([[s[f] for f in Q.FEATURES] for s in samples], float)
    y = np.array([s["dice"] < target_dice for s in samples])
    missing = np.array([bool(s["missing"]) for s in samples])
    damaged = np.array([bool(s["damaged"]) for s in samples])
    return x, y, missing, damaged, [s["case"] for s in samples]


def _curve(conf: np.ndarray, y: np.ndarray, point: dict) -> dict:
    return {"auroc": F.auroc(conf, y), "at_threshold": point, "roc": F.roc_curve(conf, y)}


def _counts(y, missing, damaged, groups, target_dice: float) -> dict:
    return {"target_dice": target_dice, "samples": len(y), "positives": int(y.sum()),
            "natural_positives": int((y & ~damaged).sum()), "damaged_samples": int(damaged.sum()),
            "missing_muscles": int(missing.sum()), "cases": sorted(set(groups))}


def fit(samples: list[dict], target_dice: float = 0.80, sensitivity: float = 0.90,
        false_alarms: float = 0.10, prefer: str = "sensitivity") -> tuple[Q.Calibration, dict]:
    """A new calibration and its report: ROC, AUROC and the operating point, leave-one-case-out
    (the headline: the threshold is chosen there) and in sample."""
    x, y, missing, damaged, groups = _arrays(samples, target_dice)
    learn = ~missing
    if not y[learn].any() or y[learn].all():
        raise tio.InputError(f"the samples must hold muscles both below and above Dice {target_dice:.2f} "
                             "(add cases, or damaged copies with --damage-per-thigh)")
    model = F.fit_logistic(x[learn], y[learn])
    conf_in = np.zeros(len(y))  # a missing muscle: confidence 0, always flagged
    conf_in[learn] = F.confidences(x[learn], model)
    conf_cv = np.zeros(len(y))
    conf_cv[learn] = F.cross_validated(x[learn], y[learn], [g for g, k in zip(groups, learn) if k])
    point_cv = F.choose_threshold(conf_cv, y, sensitivity, false_alarms, prefer)
    threshold = point_cv["threshold"]
    report = {"mode": "fit", "threshold": threshold, **_counts(y, missing, damaged, groups, target_dice),
              "curves": {"leave-one-case-out": _curve(conf_cv, y, point_cv),
                         "in sample": _curve(conf_in, y, F.operating_point(conf_in, y, threshold))},
              "undamaged_in_sample": F.operating_point(conf_in[~damaged], y[~damaged], threshold)}
    for s, ci, cc in zip(samples, conf_in, conf_cv):
        s["confidence"], s["confidence_cross_validated"] = float(ci), float(cc)
    cal = Q.Calibration(Q.FEATURES, tuple(model["mean"]), tuple(model["scale"]), tuple(model["weights"]),
                        model["intercept"], threshold, target_dice)
    return cal, report


def evaluate(samples: list[dict], cal: Q.Calibration, sensitivity: float = 0.90,
             false_alarms: float = 0.10) -> dict:
    """How an existing calibration does on new samples (nothing is fitted): ROC, AUROC and the
    operating point at its own threshold."""
    x, y, missing, damaged, groups = _arrays(samples, cal.target_dice)
    conf = np.array([0.0 if m else cal.confidence(dict(zip(Q.FEATURES, row))) for row, m in zip(x, missing)])
    point = F.operating_point(conf, y, cal.threshold)
    point["targets"] = {"sensitivity": sensitivity, "false_alarm_rate": false_alarms}
    point["targets_met"] = bool(point["sensitivity"] >= sensitivity and point["false_alarm_rate"] <= false_alarms)
    point["other_choice"] = None
    for s, c in zip(samples, conf):
        s["confidence"] = float(c)
    return {"mode": "evaluate", "threshold": cal.threshold, **_counts(y, missing, damaged, groups, cal.target_dice),
            "curves": {"installed calibration": _curve(conf, y, point)},
            "undamaged_in_sample": F.operating_point(conf[~damaged], y[~damaged], cal.threshold)}


def calibrate(case_paths, model_path: Path | None, out_dir: Path, *, damage_per_thigh: int = 3, seed: int = 0,
              scope: str = "field", device: str = "cpu", target_dice: float = 0.80, sensitivity: float = 0.90,
              false_alarms: float = 0.10, prefer: str = "sensitivity", samples_csv: Path | None = None,
              install: bool = False,
              evaluate_only: bool = False, resume: bool = False, log=print) -> tuple[Q.Calibration, dict]:
    """Segment, damage, measure (or read the samples of an earlier run), fit, and write the
    calibration files into ``out_dir``. samples.csv is written before the fit, so a long run
    is never lost to a fit that cannot be made. ``evaluate_only``: score the installed
    calibration on these cases instead of fitting one (nothing is installed). ``resume``: keep
    the cases already in ``out_dir``/samples.csv (same seed: the same damages)."""
    from .quality_report import calibration_json, read_samples_csv, write_calibration_outputs, write_samples_csv

    t0 = time.perf_counter()
    if samples_csv is not None:
        samples = read_samples_csv(samples_csv)
        fitted = {"samples_csv": str(samples_csv)}
    else:
        from .models import load_model
        from .models.model_file import file_sha256

        cases = find_cases(case_paths)
        model = load_model(model_path)
        samples_path = Path(out_dir) / "samples.csv"
        samples = read_samples_csv(samples_path) if resume and samples_path.is_file() else []
        done = {s["case"] for s in samples}
        for n, (case, case_id) in enumerate(zip(cases, case_ids(cases))):
            if case_id in done:
                log(f"[{n + 1}/{len(cases)}] {case}: measured before (--resume)")
                continue
            log(f"[{n + 1}/{len(cases)}] {case}")
            rng = np.random.default_rng([seed, n])  # each case's damages, whatever ran before
            samples += case_samples(case, model, damage_per_thigh=damage_per_thigh, rng=rng, scope=scope,
                                    device=device, case_id=case_id, log=log)
            write_samples_csv(samples, samples_path)  # after every case: a stopped run loses one case
        fitted = {"model": Path(model_path).name, "model_sha256": file_sha256(model_path),
                  "case_folders": [str(c) for c in cases], "damage_per_thigh": damage_per_thigh, "seed": seed,
                  "scope": scope}
    if evaluate_only:
        cal = Q.load_calibration()
        report = evaluate(samples, cal, sensitivity, false_alarms)
        write_calibration_outputs(out_dir, cal, report, samples, write_calibration=False)
        return cal, report
    cal, report = fit(samples, target_dice, sensitivity, false_alarms, prefer)
    fitted = {"date": datetime.date.today().isoformat(), "library_version": __version__,
              "command": "thighseg " + " ".join(sys.argv[1:]),
              **fitted, "seconds": round(time.perf_counter() - t0, 1),
              **{k: v for k, v in report.items() if k != "curves"},
              "auroc": {name: c["auroc"] for name, c in report["curves"].items()},
              "at_threshold": {name: c["at_threshold"] for name, c in report["curves"].items()}}
    cal = Q.Calibration(cal.features, cal.mean, cal.scale, cal.weights, cal.intercept, cal.threshold,
                        cal.target_dice, fitted)
    write_calibration_outputs(out_dir, cal, report, samples)
    if install:
        with tio.atomic_path(Q.CALIBRATION_PATH) as tmp:
            tmp.write_text(calibration_json(cal), encoding="utf-8")
        Q._load.cache_clear()
        log(f"installed as {Q.CALIBRATION_PATH}")
    return cal, report
