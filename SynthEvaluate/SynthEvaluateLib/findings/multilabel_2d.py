"""Multi-label findings on 2-D images: the findings model of ``recipes.findings_model`` (the
one that reads 3-D CT, with ``input_shape`` [y, x]) trained on an image set, judged per finding
as CT findings are (``per_finding_metrics``), each called finding located from its evidence map.

Locations are in image terms: rows in thirds (upper / middle / lower), columns in halves
(image left / image right).  For a PA chest film, image left is the patient's right.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from ..metrics.classification import per_finding_metrics
from ..recipes.data import ImageSet
from ..recipes.findings_model import FindingsModel, FindingsRecipe, train_findings_model
from .anatomy import evidence_region


def image_findings_recipe(images: ImageSet, **settings) -> FindingsRecipe:
    """The findings recipe for ``images``: the network reads the set's size, its intensities
    as they are (sets are in [0, 1]) and the whole image (no organ box); ``settings`` override
    any other field (epochs, channels, learning_rate, ...)."""
    return FindingsRecipe(**{"input_shape": tuple(images.images.shape[1:]), "window": (0.0, 1.0),
                             "organ_margin_mm": None, **settings})


def train_image_findings(train: ImageSet, recipe: FindingsRecipe | None = None, seed: int = 0,
                         validation_fraction: float = 0.25, progress: Callable[[dict], None] | None = None,
                         should_stop: Callable[[], bool] | None = None) -> FindingsModel:
    """The findings model trained on a multi-label image set (``ImageSet.multilabel``); a
    ``validation_fraction`` of it chooses each finding's threshold."""
    if train.findings is None:
        raise MedSynthInputError("The image set has one class per image; multi-label findings need an image set "
                                 "with a findings matrix (ImageSet.multilabel). Train a classifier for classes.")
    recipe = recipe or image_findings_recipe(train)
    if recipe.spatial_dims != 2:
        raise MedSynthInputError(f"The recipe reads volumes ({recipe.input_shape}); give input_shape [y, x] for images.")
    return train_findings_model(list(train.images), train.findings.astype(np.int64), train.class_names, recipe, seed,
                                validation_fraction, progress=progress, should_stop=should_stop)


def locate(model: FindingsModel, image: np.ndarray, finding: int) -> dict:
    """Where the evidence for ``finding`` lies in a (y, x) image: the centroid of its evidence
    region (``anatomy.evidence_region``: at half its maximum, as for CT findings), as an image
    region and as fractions of the height and width."""
    region = evidence_region(model.evidence(image, finding))
    if not region.any() or region.all():
        return {"region": "not localised", "row": None, "column": None}
    row, column = (float(v) for v in np.argwhere(region).mean(axis=0))
    height, width = region.shape
    vertical = ("upper", "middle", "lower")[min(int(3 * row / height), 2)]
    horizontal = "image left" if column < width / 2 else "image right"
    return {"region": f"{vertical} {horizontal}", "row": round(row / height, 3), "column": round(column / width, 3)}


def evaluate_multilabel(model: FindingsModel, test: ImageSet, locate_findings: bool = True,
                        confidence: float = 0.95) -> dict:
    """Per-finding AUC, sensitivity and specificity at the model's thresholds, and
    ``per_image``: one row per finding called in an image, with its probability and location."""
    if test.findings is None:
        raise MedSynthInputError("Multi-label evaluation needs a test set with findings (ImageSet.multilabel).")
    if model.recipe.spatial_dims != 2:
        raise MedSynthInputError("This findings model reads 3-D volumes; judge it with `medsynth evaluate ct-findings`.")
    if test.class_names != model.findings:
        raise MedSynthInputError(f"Test findings {test.class_names} differ from the model's {model.findings}.")
    probabilities = model.predict_proba(list(test.images))
    called = model.called(probabilities)
    per_finding = per_finding_metrics(test.findings, probabilities, called, test.class_names, model.thresholds,
                                      confidence)
    table = []
    for i, case_id in enumerate(test.ids):
        for f in np.flatnonzero(called[i]):
            row = {"case": case_id, "finding": test.class_names[f], "probability": round(float(probabilities[i, f]), 4),
                   "present_in_reference": bool(test.findings[i, f])}
            if locate_findings:
                row.update(locate(model, test.images[i], int(f)))
            table.append(row)
    return {"protocol": "multilabel", "thresholds": dict(zip(model.findings, model.thresholds)),
            "per_finding": per_finding, "per_image": table, "cases": len(test)}
