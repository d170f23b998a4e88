"""Structured CT findings from synthetic training data: SynthLesion inserts lesions of known
type into known organs of healthy CTs, so every training scan carries an exact, located
findings list; a 3-D multi-label classifier learns the finding types; on held-back scans it is
judged per finding (AUC, sensitivity, specificity with intervals), its evidence is located in
anatomy (right organ or not), and each scan gets a rule-based report.

A finding is a lesion type ("hypodense lesion", "hyperdense lesion"), or with ``label_set``
"type-organ" the type in one organ ("hypodense lesion (liver)"), or with "type-organ-size" also
its SynthLesion size class ("hypodense lesion (liver, large)"), all read from the lesion
records; a scan may have none, one or two lesions, each in an organ drawn from ``organs``
(names in the scan's organ label map).  The user's real labelled scans can join the training
set (``real``).
"""


from __future__ import annotations

from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from ..recipes.loop import epoch_line
from .anatomy import locate_in_anatomy, organ_words
from .familiarity import (at_reference_levels, familiarity_text, level_ranges, organ_levels, reference_levels,
                          unfamiliar_organs)
from .scans import (HealthyScan, RealFindings, cut_array, organ_bounds, organ_box, reads_organs_only, view_box,
                    view_extent_mm)
from .synthetic import check_organs, synthetic_findings_set


