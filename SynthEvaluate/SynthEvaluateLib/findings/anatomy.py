"""Where a finding lies in anatomy: an evidence map (e.g. Grad-CAM or occlusion sensitivity)
intersected with the organ segmentation the user has, or, without one, a coarse region of the
scan (and the result says so).

Sides are the patient's (RAS: +x is the patient's right, +z is cranial), computed from the
geometry, so an oblique or flipped volume gives the same words.  Within an organ the part is
the side and level of the evidence's centre relative to the organ's centre; for the liver the
side is named as its lobe (right lobe: patient-right of the organ's centre, an approximation of
the Cantlie line, which a segmentation of liver segments would replace).
"""

from __future__ import annotations

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry

#: fraction of the evidence mass that must fall in one organ to name it
MIN_ORGAN_SHARE = 0.3


def organ_words(name: str) -> str:
    """An organ label name as words: TotalSegmentator's "kidney_right" is "kidney right"."""
    return name.replace("_", " ").strip()


def evidence_region(evidence: np.ndarray, level: float = 0.5) -> np.ndarray:
    """The voxels carrying the evidence: at least ``level`` of its maximum (half-maximum by
    default, so the region is the peak's extent whatever the map's scale or size)."""
    evidence = np.asarray(evidence, np.float64)
    if not np.isfinite(evidence).all() or evidence.max() <= 0:
        return np.zeros(evidence.shape, bool)
    return evidence >= level * evidence.max()


def _centre_ras(mask: np.ndarray, weights: np.ndarray | None, geometry: Geometry) -> np.ndarray:
    points = np.argwhere(mask).astype(np.float64)
    w = None if weights is None else weights[mask]
    return geometry.kji_to_ras(np.average(points, axis=0, weights=w)[None])[0]


def _part(point: np.ndarray, centre: np.ndarray, organ: str) -> str:
    side = "right" if point[0] > centre[0] else "left"  # RAS: larger x = patient right
    if organ == "liver":
        return f"{side} lobe"
    level = "upper" if point[2] > centre[2] else "lower"
    return f"{level} {side} part"


def locate_in_anatomy(evidence: np.ndarray, geometry: Geometry, organs: np.ndarray | None = None,
                      organ_names: dict[int, str] | None = None, level: float = 0.5) -> dict:
    """The location of the evidence in ``evidence`` ([k, j, i], any non-negative score).

    With ``organs`` (a label map on the same grid) and ``organ_names`` ({label value: name},
    e.g. TotalSegmentator's): the organ holding the largest share of the evidence mass
    (at least ``MIN_ORGAN_SHARE``) and the part of it; otherwise a coarse region of the scan.
    Returns {"location": text, "organ": name or None, "organ_share": float or None,
    "centre_ras": [x, y, z] mm, "basis": "organ segmentation" | "coarse region: <why>"}."""
    evidence = np.asarray(evidence, np.float64)
    if organs is not None and np.shape(organs) != evidence.shape:
        raise MedSynthInputError(f"The organ label map {np.shape(organs)} is not on the evidence grid "
                                 f"{evidence.shape}.")
    region = evidence_region(evidence, level)
    if not region.any():
        return {"location": "not localised", "organ": None, "organ_share": None, "centre_ras": None,
                "basis": "no evidence above zero"}
    weights = np.clip(evidence, 0, None)
    centre = _centre_ras(region, weights, geometry)
    if organs is not None and organ_names:
        organs = np.asarray(organs)
        mass = {value: float(weights[region & (organs == value)].sum()) for value in organ_names}
        total = float(weights[region].sum())
        value, share = max(((v, m / total) for v, m in mass.items()), key=lambda item: item[1])
        if share >= MIN_ORGAN_SHARE:
            name = organ_words(organ_names[value])
            inside = region & (organs == value)
            point = _centre_ras(inside, weights, geometry)
            organ_centre = _centre_ras(organs == value, None, geometry)
            return {"location": f"{name}, {_part(point, organ_centre, name)}", "organ": name,
                    "organ_share": round(share, 3), "centre_ras": point.round(1).tolist(),
                    "basis": "organ segmentation"}
        basis = f"coarse region: no organ holds {MIN_ORGAN_SHARE:.0%} of the evidence"
    else:
        basis = "coarse region: no organ segmentation"
    # the scan's own extent: thirds from cranial to caudal, patient right / left of its centre
    corners = geometry.kji_to_ras(np.array([[k, j, i] for k in (0, evidence.shape[0] - 1)
                                            for j in (0, evidence.shape[1] - 1) for i in (0, evidence.shape[2] - 1)],
                                           dtype=np.float64))
    low, high = corners.min(axis=0), corners.max(axis=0)
    third = (centre[2] - low[2]) / max(high[2] - low[2], 1e-6)
    level = "lower" if third < 1 / 3 else "middle" if third < 2 / 3 else "upper"
    side = "right" if centre[0] > (low[0] + high[0]) / 2 else "left"
    return {"location": f"{level} {side} part of the scan", "organ": None, "organ_share": None,
            "centre_ras": centre.round(1).tolist(), "basis": basis}
