"""Thresholds chosen on the user's own real scans: a findings model trained on a few CTs calls
its findings at the thresholds that suited held-out scans *of those CTs*; on another scanner,
phase or field of view its scores shift, and those thresholds call everything (or nothing).

``calibrate_thresholds`` re-chooses each finding's threshold (Youden's J, as in training) on
real scans of the kind the model will read:
- each healthy real scan as given: a negative for every finding;
- SynthLesion findings inserted into those scans: positives (and negatives) of known type and
  place, on that scanner's anatomy, noise and enhancement;
- real labelled scans where the user has them (one 0/1 column per finding), as they are.
Only the thresholds change (and with them the certainty each report states); the ranking
(AUC) is the network's.  The record of what was done goes into the model card.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from .familiarity import level_ranges, organ_levels
from .scans import HealthyScan, RealFindings, model_view
from .synthetic import LABEL_SETS, finding_names, synthetic_findings_set

#: how synthetic lesions were drawn when a card does not say (the study's defaults)
DEFAULT_LESIONS = {"size_classes": ["medium", "large"], "label_set": "type"}


def lesions_of(classifier) -> dict:
    """The size classes and label set the model's synthetic training lesions were drawn with
    (kept in its card; older cards: the study's default sizes and the label set its findings'
    names match), checked against its findings."""
    recorded = classifier.training.get("synthetic_lesions")
    candidates = [{**DEFAULT_LESIONS, **recorded}] if recorded else [
        {**DEFAULT_LESIONS, "label_set": label_set} for label_set in LABEL_SETS]
    for lesions in candidates:
        if finding_names(classifier.organs, lesions["label_set"], tuple(lesions["size_classes"])) == \
                list(classifier.findings):
            return lesions
    raise MedSynthInputError(
        f"The model's findings ({', '.join(classifier.findings)}) are not the ones SynthLesion lesions in "
        f"{', '.join(classifier.organs)} would carry; this model cannot be calibrated with synthetic lesions "
        "(give real labelled scans only, or retrain it with this version).")


def calibrate_thresholds(classifier, scans: list[HealthyScan], count: int, seed: int,
                         real: RealFindings | None = None,
                         progress: Callable[[str], None] | None = None) -> dict:
    """Choose ``classifier.thresholds`` (in place) on real scans; returns the record kept in
    ``classifier.training["calibration"]``.

    ``scans``: healthy real scans with organ maps, of the scanner/phase/framing to be read and of
    other patients than any test scan; each is used as given (no finding) and ``count`` synthetic
    scans are made from them (seeded by ``seed``).  ``real``: real labelled scans.  A finding that
    the calibration scans hold no positive (or no negative) of keeps its threshold."""
    from ..recipes.findings_model import choose_thresholds

    if not scans and real is None:
        raise MedSynthInputError("Calibration needs real scans: healthy scans with organ maps, or labelled scans.")
    say = progress or (lambda message: None)
    names = list(classifier.findings)
    if real is not None and np.shape(real.findings) != (len(real.scans), len(names)):
        raise MedSynthInputError(f"The labelled calibration scans' findings must be ({len(real.scans)}, "
                                 f"{len(names)}): one 0/1 column per finding ({', '.join(names)}).")
    volumes, truth, synthetic = [], [], 0
    views = [model_view(classifier, scan) for scan in scans + (real.scans if real is not None else [])]
    if scans:
        lesions = lesions_of(classifier)
        say(f"calibration: {count} synthetic scans made from {len(scans)} real scan(s)")
        made = synthetic_findings_set(views[:len(scans)], count, classifier.organs, seed, tuple(lesions["size_classes"]),
                                      label_set=lesions["label_set"], progress=say) if count else None
        if made is not None:
            volumes += made.volumes
            truth += list(made.findings)
            synthetic = len(made.volumes)
        volumes += [view.image for view in views[:len(scans)]]  # as given: no finding
        truth += [np.zeros(len(names), np.int64)] * len(scans)
    if real is not None:
        volumes += [view.image for view in views[len(scans):]]
        truth += list(real.findings)
    truth = np.asarray(truth, np.int64).reshape(len(volumes), len(names))
    say(f"calibration: scoring {len(volumes)} scans")
    scores = classifier.predict_proba(volumes)
    before = [float(t) for t in classifier.thresholds]
    thresholds, notes = choose_thresholds(truth, scores, fallback=before)
    record = {
        "scans": {"real_healthy": len(scans), "synthetic": synthetic,
                  "real_labelled": 0 if real is None else len(real.scans)},
        "seed": seed, "rule": "Youden's J on the calibration scans (midway to the next score); a finding they "
                              "hold no positive or no negative of keeps its threshold",
        "thresholds_before": dict(zip(names, before)), "thresholds": dict(zip(names, thresholds)), "notes": notes,
        "on_calibration_scans": {
            "before": _operating_points(truth, scores, before, names),
            "after": _operating_points(truth, scores, thresholds, names)},
    }
    classifier.thresholds = thresholds
    classifier.training["calibration"] = record
    # the thresholds now fit these scans too: their organ levels are familiar from now on
    given = scans + (real.scans if real is not None else [])  # their own levels, not an organ-relative view's
    classifier.training["organ_levels_hu"] = level_ranges([organ_levels(scan, classifier.organs) for scan in given],
                                                          classifier.training.get("organ_levels_hu"))
    return record


def _operating_points(truth, scores, thresholds, names) -> dict:
    """Sensitivity and specificity per finding on the calibration scans at ``thresholds``
    (optimistic: the thresholds were chosen there; judge on other scans)."""
    from ..metrics.classification import per_finding_metrics

    called = scores >= np.asarray(thresholds)[None]
    metrics = per_finding_metrics(truth, scores, called, names, thresholds)
    return {name: {key: m[key] for key in ("sensitivity", "specificity", "threshold", "positives", "negatives")}
            for name, m in metrics.items()}
