"""Files of ``thighseg calibrate-quality``: the calibration, its ROC (PNG + JSON), a summary."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from . import io as tio
from . import quality as Q

CALIBRATION_OUTPUTS = ("quality_calibration.json", "roc.json", "roc.png", "summary.md", "samples.csv")


def write_calibration_outputs(out_dir: str | Path, cal: Q.Calibration, report: dict, samples: list[dict],
                              write_calibration: bool = True) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(CALIBRATION_OUTPUTS)
    if write_calibration:
        with tio.atomic_path(out / "quality_calibration.json") as tmp:
            tmp.write_text(calibration_json(cal), encoding="utf-8")
    else:
        names.remove("quality_calibration.json")
    with tio.atomic_path(out / "roc.json") as tmp:
        tmp.write_text(json.dumps(_jsonable(report), indent=2) + "\n", encoding="utf-8")
    write_samples_csv(samples, out / "samples.csv")
    with tio.atomic_path(out / "summary.md") as tmp:
        tmp.write_text(summary_markdown(cal, report), encoding="utf-8")
    write_roc_png(report, out / "roc.png")
    return [out / n for n in names]


def calibration_json(cal: Q.Calibration) -> str:
    """The calibration file's text (strict JSON: an undefined rate is null)."""
    return json.dumps(_jsonable(cal.to_dict()), indent=2) + "\n"


def _jsonable(value):
    if isinstance(value, float):
        return None if math.isnan(value) else (1e300 if value == math.inf else -1e300 if value == -math.inf
                                               else round(value, 6))
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_samples_csv(samples: list[dict], path: Path) -> None:
    columns = ["case", "label_value", "muscle", "side", "damaged", "dice", "missing", *Q.FEATURES,
               "confidence", "confidence_cross_validated"]
    with tio.atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            for s in samples:
                w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in s.items()})


def read_samples_csv(path: str | Path) -> list[dict]:
    """The samples of an earlier ``calibrate-quality`` run (its samples.csv), to fit again."""
    p = Path(path)
    if not p.is_file():
        raise tio.InputError(f"{p} does not exist")
    need = {"case", "label_value", "dice", "missing", "damaged", *Q.FEATURES}
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not need <= set(reader.fieldnames or ()):
            raise tio.InputError(f"{p.name} is not a calibrate-quality samples.csv: columns "
                                 f"{sorted(need - set(reader.fieldnames or ()))} are missing")
        rows = []
        for r in reader:
            row = {k: r[k] for k in ("case", "muscle", "side", "damaged") if k in r}
            row["damaged"] = row.get("damaged") or ""
            row.update({"label_value": int(r["label_value"]), "dice": float(r["dice"]),
                        "missing": r["missing"].strip().lower() == "true"})
            row.update({name: float(r[name]) for name in Q.FEATURES})
            rows.append(row)
    return rows


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def _row(name: str, curve: dict) -> str:
    p = curve["at_threshold"]
    auc = curve["auroc"]
    return (f"| {name} | {'n/a' if math.isnan(auc) else f'{auc:.3f}'} | {_pct(p['sensitivity'])} | "
            f"{_pct(p['false_alarm_rate'])} | {p['flagged_positives']} / {p['positives']} | "
            f"{p['flagged_negatives']} / {p['negatives']} |")


def _other(point: dict) -> str:
    other = point.get("other_choice")
    if not other:
        return ""
    return (f" The other choice, threshold {other['threshold']:.3f}, would give sensitivity "
            f"{_pct(other['sensitivity'])} at {_pct(other['false_alarm_rate'])} false alarms.")


