"""Fitting the quality score: logistic regression, ROC, AUROC, threshold (numpy only).

- ``fit_logistic``: features standardised (mean, SD of the calibration samples), ridge
  penalty ``RIDGE`` on the weights (not the intercept), Newton-Raphson (IRLS). Every feature
  measures something wrong, so a weight may not be negative: a feature that gets a negative
  weight is dropped (weight 0) and the model refitted, until all weights are >= 0.
- ``auroc``: the Mann-Whitney probability that a positive (Dice below target) has a lower
  confidence than a negative; ties count one half.
- ``choose_threshold``: the lowest confidence threshold (fewest flags) that still flags at
  least ``sensitivity`` of the positives (by the one-sided 95 % Wilson lower bound of the
  flagged share, so that new cases keep it), when the false-alarm rate there is within
  ``false_alarms``. When both cannot be had, sensitivity comes first by default (a missed
  failure costs more than a look); ``prefer="false-alarms"`` keeps the false-alarm target
  instead. Either way the other choice is reported beside it.
- ``cross_validated``: leave-one-case-out confidences (each case's samples scored by a model
  fitted on the other cases), the honest estimate on few cases.
"""

from __future__ import annotations

import math

import numpy as np

RIDGE = 1.0
MAX_ITER = 100


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _irls(z: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """[intercept, weights...] maximising the penalised log-likelihood."""
    a = np.column_stack([np.ones(len(y)), z])
    beta = np.zeros(a.shape[1])
    penalty = np.full(a.shape[1], ridge)
    penalty[0] = 1e-6  # the intercept is (almost) free
    for _ in range(MAX_ITER):
        p = _sigmoid(a @ beta)
        grad = a.T @ (y - p) - penalty * beta
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-9:
            break
    return beta


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> dict:
    """Standardisation and coefficients of P(y = 1 | x); ``x`` is (n, features), ``y`` 0/1."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise ValueError("need a (samples, features) matrix and one 0/1 outcome per sample")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    keep = np.ones(x.shape[1], bool)
    while True:
        beta = _irls(z[:, keep], y, ridge)
        w = np.zeros(x.shape[1])
        w[keep] = beta[1:]
        if (w >= 0).all():
            break
        keep &= w > 0  # a negative weight would reward a sign of failure: drop the feature
    return {"mean": mean.tolist(), "scale": scale.tolist(), "weights": w.tolist(), "intercept": float(beta[0])}


def confidences(x: np.ndarray, fit: dict) -> np.ndarray:
    """1 − P(y = 1 | x) under ``fit``."""
    z = (np.asarray(x, float) - np.asarray(fit["mean"])) / np.asarray(fit["scale"])
    return 1.0 - _sigmoid(fit["intercept"] + z @ np.asarray(fit["weights"]))


def cross_validated(x: np.ndarray, y: np.ndarray, groups: list, ridge: float = RIDGE) -> np.ndarray:
    """Leave-one-group-out confidences (a group = a case and its damaged copies)."""
    groups = np.asarray(groups)
    out = np.empty(len(y))
    for g in np.unique(groups):
        test = groups == g
        fit = fit_logistic(x[~test], y[~test], ridge) if (~test).any() else fit_logistic(x, y, ridge)
        out[test] = confidences(x[test], fit)
    return out


def auroc(confidence: np.ndarray, positive: np.ndarray) -> float:
    """P(a positive's confidence < a negative's), ties one half; nan without both classes."""
    c, pos = np.asarray(confidence, float), np.asarray(positive, bool)
    cp, cn = c[pos], c[~pos]
    if not len(cp) or not len(cn):
        return float("nan")
    less = (cp[:, None] < cn[None, :]).sum() + 0.5 * (cp[:, None] == cn[None, :]).sum()
    return float(less / (len(cp) * len(cn)))


def roc_curve(confidence: np.ndarray, positive: np.ndarray) -> dict:
    """False-alarm rate and sensitivity when flagging ``confidence < t`` for every cut t."""
    c, pos = np.asarray(confidence, float), np.asarray(positive, bool)
    cuts = np.concatenate([[-np.inf], np.unique(c), [np.inf]])
    thresholds = [float(t) for t in cuts]
    sens = [operating_point(c, pos, t)["sensitivity"] for t in cuts]
    far = [operating_point(c, pos, t)["false_alarm_rate"] for t in cuts]
    return {"threshold": thresholds, "sensitivity": sens, "false_alarm_rate": far}


def operating_point(confidence: np.ndarray, positive: np.ndarray, threshold: float) -> dict:
    c, pos = np.asarray(confidence, float), np.asarray(positive, bool)
    flagged = c < threshold
    tp, fp = int((flagged & pos).sum()), int((flagged & ~pos).sum())
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return {"threshold": float(threshold), "positives": n_pos, "negatives": n_neg, "flagged_positives": tp,
            "flagged_negatives": fp, "sensitivity": tp / n_pos if n_pos else float("nan"),
            "false_alarm_rate": fp / n_neg if n_neg else float("nan")}


PREFERENCES = ("sensitivity", "false-alarms")
# The threshold must reach the sensitivity target with its one-sided 95 % lower bound, not only
# its estimate: on new cases the sensitivity was measured lower than where it was chosen.
SENSITIVITY_Z = 1.645


def sensitivity_lower_bound(flagged: int, positives: int, z: float = SENSITIVITY_Z) -> float:
    """One-sided lower confidence bound of flagged / positives (Wilson score interval)."""
    if positives == 0:
        return float("nan")
    p, n = flagged / positives, positives
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def _cut(levels: np.ndarray, i: int) -> float:
    """A threshold just above confidence level i: halfway to the next level."""
    upper = levels[i + 1] if i + 1 < len(levels) else min(1.0, levels[i] + 1e-3)
    return float((levels[i] + upper) / 2) if upper > levels[i] else float(levels[i] + 1e-6)


def best_within_false_alarms(confidence: np.ndarray, positive: np.ndarray, false_alarms: float = 0.10) -> dict:
    """The operating point with the most flags whose false-alarm rate stays within ``false_alarms``."""
    c, pos = np.asarray(confidence, float), np.asarray(positive, bool)
    best = operating_point(c, pos, float(c.min()) if len(c) else 0.0)
    levels = np.unique(c)
    for i in range(len(levels)):
        point = operating_point(c, pos, _cut(levels, i))
        if point["false_alarm_rate"] > false_alarms:
            break
        best = point
    return best


def choose_threshold(confidence: np.ndarray, positive: np.ndarray, sensitivity: float = 0.90,
                     false_alarms: float = 0.10, prefer: str = "sensitivity") -> dict:
    """The threshold (cuts lie halfway between confidence levels). Both targets when they can be
    met together (the fewest flags whose sensitivity's one-sided 95 % lower bound reaches
    ``sensitivity``; with too few positives for that, the fewest flags catching them all);
    otherwise ``prefer`` decides:
    "sensitivity" keeps the sensitivity target (more false alarms), "false-alarms" keeps the
    false-alarm target (fewer failures caught)."""
    c, pos = np.asarray(confidence, float), np.asarray(positive, bool)
    if not pos.any():
        raise ValueError("no positive (a muscle below the target Dice) to calibrate on")
    if prefer not in PREFERENCES:
        raise ValueError(f"prefer must be one of {PREFERENCES}, not {prefer!r}")
    levels = np.unique(c)
    point = None
    all_caught = None
    for i in range(len(levels)):
        candidate = operating_point(c, pos, _cut(levels, i))
        if sensitivity_lower_bound(candidate["flagged_positives"], candidate["positives"]) >= sensitivity:
            point = candidate
            break
        if all_caught is None and candidate["sensitivity"] >= 1.0:
            all_caught = candidate
    if point is None:
        point = all_caught or operating_point(c, pos, _cut(levels, len(levels) - 1))
    point = dict(point)
    point["sensitivity_lower_bound"] = sensitivity_lower_bound(point["flagged_positives"], point["positives"])
    alternative = best_within_false_alarms(c, pos, false_alarms)
    met = bool(point["sensitivity"] >= sensitivity and point["false_alarm_rate"] <= false_alarms)
    if not met and prefer == "false-alarms":
        point, alternative = dict(alternative), point
    point["targets"] = {"sensitivity": sensitivity, "false_alarm_rate": false_alarms, "prefer": prefer}
    point["targets_met"] = met
    point["other_choice"] = None if met else alternative  # what the other preference would give
    return point
