"""A short structured report written from a findings list by rules, not by a language model:
radiology language is highly structured, and a rule a user can read is a rule a user can check.

The rules are one table (``DEFAULT_RULES``, or a JSON file of the same shape the user edits):

- ``sentence``: the template of one finding's sentence, with ``{certainty}``, ``{finding}``,
  ``{location}`` and ``{size}`` (e.g. ", 23 mm"; empty when the size is unknown);
- ``findings``: a template per finding type, overriding ``sentence``;
- ``certainty``: score bands, highest first, as [lowest score, word]; scores below every band
  are not reported;
- ``no_finding``: the whole report when nothing is reported;
- ``unknown_location``: the words used when a finding has no location;
- ``exclusive``: groups of finding types that cannot all be true of one place (a lesion is not
  both hypodense and hyperdense); a type matches a group entry when it starts with it
  ("hypodense lesion (liver)" matches "hypodense lesion");
- ``conflict``: the one sentence written when findings of one group are reported in the same
  organ (the location up to its first comma), with ``{finding}`` (the higher-scoring),
  ``{other}`` and ``{location}``: it never states either as definite;
- ``partial_view``: the sentence added when the scan covers less than ``partial_view_below``
  of the region the model reads, with ``{percent}`` (the share it covers);
- ``unfamiliar``: the sentence added when the scan's organs measure unlike the training scans'
  (``familiarity``), with ``{details}`` (e.g. "liver 44 HU (training scans 98-105 HU)");
- ``density``: finding types that say how a region measures ("darker" or "brighter" than its
  organ); a called finding of such a type whose evidence region does not measure so by at least
  ``density_min_hu`` (``density.supported``) is not reported, and ``unsupported`` (with
  ``{finding}``, ``{location}``, ``{kind}``) says so instead;
- ``outside_organs``: the sentence for a hypo- or hyperdense call whose evidence lies in none of
  the organs the model reads (``calls.located_findings``), with ``{finding}`` and ``{organs}``.

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
    "exclusive": [["hypodense lesion", "hyperdense lesion", "isodense lesion"]],
    "conflict": "Lesion in the {location}, {finding} or {other}: the model finds both, so neither is certain.",
    "partial_view": "The scan covers {percent} % of the region the model reads (it ends within or near the "
                    "organs), so this reading is less certain.",
    "partial_view_below": 0.9,
    "unfamiliar": "The organs measure unlike the scans the model was trained on ({details}): another contrast "
                  "phase or scanner, so this reading is less certain.",
    "density": {"hypodense lesion": "darker", "hyperdense lesion": "brighter"},
    # lesion-free evidence regions of the real CT measured at most 6 HU, synthetic lesions under them 11-68 HU
    "density_min_hu": 10.0,
    "unsupported": "The model's {finding} in the {location} is not reported: the region is not {kind} than the "
                   "organ around it.",
    "outside_organs": "The model's {finding} is not reported: its evidence lies outside the organs it reads "
                      "({organs}).",
}

_FIELDS = {"certainty", "finding", "location", "size"}
_CONFLICT_FIELDS = {"finding", "other", "location"}


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
    used = {name for _, name, _, _ in string.Formatter().parse(rules["conflict"]) if name}
    if used - _CONFLICT_FIELDS:
        raise MedSynthInputError(f"The conflict template names {sorted(used - _CONFLICT_FIELDS)}; it may use "
                                 f"{sorted(_CONFLICT_FIELDS)}.")
    for key, allowed in (("partial_view", {"percent"}), ("unfamiliar", {"details"}),
                         ("unsupported", {"finding", "location", "kind"}), ("outside_organs", {"finding", "organs"})):
        used = {name for _, name, _, _ in string.Formatter().parse(rules[key]) if name}
        if used - allowed:
            raise MedSynthInputError(f"The {key} template names {sorted(used - allowed)}; it may use "
                                     f"{sorted(allowed)}.")
    if not isinstance(rules["partial_view_below"], (int, float)) or not 0 <= rules["partial_view_below"] <= 1:
        raise MedSynthInputError("partial_view_below must be a share between 0 and 1.")
    if not isinstance(rules["density"], dict) or not set(rules["density"].values()) <= {"darker", "brighter"}:
        raise MedSynthInputError('density must map finding types to "darker" or "brighter".')
    if not isinstance(rules["density_min_hu"], (int, float)) or rules["density_min_hu"] < 0:
        raise MedSynthInputError("density_min_hu must be a number of HU, 0 or more.")
    if not isinstance(rules["exclusive"], list) or not all(
            isinstance(g, list) and all(isinstance(t, str) for t in g) for g in rules["exclusive"]):
        raise MedSynthInputError("exclusive must list groups (lists) of finding types.")
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


def _group(finding: str, rules: dict) -> int | None:
    for number, group in enumerate(rules["exclusive"]):
        if any(finding.startswith(kind) for kind in group):
            return number
    return None


def _organ(finding: dict, rules: dict) -> str:
    return (finding.get("location") or rules["unknown_location"]).split(",")[0].split(" (")[0].strip()


def write_report_text(findings: list[dict], rules: dict | None = None, coverage: float = 1.0,
                      unfamiliar: str = "") -> str:
    """The report: one sentence per reported finding (highest score first), or the
    no-finding sentence.  Reported findings of one ``exclusive`` group in one organ become one
    ``conflict`` sentence (never two contradicting "Definite" statements).  ``coverage``: the
    share of the model's region the scan covers; below ``partial_view_below`` the
    ``partial_view`` sentence follows.  ``unfamiliar``: the organs that measure unlike the
    training scans (``familiarity.familiarity_text``); when given, the ``unfamiliar`` sentence.
    A finding with ``supported`` False (its density not measured in the image) is not reported:
    the ``unsupported`` sentence says so."""
    from .density import density_kind

    rules = rules or load_rules()
    text = _findings_text([f for f in findings if f.get("supported") is not False], rules)
    for finding in sorted((f for f in findings if f.get("supported") is False), key=lambda f: -float(f["score"])):
        if finding.get("outside_organs"):
            sentence = rules["outside_organs"].format(finding=finding["finding"], organs=finding["outside_organs"])
        else:
            sentence = rules["unsupported"].format(finding=finding["finding"], location=finding.get("location")
                                                   or rules["unknown_location"],
                                                   kind=density_kind(finding["finding"], rules))
        text += " " + sentence[0].upper() + sentence[1:]
    if coverage < rules["partial_view_below"]:
        text += " " + rules["partial_view"].format(percent=int(100 * coverage))
    if unfamiliar:
        text += " " + rules["unfamiliar"].format(details=unfamiliar)
    return text


def _findings_text(findings: list[dict], rules: dict) -> str:
    ordered = [f for f in sorted(findings, key=lambda f: -float(f["score"]))
               if certainty_word(float(f["score"]), rules) is not None]
    sentences, merged = [], set()
    for n, finding in enumerate(ordered):
        if n in merged:
            continue
        group = _group(finding["finding"], rules)
        rivals = [m for m in range(n + 1, len(ordered)) if m not in merged and group is not None
                  and _group(ordered[m]["finding"], rules) == group and _organ(ordered[m], rules) == _organ(finding, rules)
                  and ordered[m]["finding"] != finding["finding"]]
        if rivals:
            merged.update(rivals)
            text = rules["conflict"].format(finding=finding["finding"], other=ordered[rivals[0]]["finding"],
                                            location=finding.get("location") or rules["unknown_location"])
            sentences.append(text[0].upper() + text[1:])
        else:
            sentences.append(finding_sentence(finding, rules))
    return " ".join(sentences) if sentences else rules["no_finding"]
