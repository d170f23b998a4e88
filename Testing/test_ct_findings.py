"""Structured CT findings: rule-based report text, locations in anatomy from evidence maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from MedSynthCommonLib.errors import MedSynthInputError
from SynthEvaluateLib.anatomy import locate_in_anatomy
from SynthEvaluateLib.report_rules import load_rules, write_report_text
from SynthLesionLib import make_ct_phantom
from SynthLesionLib.phantom import ORGAN_LABELS

CRAFTED = [
    {"finding": "hyperdense lesion", "score": 0.62, "location": "spleen, upper left part"},
    {"finding": "hypodense lesion", "score": 0.95, "location": "liver, right lobe", "size_mm": 23.4},
    {"finding": "calcification", "score": 0.3, "location": "right kidney, lower right part"},  # below every band
    {"finding": "cyst", "score": 0.75},
]


def test_report_text_for_a_crafted_list_is_exact():
    assert write_report_text(CRAFTED) == ("Definite hypodense lesion in the liver, right lobe, 23 mm. "
                                          "Probable cyst in the unlocalised region. "
                                          "Possible hyperdense lesion in the spleen, upper left part.")
    assert write_report_text([]) == "No acute finding."
    assert write_report_text([CRAFTED[2]]) == "No acute finding."


def test_report_rules_are_a_table_the_user_edits(tmp_path):
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps({"findings": {"cyst": "{certainty} simple cyst{size}, {location}."},
                                      "certainty": [[0.7, "likely"], [0.2, "doubtful"]],
                                      "no_finding": "Normal study."}), encoding="utf-8")
    rules = load_rules(rules_file)
    assert write_report_text(CRAFTED[2:], rules) == ("Likely simple cyst, unlocalised region. "
                                                     "Doubtful calcification in the right kidney, lower right part.")
    assert write_report_text([], rules) == "Normal study."
    for bad in ({"sentence": "{certainty} {organ}"}, {"certainty": [[0.2, "a"], [0.7, "b"]]}, {"colour": 1}):
        rules_file.write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(MedSynthInputError):
            load_rules(rules_file)


def _blob(shape, centre_kji, sigma=2.0):
    k, j, i = np.indices(shape)
    return np.exp(-((k - centre_kji[0]) ** 2 + (j - centre_kji[1]) ** 2 + (i - centre_kji[2]) ** 2) / (2 * sigma ** 2))


def test_evidence_is_named_by_the_organ_it_lies_in(ct_phantom):
    names = {value: name for name, value in ORGAN_LABELS.items()}
    geometry, organs = ct_phantom.geometry, ct_phantom.organs
    for organ in ("liver", "right kidney", "left kidney", "spleen"):
        inside = np.argwhere(organs == ORGAN_LABELS[organ])
        point = inside[len(inside) // 3]  # a voxel of the organ, off its centre
        found = locate_in_anatomy(_blob(organs.shape, point), geometry, organs, names)
        assert found["organ"] == organ and found["organ_share"] >= 0.3, (organ, found)
        assert found["basis"] == "organ segmentation"
        # the side is the patient's: RAS x of the evidence against the organ's centre (oblique grid)
        organ_centre = geometry.kji_to_ras(inside.mean(axis=0)[None])[0]
        side = "right" if found["centre_ras"][0] > organ_centre[0] else "left"  # RAS: +x is the patient's right
        assert side in found["location"]
    liver = np.argwhere(organs == ORGAN_LABELS["liver"])
    assert "lobe" in locate_in_anatomy(_blob(organs.shape, liver[0]), geometry, organs, names)["location"]
    # with its default (LPS-stored) geometry the phantom's liver and right kidney lie on the
    # patient's right (RAS x > 0) and are named so
    plain = make_ct_phantom(shape=(24, 48, 48), spacing=(6.0, 6.0, 8.0), seed=0)
    for organ in ("liver", "right kidney"):
        inside = plain.organs == ORGAN_LABELS[organ]
        assert plain.geometry.kji_to_ras(np.argwhere(inside).mean(axis=0)[None])[0][0] > 0
    kidney = np.argwhere(plain.organs == ORGAN_LABELS["right kidney"]).mean(axis=0).round().astype(int)
    coarse = locate_in_anatomy(_blob(plain.organs.shape, kidney), plain.geometry)
    assert "right part of the scan" in coarse["location"]


def test_without_segmentation_the_region_is_coarse_and_says_so(ct_phantom):
    shape, geometry = ct_phantom.organs.shape, ct_phantom.geometry
    found = locate_in_anatomy(_blob(shape, (shape[0] - 3, shape[1] // 2, shape[2] // 2)), geometry)
    assert found["organ"] is None and found["basis"] == "coarse region: no organ segmentation"
    assert found["location"].endswith("part of the scan")
    top = geometry.kji_to_ras(np.array([[shape[0] - 1, 0, 0]], float))[0][2] > geometry.kji_to_ras(np.zeros((1, 3)))[0][2]
    assert found["location"].startswith("upper" if top else "lower")
    assert locate_in_anatomy(np.zeros(shape), geometry)["location"] == "not localised"
    with pytest.raises(MedSynthInputError, match="not on the evidence grid"):
        locate_in_anatomy(np.ones(shape), geometry, np.zeros((2, 2, 2)), {1: "liver"})
