"""How a lesion looks against its organ, measured the same way on real and synthetic lesions.

Per lesion (one connected label), against the parenchyma in a ring 1-4 voxels outside it
(inside the organ, other lesions excluded):

- ``contrast``: median(lesion) - median(ring), image units (HU on CT);
- ``sd_ratio``: internal SD / ring SD (1 = as grainy as the parenchyma);
- ``edge``: mean gradient magnitude on the lesion's boundary voxels / ring SD, per mm;
- ``edge_width_mm``: |contrast| / mean boundary gradient: the width of an equivalent linear ramp;
- ``grain_mm``: autocorrelation length of the interior (first lag where the correlation drops
  below 1/e, interpolated, mean over the three axes, in mm);
- ``diameter_mm``: equivalent-sphere diameter; ``sphericity``: pi^(1/3) (6 V)^(2/3) / A with the
  surface A counted as exposed voxel faces (a staircase surface: a voxelised ball scores about
  0.66, not 1; the same rule for real and synthetic lesions is what matters).

Used to compare synthetic lesions with real ones (``REALISM.md``), to learn a preset from a
user's annotated tumours (``fit``), and in the tests that calibrate the presets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

#: the parenchyma ring: voxels 1 to this many voxels outside the lesion
RING_VOXELS = 4
#: fewer ring or lesion voxels than this give no figure (None)
MIN_VOXELS = 8


@dataclass
class LesionFeatures:
    label: int
    voxels: int
    diameter_mm: float
    sphericity: float
    contrast: float | None
    ring_median: float | None
    sd_ratio: float | None
    edge: float | None
    edge_width_mm: float | None
    grain_mm: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def _surface_area_mm2(mask: np.ndarray, spacing_kji: np.ndarray) -> float:
    """Area of the exposed voxel faces of a boolean volume (mm^2)."""
    padded = np.pad(mask, 1)
    area = 0.0
    for axis in range(3):
        face = np.prod([s for a, s in enumerate(spacing_kji) if a != axis])
        area += face * np.count_nonzero(np.diff(padded.astype(np.int8), axis=axis))
    return float(area)


def correlation_length_mm(values: np.ndarray, inside: np.ndarray, spacing_kji: np.ndarray) -> float | None:
    """Mean over axes of the lag (mm) where the interior's autocorrelation falls below 1/e."""
    centred = np.where(inside, values - values[inside].mean(), 0.0)
    variance = float(np.mean(centred[inside] ** 2))
    if variance <= 0:
        return None
    lengths = []
    for axis in range(3):
        previous = 1.0
        for lag in range(1, inside.shape[axis]):
            a = [slice(None)] * 3
            b = [slice(None)] * 3
            a[axis], b[axis] = slice(lag, None), slice(None, -lag)
            both = inside[tuple(a)] & inside[tuple(b)]
            if both.sum() < MIN_VOXELS:
                break
            correlation = float(np.mean((centred[tuple(a)] * centred[tuple(b)])[both])) / variance
            if correlation < np.exp(-1.0):
                fraction = (previous - np.exp(-1.0)) / max(previous - correlation, 1e-9)
                lengths.append((lag - 1 + fraction) * spacing_kji[axis])
                break
            previous = correlation
    return float(np.mean(lengths)) if lengths else None


def measure_lesions(image: np.ndarray, lesion_labels: np.ndarray, organ: np.ndarray | None,
                    spacing_kji) -> list[LesionFeatures]:
    """Features of every lesion in ``lesion_labels`` (0 background; each connected component of
    each label value is one lesion) against ``organ`` (boolean; None: anything but lesions)."""
    spacing = np.asarray(spacing_kji, dtype=float)
    labels = np.asarray(lesion_labels)
    components, count = ndimage.label(labels > 0, np.ones((3, 3, 3), bool))
    any_lesion = components > 0
    features = []
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        grown = tuple(slice(max(s.start - RING_VOXELS - 2, 0), s.stop + RING_VOXELS + 2) for s in box)
        lesion = components[grown] == index
        values = np.asarray(image[grown], dtype=np.float64)
        allowed = ~any_lesion[grown] & (np.asarray(organ[grown], bool) if organ is not None else True)
        ring = ndimage.binary_dilation(lesion, iterations=RING_VOXELS) & allowed
        volume = float(lesion.sum() * spacing.prod())
        diameter = float((6.0 * volume / np.pi) ** (1.0 / 3.0))
        sphericity = float(np.pi ** (1 / 3) * (6.0 * volume) ** (2 / 3) / _surface_area_mm2(lesion, spacing))
        if lesion.sum() < MIN_VOXELS or ring.sum() < MIN_VOXELS:
            features.append(LesionFeatures(index, int(lesion.sum()), diameter, sphericity, *([None] * 6)))
            continue
        ring_median, ring_sd = float(np.median(values[ring])), float(np.std(values[ring]))
        contrast = float(np.median(values[lesion])) - ring_median
        gradient = np.sqrt(sum(g * g for g in np.gradient(values, *spacing)))
        boundary = lesion & ~ndimage.binary_erosion(lesion)
        mean_gradient = float(gradient[boundary].mean())
        features.append(LesionFeatures(
            index, int(lesion.sum()), diameter, sphericity, contrast, ring_median,
            float(np.std(values[lesion])) / ring_sd if ring_sd > 0 else None,
            mean_gradient / ring_sd if ring_sd > 0 else None,
            abs(contrast) / mean_gradient if mean_gradient > 0 else None,
            correlation_length_mm(values, lesion, spacing)))
    return features


def summarise(features: list[LesionFeatures]) -> dict:
    """Median and 5th/95th percentiles of every feature over lesions (None where undefined)."""
    summary = {"lesions": len(features)}
    for name in ("diameter_mm", "sphericity", "contrast", "sd_ratio", "edge", "edge_width_mm", "grain_mm"):
        values = np.array([getattr(f, name) for f in features if getattr(f, name) is not None], float)
        summary[name] = None if values.size == 0 else {
            "median": round(float(np.median(values)), 3),
            "p5": round(float(np.percentile(values, 5)), 3), "p95": round(float(np.percentile(values, 95)), 3),
            "n": int(values.size)}
    return summary
