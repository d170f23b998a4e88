"""Classification metrics with confidence intervals and paired tests.

- Proportions (accuracy, sensitivity, specificity, PPV, NPV) with Wilson intervals
  (``scipy.stats.binomtest``).  A proportion whose denominator is zero (e.g. specificity on a
  test set without negatives, PPV of a class never predicted) is ``None``, never NaN.
- AUC from scikit-learn; per class (one-vs-rest) and macro for multi-class, per label for
  multi-label.  A class absent from the test set has no AUC (``None``) and is left out of the
  macro average, which says how many classes it averages.  A test set with one class only
  has no AUC at all: that raises.
- DeLong variance, confidence interval and paired test for correlated ROC curves.
- McNemar's exact test for two classifiers on the same cases.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from MedSynthCommonLib.errors import MedSynthInputError


def proportion(successes: int, total: int, confidence: float = 0.95) -> dict:
    """A proportion with its Wilson interval; ``None`` when ``total`` is 0."""
    if total == 0:
        return {"value": None, "ci": None, "n": 0}
    interval = stats.binomtest(successes, total).proportion_ci(confidence, method="wilson")
    return {"value": successes / total, "ci": [float(interval.low), float(interval.high)], "n": total}


def binary_metrics(y_true, y_pred, confidence: float = 0.95) -> dict:
    """Accuracy, sensitivity, specificity, PPV and NPV of 0/1 predictions, with Wilson CIs."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    for name, y in (("labels", y_true), ("predictions", y_pred)):
        if not set(np.unique(y).tolist()) <= {0, 1}:
            raise MedSynthInputError(f"Binary metrics need 0/1 {name}; got values {np.unique(y)[:8].tolist()}.")
    tp = int(np.sum((y_true == 1) & (y_pred == 1)))
    tn = int(np.sum((y_true == 0) & (y_pred == 0)))
    fp = int(np.sum((y_true == 0) & (y_pred == 1)))
    fn = int(np.sum((y_true == 1) & (y_pred == 0)))
    return {
        "tp": tp, "tn": tn, "fp": fp, "fn": fn,
        "accuracy": proportion(tp + tn, tp + tn + fp + fn, confidence),
        "sensitivity": proportion(tp, tp + fn, confidence),
        "specificity": proportion(tn, tn + fp, confidence),
        "ppv": proportion(tp, tp + fp, confidence),
        "npv": proportion(tn, tn + fn, confidence),
    }


