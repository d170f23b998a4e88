"""A called finding is checked against the image (``findings.density``): a hypodense lesion's
evidence region must measure darker than its organ, a hyperdense one's brighter; calls the image
does not bear out are not reported, whatever the network's score."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from findings_scans import ORGANS, phantom_scans

pytest.importorskip("torch")


def _organ_with_blob(contrast: float, seed: int = 0):
    """A 40^3 organ of 100 +- 15 HU with a 5-voxel-radius blob of ``contrast`` HU at its centre,
    the half-maximum region of an evidence map peaking there, and the organ mask."""
    from SynthEvaluateLib.findings.anatomy import evidence_region

    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 15.0, (40, 40, 40)).astype(np.float32)
    image[_blob()] += contrast
    k, j, i = np.indices(image.shape)
    evidence = np.exp(-((k - 20) ** 2 + (j - 20) ** 2 + (i - 20) ** 2) / (2 * 4.0 ** 2)).astype(np.float32)
    return image, evidence_region(evidence), np.ones(image.shape, bool)


def _blob() -> np.ndarray:
    """The blob of ``_organ_with_blob``: 5 voxels' radius around the centre of the 40^3 organ."""
    k, j, i = np.indices((40, 40, 40))
    return (k - 20) ** 2 + (j - 20) ** 2 + (i - 20) ** 2 <= 25


def test_the_density_of_an_evidence_region_against_its_organ():
    from SynthEvaluateLib.findings.density import organ_view, region_density, region_organ, supported
    from SynthEvaluateLib.findings.report_rules import load_rules

    rules = load_rules()
    mm = np.array([2.0, 2.0, 2.0])  # voxels of 2 mm: the blob is 22 mm across
    dark = region_density(*_organ_with_blob(-40.0), mm)
    bright = region_density(*_organ_with_blob(+25.0), mm)
    plain = region_density(*_organ_with_blob(0.0), mm)
    assert dark["darker_hu"] > 20 and dark["brighter_hu"] < 5
    assert bright["brighter_hu"] > 10 and bright["darker_hu"] < 5
    assert abs(plain["darker_hu"]) < 5 and abs(plain["brighter_hu"]) < 5  # noise alone: no shift
    assert supported("hypodense lesion (liver)", dark, rules) is True
    assert supported("hyperdense lesion", dark, rules) is False
    assert supported("hyperdense lesion", bright, rules) is True and supported("cyst", bright, rules) is None
    assert supported("hypodense lesion", None, rules) is None  # nothing measured: nothing decided
    image, region, organ = _organ_with_blob(-40.0)
    assert region_density(image, region, np.zeros_like(organ), mm) is None
    # enhanced vessels (4 mm wide, +90 HU) crossing a lesion-free region are not a hyperdense lesion
    vessel, region, organ = _organ_with_blob(0.0)
    vessel[:, 19:21, 19:21] += 90.0
    vessel[19:21, :, 19:21] += 90.0
    assert np.percentile(vessel[region], 90) - np.percentile(vessel[organ & ~region], 90) > 40  # the raw tail
    on_vessel = region_density(vessel, region, organ, mm)
    assert supported("hyperdense lesion", on_vessel, rules) is False and abs(on_vessel["brighter_hu"]) < 5
    # ... and a hyperdense lesion beside one still is
    vessel[_blob()] += 25.0
    assert supported("hyperdense lesion", region_density(vessel, region, organ, mm), rules) is True
    # an organ measured once (``organ_view``) for every call in it measures the same
    view = organ_view(vessel, organ, mm)
    assert region_density(vessel, region, organ, mm, view) == region_density(vessel, region, organ, mm)
    labels = np.zeros(image.shape, np.int32)
    labels[:, :, 18:] = 5  # most of the region lies in organ 5, the rest in organ 2
    labels[:, :, :18] = 2
    assert region_organ(region, labels) == 5 and region_organ(region, np.zeros_like(labels)) is None


def test_an_organs_edge_is_not_a_hypodense_lesion():
    """Surface voxels share the fat beyond the organ (partial volume): a lesion-free region at the
    organ's edge is not measured darker for them (its dark tail is taken without them); a dark
    lesion at the edge still is."""
    from scipy import ndimage

    from SynthEvaluateLib.findings.density import region_density

    rng = np.random.default_rng(0)
    k, j, i = np.indices((48, 48, 48))
    organ = (k - 24) ** 2 + (j - 24) ** 2 + (i - 24) ** 2 <= 18 ** 2
    image = np.where(organ, rng.normal(100.0, 5.0, organ.shape), -100.0).astype(np.float32)
    surface = organ & ~ndimage.binary_erosion(organ)
    image[surface] = rng.uniform(50.0, 100.0, np.count_nonzero(surface))  # part organ, part fat
    edge = (k - 24) ** 2 + (j - 24) ** 2 + (i - 42) ** 2 <= 7 ** 2  # centred on the organ's surface
    mm = np.array([2.0, 2.0, 2.0])
    assert np.percentile(image[organ & ~edge], 10) - np.percentile(image[edge & organ], 10) > 10  # the raw tails
    assert region_density(image, edge, organ, mm)["darker_hu"] < 0
    lesion = image.copy()
    lesion[edge & organ] -= 40.0
    assert region_density(lesion, edge, organ, mm)["darker_hu"] > 20


