"""A reading queue: scans ordered by one finding's score, highest first, each with its called
findings located in anatomy and its rule-based report ("all scans showing a hypodense lesion
to the top")."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from .findings_study import HealthyScan, located_findings
from .report_rules import write_report_text

QUEUE_COLUMNS = ("rank", "case_id", "image", "finding", "score", "called", "threshold", "location", "report")


def finding_index(classifier, finding: str) -> int:
    if finding not in classifier.findings:
        raise MedSynthInputError(f"The model knows the findings {', '.join(classifier.findings)}; "
                                 f"{finding!r} is not one of them.")
    return classifier.findings.index(finding)


def triage_queue(classifier, cases: Iterable[tuple[str, str, HealthyScan]], finding: str, rules: dict | None = None,
                 progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows in ``QUEUE_COLUMNS`` order, highest score of ``finding`` first (ties keep the input
    order).  ``cases``: (case id, image path or name, scan); a scan without an organ map is
    located by coarse regions (its report says so)."""
    target = finding_index(classifier, finding)
    rows = []
    for number, (case_id, image, scan) in enumerate(cases):
        probabilities = classifier.predict_proba([scan.image])[0]
        located = located_findings(classifier, scan.image, scan if scan.organs is not None else None,
                                   scan.geometry, probabilities)
        where = next((row["location"] for row in located if row["finding"] == finding), "")
        rows.append({"case_id": case_id, "image": str(image), "finding": finding,
                     "score": round(float(probabilities[target]), 4),
                     "called": "yes" if probabilities[target] >= classifier.thresholds[target] else "no",
                     "threshold": round(float(classifier.thresholds[target]), 4), "location": where,
                     "report": write_report_text(located, rules)})
        if progress is not None:
            progress(f"scored {number + 1} scan(s)")
    order = np.argsort([-row["score"] for row in rows], kind="stable")
    return [{"rank": rank + 1, **rows[i]} for rank, i in enumerate(order)]
