"""Robustness benchmark: how does a segmenter cope with lesions of controlled size, contrast
and location?  SynthLesion inserts one lesion per case with the stratum's size class and
contrast; the segmenter's output is scored against that exact label.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Callable

import numpy as np

from SynthLesionLib import Geometry, LesionConfig, synthesize_lesions
from MedSynthCommonLib.errors import MedSynthInputError

from ..metrics.classification import proportion
from ..metrics.segmentation import DETECTION_MIN_DICE, dice, lesion_detection
from ..metrics.statistics import MIN_BOOTSTRAP_CASES, bootstrap_ci

Segmenter = Callable[[np.ndarray, Geometry], np.ndarray]

#: FROC operating points: lesion probabilities thresholded at these values
FROC_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: false positives per case at which FROC sensitivity is reported (the usual FROC abscissae)
FROC_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def froc(detections_by_threshold: dict[float, list], fp_rates=FROC_FP_RATES) -> dict:
    """FROC from lesion detections at several probability thresholds: per threshold the lesion
    sensitivity and false positives per case, and the sensitivity at each stated rate of false
    positives per case (the best threshold that stays at or below that rate; None if none does)."""
    points = []
    for threshold, detections in sorted(detections_by_threshold.items()):
        lesions = sum(len(d.detected) for d in detections)
        points.append({"threshold": threshold,
                       "sensitivity": sum(sum(d.detected) for d in detections) / lesions if lesions else None,
                       "false_positives_per_case": float(np.mean([d.false_positives for d in detections]))})
    at_rates = {}
    for rate in fp_rates:
        eligible = [p["sensitivity"] for p in points if p["false_positives_per_case"] <= rate and p["sensitivity"] is not None]
        at_rates[str(rate)] = max(eligible) if eligible else None
    return {"points": points, "sensitivity_at_fp_per_case": at_rates}


@dataclass(frozen=True)
class _Task:
    stratum: int
    n: int
    size_class: str
    contrast: float
    case: int
    seed: int


def _score_case(task: _Task, segment: Segmenter, cases, preset: str) -> dict:
    """One synthetic case: insert the stratum's lesion, segment, score (a task for any executor)."""
    image, organ, geometry = cases[task.case]
    config = LesionConfig(preset=preset, size_class=task.size_class, contrast=task.contrast, count=1, capsule=False)
    result = synthesize_lesions(image, organ, geometry, config, task.seed)
    truth = result.lesion_labels > 0
    raw = np.asarray(segment(result.image, geometry))
    if raw.shape != truth.shape:
        raise MedSynthInputError(f"The segmenter returned shape {raw.shape} for an image of {truth.shape}.")
    probabilities = bool(np.issubdtype(raw.dtype, np.floating) and raw.size and 0.0 <= raw.min() and raw.max() <= 1.0
                         and np.any((raw > 0) & (raw < 1)))
    prediction = raw >= 0.5 if probabilities else raw > 0
    detection = lesion_detection(prediction, truth, geometry.spacing_kji)
    record = result.records[0]
    return {"detected": bool(detection.detected[0]) if detection.detected else False,
            "false_positives": detection.false_positives, "dice": dice(prediction, truth),
            "diameter_mm": record.equivalent_diameter_mm, "location": record.location,
            "by_threshold": {t: lesion_detection(raw >= t, truth, geometry.spacing_kji) for t in FROC_THRESHOLDS}
            if probabilities else None}


