"""Where a lesion goes: a random organ voxel whose surroundings are organ and vessel-free.

Equivalent to drawing the centre from the organ eroded by the lesion radius (Hu et al. 2023),
then rejecting centres with vessels inside the lesion, but without eroding or filtering the
whole volume: each candidate is checked on a local box, so the cost follows the lesion size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .errors import PlacementError
from .organ import OrganStatistics
from .patch import box_around


@dataclass(frozen=True)
class VesselCriterion:
    """Vessels are voxels whose smoothed intensity exceeds ``threshold`` (image units)."""

    threshold: float
    smoothing_mm: float


@dataclass(frozen=True)
class Placement:
    centre_kji: np.ndarray
    attempts: int
    rejections: dict


def find_centre(image: np.ndarray, organ: np.ndarray, lesions: np.ndarray,
                spacing_kji: np.ndarray, stats: OrganStatistics, radius_mm: float,
                vessels: VesselCriterion | None, avoid: np.ndarray | None,
                rng: np.random.Generator, max_attempts: int, clearance_mm: float | None = None) -> Placement:
    """Draw a centre whose ball of ``radius_mm`` lies in the organ, free of vessels, and whose
    ball of ``clearance_mm`` (the lesion's whole reach, deformation included; default
    ``radius_mm``) holds no earlier lesion, so lesions never overlap.  Raises
    ``PlacementError`` (saying which check failed) after ``max_attempts`` draws."""
    rejections: Counter = Counter()
    clearance_mm = radius_mm if clearance_mm is None else max(clearance_mm, radius_mm)
    for attempt in range(1, max_attempts + 1):
        centre = stats.candidates_kji[rng.integers(len(stats.candidates_kji))]
        reason = _rejection_reason(image, organ, lesions, spacing_kji, centre, radius_mm, vessels, avoid, clearance_mm)
        if reason is None:
            return Placement(centre.astype(float), attempt, dict(rejections))
        rejections[reason] += 1
    raise PlacementError(_explain_failure(rejections, radius_mm, stats, max_attempts))


def _rejection_reason(image, organ, lesions, spacing_kji, centre, radius_mm, vessels, avoid, clearance_mm) -> str | None:
    box = box_around(centre, radius_mm, spacing_kji, organ.shape)
    if box.clipped:
        return "organ edge"
    ball = box.squared_distance_mm2() <= radius_mm * radius_mm
    if not organ[box.slices][ball].all():
        return "organ edge"
    reach = box_around(centre, clearance_mm, spacing_kji, organ.shape)
    if lesions[reach.slices][reach.squared_distance_mm2() <= clearance_mm * clearance_mm].any():
        return "other lesion"
    if avoid is not None and avoid[box.slices][ball].any():
        return "vessel"
    if vessels is not None and _has_vessel(image, organ, spacing_kji, centre, radius_mm, vessels):
        return "vessel"
    return None


def _has_vessel(image, organ, spacing_kji, centre, radius_mm, vessels: VesselCriterion) -> bool:
    margin = 3.0 * vessels.smoothing_mm
    box = box_around(centre, radius_mm + margin, spacing_kji, image.shape)
    region = image[box.slices].astype(np.float32)
    smoothed = ndimage.gaussian_filter(region, vessels.smoothing_mm / spacing_kji, mode="nearest")
    ball = box.squared_distance_mm2() <= radius_mm * radius_mm
    return bool(np.any((smoothed > vessels.threshold) & ball & organ[box.slices]))


def _explain_failure(rejections: Counter, radius_mm: float, stats: OrganStatistics, attempts: int) -> str:
    reason, _ = rejections.most_common(1)[0]
    counts = ", ".join(f"{k}: {v}" for k, v in rejections.most_common())
    if reason == "organ edge":
        return (
            f"The organ is too small for this lesion size: in {attempts} random tries no position "
            f"was found where a {2 * radius_mm:.0f} mm lesion fits inside the organ "
            f"(organ about {stats.volume_ml:.0f} mL; rejections: {counts}). Choose a smaller "
            "size class, or check that the organ mask is complete."
        )
    if reason == "vessel":
        return (
            f"No vessel-free position was found for a {2 * radius_mm:.0f} mm lesion in "
            f"{attempts} random tries (rejections: {counts}). Raise the vessel threshold "
            "(vessel_threshold_sd), turn vessel avoidance off, choose a smaller size, or place "
            "the lesion at given points."
        )
    return (
        f"No free position was found for a {2 * radius_mm:.0f} mm lesion in {attempts} tries: "
        f"earlier lesions fill the organ (rejections: {counts}). Ask for fewer or smaller lesions."
    )
