"""Does synthesis help a segmenter?  The seed paper's comparison, on the user's data:

- ``real``: the real annotated training cases;
- ``on-the-fly``: healthy organs with SynthLesion lesions made during training by the project's
  MONAI transform (``RandSynthLesion``, as in a MONAI pipeline; a pool of cases refreshed as
  training goes);
- ``real + on-the-fly``: both;
- ``offline``: lesions made once before training: cases you give (``synthetic``: a build-db
  database, a translator's outputs) or, without them, lesions SynthLesion makes in the healthy
  organs;
- ``real + offline``: the real cases and ``offline_ratio`` offline cases per real one.

The real training arms can use only ``real_count`` of the real cases (a subset drawn per seed:
"what if I had only 10 annotated scans?").  Training and test cases must differ (a test scan
that is also a training scan is refused).

A study is resumable: with ``runs_dir`` each finished arm and seed is kept there, and a study
killed or cancelled and started again with the same cases and settings trains only what is left
(the same results: training is seeded).

The same MONAI UNet recipe per arm and seed, tested on the same real annotated cases: Dice,
NSD at a tolerance, lesion-wise sensitivity by size class (component Dice >= 0.1) and false
positives per case, with bootstrap intervals over test cases and each arm paired against
``real`` (bootstrap interval of the Dice difference and Wilcoxon).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry, in_standard_order

from ..metrics.segmentation import detection_by_size, dice, lesion_detection, normalized_surface_dice
from ..recipes.segmenter import SegmenterRecipe, train_segmenter
from .margins import DICE_MARGIN
from ..metrics.statistics import MIN_BOOTSTRAP_CASES, bootstrap_ci, comparison_sentence, paired_difference

ARMS = ("real", "on-the-fly", "real + on-the-fly", "offline", "real + offline")
#: lesion-size strata of the report: SynthLesion's size classes (equivalent diameter, mm)
SIZE_BINS_MM = (0.0, 10.0, 20.0, 40.0, 80.0, np.inf)


@dataclass
class AnnotatedCase:
    """A scan with its lesion mask, kept in the standard storage order (``in_standard_order``:
    i toward the left, j posterior, k superior, whatever order it came in), as every case of a
    study is: a network sees arrays, and a case stored mirrored would show it another body."""
    image: np.ndarray  # [k, j, i]
    lesions: np.ndarray  # binary
    geometry: Geometry
    organ: np.ndarray | None = None  # binary, lesions included; None: the whole scan is the region

    def __post_init__(self) -> None:
        self.geometry, (self.image, self.lesions, self.organ) = in_standard_order(self.geometry, self.image,
                                                                                  self.lesions, self.organ)


@dataclass
class HealthyCase:
    """A scan without lesions and its organ mask, in the standard storage order (as ``AnnotatedCase``)."""
    image: np.ndarray
    organ: np.ndarray  # binary
    geometry: Geometry
    _stats: object = None

    def __post_init__(self) -> None:
        self.geometry, (self.image, self.organ) = in_standard_order(self.geometry, self.image, self.organ)

    def check_holds_a_lesion(self, preset: str, name: str) -> None:
        """Refuse, naming the case, an organ in which not even a small lesion fits (or that the
        preset does not fit), before any training."""
        from SynthLesionLib import LesionConfig, synthesize_lesions

        try:
            synthesize_lesions(self.image, self.organ, self.geometry, LesionConfig(preset=preset, size_class="small",
                                                                                   mass_effect=0.0), 0,
                               organ_stats=self.stats())
        except MedSynthInputError as error:
            raise MedSynthInputError(f"Healthy case {name}: {error}") from None

    def stats(self):
        """The organ's statistics, measured once for every synthetic case made from it."""
        if self._stats is None:
            from SynthLesionLib import prepare_organ

            self._stats = prepare_organ(self.image, self.organ, self.geometry)
        return self._stats


