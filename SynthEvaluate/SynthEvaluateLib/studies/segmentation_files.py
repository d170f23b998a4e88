"""``medsynth evaluate segmentation``: a segmenter's label maps against reference label maps on disk.

Files, or two folders whose files are matched by name.  Per case and label: Dice, NSD at a
tolerance in mm, HD95 (MONAI's conventions, ``segmentation``), lesion-wise detection (component
Dice >= 0.1) and false positives; over cases: means with bootstrap confidence intervals and
sensitivity by lesion size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import check_same_grid
from MedSynthCommonLib.imageio import VOLUME_EXTENSIONS, read_volume

from ..metrics.segmentation import DETECTION_MIN_DICE, dice, detection_by_size, hausdorff_95, lesion_detection, \
    normalized_surface_dice
from ..metrics.statistics import MIN_BOOTSTRAP_CASES, bootstrap_ci


def _volumes(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.name.lower().endswith(VOLUME_EXTENSIONS)
            and not p.name.startswith(".")}


def match_cases(reference: Path, prediction: Path) -> list[tuple[str, Path, Path]]:
    """(case name, reference file, prediction file): two files, or two folders matched by file name."""
    reference, prediction = Path(reference), Path(prediction)
    for path in (reference, prediction):
        if not path.exists():
            raise MedSynthInputError(f"{path} does not exist.")
    if reference.is_file() and prediction.is_file():
        return [(reference.name, reference, prediction)]
    if not (reference.is_dir() and prediction.is_dir()):
        raise MedSynthInputError("Give two label-map files, or two folders of label maps matched by file name.")
    references, predictions = _volumes(reference), _volumes(prediction)
    missing = sorted(set(references) - set(predictions))
    if missing:
        raise MedSynthInputError(f"{len(missing)} reference case(s) have no prediction of the same name in {prediction}: "
                                 f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}.")
    if not references:
        raise MedSynthInputError(f"{reference} holds no label maps ({', '.join(VOLUME_EXTENSIONS)}).")
    return [(name, references[name], predictions[name]) for name in references]


def _summary(values: list[float], seed: int) -> dict:
    finite = [v for v in values if np.isfinite(v)]
    summary = {"value": float(np.mean(finite)) if finite else None, "cases": len(values),
               "non_finite_cases": len(values) - len(finite)}
    if len(finite) >= MIN_BOOTSTRAP_CASES:
        summary["ci"] = bootstrap_ci(finite, n_resamples=5000, seed=seed)["ci"]
    else:
        summary["ci"] = None
        summary["note"] = f"an interval needs at least {MIN_BOOTSTRAP_CASES} cases with a finite value"
    return summary


def evaluate_segmentations(reference: Path, prediction: Path, labels: list[int] | None = None,
                           tolerance_mm: float = 2.0, seed: int = 0,
                           progress: Callable[[str], None] | None = None) -> dict:
    """Per-case and aggregated segmentation metrics; ``labels`` None = any non-zero voxel."""
    cases = match_cases(reference, prediction)
    label_sets = [(f"label {v}", v) for v in labels] if labels else [("foreground", None)]
    per_case, by_label = [], {name: {"dice": [], "nsd": [], "hd95_mm": [], "detections": []} for name, _ in label_sets}
    for number, (name, reference_path, prediction_path) in enumerate(cases, start=1):
        reference_map, geometry = read_volume(reference_path)
        predicted_map, predicted_geometry = read_volume(prediction_path)
        check_same_grid(reference_map, geometry, predicted_map, predicted_geometry, f"prediction {prediction_path.name}")
        spacing = geometry.spacing_kji
        for label_name, value in label_sets:
            truth = reference_map != 0 if value is None else reference_map == value
            predicted = predicted_map != 0 if value is None else predicted_map == value
            detection = lesion_detection(predicted, truth, spacing)
            row = {"case": name, "label": label_name, "dice": dice(predicted, truth),
                   f"nsd_{tolerance_mm:g}mm": normalized_surface_dice(predicted, truth, spacing, tolerance_mm),
                   "hd95_mm": hausdorff_95(predicted, truth, spacing),
                   "lesions": len(detection.detected), "lesions_detected": int(sum(detection.detected)),
                   "false_positives": detection.false_positives}
            per_case.append(row)
            collected = by_label[label_name]
            collected["dice"].append(row["dice"])
            collected["nsd"].append(row[f"nsd_{tolerance_mm:g}mm"])
            collected["hd95_mm"].append(row["hd95_mm"])
            collected["detections"].append(detection)
        if progress:
            progress(f"{number}/{len(cases)} {name}")
    aggregated = {}
    for label_name, collected in by_label.items():
        detections = collected["detections"]
        lesions = sum(len(d.detected) for d in detections)
        aggregated[label_name] = {
            "dice": _summary(collected["dice"], seed), f"nsd_{tolerance_mm:g}mm": _summary(collected["nsd"], seed),
            "hd95_mm": _summary(collected["hd95_mm"], seed),
            "lesion_sensitivity": (sum(sum(d.detected) for d in detections) / lesions) if lesions else None,
            "false_positives_per_case": float(np.mean([d.false_positives for d in detections])),
            "sensitivity_by_size": detection_by_size(detections),
        }
    return {"protocol": "segmentation", "cases": len(cases), "tolerance_mm": tolerance_mm,
            "detection_criterion": f"component Dice >= {DETECTION_MIN_DICE}", "per_case": per_case,
            "aggregated": aggregated, "seed": seed}
