"""CT findings thresholds chosen on the user's real scans (``findings.calibration``): the
scanner a model reads shifts its scores; thresholds re-chosen on healthy scans of that kind
(as given, and with SynthLesion findings put in them) call the findings again."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from MedSynthCommonLib.errors import MedSynthInputError
from SynthLesionLib.phantom import ORGAN_LABELS

from findings_scans import ORGANS, phantom_scans

pytest.importorskip("torch")


def _youden(classifier, scans, seed):
    """Youden's J per finding of ``classifier`` at its thresholds on synthetic scans made from ``scans``."""
    from SynthEvaluateLib.findings.scans import model_view
    from SynthEvaluateLib.findings.synthetic import synthetic_findings_set

    made = synthetic_findings_set([model_view(classifier, s) for s in scans], 24, ORGANS, seed)
    called = classifier.called(classifier.predict_proba(made.volumes + [model_view(classifier, s).image for s in scans]))
    truth = np.concatenate([made.findings, np.zeros((len(scans), len(classifier.findings)), int)]).astype(bool)
    return [called[truth[:, f], f].mean() - called[~truth[:, f], f].mean() for f in range(truth.shape[1])]


def _untuned(findings_result):
    """The study's model with thresholds that call everything, as on a scanner whose scans all
    score higher than the training scans did."""
    classifier = findings_result[0]["_classifier"]
    return dataclasses.replace(classifier, thresholds=[1e-4] * len(classifier.findings), training=dict(classifier.training))


def test_thresholds_chosen_on_scans_of_the_kind_to_be_read(findings_result):
    from SynthEvaluateLib.findings.calibration import calibrate_thresholds

    classifier = _untuned(findings_result)
    calibration, judged = phantom_scans(range(20, 23)), phantom_scans(range(30, 33))  # other patients each
    before = _youden(classifier, judged, seed=5)
    assert max(before) == 0.0  # everything called: no separation at all
    record = calibrate_thresholds(classifier, calibration, count=24, seed=1)
    assert record["scans"] == {"real_healthy": 3, "synthetic": 24, "real_labelled": 0}
    assert list(record["thresholds"].values()) == classifier.thresholds != [1e-4] * 2
    assert classifier.training["calibration"] is record and record["thresholds_before"]["hypodense lesion"] == 1e-4
    after_on_calibration = record["on_calibration_scans"]["after"]
    assert all(after_on_calibration[f]["specificity"]["value"] > record["on_calibration_scans"]["before"][f]
               ["specificity"]["value"] for f in classifier.findings)
    after = _youden(classifier, judged, seed=5)  # other scans of that scanner, other lesions
    assert min(after) >= 0.3, after  # measured 0.47 / 0.55 (calibration seeds 2, 3: 0.51-0.78)


