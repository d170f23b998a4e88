"""Validation on real data (not a test): thresholds re-chosen on real scans of the framing a
model will read (``medsynth evaluate calibrate-findings``), a proxy on the data we have.

    python Testing/validation/ct_findings_calibration.py --data ../shared/data \
        --model ct_findings_upper/report/model --out calibration_validation

``--model``: a CT findings model trained on the whole real CT of ``abdomen_ct`` (e.g. by
``ct_findings_abdomen.py --test-on upper``).  Its thresholds were chosen on the whole CT; on the
upper-abdomen crop (``case01_ct3mm_upper``: 30 of 112 slices, the organs cut below) it called
every scan.  Here the crop, as given and with ``--count`` synthetic scans made from it (seed 0),
re-chooses the thresholds; both models are then judged on ``--test-count`` other synthetic scans
of the crop (seed 10000, the lesions ``ct-findings --test-on upper`` tested on) and on the crop
as given, by the network's calls and by the calls the image bears out (the density check).  A proxy: calibration and test scans are one patient's one crop with other lesions
and the crop as given is a negative in both (a user calibrates on other patients' scans of the
scanner, phase and framing to be read).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from MedSynthCommonLib.cli import main as medsynth
from MedSynthCommonLib.imageio import read_volume
from SynthEvaluateLib.findings.calibration import lesions_of
from SynthEvaluateLib.findings.calls import checked_calls, located_findings
from SynthEvaluateLib.findings.ct_findings_cases import parse_organ_names
from SynthEvaluateLib.findings.findings_study import HealthyScan, model_view, synthetic_findings_set
from SynthEvaluateLib.metrics.classification import per_finding_metrics
from SynthEvaluateLib.recipes.volume_classifier import load_volume_classifier


def _count(entry: dict) -> str:
    return "n/a" if not entry["n"] else f"{round(entry['value'] * entry['n'])}/{entry['n']}"


def _judged(classifier, volumes, truth, view) -> dict:
    """Per finding: AUC, and sensitivity / specificity of the network's calls and of the calls
    the image bears out (``calls.checked_calls``: the density check)."""
    scores = classifier.predict_proba(volumes)
    called = classifier.called(scores)
    located = [located_findings(classifier, volume, view, view.geometry, p) for volume, p in zip(volumes, scores)]
    checked = checked_calls(called, located, classifier.findings)
    judged = {}
    for which, calls in (("network", called), ("after_density_check", checked)):
        metrics = per_finding_metrics(truth, scores, calls, classifier.findings, classifier.thresholds)
        for name, m in metrics.items():
            entry = judged.setdefault(name, {"auc": None if m["auc"] is None else round(m["auc"]["value"], 3),
                                             "threshold": round(m["threshold"], 4)})
            entry[which] = {"sensitivity": _count(m["sensitivity"]), "specificity": _count(m["specificity"])}
    return judged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (holds abdomen_ct/)")
    parser.add_argument("--model", type=Path, required=True, help="a model trained on the whole CT (see above)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=24, help="synthetic calibration scans")
    parser.add_argument("--test-count", type=int, default=24, help="synthetic test scans")
    args = parser.parse_args()
    folder = (args.data / "abdomen_ct").resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    crop = {"image": folder / "case01_ct3mm_upper_image.nii.gz", "organs": folder / "case01_ct3mm_upper_organs.nii.gz"}
    (args.out / "crop.csv").write_text(f"case_id,image,organ_mask\nupper,{crop['image']},{crop['organs']}\n",
                                       encoding="utf-8")
    names = f"{folder / 'metadata.json'}:class_map_total"
    calibrated_folder = args.out / "calibrated"
    if not (calibrated_folder / "card.json").exists():
        code = medsynth(["evaluate", "calibrate-findings", "--model", str(args.model), "--healthy",
                         str(args.out / "crop.csv"), "--count", str(args.count), "--organ-names", names,
                         "--model-out", str(calibrated_folder)])
        assert code == 0, code
    given, calibrated = load_volume_classifier(args.model), load_volume_classifier(calibrated_folder)
    image, geometry = read_volume(crop["image"])
    organs, _ = read_volume(crop["organs"])
    scan = HealthyScan(image.astype(np.float32), organs.astype(np.int32), parse_organ_names([names]), geometry)
    view = model_view(given, scan)
    lesions = lesions_of(given)
    made = synthetic_findings_set([view], args.test_count, given.organs, 10_000, tuple(lesions["size_classes"]),
                                  label_set=lesions["label_set"])
    volumes = made.volumes + [view.image]
    truth = np.concatenate([made.findings, np.zeros((1, len(given.findings)), np.int64)])
    as_given = {name: {"model as trained": bool(a), "calibrated": bool(b)} for name, a, b in zip(
        given.findings, given.called(given.predict_proba([view.image]))[0],
        calibrated.called(calibrated.predict_proba([view.image]))[0])}
    summary = {"test": f"{args.test_count} synthetic scans of the crop (seed 10000) and the crop as given",
               "model_as_trained": _judged(given, volumes, truth, view),
               "calibrated_on_the_crop": _judged(calibrated, volumes, truth, view),
               "called_on_the_crop_as_given": as_given,
               "calibration": calibrated.training["calibration"]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "calibration"}, indent=1))


if __name__ == "__main__":
    main()
