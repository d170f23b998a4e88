"""Augmentation study for segmenters: real only, synthetic only and real + synthetic training
of the same UNet recipe, scored on one held-out test set (Dice and NSD per case), each arm
paired with real-only on the same cases (bootstrap CI of the Dice difference, Wilcoxon)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from .leakage import check_disjoint
from .protocols import run_arms, study_arms
from .segmentation import dice, normalized_surface_dice
from .segmenter import SegmenterRecipe, train_segmenter
from .statistics import MIN_BOOTSTRAP_CASES, bootstrap_ci, paired_difference

Case = tuple[np.ndarray, np.ndarray]  # volume [k, j, i], binary label


def _subset(cases: list[Case], count: int | None, rng: np.random.Generator) -> list[Case]:
    if count is None or count >= len(cases):
        return list(cases)
    return [cases[i] for i in np.sort(rng.choice(len(cases), count, replace=False))]


def segmentation_augmentation_study(real_train: list[Case], synthetic: list[Case], test: list[Case], spacing_kji,
                                    recipe: SegmenterRecipe = SegmenterRecipe(), seeds=(0,), synthetic_ratios=(1.0,),
                                    real_counts=(None,), synthetic_only: bool = True, tolerance_mm: float = 2.0,
                                    progress: Callable[[str], None] | None = None, should_stop=None) -> dict:
    """Dice/NSD of each arm on ``test`` (same grid spacing for all test cases)."""
    if not real_train or not synthetic or not test:
        raise MedSynthInputError("Give real training cases, synthetic cases and test cases.")
    check_disjoint({f"train:{i}": v for i, (v, _) in enumerate(real_train)}, {f"test:{i}": v for i, (v, _) in enumerate(test)})
    arms = study_arms(synthetic_ratios, real_counts, synthetic_only)

    def fit_and_score(arm, seed, rng):
        if arm["ratio"] is None:
            train = list(synthetic)
        else:
            train = _subset(real_train, arm["real_count"], rng)
            if arm["ratio"]:
                train += _subset(synthetic, int(round(arm["ratio"] * len(train))), rng)
        model = train_segmenter([v for v, _ in train], [l for _, l in train], recipe, seed, should_stop=should_stop)
        predictions = [model.predict(v) for v, _ in test]
        scores = {"dice": [dice(p, l > 0) for p, (_, l) in zip(predictions, test)],
                  "nsd": [normalized_surface_dice(p, l > 0, spacing_kji, tolerance_mm) for p, (_, l) in zip(predictions, test)]}
        entry = {"train_cases": len(train), "per_case": scores,
                 "dice": _mean_with_ci(scores["dice"], seed), "nsd": _mean_with_ci(scores["nsd"], seed)}
        return entry, scores

    def compare(scores, reference, seed):
        if len(test) < MIN_BOOTSTRAP_CASES:
            return None
        return paired_difference(scores["dice"], reference["dice"], n_resamples=2000, seed=seed)

    results = run_arms(arms, seeds, fit_and_score, compare, progress)
    summary = {name: {"dice_mean_over_seeds": float(np.mean([r["dice"]["value"] for r in runs])),
                      "nsd_mean_over_seeds": float(np.mean([r["nsd"]["value"] for r in runs]))}
               for name, runs in results.items()}
    return {"protocol": "segmentation-augmentation", "recipe": recipe.to_dict(), "seeds": list(seeds), "arms": arms,
            "test_cases": len(test), "tolerance_mm": tolerance_mm, "summary": summary, "runs": results}


def _mean_with_ci(values, seed) -> dict:
    if len(values) >= MIN_BOOTSTRAP_CASES:
        return bootstrap_ci(values, n_resamples=2000, seed=seed, method="percentile")
    return {"value": float(np.mean(values)), "ci": None, "n": len(values)}