def test_labelled_real_scans_and_findings_without_both_classes(findings_result):
    from SynthEvaluateLib.findings.calibration import calibrate_thresholds, lesions_of
    from SynthEvaluateLib.findings.scans import RealFindings

    classifier = _untuned(findings_result)
    scans = phantom_scans(range(40, 44))
    # four labelled scans, none with a hyperdense lesion: that finding keeps its threshold
    record = calibrate_thresholds(classifier, [], 0, 0, RealFindings(scans, np.array([[1, 0], [0, 0], [1, 0], [0, 0]])))
    assert record["scans"] == {"real_healthy": 0, "synthetic": 0, "real_labelled": 4}
    assert classifier.thresholds[1] == 1e-4 and "only one class; threshold 0.0001" in record["notes"][0]
    with pytest.raises(MedSynthInputError, match="one 0/1 column per finding"):
        calibrate_thresholds(classifier, [], 0, 0, RealFindings(scans, np.zeros((4, 3), int)))
    with pytest.raises(MedSynthInputError, match="needs real scans"):
        calibrate_thresholds(classifier, [], 0, 0)
    other = dataclasses.replace(classifier, findings=["cyst", "hypodense lesion"])
    with pytest.raises(MedSynthInputError, match="cannot be calibrated with synthetic lesions"):
        lesions_of(other)
    # a card written before the lesions were recorded: the label set its findings' names match
    older = dataclasses.replace(classifier, findings=[f"{kind} lesion ({organ})" for kind in ("hypodense", "hyperdense")
                                                      for organ in classifier.organs], training={})
    assert lesions_of(older) == {"size_classes": ["medium", "large"], "label_set": "type-organ"}


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_calibrate_findings_command_writes_a_calibrated_copy(findings_result, tmp_path, capsys):
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import write_volume
    from SynthEvaluateLib.recipes.findings_model import load_findings_model, save_findings_model

    model = save_findings_model(tmp_path / "model", _untuned(findings_result))
    rows = ["case_id,image,organ_mask"]
    for n, scan in enumerate(phantom_scans(range(20, 22))):
        write_volume(tmp_path / f"h{n}.nii.gz", scan.image.astype(np.int16), scan.geometry)
        write_volume(tmp_path / f"h{n}_organs.nii.gz", scan.organs.astype(np.uint8), scan.geometry)
        rows.append(f"h{n},h{n}.nii.gz,h{n}_organs.nii.gz")
    (tmp_path / "healthy.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    names = ["=".join((str(v), k)) for k, v in ORGAN_LABELS.items()]
    given = _digest(model)
    call = ["evaluate", "calibrate-findings", "--model", str(model), "--healthy", str(tmp_path / "healthy.csv"),
            "--count", "8", "--organ-names", *names, "--model-out", str(tmp_path / "calibrated")]
    assert main(call) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert "synthetic scans: 8/8, ETA 0 s" in captured.err  # progress while the lesions are made
    assert printed["scans"] == {"real_healthy": 2, "synthetic": 8, "real_labelled": 0}
    calibrated = load_findings_model(tmp_path / "calibrated")
    assert calibrated.thresholds == list(printed["thresholds"].values()) != [1e-4] * 2
    assert calibrated.training["calibration"]["thresholds"] == printed["thresholds"]
    assert _digest(model) == given  # the model given is left as it is
    # only the thresholds moved: the copy holds the same weights (content-addressed: the same file)
    assert sorted(p.name for p in (tmp_path / "calibrated").glob("weights-*.pt")) == \
        sorted(p.name for p in model.glob("weights-*.pt"))
    # refused plainly, nothing written: the same folder, an existing model, no scans
    for change, message in ((["--model-out", str(model)], "already holds a model"),
                            (["--model-out", str(tmp_path / "calibrated")], "already holds a model")):
        args = call[:-2] + change
        assert main(args) == 2 and message in capsys.readouterr().err
    assert main(["evaluate", "calibrate-findings", "--model", str(model), "--model-out", str(tmp_path / "c2")]) == 2
    assert "Give the real scans to calibrate on" in capsys.readouterr().err and not (tmp_path / "c2").exists()
    assert _digest(model) == given


def test_calibration_scans_that_are_test_scans_are_refused(tmp_path, capsys):
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import write_volume

    rows = ["case_id,image,organ_mask"]
    for n, scan in enumerate(phantom_scans(range(2))):
        write_volume(tmp_path / f"s{n}.nii.gz", scan.image.astype(np.int16), scan.geometry)
        write_volume(tmp_path / f"s{n}_organs.nii.gz", scan.organs.astype(np.uint8), scan.geometry)
        rows.append(f"s{n},s{n}.nii.gz,s{n}_organs.nii.gz")
    (tmp_path / "scans.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    names = ["=".join((str(v), k)) for k, v in ORGAN_LABELS.items()]
    assert main(["evaluate", "ct-findings", "--healthy", str(tmp_path / "scans.csv"), "--test-healthy",
                 str(tmp_path / "scans.csv"), "--calibrate-on", str(tmp_path / "scans.csv"), "--organ-names", *names,
                 "--organs", "liver", "--train-count", "6", "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "calibration case(s) also appear in the test set (--calibrate-on scan 1 = test scan 1" in \
        capsys.readouterr().err and not (tmp_path / "r" / "model").exists()


def _darker_liver(scans, hu=40.0):
    """The scans with the liver ``hu`` darker, as an arterial-phase scan shows a portal-venous
    model's organ."""
    from SynthEvaluateLib.findings.scans import HealthyScan

    return [HealthyScan(np.where(s.organs == ORGAN_LABELS["liver"], s.image - hu, s.image).astype(np.float32),
                        s.organs, s.organ_names, s.geometry) for s in scans]


def test_scans_unlike_the_training_scans_are_flagged_until_calibrated_on(findings_result):
    from SynthEvaluateLib.findings.calibration import calibrate_thresholds
    from SynthEvaluateLib.findings.familiarity import familiarity_text, organ_levels, unfamiliar_organs
    from SynthEvaluateLib.findings.triage import queue_row

    result, test_scans = findings_result
    classifier = dataclasses.replace(result["_classifier"], training=dict(result["_classifier"].training))
    ranges = classifier.training["organ_levels_hu"]
    assert set(ranges) == set(ORGANS) and all(low <= high for low, high in ranges.values())
    assert result["healthy_test_scans"]["unlike_the_training_scans"] == ["", "", ""]  # other phantoms, same kind
    level = organ_levels(test_scans[0], ORGANS)["liver"]
    assert ranges["liver"][0] - 20 <= level <= ranges["liver"][1] + 20
    darker = _darker_liver(test_scans)
    row = queue_row(classifier, "a", "a.nii.gz", darker[0], "hypodense lesion")
    low, high = ranges["liver"]
    assert row["familiar"] == "no: " + familiarity_text([{"organ": "liver", "hu": level - 40, "range": [low, high]}])
    assert familiarity_text([{"organ": "liver", "hu": 44.2, "range": [98.0, 105.0]},
                             {"organ": "spleen", "hu": 35.0, "range": [110.0, 110.0]}]) == (
        "liver 44 HU (training scans 98-105 HU); spleen 35 HU (training scans 110 HU)")
    assert row["report"].endswith(f"unlike the scans the model was trained on ({row['familiar'][4:]}): another "
                                  "contrast phase or scanner, so this reading is less certain.")
    assert queue_row(classifier, "b", "b.nii.gz", test_scans[0], "hypodense lesion")["familiar"] == "yes"
    assert unfamiliar_organs({"liver": high + 19.9}, ranges) == [] and familiarity_text([]) == ""
    assert unfamiliar_organs({"liver": 5.0}, {}) == []  # an older card keeps no range: nothing to say
    # calibrated on scans like it, the model knows such livers, and says nothing more
    calibrate_thresholds(classifier, _darker_liver(phantom_scans(range(20, 22))), count=4, seed=0)
    assert classifier.training["organ_levels_hu"]["liver"][0] < low - 30
    assert queue_row(classifier, "a", "a.nii.gz", darker[0], "hypodense lesion")["familiar"] == "yes"


def test_an_organ_relative_model_reads_each_organ_at_the_training_level(findings_result, tmp_path):
    """``FindingsRecipe.organ_relative``: a scan whose liver another phase darkens by 40 HU reads
    exactly as the scan itself (each organ brought to the training scans' median), scores the same,
    and is still called unlike the training scans (by its own levels); the model folder keeps the
    reference levels."""
    from SynthEvaluateLib.findings.familiarity import organ_levels, reference_levels
    from SynthEvaluateLib.findings.scans import model_view
    from SynthEvaluateLib.findings.triage import queue_row
    from SynthEvaluateLib.recipes.findings_model import load_findings_model, save_findings_model

    result, test_scans = findings_result
    plain = result["_classifier"]
    reference = reference_levels([organ_levels(s, ORGANS) for s in phantom_scans(range(4))])
    relative = dataclasses.replace(plain, recipe=dataclasses.replace(plain.recipe, organ_relative=True),
                                   organ_reference_hu=reference, training=dict(plain.training))
    scan, darker = test_scans[0], _darker_liver(test_scans[:1])[0]
    view, dark_view = model_view(relative, scan), model_view(relative, darker)
    assert organ_levels(view, ORGANS) == pytest.approx(reference, abs=0.51)  # every organ at its reference
    assert np.allclose(dark_view.image, view.image, atol=1e-3)  # the phase shift is gone
    outside = view.organs == 0
    assert np.array_equal(view.image[outside], model_view(plain, scan).image[outside])  # the rest as it was
    assert np.allclose(relative.predict_proba([dark_view.image]), relative.predict_proba([view.image]))
    assert not np.allclose(plain.predict_proba([model_view(plain, darker).image]),
                           plain.predict_proba([model_view(plain, scan).image]), atol=1e-3)
    assert queue_row(relative, "a", "a.nii.gz", darker, "hypodense lesion")["familiar"].startswith("no: liver")
    loaded = load_findings_model(save_findings_model(tmp_path / "model", relative))
    assert loaded.recipe.organ_relative and loaded.organ_reference_hu == reference


def test_the_organ_relative_study_keeps_the_training_levels_and_reads_every_scan_at_them():
    from SynthEvaluateLib.findings.familiarity import organ_levels, reference_levels
    from SynthEvaluateLib.findings.findings_study import findings_study
    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe

    train, test = phantom_scans(range(2)), _darker_liver(phantom_scans([10]))
    recipe = FindingsRecipe(input_shape=(16, 32, 32), channels=(4, 8), strides=(2, 1), epochs=1, organ_relative=True)
    result = findings_study(train, test, ORGANS, train_count=8, test_count=4, recipe=recipe, seed=0)
    classifier = result["_classifier"]
    assert classifier.organ_reference_hu == reference_levels([organ_levels(s, ORGANS) for s in train])
    raw = organ_levels(test[0], ORGANS)["liver"]
    assert classifier.training["organ_levels_hu"]["liver"][0] > raw + 20  # the ranges: the scans' own levels
    assert result["healthy_test_scans"]["unlike_the_training_scans"][0].startswith("liver")


def test_the_unfamiliar_sentence_is_a_rule_the_user_edits(tmp_path):
    from SynthEvaluateLib.findings.report_rules import load_rules, write_report_text

    (tmp_path / "rules.json").write_text(json.dumps({"unfamiliar": "Unlike training: {details}."}), encoding="utf-8")
    rules = load_rules(tmp_path / "rules.json")
    assert write_report_text([], rules, unfamiliar="liver 60 HU") == "No acute finding. Unlike training: liver 60 HU."
    (tmp_path / "rules.json").write_text(json.dumps({"unfamiliar": "{organ} differs"}), encoding="utf-8")
    with pytest.raises(MedSynthInputError, match="unfamiliar template names"):
        load_rules(tmp_path / "rules.json")
