"""Post-processing around an inserted lesion: mass effect and capsule."""

from __future__ import annotations

from functools import lru_cache, partial

import numpy as np
from scipy import ndimage

from .patch import Box
from .resample import apply_separable, filter_matrix

#: the push reaches this many lesion radii from the centre, and is zero beyond
MASS_EFFECT_REACH = 1.4
#: strength 100 moves tissue by at most this fraction of its distance to the centre
MASS_EFFECT_MAX = 0.9
#: smaller shifts (in voxels of the finest axis) are not resampled
MIN_SHIFT_VOXELS = 0.2
#: B-spline degree of the pushed tissue's resampling.  Quadratic: 27 taps a voxel instead of
#: cubic's 64, 1.6x faster (the mass effect is most of a large lesion's time), and it keeps the
#: tissue's noise nearly as well (measured on correlated CT-like noise pushed by a large lesion:
#: SD 0.93 of the original against 0.94 for cubic and 0.75 for linear; cf. Thevenaz, Blu & Unser,
#: "Interpolation revisited", IEEE TMI 2000, on quadratic against cubic B-splines)
SPLINE_ORDER = 2
def mass_effect_support_mm(radius_mm: float) -> float:
    return MASS_EFFECT_REACH * radius_mm


def mass_effect(box: Box, spacing_kji: np.ndarray, radius_mm: float, strength: float,
                image: np.ndarray, masks: list[np.ndarray], keep: np.ndarray | None = None) -> float:
    """Push tissue radially away from the centre, in place, on the box's arrays.

    The backward map samples each voxel at distance rho from ``rho * (1 - A (1 - x^2)^2)``,
    x = rho / R, R = 1.4 x ``radius_mm``, A = 0.9 x strength / 100: smooth, zero beyond R,
    and one-to-one (its radial derivative stays positive for A < 1), so no tissue folds.
    ``image`` (float32, the box) is resampled with quadratic B-splines (``SPLINE_ORDER``), ``masks`` (uint8 arrays
    on the box: organ, earlier lesions) with nearest neighbour, so labels follow the tissue
    exactly.  Voxels where ``keep`` is True (the lesion's core, whose own content replaces
    the tissue there) are left as they are, which saves most of the work for large lesions.
    Returns the largest displacement in mm.
    """
    if strength <= 0.0:
        return 0.0
    amplitude = MASS_EFFECT_MAX * min(strength, 100.0) / 100.0
    support = mass_effect_support_mm(radius_mm)
    rho2 = box.squared_distance_mm2().ravel()
    x2 = rho2 / np.float32(support * support)
    inside = x2 < 1.0
    if keep is not None:
        inside &= ~keep.ravel()
    candidates = np.flatnonzero(inside)  # the shell around the core: the rest of the box stays
    x2, rho = x2[candidates], np.sqrt(rho2[candidates])
    # displacement (mm) = amplitude (1 - x^2)^2 rho; voxels moved by less than MIN_SHIFT_VOXELS of
    # the finest spacing are left as they are (an invisible shift, and most of the outer shell)
    factor = np.float32(amplitude) * (1.0 - x2) ** 2  # fraction of rho moved inward
    shifted = factor * rho >= np.float32(MIN_SHIFT_VOXELS * float(np.min(spacing_kji)))
    factor, rho = factor[shifted], rho[shifted]
    where = np.unravel_index(candidates[shifted], image.shape)
    # source position (box voxel coordinates) = position - factor * offset / spacing
    coords = np.empty((3, factor.size), dtype=np.float32)
    for axis in range(3):
        offset_vox = box.offsets_mm[axis].reshape(-1)[where[axis]] / np.float32(spacing_kji[axis])
        coords[axis] = where[axis] - factor * offset_vox
    coefficients = spline_coefficients(image)
    image[where] = ndimage.map_coordinates(coefficients, coords, order=SPLINE_ORDER, mode="mirror", prefilter=False)
    nearest = tuple(np.clip(np.rint(c).astype(np.intp), 0, n - 1) for c, n in zip(coords, image.shape))
    for mask in masks:
        if mask.any():
            mask[where] = mask[nearest]
    return float((factor * rho).max()) if factor.size else 0.0


def spline_coefficients(image: np.ndarray) -> np.ndarray:
    """B-spline coefficients (``SPLINE_ORDER``) of a float32 box for ``map_coordinates(...,
    prefilter=False, mode="mirror")``: SciPy's own prefilter (``spline_filter1d``, the box
    mirrored at its faces as ``map_coordinates`` assumes in that mode) as one matrix per axis
    (``resample.filter_matrix``), exact up to float32 rounding."""
    return apply_separable(image, [_prefilter_matrix(n) for n in image.shape], band_from=None)


@lru_cache(maxsize=64)
def _prefilter_matrix(n: int) -> np.ndarray:
    """The prefilter of lines of ``n`` voxels as an (n, n) float32 matrix (kept read-only; 4 n^2
    bytes, 40 kB for the usual n of 100)."""
    prefilter = partial(ndimage.spline_filter1d, order=SPLINE_ORDER, mode="mirror", output=np.float64)
    matrix = filter_matrix(n, prefilter).astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def capsule_band(level: np.ndarray, width_mm: float, mean_radius_mm: float) -> np.ndarray:
    """Boolean rim of about ``width_mm`` just inside the lesion surface (level in (1 - w/r, 1])."""
    inner = 1.0 - width_mm / max(mean_radius_mm, 1e-6)
    return (level > inner) & (level <= 1.0)
