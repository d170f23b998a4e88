"""Validation on real data (not a test): structured CT findings on the real abdominal CT.

    python Testing/validation/ct_findings_abdomen.py --data ../shared/data --out ct_findings_validation

The healthy 3 mm CT of ``abdomen_ct`` (TotalSegmentator organ map: liver, spleen, kidneys)
receives SynthLesion lesions (hypodense / hyperdense, medium and large) in a random organ;
``medsynth evaluate ct-findings`` trains the 3-D classifier on 100 such scans and tests it on
24 others (other lesions in the same patient: the data holds one CT patient), then
``medsynth evaluate triage`` orders 16 further scans by "hypodense lesion".  Prints the
figures and writes the report, the queue and ``overlay_1..3.png`` (the top true positives' slices
with the evidence overlay and its segment, as the Slicer panel shows it).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from MedSynthCommonLib.cli import main as medsynth
from MedSynthCommonLib.imageio import read_volume, write_volume
from SynthEvaluateLib.findings.ct_findings_cases import parse_organ_names
from SynthEvaluateLib.findings.scans import HealthyScan, evidence_on_scan
from SynthEvaluateLib.findings.synthetic import synthetic_findings_set
from SynthEvaluateLib.recipes.findings_model import load_findings_model

ORGANS = ["liver", "spleen", "kidney right", "kidney left"]


def render_overlay(path: Path, image, evidence, region, lesion, geometry, title: str) -> None:
    """Axial slice through the evidence peak: CT (W400/L50), evidence in Slicer's Iron colours at
    40 % opacity, the evidence segment (yellow) and the inserted lesion (cyan, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from SynthLesionLib.preview import _display_orientation

    k = int(np.unravel_index(np.argmax(evidence), evidence.shape)[0])
    show = [_display_orientation(a[k], geometry) for a in (image, evidence, region, lesion)]
    figure, axis = plt.subplots(figsize=(6, 6), dpi=110)
    aspect = geometry.spacing[1] / geometry.spacing[0]
    axis.imshow(show[0], cmap="gray", vmin=-150, vmax=250, aspect=aspect)
    axis.imshow(show[1], cmap="inferno", vmin=0, vmax=1, alpha=0.4, aspect=aspect)
    axis.contour(show[2].astype(float), levels=[0.5], colors="yellow", linewidths=1.5)
    if show[3].any():
        axis.contour(show[3].astype(float), levels=[0.5], colors="cyan", linewidths=1.2, linestyles="dashed")
    import textwrap

    axis.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=8)
    axis.text(2, 8, "R", color="white")  # radiological display: the patient's right on the left
    axis.set_xticks([])
    axis.set_yticks([])
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (holds abdomen_ct/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--train-count", type=int, default=100)
    parser.add_argument("--test-count", type=int, default=24)
    parser.add_argument("--input-shape", type=int, nargs=3, default=[64, 96, 96])
    parser.add_argument("--test-on", choices=["same", "upper"], default="same",
                        help="test lesions in the same CT (default) or in its upper-abdomen crop "
                             "(another framing of the same patient: 30 of its 112 slices, the organs cut below)")
    parser.add_argument("--scan-end-augment", action="store_true", help="passed to ct-findings")
    parser.add_argument("--organ-relative", action="store_true", help="passed to ct-findings")
    parser.add_argument("--organs-only-mm", type=float, help="passed to ct-findings")
    parser.add_argument("--seed", type=int, default=0, help="passed to ct-findings")
    args = parser.parse_args()
    folder = (args.data / "abdomen_ct").resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "healthy.csv").write_text(
        f"case_id,image,organ_mask\ncase01,{folder / 'case01_ct3mm_image.nii.gz'},"
        f"{folder / 'case01_ct3mm_organs.nii.gz'}\n", encoding="utf-8")
    test = []
    if args.test_on == "upper":
        (args.out / "test_healthy.csv").write_text(
            f"case_id,image,organ_mask\ncase01_upper,{folder / 'case01_ct3mm_upper_image.nii.gz'},"
            f"{folder / 'case01_ct3mm_upper_organs.nii.gz'}\n", encoding="utf-8")
        test = ["--test-healthy", str(args.out / "test_healthy.csv")]
    names = f"{folder / 'metadata.json'}:class_map_total"
    started = time.perf_counter()
    code = medsynth(["evaluate", "ct-findings", "--healthy", str(args.out / "healthy.csv"), *test, "--organ-names", names,
                     "--organs", *ORGANS, "--train-count", str(args.train_count), "--test-count", str(args.test_count),
                     "--epochs", str(args.epochs), "--input-shape", *map(str, args.input_shape), "--device", "cpu",
                     *(["--scan-end-augment"] if args.scan_end_augment else []),
                     *(["--organ-relative"] if args.organ_relative else []),
                     *(["--organs-only-mm", str(args.organs_only_mm)] if args.organs_only_mm is not None else []),
                     "--seed", str(args.seed), "--out", str(args.out / "report")])
    assert code == 0, code
    study_seconds = time.perf_counter() - started
    result = json.loads((args.out / "report" / "results.json").read_text(encoding="utf-8"))

    # a queue of 16 new scans (other lesions), written as files as a user would have them
    image, geometry = read_volume(folder / "case01_ct3mm_image.nii.gz")
    organs, _ = read_volume(folder / "case01_ct3mm_organs.nii.gz")
    scan = HealthyScan(image.astype(np.float32), organs.astype(np.int32),
                       parse_organ_names([names]), geometry)
    made = synthetic_findings_set([scan], 16, ORGANS, seed=555)
    rows = ["case_id,image,organ_mask"]
    # the scans as made: in the standard storage order, with the organ map in that order beside them
    write_volume(args.out / "queue_organs.nii.gz", scan.organs.astype(np.int16), scan.geometry)
    for n, volume in enumerate(made.volumes):
        write_volume(args.out / f"queue_scan{n:02d}.nii.gz", volume.astype(np.int16), scan.geometry)
        rows.append(f"scan{n:02d},queue_scan{n:02d}.nii.gz,queue_organs.nii.gz")
    (args.out / "queue_cases.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code = medsynth(["evaluate", "triage", "--model", str(args.out / "report" / "model"), "--cases",
                     str(args.out / "queue_cases.csv"), "--finding", "hypodense lesion", "--organ-names", names,
                     "--out", str(args.out / "queue.csv")])
    assert code == 0, code
    with open(args.out / "queue.csv", encoding="utf-8", newline="") as handle:
        queue = list(csv.DictReader(handle))
    truth = [int(made.findings[int(row["case_id"][4:]), 0]) for row in queue]
    positives = sum(truth)

    classifier = load_findings_model(args.out / "report" / "model")
    from SynthEvaluateLib.findings.anatomy import evidence_region

    true_positives = [row for row, t in zip(queue, truth) if t][:3]
    for place, row in enumerate(true_positives, 1):  # README screenshot: overlay_1.png of a run
        n = int(row["case_id"][4:])
        evidence, _ = evidence_on_scan(classifier, dataclasses.replace(scan, image=made.volumes[n]), 0)
        render_overlay(args.out / f"overlay_{place}.png", made.volumes[n], evidence, evidence_region(evidence),
                       made.masks[n][0], scan.geometry, f"{row['case_id']}: {row['report']} (score {row['score']}; "
                       "yellow: evidence segment, cyan dashed: inserted lesion)")
    print(json.dumps({
        "study_seconds": round(study_seconds, 1), "per_finding": result["per_finding"],
        "per_finding_after_density_check": result["per_finding_after_density_check"],
        "location": result["location"], "classifier": result["classifier"],
        "queue": {"scans": len(queue), "positives": positives,
                  "positives_in_the_top_places": sum(truth[:positives]), "order": truth},
        "example_reports": [c["report"] for c in result["cases"][:6]]}, indent=1, default=float))


if __name__ == "__main__":
    main()
