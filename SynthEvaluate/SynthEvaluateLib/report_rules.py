"""A short structured report written from a findings list by rules, not by a language model:
radiology language is highly structured, and a rule a user can read is a rule a user can check.

The rules are one table (``DEFAULT_RULES``, or a JSON file of the same shape the user edits):

- ``sentence``: the template of one finding's sentence, with ``{certainty}``, ``{finding}``,
  ``{location}`` and ``{size}`` (e.g. ", 23 mm"; empty when the size is unknown);
- ``findings``: a template per finding type, overriding ``sentence``;
- ``certainty``: score bands, highest first, as [lowest score, word]; scores below every band
  are not reported;
- ``no_finding``: the whole report when nothing is reported;
- ``unknown_location``: the words used when a finding has no location.

A finding is a dict: ``finding`` (type), ``score`` (0-1), optional ``location`` and
``size_mm``.  Sentences follow the order of the list sorted by score (highest first).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.options import read_json

DEFAULT_RULES: dict = {
    "sentence": "{certainty} {finding} in the {location}{size}.",
    "findings": {},
    "certainty": [[0.9, "Definite"], [0.7, "Probable"], [0.5, "Possible"]],
    "no_finding": "No acute finding.",
    "unknown_location": "unlocalised region",
}

_FIELDS = {"certainty", "finding", "location", "size"}


def load_rules(path: str | Path | None = None) -> dict:
    """The default rules, or those of a JSON file (keys it leaves out keep their defaults);
    templates naming unknown fields and malformed bands are refused."""
    rules = json.loads(json.dumps(DEFAULT_RULES))
    if path is not None:
        given = read_json(path, "report rules file")
        if not isinstance(given, dict) or set(given) - set(DEFAULT_RULES):
            raise MedSynthInputError(f"The report rules {path} must be a JSON object with keys among "
                                     f"{sorted(DEFAULT_RULES)}.")
        rules.update(given)
    for template in [rules["sentence"], *rules["findings"].values()]:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        if used - _FIELDS:
            raise MedSynthInputError(f"The report template {template!r} names {sorted(used - _FIELDS)}; it may use "
                                     f"{sorted(_FIELDS)}.")
    bands = rules["certainty"]
    if not bands or any(not (isinstance(b, list) and len(b) == 2 and 0 <= b[0] <= 1) for b in bands) or \
            [b[0] for b in bands] != sorted((b[0] for b in bands), reverse=True):
        raise MedSynthInputError("certainty must list [lowest score in 0-1, word] bands, highest first.")
    return rules


def certainty_word(score: float, rules: dict) -> str | None:
    """The word of the band ``score`` falls in; None below every band (not reported)."""
    for lowest, word in rules["certainty"]:
        if score >= lowest:
            return word
    return None


def finding_sentence(finding: dict, rules: dict) -> str | None:
    """One finding's sentence, or None when its score is below every certainty band."""
    word = certainty_word(float(finding["score"]), rules)
    if word is None:
        return None
    size = finding.get("size_mm")
    template = rules["findings"].get(finding["finding"], rules["sentence"])
    text = template.format(certainty=word, finding=finding["finding"],
                           location=finding.get("location") or rules["unknown_location"],
                           size=f", {size:.0f} mm" if size is not None else "")
    return text[0].upper() + text[1:]


def write_report_text(findings: list[dict], rules: dict | None = None) -> str:
    """The report: one sentence per reported finding (highest score first), or the
    no-finding sentence."""
    rules = rules or load_rules()
    ordered = sorted(findings, key=lambda f: -float(f["score"]))
    sentences = [s for s in (finding_sentence(f, rules) for f in ordered) if s]
    return " ".join(sentences) if sentences else rules["no_finding"]