def robustness_benchmark(segment: Segmenter, cases: list[tuple[np.ndarray, np.ndarray, Geometry]],
                         size_classes=("tiny", "small", "medium"), contrasts=(-60.0, -30.0, -15.0),
                         per_stratum: int = 5, preset: str = "ct-liver", seed: int = 0,
                         progress: Callable[[str], None] | None = None, workers: int = 1,
                         cluster: str | None = None) -> dict:
    """Detection rate, false positives per case and Dice of ``segment`` per (size class,
    contrast) stratum.  A lesion is detected when a predicted component overlaps it with Dice
    >= 0.1 (``segmentation.DETECTION_MIN_DICE``); every other predicted component is a false
    positive.

    ``cases``: healthy (image, organ mask, geometry) triples; ``segment(image, geometry)``
    returns a binary lesion mask.  Each synthetic case is recorded (seed and stratum), so the
    test set can be regenerated exactly by the same engine (its lesions' diameters and locations
    are recorded too, to see that a later run met the same ones).  A segmenter that returns
    lesion probabilities (floats in [0, 1]) is scored at 0.5 per stratum and, over all cases, as
    a FROC curve (``froc``).
    The cases are independent tasks: with ``workers`` or ``cluster`` they run on the shared
    executors (worker processes, Dask) when ``segment`` can be sent to them (a module-level
    function can; a network trained in this process runs here).
    """
    import pickle
    from functools import partial

    from MedSynthCommonLib.executors import executor

    if not cases:
        raise MedSynthInputError("The robustness benchmark needs at least one healthy case.")
    tasks = [_Task(number, n, size_class, contrast, n % len(cases),
                   int(np.random.SeedSequence([seed, number, n]).generate_state(1)[0]))
             for number, (size_class, contrast) in enumerate(product(size_classes, contrasts))
             for n in range(per_stratum)]
    try:
        pickle.dumps(segment)
        shareable = True
    except Exception:  # a closure or a live network: score in this process
        shareable = False
    if not shareable and (workers > 1 or cluster) and progress:
        progress("the segmenter cannot be sent to other processes: scoring here")
    scored = {}
    with executor(workers if shareable else 1, cluster if shareable else None, progress) as runner:
        for task, result in runner.run(partial(_score_case, segment=segment, cases=cases, preset=preset), tasks):
            if isinstance(result, Exception):
                raise MedSynthInputError(f"A robustness case could not be scored: {result}")
            scored[task] = result
    strata, by_threshold = [], {}
    for number, (size_class, contrast) in enumerate(product(size_classes, contrasts)):
        own = [(task, scored[task]) for task in tasks if task.stratum == number]
        detected = [r["detected"] for _, r in own]
        dices = [r["dice"] for _, r in own]
        false_positives = [r["false_positives"] for _, r in own]
        records = [{"seed": task.seed, "case": task.case, "diameter_mm": r["diameter_mm"], "location": r["location"],
                    "detected": r["detected"], "dice": r["dice"], "false_positives": r["false_positives"]}
                   for task, r in own]
        for _, r in own:
            for threshold, detection in (r["by_threshold"] or {}).items():
                by_threshold.setdefault(threshold, []).append(detection)
        if progress:
            progress(f"{size_class}, contrast {contrast:+g}: {sum(detected)}/{per_stratum} detected, "
                     f"{np.mean(false_positives):.1f} false positives per case")
        central = [r["detected"] for r in records if r["location"] == "central"]
        peripheral = [r["detected"] for r in records if r["location"] != "central"]
        strata.append({
            "size_class": size_class, "contrast": contrast, "cases": per_stratum,
            "detection": proportion(sum(detected), per_stratum),
            "false_positives_per_case": float(np.mean(false_positives)),
            "dice": bootstrap_ci(dices, n_resamples=2000, seed=seed) if per_stratum >= MIN_BOOTSTRAP_CASES
            else {"value": float(np.mean(dices)), "ci": None, "n": per_stratum},
            "detection_central": proportion(sum(central), len(central)),
            "detection_peripheral": proportion(sum(peripheral), len(peripheral)),
            "lesions": records,
        })
    return {"protocol": "robustness", "preset": preset, "seed": seed, "per_stratum": per_stratum,
            "detection_criterion": f"component Dice >= {DETECTION_MIN_DICE} with the inserted lesion",
            "strata": strata, "froc": froc(by_threshold) if by_threshold else None}
