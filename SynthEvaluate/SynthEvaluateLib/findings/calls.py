"""What a findings model calls on a scan, where, and whether the image bears it out: each
called finding located in anatomy by its evidence (``located_findings``), measured against its
organ where its type says how it should measure (``density``), and the calls that remain
(``checked_calls``), for the queue, the study's test scans and its healthy scans as given."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from MedSynthCommonLib.geometry import Geometry

from .anatomy import evidence_region, locate_in_anatomy, organ_words
from .density import density_kind, organ_view, region_density, region_organ, supported

if TYPE_CHECKING:
    from .scans import HealthyScan


def located_findings(classifier, volume: np.ndarray, scan: HealthyScan | None, geometry: Geometry,
                     probabilities: np.ndarray, evidence: dict[int, np.ndarray] | None = None,
                     rules: dict | None = None) -> list[dict]:
    """The called findings of one scan with their locations (evidence x organ map); ``score`` is
    the certainty (threshold at 0.5, see ``certainty``), ``probability`` the network's output;
    ``location`` names one of the organs the model reads (its card's ``organs``; any organ of the
    map for a card without them) or a coarse region of the scan;
    ``density`` how the evidence region measures in the organ holding most of it (``density``;
    with that ``organ``; among the organs the model reads, when its card names them) and
    ``supported`` whether that shows the finding's kind (None where not measured).  A hypo- or
    hyperdense call whose region lies in none of the model's organs (``outside_organs``: e.g. a
    phantom-trained model's "hyperdense lesion" on a real CT's vertebrae, brighter than the rest of
    the bone) is not supported: the model reads its organs for lesions of them, and nothing there
    bears the call out (the row names the model's organs then).
    ``evidence``: maps already made ({finding index: map}); the missing ones are made here."""
    from .report_rules import load_rules

    rules = rules or load_rules()
    called = [int(f) for f in np.flatnonzero(classifier.called(probabilities[None])[0])]
    evidence = dict(evidence or {})
    evidence.update(classifier.evidence_maps(volume, [f for f in called if f not in evidence]))
    certainty = classifier.certainty(probabilities)
    rows, views = [], {}  # views: each organ measured (opened) once, for every call in it
    among = model_organ_labels(classifier, scan)
    # a call is placed in, and measured in, the organs the model reads (all of the map's without them)
    names = None if scan is None else scan.organ_names if among is None else \
        {label: name for label, name in scan.organ_names.items() if label in among}
    for f in called:
        where = locate_in_anatomy(evidence[f], geometry, None if scan is None else scan.organs, names)
        region = None if scan is None or scan.organs is None else evidence_region(evidence[f])
        label = None if region is None else region_organ(region, scan.organs, among)
        outside = region is not None and among is not None and label is None and \
            density_kind(classifier.findings[f], rules) is not None
        density = None
        if label is not None:
            organ = scan.organs == label
            if label not in views:
                views[label] = organ_view(volume, organ, geometry.spacing_kji)
            density = region_density(volume, region, organ, geometry.spacing_kji, views[label])
        if density is not None:
            density["organ"] = organ_words(scan.organ_names.get(label, f"label {label}"))
        rows.append({"finding": classifier.findings[f], "score": round(float(certainty[f]), 4),
                     "probability": round(float(probabilities[f]), 4),
                     "location": where["location"] if where["organ"] else f"{where['location']} ({where['basis']})",
                     "organ": where["organ"], "basis": where["basis"], "density": density,
                     "supported": False if outside else supported(classifier.findings[f], density, rules),
                     "outside_organs": ", ".join(classifier.organs) if outside else None})
    return rows


def model_organ_labels(classifier, scan: HealthyScan | None) -> set[int] | None:
    """The labels of ``scan``'s organ map that name the organs ``classifier`` reads (its card's
    ``organs``); None for a model that names none (older cards, whole-scan models without
    organs) or a scan without an organ map."""
    organs = getattr(classifier, "organs", None)
    if not organs or scan is None or scan.organs is None:
        return None
    return {int(label) for label, name in scan.organ_names.items() if organ_words(name) in organs}


def checked_calls(called: np.ndarray, located: list[list[dict]], names: list[str]) -> np.ndarray:
    """(scans, findings) calls without those the image does not bear out (``supported`` False in
    each scan's ``located_findings`` rows)."""
    checked = np.array(called, bool)
    for n, rows in enumerate(located):
        for row in rows:
            if row["supported"] is False:
                checked[n, names.index(row["finding"])] = False
    return checked


def healthy_calls(classifier, scans: list["HealthyScan"], names: list[str], rules: dict | None = None) -> dict:
    """What the classifier calls on the test healthy scans as given (real scans, no lesion
    inserted): every call is a false positive, so per finding the specificity on real scans, of
    the network's calls and of those the image bears out (``checked_calls``)."""
    from ..metrics.classification import proportion
    from .report_rules import load_rules

    rules = rules or load_rules()
    probabilities = classifier.predict_proba([scan.image for scan in scans])
    called = classifier.called(probabilities)
    located = [located_findings(classifier, scan.image, scan, scan.geometry, p, rules=rules)
               for scan, p in zip(scans, probabilities)]
    checked = checked_calls(called, located, names)
    return {"scans": len(scans), "note": "the healthy test scans as given, before any lesion is inserted: "
                                         "every call on them is a false positive",
            "per_finding": {name: {"called_on": int(called[:, f].sum()),
                                   "specificity": proportion(int(len(scans) - called[:, f].sum()), len(scans)),
                                   "called_on_after_density_check": int(checked[:, f].sum()),
                                   "specificity_after_density_check": proportion(
                                       int(len(scans) - checked[:, f].sum()), len(scans))}
                            for f, name in enumerate(names)},
            # what was called on each scan, where, and how its evidence region measured
            "calls": [[{key: row[key] for key in ("finding", "probability", "location", "density", "supported")}
                       for row in rows] for rows in located]}
