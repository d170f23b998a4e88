"""Segmentation metrics on binary masks with spacing in mm.

Conventions (the same as MONAI's metrics, stated here because edge cases decide results):
- Surfaces are the mask voxels with a 6-connected background neighbour.
- NSD at tolerance t: the fraction of both surfaces' voxels lying within t mm of the other
  surface (voxel counts, as MONAI's ``SurfaceDiceMetric``).
- HD95: the larger of the two directed 95th percentiles of surface distances (as MONAI's
  ``HausdorffDistanceMetric(percentile=95)``).
- Both masks empty: Dice 1, NSD 1, HD95 0 (perfect agreement on "nothing").
  One mask empty: Dice 0, NSD 0, HD95 ``inf`` (no surface to measure against).

Distances are computed with SciPy's exact Euclidean distance transform on the block that
holds both masks (every surface voxel lies inside it, so the result is exact), not on the
whole volume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from MedSynthCommonLib.errors import MedSynthInputError
from SynthLesionLib.sizes import equivalent_diameter_mm


def check_masks(prediction: np.ndarray, reference: np.ndarray, spacing_kji=None,
                reference_spacing_kji=None) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as booleans; raise when shapes, spacings or value sets do not match."""
    prediction, reference = np.asarray(prediction), np.asarray(reference)
    if prediction.shape != reference.shape:
        raise MedSynthInputError(
            f"Prediction has shape {prediction.shape} but reference has {reference.shape}; "
            "resample the prediction onto the reference grid first."
        )
    if spacing_kji is not None and reference_spacing_kji is not None \
            and not np.allclose(spacing_kji, reference_spacing_kji, rtol=1e-4):
        raise MedSynthInputError(
            f"Prediction spacing {list(spacing_kji)} mm differs from reference spacing "
            f"{list(reference_spacing_kji)} mm; resample onto the reference grid first."
        )
    for name, mask in (("prediction", prediction), ("reference", reference)):
        if mask.dtype != bool and mask.size and (mask.min() < 0 or mask.max() > 1):
            raise MedSynthInputError(
                f"The {name} is not binary (values from {mask.min()} to {mask.max()}); select one "
                "label first, e.g. mask == label."
            )
    return prediction.astype(bool), reference.astype(bool)


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice coefficient 2|P & R| / (|P| + |R|); 1.0 when both are empty."""
    p, r = check_masks(prediction, reference)
    total = int(p.sum()) + int(r.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(p, r).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distances(prediction: np.ndarray, reference: np.ndarray, spacing_kji) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each prediction surface voxel to the reference surface, and back.

    Returns two 1-D arrays; both empty when a mask is empty.
    """
    p, r = check_masks(prediction, reference)
    spacing = _check_spacing(spacing_kji)
    if not p.any() or not r.any():
        return np.zeros(0), np.zeros(0)
    union = p | r
    block = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(union))
    p, r = p[block], r[block]
    sp, sr = _surface(p), _surface(r)
    to_reference = ndimage.distance_transform_edt(~sr, sampling=spacing)
    to_prediction = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return to_reference[sp], to_prediction[sr]


def normalized_surface_dice(prediction, reference, spacing_kji, tolerance_mm: float = 2.0) -> float:
    """Fraction of surface voxels (both masks) within ``tolerance_mm`` of the other surface."""
    if not np.isfinite(tolerance_mm) or tolerance_mm < 0:
        raise MedSynthInputError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm}.")
    p, r = check_masks(prediction, reference)
    _check_spacing(spacing_kji)
    if not p.any() and not r.any():
        return 1.0
    if not p.any() or not r.any():
        return 0.0
    d_pr, d_rp = surface_distances(p, r, spacing_kji)
    return float((np.sum(d_pr <= tolerance_mm) + np.sum(d_rp <= tolerance_mm)) / (d_pr.size + d_rp.size))


def hausdorff_95(prediction, reference, spacing_kji) -> float:
    """95th-percentile Hausdorff distance (mm); 0 when both empty, inf when one is."""
    p, r = check_masks(prediction, reference)
    _check_spacing(spacing_kji)
    if not p.any() and not r.any():
        return 0.0
    if not p.any() or not r.any():
        return float("inf")
    d_pr, d_rp = surface_distances(p, r, spacing_kji)
    return float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)))


#: a reference lesion counts as detected when one predicted component overlaps it with at
#: least this Dice (the lesion-wise criterion of LiTS/KiTS-style evaluations); one voxel of
#: overlap is not a detection
DETECTION_MIN_DICE = 0.1