def summary_markdown(cal: Q.Calibration, report: dict) -> str:
    fitted = cal.fitted
    head_name, head = next(iter(report["curves"].items()))
    point = head["at_threshold"]
    fit = report["mode"] == "fit"
    if fit and "model" in fitted:
        source = (f"Model `{fitted['model']}` (SHA256 `{str(fitted.get('model_sha256'))[:16]}…`), "
                  f"{len(report['cases'])} cases, scope `{fitted.get('scope')}`, {fitted.get('damage_per_thigh')} "
                  f"damaged copies per thigh (seed {fitted.get('seed')}); {fitted.get('date')}.")
    elif fit:
        source = f"Refitted on the samples of `{fitted.get('samples_csv')}` ({len(report['cases'])} cases)."
    else:
        source = (f"The installed calibration (fitted {fitted.get('date')} for `{fitted.get('model')}`) scored on "
                  f"{len(report['cases'])} other cases; nothing was fitted.")
    how = ("chosen on the leave-one-case-out confidences: the fewest flags whose sensitivity's one-sided "
           f"95 % lower bound is ≥ {_pct(point['targets']['sensitivity'])}" if fit else "the installed one")
    lines = [
        "# Quality flag " + ("calibration" if fit else "evaluation"), "", source, "",
        f"Samples: {report['samples']} muscles ({report['damaged_samples']} of them deliberately damaged), "
        f"{report['positives']} below Dice {report['target_dice']:.2f} ({report['natural_positives']} of them not "
        f"damaged), {report['missing_muscles']} missing muscles (always flagged).", "",
        f"Threshold: a muscle is `check` when its confidence is below **{report['threshold']:.3f}** ({how}); "
        f"targets sensitivity ≥ {_pct(point['targets']['sensitivity'])} and false alarms ≤ "
        f"{_pct(point['targets']['false_alarm_rate'])} {'met' if point['targets_met'] else '**not met**'} "
        f"({head_name})." + _other(point), "",
        "| | AUROC | sensitivity | false-alarm rate | flagged positives | flagged negatives |",
        "| --- | --- | --- | --- | --- | --- |",
        *[_row(name, c) for name, c in report["curves"].items()],
        _row("undamaged results only", {"auroc": float("nan"), "at_threshold": report["undamaged_in_sample"]}),
        "", "| feature | mean | SD | weight |", "| --- | --- | --- | --- |",
    ]
    for name, mu, sd, w in zip(cal.features, cal.mean, cal.scale, cal.weights):
        lines.append(f"| `{name}` | {mu:.4f} | {sd:.4f} | {w:.3f} |")
    lines += ["", f"Intercept {cal.intercept:.3f}. P(Dice < {cal.target_dice:.2f}) = "
              "1 / (1 + exp(−(intercept + Σ weight · (feature − mean) / SD))); confidence = 1 − P.", ""]
    return "\n".join(lines)


def write_roc_png(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5.2), dpi=110)
    ax = fig.add_subplot(111)
    for (name, curve), style in zip(report["curves"].items(), ("-", "--")):
        roc = curve["roc"]
        ax.plot(roc["false_alarm_rate"], roc["sensitivity"], style, drawstyle="steps-post",
                label=f"{name} (AUROC {curve['auroc']:.3f})")
    point = next(iter(report["curves"].values()))["at_threshold"]
    ax.plot([point["false_alarm_rate"]], [point["sensitivity"]], "o", color="#c00000",
            label=f"threshold {report['threshold']:.3f}: sens. {_pct(point['sensitivity'])}, "
                  f"FA {_pct(point['false_alarm_rate'])}")
    ax.axhline(point["targets"]["sensitivity"], color="gray", lw=0.6, ls=":")
    ax.axvline(point["targets"]["false_alarm_rate"], color="gray", lw=0.6, ls=":")
    ax.plot([0, 1], [0, 1], color="lightgray", lw=0.8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false-alarm rate (muscles with Dice ≥ target flagged)")
    ax.set_ylabel("sensitivity (muscles with Dice < target flagged)")
    ax.set_title(f"Quality flag: {report['positives']} positives, {report['samples'] - report['positives']} "
                 f"negatives, {len(report['cases'])} cases", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with tio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
