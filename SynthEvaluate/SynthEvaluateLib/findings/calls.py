"""What a findings model calls on a scan, where, and whether the image bears it out: each
called finding located in anatomy by its evidence (``located_findings``), measured against its
organ where its type says how it should measure (``density``), and the calls that remain
(``checked_calls``), for the queue, the study's test scans and its healthy scans as given."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from MedSynthCommonLib.geometry import Geometry

from .anatomy import evidence_region, locate_in_anatomy, organ_words
from .density import organ_view, region_density, region_organ, supported

if TYPE_CHECKING:
    from .scans import HealthyScan


def located_findings(classifier, volume: np.ndarray, scan: HealthyScan | None, geometry: Geometry,
                     probabilities: np.ndarray, evidence: dict[int, np.ndarray] | None = None,
                     rules: dict | None = None) -> list[dict]:
    """The called findings of one scan with their locations (evidence x organ map); ``score`` is
    the certainty (threshold at 0.5, see ``certainty``), ``probability`` the network's output;
    ``density`` how the evidence region measures in the organ holding most of it (``density``;
    with that ``organ``) and ``supported`` whether that shows the finding's kind (None where not
    measured).
    ``evidence``: maps already made ({finding index: map}); the missing ones are made here."""
    from .report_rules import load_rules

    rules = rules or load_rules()
    called = [int(f) for f in np.flatnonzero(classifier.called(probabilities[None])[0])]
    evidence = dict(evidence or {})
    evidence.update(classifier.evidence_maps(volume, [f for f in called if f not in evidence]))
    certainty = classifier.certainty(probabilities)
    rows, views = [], {}  # views: each organ measured (opened) once, for every call in it
    for f in called:
        where = locate_in_anatomy(evidence[f], geometry, None if scan is None else scan.organs,
                                  None if scan is None else scan.organ_names)
        region = None if scan is None or scan.organs is None else evidence_region(evidence[f])
        label = None if region is None else region_organ(region, scan.organs)
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
                     "supported": supported(classifier.findings[f], density, rules)})
    return rows


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
    checked = checked_calls(called, [located_findings(classifier, scan.image, scan, scan.geometry, p, rules=rules)
                                     for scan, p in zip(scans, probabilities)], names)
    return {"scans": len(scans), "note": "the healthy test scans as given, before any lesion is inserted: "
                                         "every call on them is a false positive",
            "per_finding": {name: {"called_on": int(called[:, f].sum()),
                                   "specificity": proportion(int(len(scans) - called[:, f].sum()), len(scans)),
                                   "called_on_after_density_check": int(checked[:, f].sum()),
                                   "specificity_after_density_check": proportion(
                                       int(len(scans) - checked[:, f].sum()), len(scans))}
                            for f, name in enumerate(names)}}