def findings_study(train_scans: list[HealthyScan], test_scans: list[HealthyScan], organs: list[str],
                   train_count: int = 60, test_count: int = 20, recipe=None, seed: int = 0,
                   real: RealFindings | None = None, rules: dict | None = None,
                   size_classes: tuple[str, ...] = ("medium", "large"), label_set: str = "type",
                   progress: Callable[[str], None] | None = None, checkpoint_dir=None,
                   calibration_scans: list[HealthyScan] | None = None, calibration_count: int = 24) -> dict:
    """Train the 3-D classifier on synthetic located findings made from ``train_scans`` (plus
    ``real`` when given) and judge it on synthetic findings made from ``test_scans`` (scans it
    never saw): per finding AUC (DeLong CI), sensitivity and specificity (Wilson CIs) at the
    validation thresholds (or, with ``calibration_scans``, thresholds chosen on those real scans
    and ``calibration_count`` synthetic scans made from them: ``calibration.calibrate_thresholds``);
    location: the organ named by each finding's evidence against the organ the lesion was
    inserted in; a report per test scan."""
    from ..metrics.classification import per_finding_metrics
    from .calls import checked_calls, healthy_calls, located_findings
    from .report_rules import write_report_text
    from ..recipes.findings_model import FindingsRecipe, train_findings_model

    recipe = recipe or FindingsRecipe()
    say = progress or (lambda message: None)
    # the network reads the box around the organs, on every scan it trains and is judged on
    check_organs(train_scans + test_scans, organs)  # a misspelt organ: the names the maps hold

    def bounds(scans: list[HealthyScan], which: str) -> list:
        found = []
        for number, scan in enumerate(scans, 1):  # numbered as the rows of the user's CSV
            try:
                found.append(organ_bounds(scan, organs, recipe.organ_margin_mm))
            except MedSynthInputError as error:
                raise MedSynthInputError(f"{which} scan {number}: {error}") from None
        return found

    every = (train_scans, test_scans, real.scans if real is not None else [])
    view_mm = None
    if recipe.organ_margin_mm is None:  # the whole scans
        boxes = [[organ_box(scan, organs, None) for scan in scans] for scans in every]
    else:  # one view size for every scan: the largest training box
        found = [bounds(scans, which) for scans, which in zip(every, ("Training", "Test", "Real training"))]
        view_mm = view_extent_mm(every[0] + every[2], found[0] + found[2])
        boxes = [[view_box(b, scan, view_mm) for b, scan in zip(f, scans)] for f, scans in zip(found, every)]
    real_boxes = boxes[2]
    # the organs' own levels, before an organ-relative model moves them (``familiarity``)
    trained_levels = [organ_levels(scan, organs) for scan in every[0] + every[2]]
    test_levels = [organ_levels(scan, organs) for scan in every[1]]
    reference = reference_levels(trained_levels) if recipe.organ_relative else {}
    if reference:  # every scan it trains and is judged on at the training scans' organ levels (before the
        # cut, so that a box reaching past a scan's end goes on with the shifted edge voxels)
        every = tuple([at_reference_levels(scan, organs, reference) for scan in scans] for scans in every)
    train_scans, test_scans, real_views = ([reads_organs_only(recipe, organs, scan.cut(box))
                                            for scan, box in zip(scans, found_boxes)]
                                           for scans, found_boxes in zip(every, boxes))
    made = synthetic_findings_set(train_scans, train_count, organs, seed, size_classes, label_set=label_set,
                                  progress=say)
    names = made.names
    volumes, findings, masks = list(made.volumes), made.findings, list(made.masks)
    groups = [f"healthy scan {n % len(train_scans)}" for n in range(train_count)]  # thresholds on unseen patients
    if real is not None:
        real_findings = np.asarray(real.findings)
        if real_findings.shape != (len(real.scans), len(names)):
            raise MedSynthInputError(f"The real scans' findings must be ({len(real.scans)}, {len(names)}): "
                                     f"one 0/1 column per finding ({', '.join(names)}).")
        volumes += [view.image for view in real_views]
        findings = np.concatenate([findings, real_findings])
        masks += [None if m is None else {f: cut_array(mask, box) for f, mask in m.items()}
                  for m, box in zip(real.masks or [None] * len(real.scans), real_boxes)]
        groups += [f"real scan {n}" for n in range(len(real.scans))]
    say(f"training the 3-D classifier on {len(volumes)} scans")
    classifier = train_findings_model(
        volumes, findings, names, recipe, seed, masks=masks, groups=groups, checkpoint_dir=checkpoint_dir,
        progress=lambda e: say(epoch_line(e)))
    classifier.organs, classifier.view_mm = [organ_words(o) for o in organs], view_mm
    classifier.organ_reference_hu = reference
    classifier.training["synthetic_lesions"] = {"size_classes": list(size_classes), "label_set": label_set}
    classifier.training["organ_levels_hu"] = level_ranges(trained_levels)
    if calibration_scans:
        from .calibration import calibrate_thresholds

        calibrate_thresholds(classifier, calibration_scans, calibration_count, seed + 20_000, progress=say)
    test = synthetic_findings_set(test_scans, test_count, organs, seed + 10_000, size_classes, label_set=label_set)
    probabilities = classifier.predict_proba(test.volumes)
    called = classifier.called(probabilities)
    per_finding = per_finding_metrics(test.findings, probabilities, called, names, classifier.thresholds)
    healthy = healthy_calls(classifier, test_scans, names, rules)
    healthy["unlike_the_training_scans"] = [familiarity_text(unfamiliar_organs(
        levels, classifier.training["organ_levels_hu"])) for levels in test_levels]
    cases, called_right, called_total, any_right, any_total = [], 0, 0, 0, 0
    for n, volume in enumerate(test.volumes):
        scan = test_scans[n % len(test_scans)]
        inserted = [names.index(r["finding"]) for r in test.references[n]]
        wanted = inserted + [int(f) for f in np.flatnonzero(called[n])]
        evidence = classifier.evidence_maps(volume, wanted)  # one pass for every map this scan needs
        rows = located_findings(classifier, volume, scan, scan.geometry, probabilities[n], evidence, rules)
        for row in rows:
            truth_organs = [r["organ"] for r in test.references[n] if r["finding"] == row["finding"]]
            if truth_organs:
                row["right_organ"] = row["organ"] in truth_organs
                called_total += 1
                called_right += row["right_organ"]
        for reference in test.references[n]:  # every inserted lesion, called or not
            where = locate_in_anatomy(evidence[names.index(reference["finding"])], scan.geometry,
                                      scan.organs, scan.organ_names)
            reference["located_organ"] = where["organ"]
            any_total += 1
            any_right += where["organ"] == reference["organ"]
        cases.append({"case": n, "reference": test.references[n], "predicted": rows,
                      "report": write_report_text(rows, rules)})
    per_scan = [{"scan": c["case"],
                 "inserted": "; ".join(f"{r['finding']} in the {r['organ']}, {r['size_mm']:g} mm"
                                       for r in c["reference"]) or "none",
                 "called": "; ".join(f"{r['finding']}: {r['location']} (p {r['probability']:.2f}"
                                     + (", outside the organs it reads)" if r.get("outside_organs") else
                                        ", not borne out by its density)" if r["supported"] is False else ")")
                                     for r in c["predicted"]) or "none",
                 "report": c["report"]} for c in cases]
    from ..metrics.classification import proportion

    return {"protocol": "ct-findings", "findings": names, "label_set": label_set,
            "organs": [organ_words(o) for o in organs], "recipe": recipe.to_dict(), "seed": seed,
            "view_mm": None if view_mm is None else list(view_mm),  # the box the network reads, [k, j, i] mm
            "sets": {"train": {"synthetic": train_count, "real": 0 if real is None else len(real.scans)},
                     "test": {"synthetic": test_count}},
            "per_finding": per_finding, "healthy_test_scans": healthy,
            "per_finding_after_density_check": per_finding_metrics(  # calls the image bears out
                test.findings, probabilities, checked_calls(called, [c["predicted"] for c in cases], names), names,
                classifier.thresholds),
            "location": {"called_true_positives": proportion(called_right, called_total),
                         "every_inserted_lesion": proportion(any_right, any_total),
                         "chance_uniform_guess": round(1 / len(organs), 3),
                         "rule": "the organ holding the most evidence (>= 30 % of it, at half-maximum) is the "
                                 "organ the lesion was inserted in"},
            "classifier": classifier.training, "cases": cases, "per_image": per_scan, "_classifier": classifier}
