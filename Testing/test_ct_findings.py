"""Structured CT findings: rule-based report text, locations in anatomy from evidence maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from MedSynthCommonLib.errors import MedSynthInputError
from SynthEvaluateLib.findings.anatomy import locate_in_anatomy
from SynthEvaluateLib.findings.report_rules import load_rules, write_report_text
from SynthLesionLib import make_ct_phantom
from SynthLesionLib.phantom import ORGAN_LABELS

from findings_scans import ORGANS, PHANTOM, framed

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


def test_contradicting_findings_in_one_organ_are_never_both_definite():
    both = [{"finding": "hypodense lesion", "score": 0.97, "location": "liver, right lobe"},
            {"finding": "hyperdense lesion", "score": 0.91, "location": "liver, left lobe"},
            {"finding": "hyperdense lesion", "score": 0.93, "location": "spleen, upper left part"}]
    assert write_report_text(both) == ("Lesion in the liver, right lobe, hypodense lesion or hyperdense lesion: the "
                                       "model finds both, so neither is certain. "
                                       "Definite hyperdense lesion in the spleen, upper left part.")
    labelled = [{"finding": "hypodense lesion (liver)", "score": 0.9, "location": "liver"},
                {"finding": "hyperdense lesion (liver)", "score": 0.8, "location": "liver"}]
    assert "Definite" not in write_report_text(labelled) and "or hyperdense lesion (liver)" in write_report_text(labelled)


def test_report_rules_are_a_table_the_user_edits(tmp_path):
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps({"findings": {"cyst": "{certainty} simple cyst{size}, {location}."},
                                      "certainty": [[0.7, "likely"], [0.2, "doubtful"]],
                                      "no_finding": "Normal study."}), encoding="utf-8")
    rules = load_rules(rules_file)
    assert write_report_text(CRAFTED[2:], rules) == ("Likely simple cyst, unlocalised region. "
                                                     "Doubtful calcification in the right kidney, lower right part.")
    assert write_report_text([], rules) == "Normal study."
    # a scan that covers little of the model's region says so, in the rules' words
    assert write_report_text([], rules, coverage=0.95) == "Normal study."
    assert write_report_text([], rules, coverage=0.54) == (
        "Normal study. The scan covers 54 % of the region the model reads (it ends within or near the organs), "
        "so this reading is less certain.")
    for bad in ({"sentence": "{certainty} {organ}"}, {"certainty": [[0.2, "a"], [0.7, "b"]]}, {"colour": 1},
                {"partial_view": "{share}"}, {"partial_view_below": 2}):
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
    last_slice_z = geometry.kji_to_ras(np.array([[shape[0] - 1, 0, 0]], float))[0][2]
    top = last_slice_z > geometry.kji_to_ras(np.zeros((1, 3)))[0][2]
    assert found["location"].startswith("upper" if top else "lower")
    assert locate_in_anatomy(np.zeros(shape), geometry)["location"] == "not localised"
    with pytest.raises(MedSynthInputError, match="not on the evidence grid"):
        locate_in_anatomy(np.ones(shape), geometry, np.zeros((2, 2, 2)), {1: "liver"})


def test_findings_are_read_from_the_lesion_records(ct_phantom):
    """type x organ x size class: each inserted lesion's finding, label column and mask agree with
    its record and lie in its organ (an oblique, anisotropic phantom)."""
    import dataclasses

    from SynthEvaluateLib.findings.scans import HealthyScan
    from SynthEvaluateLib.findings.synthetic import finding_names, synthetic_findings_set
    from SynthLesionLib import LesionConfig, synthesize_lesions

    names = {value: name for name, value in ORGAN_LABELS.items()}
    scan = HealthyScan(ct_phantom.image, ct_phantom.organs, names, ct_phantom.geometry)
    organs = ["liver", "spleen"]
    before = ct_phantom.image.copy()
    made = synthetic_findings_set([scan], 6, ["liver", "spleen"], seed=3, label_set="type-organ-size")
    assert made.names == finding_names(organs, "type-organ-size") and len(made.names) == 2 * 2 * 4
    assert made.findings.sum() == sum(len(r) for r in made.references) > 0
    for n, references in enumerate(made.references):
        assert set(np.flatnonzero(made.findings[n])) == set(made.masks[n])
        for reference, record in zip(references, made.records[n]):
            assert reference["finding"] == f"{reference['type']} ({reference['organ']}, {record['size_class']})"
            voxels = made.masks[n][made.names.index(reference["finding"])]
            assert voxels.any() and (ct_phantom.organs[voxels] == ORGAN_LABELS[reference["organ"]]).mean() > 0.95
    assert np.array_equal(ct_phantom.image, before)  # the healthy scan is not modified
    with pytest.raises(MedSynthInputError, match="label set"):
        finding_names(organs, "organ")
    # an unenhanced kidney (median ~10 HU, below ct-kidney's range) takes ct-generic lesions
    kidney = ct_phantom.organs == ORGAN_LABELS["right kidney"]
    plain = dataclasses.replace(scan, image=np.where(kidney, ct_phantom.image - 140, ct_phantom.image))
    with pytest.raises(MedSynthInputError, match="ct-kidney"):
        synthesize_lesions(plain.image, plain.organs, plain.geometry, LesionConfig(preset="ct-kidney"), seed=0,
                           organ_label=ORGAN_LABELS["right kidney"])
    unenhanced = synthetic_findings_set([plain], 3, ["right kidney"], seed=3)
    assert unenhanced.findings.sum() > 0
    underscored = synthetic_findings_set([scan], 2, ["right_kidney"], seed=3, label_set="type-organ")
    assert underscored.names == ["hypodense lesion (right kidney)", "hyperdense lesion (right kidney)"]
    with pytest.raises(MedSynthInputError, match="No organ map names 'livr'.*liver"):
        synthetic_findings_set([scan], 2, ["livr", "spleen"], seed=3)


# --- the 3-D classifier trained on SynthLesion findings, its locations, the queue, Slicer ------------------------



def test_located_findings_point_at_the_inserted_lesions_organs(findings_result):
    from SynthEvaluateLib.findings.scans import model_view

    result, test_scans = findings_result
    for name, finding in result["per_finding"].items():
        # measured: AUC 1.00 / 1.00 reading the organ box (0.95 / 0.86 reading the whole scan); margins for other CPUs
        assert finding["auc"]["value"] >= 0.8, (name, finding)
        # the calls a report states are those the image bears out (the density check).  The network's own
        # threshold, chosen on one held-out training phantom, does not carry over to other phantoms on every
        # CPU: hyperdense specificity 0.35 on an AVX-512 machine (healthy phantoms score 0.43-0.98 there), 1.00
        # after the check; so the operating point is judged where the user meets it
        checked = result["per_finding_after_density_check"][name]
        assert checked["sensitivity"]["value"] >= 0.5 and checked["specificity"]["value"] >= 0.5, (name, checked)
    every = result["location"]["every_inserted_lesion"]
    assert every["n"] >= 15 and every["value"] >= 0.8, every  # a uniform guess among 4 organs: 0.25
    called = result["location"]["called_true_positives"]
    assert called["n"] >= 10 and called["value"] >= 0.8, called
    healthy = result["healthy_test_scans"]  # the 3 test phantoms as given: every call is a false positive
    assert healthy["scans"] == 3 and list(healthy["per_finding"]) == result["findings"]
    classifier = result["_classifier"]
    called = classifier.called(classifier.predict_proba([model_view(classifier, scan).image for scan in test_scans]))
    for f, finding in enumerate(healthy["per_finding"].values()):  # the test scans themselves, in finding order
        assert finding["called_on"] == int(called[:, f].sum()) and finding["specificity"]["n"] == 3
    # and each call on them is listed, where it lies and how it measured
    assert len(healthy["calls"]) == 3
    for name, finding in healthy["per_finding"].items():
        rows = [row for rows in healthy["calls"] for row in rows if row["finding"] == name]
        assert len(rows) == finding["called_on"] and all(row["location"] for row in rows)
        assert sum(row["supported"] is not False for row in rows) == finding["called_on_after_density_check"]
    reported = [case for case in result["cases"] if case["predicted"]]
    assert reported and all(case["report"] != "No acute finding." for case in reported)
    # the report names the organ of a correctly located finding
    row = next(r for case in result["cases"] for r in case["predicted"] if r.get("right_organ"))
    assert row["location"].startswith(row["organ"] + ", ")


def test_the_queue_puts_positive_scans_first(findings_result):
    from SynthEvaluateLib.findings.synthetic import synthetic_findings_set
    from SynthEvaluateLib.findings.triage import triage_queue

    result, test_scans = findings_result
    classifier = result["_classifier"]
    made = synthetic_findings_set(test_scans, 16, ORGANS, seed=777)
    cases = [(f"scan{n:02d}", f"scan{n:02d}.nii.gz", _with_image(test_scans[n % 3], made.volumes[n]))
             for n in range(16)]
    truth = {f"scan{n:02d}": int(made.findings[n, 0]) for n in range(16)}
    queue = triage_queue(classifier, cases, "hypodense lesion")
    assert [row["rank"] for row in queue] == list(range(1, 17))
    assert [row["score"] for row in queue] == sorted((row["score"] for row in queue), reverse=True)
    positives = sum(truth.values())
    assert 3 <= positives <= 13
    top = [truth[row["case_id"]] for row in queue[:positives]]
    assert top[0] == 1 and sum(top) >= positives - 2, (top, queue)  # a random order: ~half negatives there
    assert all(row["report"] for row in queue)


def test_a_scan_stored_the_other_way_round_is_read_the_same(findings_result):
    """Real scans come stored in any axis order (NIfTI from TotalSegmentator: i toward the right;
    DICOM through SimpleITK: toward the left).  A findings scan is kept in one order, so the model
    sees one anatomy however the file stored it: same scores, same location."""
    from MedSynthCommonLib.geometry import Geometry
    from SynthEvaluateLib.findings.calls import located_findings
    from SynthEvaluateLib.findings.scans import HealthyScan
    from SynthEvaluateLib.findings.synthetic import synthetic_findings_set

    result, test_scans = findings_result
    classifier = result["_classifier"]
    made = synthetic_findings_set(test_scans[:1], 1, ORGANS, seed=5)
    scan = _with_image(test_scans[0], made.volumes[0])
    g = scan.geometry
    # the same voxels stored right-to-left, front-to-back and with i and j swapped
    stored = np.transpose(scan.image[:, ::-1, ::-1], (0, 2, 1))
    organs = np.transpose(scan.organs[:, ::-1, ::-1], (0, 2, 1))
    far = np.array([0, scan.image.shape[1] - 1, scan.image.shape[2] - 1])
    other = Geometry(g.kji_to_ras(far), g.spacing[[1, 0, 2]], np.stack([-g.direction[:, 1], -g.direction[:, 0],
                                                                        g.direction[:, 2]], axis=1))
    again = HealthyScan(stored, organs, scan.organ_names, other)
    assert np.array_equal(again.image, scan.image) and np.array_equal(again.organs, scan.organs)
    assert again.geometry.is_close(g)
    assert np.array_equal(classifier.predict_proba([again.image]), classifier.predict_proba([scan.image]))
    probabilities = classifier.predict_proba([scan.image])[0]
    assert located_findings(classifier, again.image, again, again.geometry, probabilities) == \
        located_findings(classifier, scan.image, scan, scan.geometry, probabilities)


def test_a_longer_or_wider_scan_shows_the_model_the_same_region(findings_result):
    """The model reads a box of one size in mm around its organs (``FindingsRecipe.organ_margin_mm``,
    ``view_mm``), so a scan that goes on further above and below, or is framed wider, gives it
    the same input: the same scores.  (Measured before: the same phantoms scanned twice as long
    took the AUCs from 0.95 / 0.86 to 0.55 / 0.61 reading the whole scan.)"""
    from SynthEvaluateLib.findings.scans import model_view

    result, test_scans = findings_result
    classifier = result["_classifier"]
    assert classifier.organs == ORGANS and classifier.recipe.organ_margin_mm == 15.0
    scan = framed(test_scans[0], 8, 0)  # the phantom's box would be cut at its top slice (organs end 1 slice below)
    longer = framed(scan, 12, 20)
    view, same = model_view(classifier, longer), model_view(classifier, scan)
    assert np.array_equal(view.image, same.image) and view.geometry.is_close(same.geometry)
    assert np.array_equal(classifier.predict_proba([view.image]), classifier.predict_proba([same.image]))


def _with_image(scan, image):
    import dataclasses

    return dataclasses.replace(scan, image=image)


def test_model_folder_round_trip_and_triage_command(findings_result, tmp_path, capsys):
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import write_volume
    from SynthEvaluateLib.findings.synthetic import synthetic_findings_set
    from SynthEvaluateLib.recipes.findings_model import load_findings_model, save_findings_model

    result, test_scans = findings_result
    classifier = result["_classifier"]
    model = save_findings_model(tmp_path / "model", classifier)
    loaded = load_findings_model(model)
    made = synthetic_findings_set(test_scans, 6, ORGANS, seed=99)
    assert np.array_equal(loaded.predict_proba(made.volumes), classifier.predict_proba(made.volumes))
    assert loaded.thresholds == classifier.thresholds and loaded.findings == classifier.findings
    assert loaded.organs == classifier.organs and loaded.view_mm == classifier.view_mm == tuple(result["view_mm"])

    rows = ["case_id,image,organ_mask"]
    for n, volume in enumerate(made.volumes):
        scan = test_scans[n % 3]
        write_volume(tmp_path / f"s{n}.nii.gz", volume, scan.geometry)
        write_volume(tmp_path / f"s{n}_organs.nii.gz", scan.organs.astype(np.uint8), scan.geometry)
        rows.append(f"s{n},s{n}.nii.gz,s{n}_organs.nii.gz")
    (tmp_path / "cases.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    names = ["=".join((str(v), k)) for k, v in ORGAN_LABELS.items()]
    queue_file = tmp_path / "queue.csv"
    assert main(["evaluate", "triage", "--model", str(model), "--cases", str(tmp_path / "cases.csv"),
                 "--finding", "hyperdense lesion", "--organ-names", *names, "--out", str(queue_file)]) == 0
    import csv

    with open(queue_file, encoding="utf-8", newline="") as handle:
        queue = list(csv.DictReader(handle))
    assert len(queue) == 6 and list(queue[0]) == ["rank", "case_id", "image", "finding", "score", "called",
                                                  "threshold", "density", "coverage", "familiar", "location",
                                                  "report"]
    scores = [float(row["score"]) for row in queue]
    assert scores == sorted(scores, reverse=True)
    assert {row["familiar"] for row in queue} == {"yes"}  # phantoms like the training ones
    # the same queue when the scans are scored on a real local Dask cluster (each worker loads the model)
    assert main(["evaluate", "triage", "--model", str(model), "--cases", str(tmp_path / "cases.csv"),
                 "--finding", "hyperdense lesion", "--organ-names", *names, "--cluster", "local:2",
                 "--out", str(tmp_path / "queue_dask.csv")]) == 0
    assert (tmp_path / "queue_dask.csv").read_bytes() == queue_file.read_bytes()
    # called true positives are located in the organ their lesion was put in
    located = [(row["location"].split(",")[0], [r["organ"] for r in made.references[int(row["case_id"][1:])]
                                                 if r["finding"] == "hyperdense lesion"])
               for row in queue if row["called"] == "yes" and made.findings[int(row["case_id"][1:]), 1]]
    assert located and sum(organ in truth for organ, truth in located) >= 0.8 * len(located), located
    # the queue and the model folder are checked: bad requests are refused clearly, nothing written
    capsys.readouterr()
    for extra, message in ((["--finding", "cyst"], "not one of them"), (["--out", str(tmp_path / "q.txt")], ".csv")):
        args = ["evaluate", "triage", "--model", str(model), "--cases", str(tmp_path / "cases.csv"),
                "--finding", "hyperdense lesion", "--out", str(tmp_path / "q2.csv")]
        args[args.index(extra[0]) + 1] = extra[1]
        assert main(args) == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "q2.csv").exists()
    weights = next(model.glob("weights-*.pt"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    weights.write_bytes(bytes(data))
    with pytest.raises(MedSynthInputError, match="does not match its model card"):
        load_findings_model(model)


def test_queue_in_slicer_table_and_evidence_overlay(findings_result, scene, tmp_path):
    from MedSynthCommonLib.imageio import write_volume
    from MedSynthCommonLib.mrml import segment_array, table_rows
    from SynthEvaluateLib.findings.synthetic import synthetic_findings_set
    from SynthEvaluateLib.logic import queue_table, show_queue_case
    from SynthEvaluateLib.findings.triage import triage_queue

    result, test_scans = findings_result
    classifier = result["_classifier"]
    made = synthetic_findings_set(test_scans[:1], 4, ORGANS, seed=5)
    scan = test_scans[0]
    paths = [write_volume(tmp_path / f"c{n}.nii.gz", v, scan.geometry) for n, v in enumerate(made.volumes)]
    organ_file = write_volume(tmp_path / "organs.nii.gz", scan.organs.astype(np.uint8), scan.geometry)
    cases = [(f"c{n}", str(p), _with_image(scan, made.volumes[n])) for n, p in enumerate(paths)]
    queue = triage_queue(classifier, cases, "hypodense lesion")
    table = queue_table(scene, queue)
    assert [row["case_id"] for row in table_rows(table)] == [row["case_id"] for row in queue]
    # the highest true positive: image, evidence overlay with a colour map, the evidence region as a named segment
    top = next(row for row in queue if made.findings[int(row["case_id"][1:]), 0])
    before = [p.read_bytes() for p in paths]
    shown = show_queue_case(scene, classifier, top, str(organ_file), scan.organ_names)
    assert [p.read_bytes() for p in paths] == before
    evidence = shown["evidence"]
    assert evidence.GetDisplayNode().GetColorNode().GetType() == evidence.GetDisplayNode().GetColorNode().Iron
    assert np.allclose(np.array([evidence.GetSpacing()]), np.array([shown["volume"].GetSpacing()]))
    assert shown["segment"].startswith("hypodense lesion: ")
    n = int(top["case_id"][1:])
    region = segment_array(shown["segmentation"], shown["segmentation"].GetSegmentation().GetNthSegmentID(0),
                           shown["volume"])
    assert region.any()
    lesion = made.masks[n][0]  # its segment overlaps the inserted lesion
    assert (region.astype(bool) & lesion).sum() > 0.3 * lesion.sum()


def test_ct_findings_command_end_to_end(tmp_path, capsys):
    """The command's plumbing at a tiny budget (the figures are judged above): report, model folder."""
    pytest.importorskip("torch")
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import write_volume

    rows = ["case_id,image,organ_mask"]
    for s in range(2):
        phantom = make_ct_phantom(**PHANTOM, seed=s)
        write_volume(tmp_path / f"p{s}.nii.gz", phantom.image, phantom.geometry)
        write_volume(tmp_path / f"p{s}_organs.nii.gz", phantom.organs.astype(np.uint8), phantom.geometry)
        rows.append(f"p{s},p{s}.nii.gz,p{s}_organs.nii.gz")
    (tmp_path / "train.csv").write_text("\n".join(rows[:2]) + "\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text("\n".join([rows[0], rows[2]]) + "\n", encoding="utf-8")
    (tmp_path / "names.json").write_text(json.dumps({"labels": {str(v): k for k, v in ORGAN_LABELS.items()}}),
                                         encoding="utf-8")
    columns = ["hypodense lesion (liver)", "hypodense lesion (spleen)", "hyperdense lesion (liver)",
               "hyperdense lesion (spleen)"]
    (tmp_path / "real.csv").write_text("image,organ_mask," + ",".join(columns) + "\np1.nii.gz,p1_organs.nii.gz,0,0,0,0\n"
                                       "p0.nii.gz,p0_organs.nii.gz,0,1,0,0\n", encoding="utf-8")
    out = tmp_path / "report"
    assert main(["evaluate", "ct-findings", "--healthy", str(tmp_path / "train.csv"), "--test-healthy",
                 str(tmp_path / "test.csv"), "--real-train", str(tmp_path / "real.csv"),
                 "--organ-names", f"{tmp_path / 'names.json'}:labels", "--organs", "liver", "spleen",
                 "--labels", "type-organ",
                 "--train-count", "8", "--test-count", "4", "--epochs", "2", "--input-shape", "32", "64", "64",
                 "--scanner-augment", "--calibrate-on", str(tmp_path / "train.csv"), "--calibration-count", "4",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    calibration = results["classifier"]["calibration"]  # thresholds chosen on p0, as given and with 4 lesions
    assert calibration["scans"] == {"real_healthy": 1, "synthetic": 4, "real_labelled": 0}
    assert [f["threshold"] for f in results["per_finding"].values()] == list(calibration["thresholds"].values())
    assert results["protocol"] == "ct-findings" and results["sets"]["train"] == {"synthetic": 8, "real": 2}
    assert results["classifier"]["with_lesion_masks"] == 8 and results["classifier"]["map_loss"]
    assert "_classifier" not in results and (out / "model" / "card.json").exists()
    summary = (out / "summary.csv").read_text(encoding="utf-8")
    assert results["findings"] == columns and results["label_set"] == "type-organ"
    assert "hypodense lesion (liver),auc" in summary and "location in the right organ" in summary
    assert results["recipe"]["scanner_augment"] and results["healthy_test_scans"]["scans"] == 1
    assert "training scans" not in results["healthy_test_scans"]["note"]  # --test-healthy was given
    assert "specificity on the healthy test scans as given (real, no lesion)" in summary
    assert "sensitivity after the density check" in summary and "as given (real, no lesion), after the density" in summary
    assert "healthy test scans whose organs measure unlike the training scans'" in summary
    per_scan = (out / "per_image.csv").read_text(encoding="utf-8").splitlines()
    assert per_scan[0] == "scan,inserted,called,report" and len(per_scan) == 1 + 4
    capsys.readouterr()
    assert main(["evaluate", "ct-findings", "--healthy", str(tmp_path / "train.csv"), "--organ-names", "liver",
                 "--out", str(tmp_path / "r2")]) == 2
    assert "VALUE=NAME" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("image,hypodense lesion,hyperdense lesion\np0.nii.gz,2,0\n", encoding="utf-8")
    assert main(["evaluate", "ct-findings", "--healthy", str(tmp_path / "train.csv"), "--real-train",
                 str(tmp_path / "bad.csv"), "--organ-names", "1=liver", "--out", str(tmp_path / "r3")]) == 2
    assert "must hold 0 or 1" in capsys.readouterr().err
    (tmp_path / "plain.csv").write_text("image,hypodense lesion,hyperdense lesion\np0.nii.gz,1,0\n", encoding="utf-8")
    assert main(["evaluate", "ct-findings", "--healthy", str(tmp_path / "train.csv"), "--real-train",
                 str(tmp_path / "plain.csv"), "--organ-names", "1=liver", "--organs", "liver",
                 "--out", str(tmp_path / "r4")]) == 2
    error = capsys.readouterr().err
    assert "Real training scan 1: " in error and "no organ map" in error and "--whole-scan" in error
    assert not (tmp_path / "r4").exists()
