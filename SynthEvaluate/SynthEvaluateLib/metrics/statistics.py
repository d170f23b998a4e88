"""Confidence intervals over cases and paired tests (SciPy's bootstrap and Wilcoxon)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from MedSynthCommonLib.errors import MedSynthInputError

#: fewer cases than this give bootstrap intervals too unstable to report
MIN_BOOTSTRAP_CASES = 5


def _values(values, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise MedSynthInputError(f"{name} must be one number per case; got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise MedSynthInputError(
            f"{name} holds non-finite numbers (e.g. HD95 = inf for an empty mask); decide how to "
            "count those cases (drop them, or cap the distance) before computing intervals.")
    if array.size < MIN_BOOTSTRAP_CASES:
        raise MedSynthInputError(
            f"A bootstrap interval needs at least {MIN_BOOTSTRAP_CASES} cases; got {array.size}. "
            "Evaluate more cases, or report the values without an interval.")
    return array


def bootstrap_ci(values, statistic=np.mean, confidence: float = 0.95, n_resamples: int = 10000,
                 seed: int = 0, method: str = "BCa") -> dict:
    """Statistic of per-case values with a bootstrap confidence interval over cases.

    Falls back from BCa to the percentile method when BCa is undefined (all values equal).
    """
    array = _values(values)
    value = float(statistic(array))
    if np.all(array == array[0]):
        return {"value": value, "ci": [value, value], "n": int(array.size), "method": "degenerate (all equal)"}
    result = stats.bootstrap((array,), statistic, confidence_level=confidence, n_resamples=n_resamples,
                             method=method, random_state=np.random.default_rng(seed), vectorized=True)
    return {"value": value, "ci": [float(result.confidence_interval.low), float(result.confidence_interval.high)],
            "n": int(array.size), "method": method, "n_resamples": n_resamples, "seed": seed}


def paired_difference(values_a, values_b, confidence: float = 0.95, n_resamples: int = 10000, seed: int = 0) -> dict:
    """Mean of (a - b) over the same cases, its bootstrap CI, and the Wilcoxon signed-rank test."""
    a, b = _values(values_a, "values_a"), _values(values_b, "values_b")
    if a.size != b.size:
        raise MedSynthInputError(f"Paired comparison needs the same cases: {a.size} vs {b.size} values.")
    difference = a - b
    interval = bootstrap_ci(difference, np.mean, confidence, n_resamples, seed)
    if np.all(difference == 0):
        p_value = 1.0  # identical results: no evidence of a difference (Wilcoxon is undefined)
    else:
        p_value = float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    result = {"mean_difference": interval["value"], "ci": interval["ci"], "wilcoxon_p": p_value, "n": int(a.size)}
    low, high = interval["ci"] if interval["ci"] is not None else (-np.inf, np.inf)
    if low <= 0.0 <= high:
        needed = cases_for_difference(difference, confidence)
        result["conclusion"] = ("no conclusion: the interval holds 0" + (
            f"; about {needed} cases would show a difference this large (80 % power)" if needed is not None else
            "; the observed difference is 0"))
        result["cases_needed"] = needed
    else:
        result["conclusion"] = "a difference: the interval excludes 0"
    return result


def cases_for_difference(difference, confidence: float = 0.95, power: float = 0.8) -> int | None:
    """Cases a paired comparison needs to find the observed mean difference with ``power``
    (normal approximation: n = ((z_(1-alpha/2) + z_power) sd / mean)^2); None for a zero mean."""
    difference = np.asarray(difference, float)
    mean, sd = float(np.mean(difference)), float(np.std(difference, ddof=1)) if difference.size > 1 else 0.0
    if mean == 0.0:
        return None
    z = stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(power)
    return max(int(np.ceil((z * sd / abs(mean)) ** 2)), 2)
