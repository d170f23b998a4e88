"""Evaluation protocols: does synthetic data help a downstream classifier?

- ``evaluate_classifier``: accuracy, per-class sensitivity/specificity and AUC with intervals.
- ``gan_train_test`` (Shmelkov et al. 2018): the same recipe trained on real and tested on
  real (baseline), trained on synthetic and tested on real (GAN-train), trained on real and
  tested on synthetic (GAN-test), over several seeds.
- ``augmentation_study``: real only, synthetic only, and real + synthetic at chosen ratios,
  optionally with only a few real cases; one held-out test set for all; each arm compared
  with real-only on the same cases (paired: McNemar, bootstrap CI of the accuracy difference,
  DeLong for binary tasks).
Training and test sets are checked for shared images first (``leakage.check_disjoint``).
With ``runs_dir`` each finished seed (and arm) is kept there, and a study killed or cancelled
and started again with the same sets and recipe trains only what is left, with the same results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.finished_work import FinishedWork, fingerprint

from ..metrics.classification import binary_metrics, delong_auc, delong_paired_test, mcnemar_test, per_class_auc, proportion
from ..recipes.data import ImageSet
from .arms import kept_message, run_arms
from .leakage import check_disjoint, content_hash
from .margins import AUGMENTATION_MARGIN
from ..metrics.statistics import MIN_BOOTSTRAP_CASES, bootstrap_ci, comparison_sentence, paired_difference
from ..recipes.training import ClassifierRecipe, TrainedClassifier, train_classifier


def evaluate_classifier(classifier: TrainedClassifier, test: ImageSet, confidence: float = 0.95) -> dict:
    """Metrics of ``classifier`` on ``test``, with per-case results kept for paired tests."""
    if test.class_names != classifier.class_names:
        raise MedSynthInputError(f"Test classes {test.class_names} differ from the model's {classifier.class_names}.")
    probabilities = classifier.predict_proba(test.images)
    predictions = probabilities.argmax(axis=1)
    correct = predictions == test.labels
    accuracy = proportion(int(correct.sum()), len(correct), confidence)
    per_class = {}
    for c, name in enumerate(test.class_names):
        m = binary_metrics((test.labels == c).astype(int), (predictions == c).astype(int), confidence)
        per_class[name] = {"sensitivity": m["sensitivity"], "specificity": m["specificity"]}
    result = {"accuracy": accuracy, "per_class": per_class, "cases": len(test), "roc": roc_curves(test, probabilities),
              "probabilities": probabilities, "predictions": predictions, "correct": correct}
    if len(test.class_names) == 2 and 0 < test.labels.sum() < len(test):
        result["auc"] = delong_auc(test.labels, probabilities[:, 1], confidence)
    else:
        result["auc"] = per_class_auc(test.labels, probabilities, test.class_names)
    return result


def roc_curves(test: ImageSet, probabilities: np.ndarray) -> dict:
    """ROC points per class (one-vs-rest; the positive class only for binary tasks)."""
    from sklearn.metrics import roc_curve

    classes = [1] if len(test.class_names) == 2 else range(len(test.class_names))
    curves = {}
    for c in classes:
        truth = (test.labels == c).astype(int)
        if 0 < truth.sum() < len(truth):
            fpr, tpr, _ = roc_curve(truth, probabilities[:, c])
            curves[test.class_names[c]] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
    return curves


def _public(metrics: dict) -> dict:
    """Metrics without the per-case arrays (for reports and JSON)."""
    return {k: v for k, v in metrics.items() if k not in ("probabilities", "predictions", "correct")}


def _auc_value(metrics: dict) -> float:
    auc = metrics["auc"]
    return auc["auc"] if "auc" in auc else auc["macro"]


def _check_sets(train: ImageSet, test: ImageSet, what: str) -> None:
    check_disjoint({f"train:{i}": im for i, im in zip(train.ids, train.images)},
                   {f"test:{i}": im for i, im in zip(test.ids, test.images)})
    if train.class_names != test.class_names:
        raise MedSynthInputError(f"{what}: training classes {train.class_names} differ from test classes {test.class_names}.")


def _finished_work(runs_dir: Path | None, protocol: str, sets: list[ImageSet], recipe: ClassifierRecipe) -> FinishedWork:
    """Where a study keeps its finished runs, for these image sets (their pixels, labels and
    classes) and this recipe."""
    return FinishedWork(runs_dir, fingerprint(protocol, [[content_hash(s.images), content_hash(s.labels), s.class_names]
                                                         for s in sets], recipe.to_dict()))


#: the per-case results a paired comparison of classifiers needs, kept with each finished run
PER_CASE = ("correct", "probabilities")


def _summary_over_seeds(values: list[float]) -> dict:
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max()), "per_seed": values.tolist()}


def gan_train_test(real_train: ImageSet, real_test: ImageSet, synthetic_train: ImageSet, synthetic_test: ImageSet,
                   recipe: ClassifierRecipe = ClassifierRecipe(), seeds=(0, 1, 2),
                   progress: Callable[[str], None] | None = None, should_stop=None,
                   runs_dir: Path | None = None) -> dict:
    """Baseline, GAN-train and GAN-test accuracy and AUC over ``seeds`` (each seed kept in
    ``runs_dir`` when given)."""
    _check_sets(real_train, real_test, "baseline")
    _check_sets(synthetic_train, real_test, "GAN-train")
    from ..metrics.distances import inception_score

    finished = _finished_work(runs_dir, "gan-train-test/1", [real_train, real_test, synthetic_train, synthetic_test],
                              recipe)
    runs = {"baseline": [], "gan_train": [], "gan_test": []}
    scores = {"synthetic_test": [], "real_test": []}
    for seed in seeds:
        kept = finished.get(f"seed {seed}")
        if kept is not None:
            kept_message(progress, f"seed {seed}")
        else:
            if progress:
                progress(f"seed {seed}: training on real")
            on_real = train_classifier(real_train, recipe, seed, should_stop=should_stop)
            if progress:
                progress(f"seed {seed}: training on synthetic")
            on_synthetic = train_classifier(synthetic_train, recipe, seed, should_stop=should_stop)
            baseline, gan_test = evaluate_classifier(on_real, real_test), evaluate_classifier(on_real, synthetic_test)
            kept = finished.keep(f"seed {seed}", {
                "baseline": _public(baseline), "gan_train": _public(evaluate_classifier(on_synthetic, real_test)),
                "gan_test": _public(gan_test), "synthetic_test": inception_score(gan_test["probabilities"])["is"],
                "real_test": inception_score(baseline["probabilities"])["is"]})
        for name in runs:
            runs[name].append(kept[name])
        for name in scores:
            scores[name].append(kept[name])
    summary = {arm: {"accuracy": _summary_over_seeds([r["accuracy"]["value"] for r in results]),
                     "auc": _summary_over_seeds([_auc_value(r) for r in results])}
               for arm, results in runs.items()}
    inception = {name: _summary_over_seeds(values) for name, values in scores.items()}
    inception["network"] = (f"not Inception-v3 (its weights cannot be downloaded here): the recipe's "
                            f"'{recipe.network}' classifier trained on the real training set, one per seed; "
                            f"1 to {len(real_train.class_names)} (the number of classes); the real test set's "
                            "score is the reference")
    return {"protocol": "gan-train/gan-test", "recipe": recipe.to_dict(), "seeds": list(seeds),
            "sets": {"real_train": real_train.summary(), "real_test": real_test.summary(),
                     "synthetic_train": synthetic_train.summary(), "synthetic_test": synthetic_test.summary()},
            "summary": summary, "inception_score": inception, "runs": runs}


def augmentation_study(real_train: ImageSet, synthetic: ImageSet, test: ImageSet,
                       recipe: ClassifierRecipe = ClassifierRecipe(), seeds=(0, 1, 2),
                       synthetic_ratios=(0.0, 0.5, 1.0), real_counts=(None,), synthetic_only: bool = True,
                       progress: Callable[[str], None] | None = None, should_stop=None,
                       margin: float = AUGMENTATION_MARGIN, runs_dir: Path | None = None) -> dict:
    """Train the recipe on each arm and compare every arm with real-only on the same test set.

    ``synthetic_ratios``: synthetic images added per real image (0 = real only);
    ``real_counts``: how many real training images to keep (None = all; e.g. 10 or 50).
    Each arm is compared with its real-only reference per seed and over all seeds (each test
    image's correctness averaged over the seeds, the interval over images: ``pooled``), where
    ``margin`` (accuracy) decides "not worse".  Each finished arm and seed is kept in ``runs_dir``
    when given.
    """
    _check_sets(real_train, test, "real training")
    _check_sets(synthetic, test, "synthetic training")
    arms = study_arms(synthetic_ratios, real_counts, synthetic_only)

    def fit_and_score(arm, seed, train):
        metrics = evaluate_classifier(train_classifier(train, recipe, seed, should_stop=should_stop), test)
        return {**_public(metrics), "train": train.summary()}, metrics

    results, per_case = run_arms(arms, seeds, lambda arm, rng, _: _arm_training_set(real_train, synthetic, arm, rng),
                                 fit_and_score, lambda a, b, seed: _paired(a, b, test),
                                 _finished_work(runs_dir, "augmentation/1", [real_train, synthetic, test], recipe),
                                 progress, per_case_keys=PER_CASE, reference=reference_arm)
    correct = {arm: [m["correct"].astype(float) for m in seeds_cases] for arm, seeds_cases in per_case.items()}
    summary = {name: {"accuracy": _summary_over_seeds([r["accuracy"]["value"] for r in runs]),
                      "auc": _summary_over_seeds([_auc_value(r) for r in runs])} for name, runs in results.items()}
    pooled = _pooled_comparisons(arms, correct, margin)
    return {"protocol": "augmentation", "recipe": recipe.to_dict(), "seeds": list(seeds), "arms": arms,
            "test": test.summary(), "summary": summary, "pooled": pooled, "verdict": _pooled_verdict(pooled),
            "runs": results}


def _pooled_comparisons(arms: list[dict], correct: dict[str, list[np.ndarray]], margin: float) -> dict:
    """Accuracy of each arm against its real-only reference over every seed: per test image,
    the share of seeds that got it right, paired by image (``paired_difference``)."""
    pooled = {}
    for arm in arms:
        reference = reference_arm(arm, arms)
        if reference is None or reference == arm["name"] or len(correct[arm["name"]][0]) < MIN_BOOTSTRAP_CASES:
            continue
        comparison = paired_difference(np.stack(correct[arm["name"]]), np.stack(correct[reference]),
                                       n_resamples=2000, seed=0, margin=margin)
        pooled[arm["name"]] = {"versus": reference, "metric": "accuracy", **comparison}
    return pooled


def _pooled_verdict(pooled: dict) -> str | None:
    return " ".join(comparison_sentence(arm, c, "test images") for arm, c in pooled.items()) or None


def _arm_training_set(real: ImageSet, synthetic: ImageSet, arm: dict, rng: np.random.Generator) -> ImageSet:
    if arm["ratio"] is None:
        return synthetic
    base = real if arm["real_count"] is None else real.stratified_sample(arm["real_count"], rng)
    if not arm["ratio"]:
        return base
    extra = synthetic.stratified_sample(int(round(arm["ratio"] * len(base))), rng)
    return base.concat(extra, source="real+synthetic")


def study_arms(synthetic_ratios, real_counts, synthetic_only: bool) -> list[dict]:
    """The arms of an augmentation study: for each real count, real only (ratio 0) and real +
    synthetic at each ratio; then synthetic only (``ratio`` None)."""
    if 0.0 not in synthetic_ratios:
        synthetic_ratios = (0.0, *synthetic_ratios)  # the reference arm
    arms = []
    for count in real_counts:
        label = "" if count is None else str(count)
        for ratio in synthetic_ratios:
            name = f"real{label}+synthetic x{ratio:g}" if ratio else f"real{label} only"
            arms.append({"name": name, "real_count": count, "ratio": ratio})
    if synthetic_only:
        arms.append({"name": "synthetic only", "real_count": 0, "ratio": None})
    return arms


def reference_arm(arm: dict, arms: list[dict]) -> str | None:
    """Real-only arm with the same number of real images (all real for synthetic-only)."""
    count = None if arm["ratio"] is None else arm["real_count"]
    for other in arms:
        if other["ratio"] == 0.0 and other["real_count"] == count:
            return other["name"]
    return None


def _paired(a: dict, b: dict, test: ImageSet) -> dict:
    difference = a["correct"].astype(float) - b["correct"].astype(float)
    comparison = {"mcnemar": mcnemar_test(a["correct"], b["correct"])}
    if len(difference) >= MIN_BOOTSTRAP_CASES:
        interval = bootstrap_ci(difference, n_resamples=2000, seed=0, method="percentile")
        comparison["accuracy_difference"] = {"value": interval["value"], "ci": interval["ci"]}
    if len(test.class_names) == 2 and 0 < test.labels.sum() < len(test):
        comparison["delong"] = delong_paired_test(test.labels, a["probabilities"][:, 1], b["probabilities"][:, 1])
    return comparison
