"""A reading queue: scans ordered by one finding's score, highest first, each with its called
findings located in anatomy and its rule-based report ("all scans showing a hypodense lesion
to the top")."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from .familiarity import familiarity_text, organ_levels, unfamiliar_organs
from .calls import located_findings
from .scans import HealthyScan, box_coverage, model_box, model_view
from .density import density_kind
from .report_rules import load_rules, write_report_text

QUEUE_COLUMNS = ("rank", "case_id", "image", "finding", "score", "called", "threshold", "density", "coverage",
                 "familiar", "location", "report")


def finding_index(classifier, finding: str) -> int:
    if finding not in classifier.findings:
        raise MedSynthInputError(f"The model knows the findings {', '.join(classifier.findings)}; "
                                 f"{finding!r} is not one of them.")
    return classifier.findings.index(finding)


def queue_row(classifier, case_id: str, image, scan: HealthyScan, finding: str, rules: dict | None = None) -> dict:
    """One scan's queue row (without its rank).  The model reads the scan as it was trained to
    (``model_view``: the box around its organs, refused without them); ``coverage`` is the share
    of that box inside the scan, and the report says when it is short; ``familiar`` says whether
    its organs' levels lie within the training scans' (``familiarity``; empty for older model
    cards), and the report says when not; ``density`` how the finding's evidence region measures
    in its organ, and ``called`` is "no" where the score is above the threshold but the image does
    not show the finding's density (``density.supported``; the report says why); a whole-scan
    model reads a scan without an organ map too, located by coarse regions (its report says so)."""
    target = finding_index(classifier, finding)
    box = model_box(classifier, scan)
    coverage = box_coverage(box, scan.image.shape)
    levels = organ_levels(scan, classifier.organs)  # the scan's own (an organ-relative view moves them)
    scan = model_view(classifier, scan, box, levels)
    probabilities = classifier.predict_proba([scan.image])[0]
    rules = rules or load_rules()
    located = located_findings(classifier, scan.image, scan if scan.organs is not None else None,
                               scan.geometry, probabilities, rules=rules)
    row = next((row for row in located if row["finding"] == finding), None)
    ranges = classifier.training.get("organ_levels_hu")
    unlike = familiarity_text(unfamiliar_organs(levels, ranges))
    familiar = "" if not ranges or scan.organs is None else f"no: {unlike}" if unlike else "yes"
    return {"case_id": case_id, "image": str(image), "finding": finding,
            "score": round(float(probabilities[target]), 4),
            "called": "yes" if row is not None and row["supported"] is not False else "no",
            "threshold": round(float(classifier.thresholds[target]), 4), "density": _density_text(row, rules),
            "coverage": round(coverage, 3), "familiar": familiar, "location": "" if row is None else row["location"],
            "report": write_report_text(located, rules, coverage, unlike)}


def _density_text(row: dict | None, rules: dict) -> str:
    """E.g. "23 HU darker than the liver", "not darker than the liver (2 HU)" or "outside the
    organs the model reads (liver, spleen)"; empty when the finding was not called or nothing was
    measured."""
    kind = None if row is None else density_kind(row["finding"], rules)
    if kind is not None and row.get("outside_organs"):
        return f"outside the organs the model reads ({row['outside_organs']})"
    if kind is None or row["density"] is None:
        return ""
    shift = row["density"][f"{kind}_hu"]
    organ = row["density"]["organ"]
    return f"{shift:.0f} HU {kind} than the {organ}" if row["supported"] else f"not {kind} than the {organ} ({shift:.0f} HU)"


def ranked(rows: list[dict]) -> list[dict]:
    """Rows ordered by score, highest first (ties keep their order), numbered from 1."""
    order = np.argsort([-row["score"] for row in rows], kind="stable")
    return [{"rank": rank + 1, **rows[i]} for rank, i in enumerate(order)]


def triage_queue(classifier, cases: Iterable[tuple[str, str, HealthyScan]], finding: str, rules: dict | None = None,
                 progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows in ``QUEUE_COLUMNS`` order, highest score of ``finding`` first.  ``cases``: (case
    id, image path or name, scan), scored in this process."""
    finding_index(classifier, finding)
    rows = []
    for number, (case_id, image, scan) in enumerate(cases):
        rows.append(queue_row(classifier, case_id, image, scan, finding, rules))
        if progress is not None:
            progress(f"scored {number + 1} scan(s)")
    return ranked(rows)


@dataclass(frozen=True)
class _QueueTask:
    model: str
    case: object  # ct_findings_cases.CtCase
    finding: str
    organ_names: dict
    rules: dict | None


@functools.lru_cache(maxsize=2)
def _classifier(model: str):
    """One load per worker process (and per model folder)."""
    from ..recipes.findings_model import load_findings_model

    return load_findings_model(Path(model))


def _score_file(task: _QueueTask) -> dict:
    """A task for any executor: read one case's files and score it."""
    from .ct_findings_cases import load_scan

    scan = load_scan(task.case, task.organ_names, need_organs=False)
    return queue_row(_classifier(task.model), task.case.case_id, task.case.image, scan, task.finding, task.rules)


def triage_files(model: Path, cases: list, finding: str, organ_names: dict[int, str] | None = None,
                 rules: dict | None = None, workers: int = 1, cluster: str | None = None,
                 progress: Callable[[str], None] | None = None) -> list[dict]:
    """The queue of case files (``ct_findings_cases.CtCase``), each scored as its own task in
    this process, in ``workers`` processes or on a Dask ``cluster`` (each worker loads the model
    folder once); the same rows, in the same order, wherever they ran."""
    from MedSynthCommonLib.executors import executor

    finding_index(_classifier(str(model)), finding)
    tasks = [_QueueTask(str(model), case, finding, dict(organ_names or {}), rules) for case in cases]
    rows: dict[str, dict] = {}
    with executor(workers, cluster, progress) as runner:
        for task, row in runner.run(_score_file, tasks):
            if isinstance(row, Exception):
                raise MedSynthInputError(f"Case {task.case.case_id} could not be scored: {row}")
            rows[task.case.case_id] = row
            if progress is not None:
                progress(f"scored {len(rows)} of {len(tasks)} scan(s)")
    return ranked([rows[case.case_id] for case in cases])
