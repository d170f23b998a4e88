"""Reader study (visual Turing test): can readers tell synthetic cases from real ones?

A study is a shuffled, blinded list of cases; the reader sees only a neutral case number.
Every answer (real/synthetic, confidence 1-5, seconds taken) is written to the study's CSV
at once and atomically, so a session can stop at any case and resume.  Results per reader:
accuracy, sensitivity (synthetic cases called synthetic), specificity (real called real)
with Wilson intervals; near 50% accuracy means readers cannot tell them apart.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.storage import claim_folder, write_text_atomic
from MedSynthCommonLib.tables import csv_text, read_table
from MedSynthCommonLib.options import read_json

from ..metrics.classification import binary_metrics

ANSWERS = ("real", "synthetic")


@dataclass(frozen=True)
class StudyCase:
    number: int  # what the reader sees
    source: str  # "real" or "synthetic": hidden from the reader
    reference: str  # file or node the case comes from


def _answer_problem(row: dict, numbers: set[int]) -> str | None:
    """What is wrong with one answers.csv row (None when nothing)."""
    if not row["reader"]:
        return "the reader is empty"
    if not row["case"].isdigit() or int(row["case"]) not in numbers:
        return f"case {row['case']!r} is not a case of this study"
    if row["answer"] not in ANSWERS:
        return f"answer {row['answer']!r} is not one of {', '.join(ANSWERS)}"
    if row["confidence"] not in ("1", "2", "3", "4", "5"):
        return f"confidence {row['confidence']!r} is not a whole number from 1 to 5"
    try:
        seconds = float(row["seconds"] or 0)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        return f"seconds {row['seconds']!r} is not a number >= 0"
    return None


class ReaderStudy:
    """A blinded study stored in a folder: ``study.json`` (the key) and ``answers.csv``."""

    ANSWER_FIELDS = ["reader", "case", "answer", "confidence", "seconds"]

    def __init__(self, folder: Path, cases: list[StudyCase], seed: int):
        self.folder, self.cases, self.seed = Path(folder), cases, seed

    @classmethod
    def create(cls, folder: Path, real: list[str], synthetic: list[str], seed: int = 0) -> "ReaderStudy":
        """Mix and shuffle ``real`` and ``synthetic`` references (file paths or node names)."""
        if not real or not synthetic:
            raise MedSynthInputError("A reader study needs both real and synthetic cases.")
        items = [("real", r) for r in real] + [("synthetic", s) for s in synthetic]
        order = np.random.default_rng(seed).permutation(len(items))
        cases = [StudyCase(number + 1, *items[i]) for number, i in enumerate(order)]
        study = cls(folder, cases, seed)
        if (study.folder / "study.json").exists():
            raise MedSynthInputError(f"{study.folder} already holds a study; open it with ReaderStudy.open.")
        claim_folder(study.folder, "study folder")  # new or empty: a study never mixes with other files
        write_text_atomic(study.folder / "study.json", json.dumps(
            {"seed": seed, "cases": [c.__dict__ for c in cases]}, indent=2))
        return study

    @classmethod
    def open(cls, folder: Path) -> "ReaderStudy":
        path = Path(folder) / "study.json"
        if not path.exists():
            raise MedSynthInputError(f"No reader study in {folder} (study.json missing).")
        data = read_json(path, "reader study")
        try:
            return cls(folder, [StudyCase(**c) for c in data["cases"]], int(data["seed"]))
        except (KeyError, TypeError, ValueError):
            raise MedSynthInputError(f"{path} is not a MedSynth reader study (damaged or from another program).") from None

    def shown_file(self, case: StudyCase) -> Path:
        """The case as the reader sees it, made once in ``cases/`` of the study folder and named by
        the case number.  Every copy is alike in all but its pixels, so nothing else can unblind
        a reader: 3-D (a 2-D image is one slice), 32-bit float, grey (colour averaged), origin at
        0 with axes along the patient's, spacing rounded to 0.01 mm, no metadata (no file name,
        path or DICOM tag)."""
        import SimpleITK as sitk

        from MedSynthCommonLib.imageio import image_writer, read_image
        from MedSynthCommonLib.storage import atomic_write

        target = self.folder / "cases" / f"case_{case.number:04d}.nrrd"
        if not target.exists():
            original = read_image(case.reference)
            pixels = sitk.GetArrayFromImage(original).astype(np.float32)
            if original.GetNumberOfComponentsPerPixel() > 1:
                pixels = pixels.mean(axis=-1)
            spacing = [round(float(v), 2) for v in original.GetSpacing()]
            if pixels.ndim == 2:
                pixels, spacing = pixels[None], [*spacing, 1.0]
            clean = sitk.GetImageFromArray(np.ascontiguousarray(pixels))
            clean.SetSpacing(spacing[:3])  # origin (0, 0, 0) and identity direction: the defaults
            atomic_write(target, *image_writer(clean))
        return target

    def answers(self) -> list[dict]:
        """The recorded answers, each checked (a hand-edited or damaged ``answers.csv`` is refused
        naming the line): reader, a case of this study, real/synthetic, confidence 1-5, seconds."""
        path = self.folder / "answers.csv"
        if not path.exists():
            return []
        numbers = {c.number for c in self.cases}
        answers = []
        for line, row in read_table(path, tuple(self.ANSWER_FIELDS), "answers table"):
            problem = _answer_problem(row, numbers)
            if problem:
                raise MedSynthInputError(f"Line {line} of {path}: {problem}; correct or delete that line.")
            answers.append({**row, "case": int(row["case"]), "confidence": int(row["confidence"]),
                            "seconds": float(row["seconds"] or 0)})
        return answers

    def next_case(self, reader: str) -> StudyCase | None:
        """The first case this reader has not answered, or None when finished."""
        done = {int(a["case"]) for a in self.answers() if a["reader"] == reader}
        return next((c for c in self.cases if c.number not in done), None)

    def record(self, reader: str, case_number: int, answer: str, confidence: int, seconds: float = 0.0) -> None:
        """Store one answer (replacing an earlier answer of this reader to this case)."""
        if not reader.strip():
            raise MedSynthInputError("Enter the reader's name or code before answering.")
        if reader.strip()[0] in "=+-@":
            raise MedSynthInputError(f"The reader's name {reader!r} starts with {reader.strip()[0]!r}, which spreadsheets "
                                     "read as a formula; use a name or code that starts with a letter or digit.")
        if answer not in ANSWERS:
            raise MedSynthInputError(f"Answer must be one of {ANSWERS}; got {answer!r}.")
        if not 1 <= int(confidence) <= 5:
            raise MedSynthInputError(f"Confidence must be 1 (guess) to 5 (certain); got {confidence}.")
        if case_number not in {c.number for c in self.cases}:
            raise MedSynthInputError(f"There is no case {case_number} in this study.")
        if not math.isfinite(float(seconds)) or float(seconds) < 0:
            raise MedSynthInputError(f"Seconds must be a finite number >= 0; got {seconds}.")
        rows = [a for a in self.answers() if not (a["reader"] == reader and int(a["case"]) == case_number)]
        rows.append({"reader": reader, "case": case_number, "answer": answer, "confidence": int(confidence),
                     "seconds": round(float(seconds), 2)})
        write_text_atomic(self.folder / "answers.csv", csv_text(rows, self.ANSWER_FIELDS))

    def results(self, confidence: float = 0.95) -> dict:
        """Per reader and pooled: accuracy, sensitivity, specificity (Wilson CIs), mean confidence."""
        truth = {c.number: c.source for c in self.cases}
        answers = self.answers()
        if not answers:
            raise MedSynthInputError("No answers recorded yet.")
        readers = sorted({a["reader"] for a in answers})
        out = {"protocol": "reader-study", "cases": len(self.cases), "seed": self.seed, "readers": {}}
        for reader in [*readers, None]:
            rows = [a for a in answers if reader is None or a["reader"] == reader]
            y = np.array([truth[int(a["case"])] == "synthetic" for a in rows], int)
            p = np.array([a["answer"] == "synthetic" for a in rows], int)
            metrics = binary_metrics(y, p, confidence)
            entry = {"answered": len(rows), "accuracy": metrics["accuracy"], "sensitivity": metrics["sensitivity"],
                     "specificity": metrics["specificity"],
                     "mean_confidence": float(np.mean([int(a["confidence"]) for a in rows]))}
            if reader is None:
                out["pooled"] = entry
            else:
                out["readers"][reader] = entry
        return out