#: lesion sizes of the on-the-fly and made offline cases: every class, one drawn per case
SYNTHETIC_SIZE_CLASSES = ("tiny", "small", "medium", "large")
#: a drawn class that fits nowhere in the organ drawn is drawn again this many times
SYNTHETIC_DRAWS = 5


class SyntheticCases:
    """Cases with SynthLesion lesions in the healthy organs, made by the project's MONAI transform
    (``RandSynthLesion``: one to three lesions of one size class per case, no mass effect), the
    same mechanism a MONAI training pipeline uses on the fly.  Each healthy organ is measured once."""

    def __init__(self, healthy: list[HealthyCase], preset: str):
        from SynthLesionLib.transforms import RandSynthLesion, engine_array_affine

        self.healthy = healthy
        self.organ_maps = [case.organ.astype(np.uint8)[np.newaxis] for case in healthy]  # label 1, made once
        self.transforms = [RandSynthLesion(organ_label=1, lesion_label=2, prob=1.0, size_classes=SYNTHETIC_SIZE_CLASSES,
                                           count=(1, 3), preset=preset, affine=engine_array_affine(case.geometry),
                                           warn_when_nothing_fits=False)  # a class that fits nowhere: drawn again
                           for case in healthy]

    def __call__(self, rng: np.random.Generator) -> tuple:
        """One case drawn with ``rng``: (image, lesion mask, organ mask, spacing [k, j, i])."""
        number = int(rng.integers(len(self.healthy)))
        case, transform, organ = self.healthy[number], self.transforms[number], self.organ_maps[number]
        for _ in range(SYNTHETIC_DRAWS):  # a class that fits nowhere in this organ inserts nothing: draw again
            transform.set_random_state(int(rng.integers(2**31)))
            image, label = transform(case.image[np.newaxis], organ, organ_stats=case.stats())
            if transform.last_record is not None:
                return image[0], label[0] == 2, case.organ, case.geometry.spacing_kji
        raise MedSynthInputError("No lesion fits the healthy organs given; check the organ masks.")


def _score(model, test: list[AnnotatedCase], tolerance_mm: float) -> dict:
    scores = {"dice": [], "nsd": [], "detections": [], "false_positives_region": []}
    for case in test:
        spacing = case.geometry.spacing_kji
        region = model.predict(case.image, case.organ, spacing, inside_organ=False).astype(bool)
        predicted = region & (case.organ > 0) if case.organ is not None else region
        truth = case.lesions > 0
        scores["dice"].append(dice(predicted, truth))
        scores["nsd"].append(normalized_surface_dice(predicted, truth, spacing, tolerance_mm))
        scores["detections"].append(lesion_detection(predicted, truth, spacing))
        scores["false_positives_region"].append(lesion_detection(region, truth, spacing).false_positives)
    return scores


def _with_ci(values: list[float], seed: int) -> dict:
    if len(values) >= MIN_BOOTSTRAP_CASES:
        return bootstrap_ci(values, n_resamples=2000, seed=seed, method="percentile")
    return {"value": float(np.mean(values)), "ci": None, "n": len(values)}


def _subset(items: list, count: int | None, rng: np.random.Generator) -> list:
    if count is None or count >= len(items):
        return list(items)
    return [items[i] for i in np.sort(rng.choice(len(items), count, replace=False))]


def _as_made(case: AnnotatedCase) -> tuple:
    return case.image, case.lesions > 0, case.organ, case.geometry.spacing_kji


