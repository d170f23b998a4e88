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


def _per_case(values, name: str) -> tuple[np.ndarray, int]:
    """One number per case: (cases,) as given, or (seeds, cases) averaged over the seeds for each
    case (the cases are the units of a paired comparison; the seeds' scatter is averaged within
    each case, not counted as more cases).  Returns the values and the number of seeds."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 2:
        if array.shape[0] < 1:
            raise MedSynthInputError(f"{name} holds no seed.")
        return _values(array.mean(axis=0), name), int(array.shape[0])
    return _values(array, name), 1


def paired_difference(values_a, values_b, confidence: float = 0.95, n_resamples: int = 10000, seed: int = 0,
                      margin: float | None = None) -> dict:
    """Mean of (a - b) over the same cases, its bootstrap CI, and the Wilcoxon signed-rank test.

    ``values_a``/``values_b``: one value per case (cases,), or one row per training seed
    (seeds, cases) for the same cases, averaged over the seeds within each case.  ``margin``
    (> 0, in the values' units): an interval that holds 0 but whose lower end lies above
    ``-margin`` concludes "not worse by more than the margin" (non-inferiority, judged by the
    two-sided interval, so at level (1 - confidence) / 2 one-sided)."""
    a, seeds_a = _per_case(values_a, "values_a")
    b, seeds_b = _per_case(values_b, "values_b")
    if a.size != b.size or seeds_a != seeds_b:
        raise MedSynthInputError(f"Paired comparison needs the same cases and seeds: {seeds_a}x{a.size} vs "
                                 f"{seeds_b}x{b.size} values.")
    if margin is not None and not margin > 0:
        raise MedSynthInputError(f"The non-inferiority margin must be above 0; got {margin}.")
    difference = a - b
    interval = bootstrap_ci(difference, np.mean, confidence, n_resamples, seed)
    if np.all(difference == 0):
        p_value = 1.0  # identical results: no evidence of a difference (Wilcoxon is undefined)
    else:
        p_value = float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    result = {"mean_difference": interval["value"], "ci": interval["ci"], "wilcoxon_p": p_value, "n": int(a.size),
              "seeds": seeds_a}
    if margin is not None:
        result["margin"] = float(margin)
    low, high = interval["ci"]
    if low > 0.0 or high < 0.0:
        result["conclusion"] = ("a difference: the interval excludes 0 (" + ("better" if low > 0.0 else "worse") + ")")
    elif margin is not None and low > -margin:
        result["conclusion"] = f"not worse by more than {margin:g}: the interval holds 0 and its lower end is above -{margin:g}"
    else:
        needed = cases_for_difference(difference, confidence)
        result["conclusion"] = ("no conclusion: the interval holds 0" + (
            f"; about {needed} cases would show a difference this large (80 % power)" if needed is not None else
            "; the observed difference is 0"))
        result["cases_needed"] = needed
        if margin is not None:
            needed = cases_for_difference(difference, confidence, shift=margin)
            result["cases_needed_for_margin"] = needed
            if needed is not None:
                result["conclusion"] += f"; about {needed} would show it is not worse by more than {margin:g}"
    return result


def comparison_sentence(arm: str, comparison: dict, cases: str = "cases") -> str:
    """One line of a study's verdict from a ``paired_difference`` result that also names what it
    compares (``versus``, ``metric``): "ARM vs REF (METRIC over S seed(s), N CASES): +d [lo, hi],
    conclusion."."""
    low, high = comparison["ci"]
    return (f"{arm} vs {comparison['versus']} ({comparison['metric']} over {comparison['seeds']} seed(s), "
            f"{comparison['n']} {cases}): {comparison['mean_difference']:+.3f} [{low:+.3f}, {high:+.3f}], "
            f"{comparison['conclusion']}.")


def cases_for_difference(difference, confidence: float = 0.95, power: float = 0.8, shift: float = 0.0) -> int | None:
    """Cases a paired comparison needs to find the observed mean difference with ``power``
    (normal approximation: n = ((z_(1-alpha/2) + z_power) sd / (mean + shift))^2); None where
    mean + shift is 0 or below.  ``shift``: a non-inferiority margin (the interval's lower end
    must clear -margin instead of 0); 0 for a difference from 0 in either direction."""
    difference = np.asarray(difference, float)
    mean, sd = float(np.mean(difference)), float(np.std(difference, ddof=1)) if difference.size > 1 else 0.0
    distance = abs(mean) if shift == 0.0 else mean + shift
    if distance <= 0.0:
        return None
    z = stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(power)
    return max(int(np.ceil((z * sd / distance) ** 2)), 2)