def _check_pair(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 0 or b.ndim == 0 or a.shape[0] != b.shape[0]:
        raise MedSynthInputError(f"{np.size(a)} labels but {np.size(b)} predictions; they must match case by case.")
    if a.shape[0] == 0:
        raise MedSynthInputError("No cases to evaluate.")
    for name, values in (("labels", a), ("predictions", b)):
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            raise MedSynthInputError(f"{bad} of the {name} are NaN or infinite; a model that outputs NaN has failed "
                                     "(check its training), and such cases cannot be scored.")
    return a, b


#: DeLong's variance needs two cases of each class (one gives a 0/0 covariance)
DELONG_MINIMUM_PER_CLASS = 2


def _delong_sizes(y_true: np.ndarray) -> tuple[int, int]:
    positives = int(np.sum(y_true == 1))
    return positives, int(y_true.size - positives)


def auc(y_true, scores) -> float:
    """Binary ROC AUC; raises when the test set holds one class only."""
    from sklearn.metrics import roc_auc_score

    y_true, scores = _check_pair(y_true, scores)
    if np.unique(y_true).size < 2:
        raise MedSynthInputError(
            "AUC is undefined on a test set with one class only; add cases of the other class.")
    return float(roc_auc_score(y_true, scores))


def per_class_auc(y_true, scores, class_names=None) -> dict:
    """One-vs-rest AUC per class and their macro average.

    ``y_true``: (n,) class indices (multi-class) or (n, k) 0/1 matrix (multi-label);
    ``scores``: (n, k).  Classes absent (or always present) in the test set get ``None``.
    """
    scores = np.asarray(scores, dtype=float)
    y_true = np.asarray(y_true)
    if scores.ndim != 2:
        raise MedSynthInputError(f"scores must be (cases, classes); got shape {scores.shape}.")
    k = scores.shape[1]
    if y_true.ndim == 1:
        if y_true.min() < 0 or y_true.max() >= k:
            raise MedSynthInputError(f"Class indices must be in 0..{k - 1}; got {y_true.min()}..{y_true.max()}.")
        indicator = np.eye(k, dtype=int)[y_true]
    else:
        indicator = y_true.astype(int)
    _check_pair(indicator, scores)
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    if len(names) != k:
        raise MedSynthInputError(f"{len(names)} class names for {k} score columns; give one name per column.")
    per_class, intervals = {}, {}
    for c in range(k):
        column = indicator[:, c]
        if 0 < column.sum() < column.size:
            result = delong_auc(column, scores[:, c])
            per_class[names[c]], intervals[names[c]] = result["auc"], result["ci"]
        else:
            per_class[names[c]], intervals[names[c]] = None, None
    defined = [v for v in per_class.values() if v is not None]
    if not defined:
        raise MedSynthInputError("No class has both positive and negative cases: AUC is undefined for all.")
    return {"per_class": per_class, "per_class_ci": intervals, "macro": float(np.mean(defined)),
            "classes_averaged": len(defined)}


def per_finding_metrics(truth, probabilities, called, names: list[str], thresholds: list[float],
                        confidence: float = 0.95) -> dict:
    """Multi-label findings judged one finding at a time, for 2-D images and 3-D scans alike.

    ``truth`` and ``called``: (cases, findings) 0/1; ``probabilities``: (cases, findings);
    ``thresholds``: the probability each finding is called at.  Per finding: AUC with DeLong's
    CI and the ROC curve (``None`` when the test set lacks positives or negatives of it),
    sensitivity and specificity with Wilson CIs, the threshold, positives and negatives."""
    from sklearn.metrics import roc_curve

    truth, probabilities, called = (np.asarray(a) for a in (truth, probabilities, called))
    if not truth.shape == probabilities.shape == called.shape == (len(truth), len(names)) or len(thresholds) != len(names):
        raise MedSynthInputError(f"Findings, probabilities and calls must be (cases, {len(names)}) with one threshold "
                                 f"per finding; got {truth.shape}, {probabilities.shape}, {called.shape} and "
                                 f"{len(thresholds)} thresholds.")
    per_finding = {}
    for f, name in enumerate(names):
        column = truth[:, f].astype(int)
        metrics = binary_metrics(column, called[:, f].astype(int), confidence)
        auc_value = roc = None
        if 0 < column.sum() < len(column):
            delong = delong_auc(column, probabilities[:, f], confidence)
            auc_value = {"value": delong["auc"], "ci": delong["ci"], "se": delong["se"], "method": "DeLong"}
            fpr, tpr, _ = roc_curve(column, probabilities[:, f])
            roc = {"fpr": fpr.round(4).tolist(), "tpr": tpr.round(4).tolist()}
        per_finding[name] = {"auc": auc_value, "roc": roc, "sensitivity": metrics["sensitivity"],
                             "specificity": metrics["specificity"], "threshold": float(thresholds[f]),
                             "positives": int(column.sum()), "negatives": int(len(column) - column.sum())}
    return per_finding


def _midranks(values: np.ndarray) -> np.ndarray:
    return stats.rankdata(values, method="average")


def _delong_components(y_true: np.ndarray, scores: np.ndarray):
    """AUCs and structural components of DeLong et al. (1988), by the midrank algorithm of
    Sun & Xu (2014).  ``scores``: (models, cases).  Written by hand: neither SciPy nor
    scikit-learn provides DeLong's covariance."""
    positive, negative = scores[:, y_true == 1], scores[:, y_true == 0]
    m, n = positive.shape[1], negative.shape[1]
    v10 = np.empty_like(positive, dtype=float)
    v01 = np.empty_like(negative, dtype=float)
    aucs = np.empty(scores.shape[0])
    for k in range(scores.shape[0]):
        all_ranks = _midranks(np.concatenate([positive[k], negative[k]]))
        pos_ranks, neg_ranks = _midranks(positive[k]), _midranks(negative[k])
        aucs[k] = (all_ranks[:m].sum() - m * (m + 1) / 2.0) / (m * n)
        v10[k] = (all_ranks[:m] - pos_ranks) / n
        v01[k] = 1.0 - (all_ranks[m:] - neg_ranks) / m
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, covariance


def delong_auc(y_true, scores, confidence: float = 0.95) -> dict:
    """AUC with DeLong's standard error and a normal confidence interval (clipped to [0, 1]).
    With fewer than two cases of a class the interval is undefined: ``se`` and ``ci`` are None."""
    y_true, scores = _check_pair(y_true, scores)
    value = auc(y_true, scores)  # validates: two classes present
    if min(_delong_sizes(y_true)) < DELONG_MINIMUM_PER_CLASS:
        return {"auc": value, "se": None, "ci": None,
                "note": f"a confidence interval needs at least {DELONG_MINIMUM_PER_CLASS} cases of each class"}
    aucs, cov = _delong_components(y_true.astype(int), np.asarray(scores, float)[np.newaxis])
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    z = stats.norm.ppf(0.5 + confidence / 2.0)
    value = float(aucs[0])
    return {"auc": value, "se": se, "ci": [max(0.0, value - z * se), min(1.0, value + z * se)]}


def delong_paired_test(y_true, scores_a, scores_b) -> dict:
    """Two-sided DeLong test of AUC(a) = AUC(b) on the same cases."""
    y_true, scores_a = _check_pair(y_true, scores_a)
    _check_pair(y_true, scores_b)
    auc(y_true, scores_a)
    if min(_delong_sizes(y_true)) < DELONG_MINIMUM_PER_CLASS:
        raise MedSynthInputError(f"DeLong's test needs at least {DELONG_MINIMUM_PER_CLASS} cases of each class; "
                                 f"this test set has {_delong_sizes(y_true)} (positive, negative).")
    aucs, cov = _delong_components(y_true.astype(int), np.vstack([scores_a, scores_b]).astype(float))
    difference = float(aucs[0] - aucs[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if variance <= 1e-15:
        # identical rankings: no difference and no evidence of one
        return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": difference, "z": 0.0, "p_value": 1.0}
    z = difference / np.sqrt(variance)
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": difference,
            "z": float(z), "p_value": float(2.0 * stats.norm.sf(abs(z)))}


def mcnemar_test(correct_a, correct_b) -> dict:
    """McNemar's exact test: do classifiers a and b err on different cases more than chance?

    ``correct_a``, ``correct_b``: per-case booleans (prediction right or wrong).
    """
    a, b = _check_pair(np.asarray(correct_a, bool), np.asarray(correct_b, bool))
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(stats.binomtest(only_a, discordant, 0.5).pvalue)
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": p}
