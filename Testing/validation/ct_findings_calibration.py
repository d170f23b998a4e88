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
as given, by the network's calls and by the calls the image bears out (the density check).
``--scan whole --liver-shift-hu -30`` does the same on the whole CT with its liver 30 HU darker
first, as another contrast phase would show it (the lesions are put in after the shift).  A
proxy: calibration and test scans are one patient's one scan with other lesions, and the scan as
given is a negative in both (a user calibrates on other patients' scans of the scanner, phase
and framing to be read).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from MedSynthCommonLib.cli import main as medsynth
from MedSynthCommonLib.imageio import read_volume, write_volume
from SynthEvaluateLib.findings.calibration import lesions_of
from SynthEvaluateLib.findings.calls import checked_calls, located_findings
from SynthEvaluateLib.findings.ct_findings_cases import parse_organ_names
from SynthEvaluateLib.findings.scans import HealthyScan, model_view
from SynthEvaluateLib.findings.synthetic import synthetic_findings_set
from SynthEvaluateLib.findings.triage import queue_row
from SynthEvaluateLib.metrics.classification import per_finding_metrics
from SynthEvaluateLib.recipes.findings_model import load_findings_model


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
    parser.add_argument("--scan", choices=["upper", "whole"], default="upper",
                        help="the scan calibrated on and tested on: the upper-abdomen crop or the whole CT")
    parser.add_argument("--liver-shift-hu", type=float, default=0.0,
                        help="add this to the liver's voxels first (e.g. -30: another contrast phase's liver)")
    args = parser.parse_args()
    folder = (args.data / "abdomen_ct").resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = {"upper": "case01_ct3mm_upper", "whole": "case01_ct3mm"}[args.scan]
    names = f"{folder / 'metadata.json'}:class_map_total"
    organ_names = parse_organ_names([names])
    image, geometry = read_volume(folder / f"{stem}_image.nii.gz")
    organs, _ = read_volume(folder / f"{stem}_organs.nii.gz")
    image = image.astype(np.float32)
    if args.liver_shift_hu:  # the scan as another phase would show its liver (written beside the report)
        liver = organs == next(v for v, n in organ_names.items() if n == "liver")
        image[liver] += np.float32(args.liver_shift_hu)
        write_volume(args.out / "shifted_image.nii.gz", np.round(image).astype(np.int16), geometry)
    source = args.out / "shifted_image.nii.gz" if args.liver_shift_hu else folder / f"{stem}_image.nii.gz"
    (args.out / "scan.csv").write_text(f"case_id,image,organ_mask\n{args.scan},{source},"
                                       f"{folder / f'{stem}_organs.nii.gz'}\n", encoding="utf-8")
    calibrated_folder = args.out / "calibrated"
    if not (calibrated_folder / "card.json").exists():
        code = medsynth(["evaluate", "calibrate-findings", "--model", str(args.model), "--healthy",
                         str(args.out / "scan.csv"), "--count", str(args.count), "--organ-names", names,
                         "--model-out", str(calibrated_folder)])
        assert code == 0, code
    given, calibrated = load_findings_model(args.model), load_findings_model(calibrated_folder)
    scan = HealthyScan(np.round(image), organs.astype(np.int32), organ_names, geometry)
    view = model_view(given, scan)
    lesions = lesions_of(given)
    made = synthetic_findings_set([view], args.test_count, given.organs, 10_000, tuple(lesions["size_classes"]),
                                  label_set=lesions["label_set"])
    volumes = made.volumes + [view.image]
    truth = np.concatenate([made.findings, np.zeros((1, len(given.findings)), np.int64)])
    as_given = {name: {model: {k: row[k] for k in ("called", "density", "familiar")}
                       for model, row in (("model as trained", queue_row(given, "a", "a", scan, name)),
                                          ("calibrated", queue_row(calibrated, "a", "a", scan, name)))}
                for name in given.findings}
    summary = {"test": f"{args.test_count} synthetic scans of the {args.scan} CT (seed 10000) and the scan as given"
                       + (f", its liver shifted by {args.liver_shift_hu:+g} HU first" if args.liver_shift_hu else ""),
               "model_as_trained": _judged(given, volumes, truth, view),
               "calibrated": _judged(calibrated, volumes, truth, view),
               "the_scan_as_given": as_given,
               "calibration": calibrated.training["calibration"]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "calibration"}, indent=1))


if __name__ == "__main__":
    main()
