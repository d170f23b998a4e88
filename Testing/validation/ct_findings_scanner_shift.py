"""Validation on real data (not a test): do CT findings learned on one kind of scan survive
another?  A proxy for "trained on a few healthy CTs, asked about real scans from other scanners".

    python Testing/validation/ct_findings_scanner_shift.py --data ../shared/data --out shift_validation

Training scans are SynthLesion findings made in CT phantoms (``make_ct_phantom``: smooth organs,
white noise, their own HU levels); test scans are SynthLesion findings made in the real 3 mm CT of
``abdomen_ct`` (real anatomy, noise and levels: the liver at 46 HU there), and the real CT as
given (no lesion) is scored for false calls.  The same study runs with and without the scanner
augmentation of ``FindingsRecipe.scanner_augment`` (same seed), and prints both side by side.

It is a proxy: the lesions on both sides come from SynthLesion, and the real side is one
patient.  It shows whether the model learns the lesions or the training scans' look.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from MedSynthCommonLib.imageio import read_volume
from SynthEvaluateLib.findings.ct_findings_cases import parse_organ_names
from SynthEvaluateLib.findings.findings_study import findings_study
from SynthEvaluateLib.findings.scans import HealthyScan
from SynthEvaluateLib.recipes.findings_model import FindingsRecipe
from SynthLesionLib.phantom import ORGAN_LABELS, make_ct_phantom

ORGANS = ["liver", "spleen"]


def phantom_scans(count: int, shape: tuple[int, int, int]) -> list[HealthyScan]:
    names = {value: name for name, value in ORGAN_LABELS.items()}
    phantoms = (make_ct_phantom(shape=shape, spacing=(3.0, 3.0, 3.0), seed=seed) for seed in range(count))
    return [HealthyScan(p.image.astype(np.float32), p.organs.astype(np.int32), names, p.geometry) for p in phantoms]


def real_scans(folder: Path) -> list[HealthyScan]:
    names = parse_organ_names([f"{folder / 'metadata.json'}:class_map_total"])
    scans = []
    for stem in ("case01_ct3mm", "case01_ct3mm_upper"):
        image, geometry = read_volume(folder / f"{stem}_image.nii.gz")
        organs, _ = read_volume(folder / f"{stem}_organs.nii.gz")
        scans.append(HealthyScan(image.astype(np.float32), organs.astype(np.int32), names, geometry))
    return scans


def summary(result: dict, seconds: float) -> dict:
    def value(entry):
        return None if entry is None else round(entry["value"], 3) if entry.get("value") is not None else None

    return {"minutes": round(seconds / 60, 1),
            "per_finding": {name: {"auc": value(f["auc"]), "auc_ci": f["auc"]["ci"] if f["auc"] else None,
                                   "sensitivity": value(f["sensitivity"]), "specificity": value(f["specificity"])}
                            for name, f in result["per_finding"].items()},
            "real_ct_as_given": {name: f["called_on"] for name, f in result["healthy_test_scans"]["per_finding"].items()},
            "real_ct_unlike_the_training_scans": result["healthy_test_scans"]["unlike_the_training_scans"],
            "after_density_check": {name: {"sensitivity": value(f["sensitivity"]), "specificity": value(f["specificity"])}
                                    for name, f in result["per_finding_after_density_check"].items()},
            "real_ct_as_given_after_density_check": {
                name: f["called_on_after_density_check"] for name, f in result["healthy_test_scans"]["per_finding"].items()},
            "real_ct_as_given_calls": result["healthy_test_scans"]["calls"],
            "location_right_organ": value(result["location"]["every_inserted_lesion"]),
            "inserted_lesions": result["location"]["every_inserted_lesion"]["n"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (holds abdomen_ct/)")
    parser.add_argument("--out", type=Path, required=True)
    for option, default in {"--epochs": 60, "--train-count": 100, "--test-count": 24, "--phantoms": 4, "--seed": 0}.items():
        parser.add_argument(option, type=int, default=default)
    parser.add_argument("--input-shape", type=int, nargs=3, default=[64, 96, 96])
    parser.add_argument("--arms", choices=("both", "without", "with"), default="both",
                        help="with or without the scanner augmentation, or both (default)")
    parser.add_argument("--organs-only-mm", type=float, help="FindingsRecipe.organs_only_mm (default: the whole box)")
    parser.add_argument("--organ-relative", action="store_true", help="FindingsRecipe.organ_relative")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train = phantom_scans(args.phantoms, (112, 101, 122))  # the real CT's grid
    test = real_scans((args.data / "abdomen_ct").resolve())
    recipe = FindingsRecipe(input_shape=tuple(args.input_shape), epochs=args.epochs, organs_only_mm=args.organs_only_mm,
                            organ_relative=args.organ_relative)
    results = {}
    arms = (("without scanner augmentation", False), ("with scanner augmentation", True))
    for arm, augment in [a for a in arms if args.arms == "both" or a[0].startswith(args.arms + " ")]:
        started = time.perf_counter()
        result = findings_study(train, test, ORGANS, args.train_count, args.test_count,
                                dataclasses.replace(recipe, scanner_augment=augment), args.seed)
        results[arm] = summary(result, time.perf_counter() - started)
        print(arm, json.dumps(results[arm]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