def segment_study(real_train: list[AnnotatedCase], healthy: list[HealthyCase], test: list[AnnotatedCase],
                  recipe: SegmenterRecipe = SegmenterRecipe(), seeds=(0,), arms=ARMS, offline_cases: int | None = None,
                  preset: str = "ct-liver", tolerance_mm: float = 2.0,
                  progress: Callable[[str], None] | None = None, synthetic: list[AnnotatedCase] | None = None,
                  offline_ratio: float = 1.0, real_count: int | None = None,
                  validation: list[AnnotatedCase] | None = None, margin: float = DICE_MARGIN,
                  runs_dir: Path | None = None) -> dict:
    """Train the recipe per arm and seed and score it on ``test``; see the module docstring.
    Each arm is compared with ``real`` per seed (``versus_real``) and over every seed (``pooled``:
    each test case's Dice averaged over the seeds), where ``margin`` (Dice) decides "not worse".
    ``validation``: annotated cases of other patients, the same for every arm: the model each
    arm keeps is its best on them (and ``recipe.patience`` stops training early).  ``runs_dir``:
    where each finished arm and seed is kept, and found again when the study is run again."""
    from MedSynthCommonLib.finished_work import FinishedWork, fingerprint

    from .arms import run_arms
    from .leakage import check_disjoint, content_hash

    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise MedSynthInputError(f"Unknown arm(s) {unknown}; choose among {list(ARMS)}.")
    if not test:
        raise MedSynthInputError("Give real annotated test cases.")
    if any(a.startswith("real") for a in arms) and not real_train:
        raise MedSynthInputError("The 'real' arms need real annotated training cases.")
    needs_healthy = [a for a in arms if "on-the-fly" in a or ("offline" in a and not synthetic)]
    if needs_healthy and not healthy:
        raise MedSynthInputError(f"The arm(s) {needs_healthy} need healthy cases with organ masks"
                                 + (" (or give ready synthetic cases for the offline arms)." if any(
                                     "offline" in a for a in needs_healthy) else "."))
    validation = validation or []
    # each volume hashed once; training, test and validation cases pairwise disjoint
    training = {f"training case {n + 1}": content_hash(c.image) for n, c in enumerate(real_train)}
    tested = {f"test case {n + 1}": content_hash(c.image) for n, c in enumerate(test)}
    validated = {f"validation case {n + 1}": content_hash(c.image) for n, c in enumerate(validation)}
    check_disjoint(training, tested)
    if validation:
        check_disjoint({**training, **tested}, validated)
    held_out = [_as_made(c) for c in validation]
    make_synthetic = SyntheticCases(healthy, preset) if healthy else None
    offline_count = offline_cases or max(len(real_train), 4)
    # what a run's result depends on: every case's content, the recipe and the study's settings
    finished = FinishedWork(runs_dir, fingerprint(
        "segment-study/2", training, tested, validated,
        [[content_hash(c.image), content_hash(c.organ), c.geometry.spacing_kji] for c in healthy],
        [[content_hash(c.image), content_hash(c.lesions), c.geometry.spacing_kji] for c in synthetic or []],
        [[content_hash(c.lesions), None if c.organ is None else content_hash(c.organ), c.geometry.spacing_kji]
         for c in (*real_train, *test, *validation)], recipe.to_dict(), preset,
        tolerance_mm, offline_count, offline_ratio, real_count))
    with_offline = any("offline" in a for a in arms)
    given = [_as_made(c) for c in synthetic] if with_offline and synthetic else None  # the same for every seed

    def per_seed(rng: np.random.Generator) -> tuple[list, list]:
        """The seed's real training cases and offline cases, shared by its arms."""
        real = _subset(real_train, real_count, rng)
        if not with_offline:
            return real, []
        return real, given if given is not None else [make_synthetic(rng) for _ in range(offline_count)]

    def draw(arm: dict, rng: np.random.Generator, shared: tuple[list, list]) -> tuple:
        real, offline = shared
        name, made = arm["name"], []
        if name.startswith("real"):
            made += [(c.image, c.lesions, c.organ, c.geometry.spacing_kji) for c in real]
        if "offline" in name:
            made += _subset(offline, int(round(offline_ratio * len(real))), rng) if name != "offline" else offline
        return made, (make_synthetic if "on-the-fly" in name else None)

    def fit_and_score(arm: dict, seed: int, data: tuple) -> tuple[dict, dict]:
        made, fresh = data
        volumes, labels, organs, spacings = (list(column) for column in zip(*made)) if made else ([], [], [], [])
        say = (lambda e: progress(f"seed {seed}, {arm['name']}: iteration {e['iteration']}/{e['iterations']}, "
                                  f"loss {e['loss']:.3f}, ETA {e['eta_s']:.0f} s")) if progress else None
        model = train_segmenter(volumes, labels, recipe, seed, fresh_cases=fresh, organs=organs, spacings=spacings,
                                progress=say, validation=held_out)
        scores = _score(model, test, tolerance_mm)
        detections = scores["detections"]
        lesions = sum(len(d.detected) for d in detections)
        return {"seed": seed, "train_cases": len(volumes), "on_the_fly": fresh is not None, "training": model.training,
                "dice": _with_ci(scores["dice"], seed), "nsd": _with_ci(scores["nsd"], seed),
                "per_case": {"dice": scores["dice"], "nsd": scores["nsd"]},
                "lesion_sensitivity": sum(sum(d.detected) for d in detections) / lesions if lesions else None,
                "sensitivity_by_size": detection_by_size(detections, SIZE_BINS_MM),
                "false_positives_per_case": float(np.mean([d.false_positives for d in detections])),
                "false_positives_per_case_in_region": float(np.mean(scores["false_positives_region"])),
                "region": "organ" if all(c.organ is not None for c in test) else "scan"}, {"dice": scores["dice"]}

    def compare(arm_cases: dict, real_cases: dict, seed: int) -> dict | None:
        if len(test) < MIN_BOOTSTRAP_CASES:
            return None
        return paired_difference(arm_cases["dice"], real_cases["dice"], n_resamples=2000, seed=seed)

    results, _ = run_arms([{"name": arm} for arm in arms], seeds, draw, fit_and_score, compare, finished, progress,
                          per_case_keys=("dice",), reference=lambda arm, _: "real" if "real" in arms else None,
                          per_seed=per_seed)
    summary = {arm: {"dice_mean_over_seeds": float(np.mean([r["dice"]["value"] for r in runs])),
                     "nsd_mean_over_seeds": float(np.mean([r["nsd"]["value"] for r in runs])),
                     "lesion_sensitivity_mean_over_seeds": float(np.mean([r["lesion_sensitivity"] or 0.0 for r in runs])),
                     "false_positives_per_case": float(np.mean([r["false_positives_per_case"] for r in runs]))}
               for arm, runs in results.items()}
    pooled = {}
    if "real" in arms and len(test) >= MIN_BOOTSTRAP_CASES:  # every seed: each case's Dice averaged over seeds
        pooled = {arm: {"versus": "real", "metric": "Dice",
                        **paired_difference(*([r["per_case"]["dice"] for r in results[a]] for a in (arm, "real")),
                                            n_resamples=2000, seed=0, margin=margin)} for arm in arms if arm != "real"}
    if len(test) < MIN_BOOTSTRAP_CASES:
        verdict = (f"The test set holds {len(test)} case(s): too few for any conclusion (a paired interval needs at "
                   f"least {MIN_BOOTSTRAP_CASES}); read these figures as a smoke test.")
    else:
        verdict = " ".join(comparison_sentence(arm, c) for arm, c in pooled.items()) or None
    return {"protocol": "segment-study", "verdict": verdict, "recipe": recipe.to_dict(), "seeds": list(seeds),
            "arms": list(arms),
            "preset": preset, "test_cases": len(test),
            "real_train_cases": len(real_train) if real_count is None else min(real_count, len(real_train)),
            "offline_source": "given" if synthetic else "SynthLesion in the healthy cases",
            "offline_ratio": offline_ratio if "real + offline" in arms else None,
            "healthy_cases": len(healthy), "offline_cases": (len(synthetic) if synthetic else offline_count) if with_offline
            else 0, "validation_cases": len(validation),
            "tolerance_mm": tolerance_mm, "detection_criterion": "component Dice >= 0.1",
            "summary": summary, "pooled": pooled, "runs": results}