@dataclass
class LesionDetection:
    """Lesion-wise detection of one case, by connected components (26-connected).

    ``detected[i]``: reference lesion i is matched by a predicted component with Dice >=
    ``criterion_dice``; ``false_positives``: predicted components that match no reference lesion."""

    reference_diameters_mm: list[float]
    detected: list[bool]
    false_positives: int
    predicted_components: int
    criterion_dice: float = DETECTION_MIN_DICE

    def to_dict(self) -> dict:
        return asdict(self)


def _check_spacing(spacing_kji) -> np.ndarray:
    spacing = np.asarray(spacing_kji, dtype=float).reshape(-1)
    if spacing.size != 3 or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise MedSynthInputError(f"Spacing must be three positive, finite values in mm (k, j, i); got {spacing.tolist()}.")
    return spacing


def lesion_detection(prediction, reference, spacing_kji, min_dice: float = DETECTION_MIN_DICE) -> LesionDetection:
    """Match reference lesions to predicted components by component-wise Dice.

    A reference lesion is detected when a predicted component overlaps it with Dice >=
    ``min_dice``; a predicted component that reaches that Dice with no reference lesion is a
    false positive.  (Component Dice = 2|P ∩ R| / (|P| + |R|) for one component pair.)
    """
    p, r = check_masks(prediction, reference)
    spacing = _check_spacing(spacing_kji)
    if not 0.0 < min_dice <= 1.0:
        raise MedSynthInputError(f"min_dice must lie in (0, 1], got {min_dice}.")
    structure = np.ones((3, 3, 3), bool)
    ref_labels, n_ref = ndimage.label(r, structure)
    pred_labels, n_pred = ndimage.label(p, structure)
    ref_sizes = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    both = ref_labels > 0
    pairs, overlap = np.unique(np.stack([ref_labels[both & p], pred_labels[both & p]]), axis=1, return_counts=True) \
        if np.any(both & p) else (np.zeros((2, 0), int), np.zeros(0, int))
    component_dice = 2.0 * overlap / (ref_sizes[pairs[0]] + pred_sizes[pairs[1]]) if overlap.size else np.zeros(0)
    matched = component_dice >= min_dice
    detected_refs = set(pairs[0][matched].tolist())
    matched_preds = set(pairs[1][matched].tolist())
    voxel_mm3 = float(np.prod(spacing))
    diameters = [equivalent_diameter_mm(float(s) * voxel_mm3) for s in ref_sizes[1:]]
    return LesionDetection(diameters, [label in detected_refs for label in range(1, n_ref + 1)],
                           n_pred - len(matched_preds), n_pred, float(min_dice))


def detection_by_size(cases: list[LesionDetection], bins_mm=(0.0, 5.0, 10.0, 20.0, 40.0, 80.0, np.inf)) -> list[dict]:
    """Sensitivity per lesion-size stratum (equivalent diameter, mm) over several cases."""
    diameters = np.concatenate([np.asarray(c.reference_diameters_mm, float) for c in cases]) if cases else np.zeros(0)
    detected = np.concatenate([np.asarray(c.detected, bool) for c in cases]) if cases else np.zeros(0, bool)
    rows = []
    for low, high in zip(bins_mm[:-1], bins_mm[1:]):
        inside = (diameters >= low) & (diameters < high)
        n = int(inside.sum())
        rows.append({"diameter_from_mm": float(low), "diameter_to_mm": float(high), "lesions": n,
                     "detected": int(detected[inside].sum()),
                     "sensitivity": float(detected[inside].mean()) if n else None})
    return rows


def scan_level_detection(predictions: list[np.ndarray], references: list[np.ndarray],
                         min_volume_voxels: int = 1) -> dict:
    """Per-scan sensitivity/specificity: a scan is positive when it holds any lesion voxel
    (prediction: at least ``min_volume_voxels``).  ``None`` where a class of scans is absent."""
    if len(predictions) != len(references):
        raise MedSynthInputError(f"{len(predictions)} predictions for {len(references)} references.")
    truth = np.array([bool(np.asarray(r).any()) for r in references])
    called = np.array([int(np.count_nonzero(p)) >= min_volume_voxels for p in predictions])
    tp, tn = int(np.sum(truth & called)), int(np.sum(~truth & ~called))
    positives, negatives = int(truth.sum()), int((~truth).sum())
    return {"scans": len(truth), "positive_scans": positives, "negative_scans": negatives,
            "sensitivity": tp / positives if positives else None,
            "specificity": tn / negatives if negatives else None}