def test_a_call_the_image_does_not_bear_out_is_not_reported():
    from SynthEvaluateLib.findings.report_rules import write_report_text

    both = [{"finding": "hypodense lesion", "score": 0.95, "location": "liver, right lobe", "supported": True},
            {"finding": "hyperdense lesion", "score": 0.97, "location": "liver, left lobe", "supported": False}]
    assert write_report_text(both) == (
        "Definite hypodense lesion in the liver, right lobe. The model's hyperdense lesion in the liver, left lobe "
        "is not reported: the region is not brighter than the organ around it.")
    assert write_report_text(both[1:]).startswith("No acute finding. The model's hyperdense lesion")


def test_the_queue_and_the_study_count_only_calls_the_image_bears_out(findings_result):
    from SynthEvaluateLib.findings.synthetic import synthetic_findings_set
    from SynthEvaluateLib.findings.triage import queue_row

    result, test_scans = findings_result
    for name, checked in result["per_finding_after_density_check"].items():  # the check keeps the true calls
        assert checked["sensitivity"]["value"] >= 0.7 * result["per_finding"][name]["sensitivity"]["value"], name
    # a model that calls everything (thresholds far too low): on healthy scans the image bears out nothing
    classifier = result["_classifier"]
    eager = dataclasses.replace(classifier, thresholds=[1e-4] * len(classifier.findings))
    for scan in phantom_scans(range(50, 52)):
        for finding in classifier.findings:
            row = queue_row(eager, "h", "h.nii.gz", scan, finding)
            assert row["called"] == "no" and row["density"].startswith(("not ", "outside the organs")), row
            assert "is not reported" in row["report"] and "Definite" not in row["report"]
    # a scan with a hyperdense lesion: that call stands, with its measured density
    made = synthetic_findings_set(test_scans, 12, ORGANS, seed=7)
    n = next(n for n in range(12) if made.findings[n].tolist() == [0, 1])
    scan = dataclasses.replace(test_scans[n % 3], image=made.volumes[n])
    row = queue_row(eager, "p", "p.nii.gz", scan, "hyperdense lesion")
    assert row["called"] == "yes" and "HU brighter than the" in row["density"], row


def test_a_call_whose_evidence_lies_outside_the_models_organs_is_not_reported(findings_result):
    """A hyperdense call whose evidence sits on an organ the model does not read (here a bright
    spot in the pancreas; on a real CT a phantom-trained model put it on the vertebrae, brighter
    than the rest of the bone) is not borne out by its organs: not reported, and the report and
    the queue say why.  A model whose card names no organs measures it where it lies, as before."""
    from SynthEvaluateLib.findings.calls import located_findings
    from SynthEvaluateLib.findings.report_rules import write_report_text
    from SynthLesionLib.phantom import ORGAN_LABELS

    result, _ = findings_result
    classifier = result["_classifier"]
    eager = dataclasses.replace(classifier, thresholds=[1e-4] * len(classifier.findings))
    scan = phantom_scans([50])[0]
    pancreas = scan.organs == ORGAN_LABELS["pancreas"]
    centre = np.argwhere(pancreas)[len(np.argwhere(pancreas)) // 2]
    k, j, i = np.indices(scan.image.shape)
    distance2 = (k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2
    image = scan.image + np.where((distance2 <= 4) & pancreas, 150.0, 0.0).astype(scan.image.dtype)
    hyper = classifier.findings.index("hyperdense lesion")
    evidence = {f: np.exp(-distance2 / (2 * 2.0 ** 2)).astype(np.float32) for f in range(len(classifier.findings))}
    probabilities = np.full(len(classifier.findings), 0.99)
    row = located_findings(eager, image, scan, scan.geometry, probabilities, evidence)[hyper]
    assert row["supported"] is False and row["density"] is None
    assert row["outside_organs"] == ", ".join(classifier.organs) and "pancreas" not in classifier.organs
    assert "pancreas" not in row["location"] and row["organ"] is None  # placed only in the model's organs
    report = write_report_text([row])
    assert "Definite" not in report and "outside the organs it reads (liver, spleen" in report
    unnamed = dataclasses.replace(eager, organs=[])  # older cards: measured in the organ it lies in
    old = located_findings(unnamed, image, scan, scan.geometry, probabilities, evidence)[hyper]
    assert old["density"]["organ"] == "pancreas" and old["supported"] is True and old["outside_organs"] is None
    assert old["organ"] == "pancreas"
