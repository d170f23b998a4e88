"""Multi-label abnormality classification: per-finding AUC and a structured findings table
with each finding's location, from occlusion sensitivity (MONAI), which works for any network.

Locations are in image terms: rows in thirds (upper / middle / lower), columns in halves
(image left / image right).  For a PA chest film, image left is the patient's right.
"""

from __future__ import annotations

import warnings

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from ..metrics.classification import per_finding_metrics
from ..recipes.data import ImageSet
from ..recipes.training import TrainedClassifier


def locate(classifier: TrainedClassifier, image: np.ndarray, finding: int, mask_fraction: float = 0.25) -> dict:
    """Where the evidence for ``finding`` lies: the centroid of the top 10% of occlusion
    importance (drop of the finding's probability when a region is hidden)."""
    import torch
    from monai.visualize import OcclusionSensitivity

    size = image.shape[-1]
    occlusion = OcclusionSensitivity(classifier.model.eval(), mask_size=max(2, int(size * mask_fraction)), n_batch=32,
                                     verbose=False, overlap=0.5, activate=classifier.activation)
    tensor = torch.as_tensor(np.asarray(image, np.float32))[None, None]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MONAI's own indexing deprecation notices
        baseline = float(classifier.activation(classifier.model(tensor))[0, finding])
        occluded, _ = occlusion(tensor)
    importance = np.clip(baseline - occluded[0, finding].numpy(), 0, None)
    if importance.max() <= 0:
        return {"region": "not localised", "row": None, "column": None}
    top = importance >= np.quantile(importance, 0.9)
    row, column = (float(v) for v in np.argwhere(top).mean(axis=0))
    vertical = ("upper", "middle", "lower")[min(int(3 * row / size), 2)]
    horizontal = "image left" if column < size / 2 else "image right"
    return {"region": f"{vertical} {horizontal}", "row": round(row / size, 3), "column": round(column / size, 3)}


def evaluate_multilabel(classifier: TrainedClassifier, test: ImageSet, threshold: float = 0.5,
                        locate_findings: bool = True, confidence: float = 0.95) -> dict:
    """Per-finding AUC, sensitivity and specificity (``per_finding_metrics``, as for 3-D CT
    findings), and ``per_image``: one row per finding called in an image, with its probability
    and location."""
    if test.findings is None or not classifier.multilabel:
        raise MedSynthInputError("Multi-label evaluation needs a multi-label model and a test set with findings.")
    if test.class_names != classifier.class_names:
        raise MedSynthInputError(f"Test findings {test.class_names} differ from the model's {classifier.class_names}.")
    probabilities = classifier.predict_proba(test.images)
    called = probabilities >= threshold
    per_finding = per_finding_metrics(test.findings, probabilities, called, test.class_names,
                                      [threshold] * len(test.class_names), confidence)
    table = []
    for i, case_id in enumerate(test.ids):
        for f in np.flatnonzero(called[i]):
            row = {"case": case_id, "finding": test.class_names[f], "probability": round(float(probabilities[i, f]), 4),
                   "present_in_reference": bool(test.findings[i, f])}
            if locate_findings:
                row.update(locate(classifier, test.images[i], int(f)))
            table.append(row)
    return {"protocol": "multilabel", "threshold": threshold, "per_finding": per_finding,
            "per_image": table, "cases": len(test)}
