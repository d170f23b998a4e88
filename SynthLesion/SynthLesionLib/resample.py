"""Separable linear maps on a lesion box, one matrix per axis: upsampling of coarse grids and
filtering.

Texture noise and elastic control points live on coarse grids aligned with the array axes,
so their cubic interpolation is separable: one small matrix per axis (SciPy's cubic spline
applied to unit impulses), applied as matrix products (or as a sparse band when the coarse grid
is fine).  This does what ``ndimage.zoom(order=3)`` does, at a fraction of the cost (about 3 x
coarse-size multiply-adds per output voxel instead of 64), and lets a Gaussian blur be folded
into the same matrices.

A separable filter of a box (a Gaussian blur, the B-spline prefilter) is a matrix per axis too:
SciPy's own 1-D filter applied to the identity, boundary mode included, so it filters exactly as
SciPy does, up to float32 rounding (below 1e-6 of the values).  A lesion's box is tens of voxels
a side: a dense float32 product does 3-5x the multiply-adds of a direct filter yet takes a third
of the time (measured on large lesions' boxes at 1 mm: 1.5 ms against 4.6 for a 13-tap
prefilter with ``correlate1d``; an exact, recursive one costs more, and as a matrix the same),
because a matrix product runs at the CPU's vector speed and ``correlate1d`` goes line by line in
float64.  Its work per voxel grows with the box's side, a direct filter's does not: on cubes of
48-200 voxels (the largest lesion's box at 0.5 mm) it took 0.3 to 0.6 of ``correlate1d``'s
time, so the two would meet at about 300 a side.
"""

from __future__ import annotations

from functools import lru_cache, partial

import numpy as np
from scipy import interpolate, ndimage


@lru_cache(maxsize=32)
def _unit_spline(n_coarse: int) -> interpolate.BSpline:
    """SciPy's cubic interpolating spline (not-a-knot) of the identity on the nodes 0 .. n - 1:
    column c is the impulse response of node c.  Made once per size (its fit costs ten times
    its evaluation, and a lesion asks for nine matrices); each kept spline holds n x n float64
    coefficients (7 kB for the usual n of 4-30)."""
    return interpolate.make_interp_spline(np.arange(n_coarse, dtype=np.float64), np.eye(n_coarse), k=3)


def cubic_matrix(n_coarse: int, n_fine: int, step: float, blur_sigma: float = 0.0) -> np.ndarray:
    """(n_fine, n_coarse) matrix: cubic-spline interpolation of a coarse axis whose samples are
    ``step`` fine voxels apart, then an optional Gaussian blur (sigma in fine voxels).

    Interpolating the identity gives every column's impulse response at once; the spline on
    nodes ``step`` apart is the one on unit nodes read at ``x / step``.
    """
    matrix = _unit_spline(n_coarse)(np.arange(n_fine, dtype=np.float64) / step)
    if blur_sigma > 0.0:
        matrix = ndimage.gaussian_filter1d(matrix, blur_sigma, axis=0, mode="mirror")
    return matrix


#: a matrix with more coarse samples than this is applied as a band (sparse): a cubic
#: interpolating spline's weights fall by about 3.7x per coarse sample, so beyond a few samples
#: they are below ``BAND_TOLERANCE`` of the largest and are left out (a change of < 0.1 % of the
#: texture's standard deviation, for 2-7x less work on fine textures)
BAND_FROM = 24
BAND_TOLERANCE = 1e-4


def _banded(matrix: np.ndarray):
    from scipy import sparse

    kept = np.where(np.abs(matrix) >= BAND_TOLERANCE * np.abs(matrix).max(), matrix, 0.0)
    return sparse.csr_matrix(kept.astype(np.float32))


def apply_separable(coarse: np.ndarray, matrices: list[np.ndarray], band_from: int | None = BAND_FROM
                    ) -> np.ndarray:
    """Apply one matrix per axis to the last three axes of a coarse array (leading axes, e.g.
    three displacement components, share the matrices and one pass); returns float32 of the
    fine shape, C-contiguous.  Matrices with more than ``band_from`` columns are applied as bands
    (see ``BAND_FROM``; None: every matrix dense, as a filter's must be to filter exactly).

    Each pass contracts the array's first axis and appends the fine axis last (k, j, i, lead ->
    j, i, lead, k' -> i, lead, k', j' -> lead, k', j', i'), so every product is one matrix
    multiplication on the array as it lies, and the result comes out in order with no copy
    (moving axes around each product cost 20x more for the three displacement components).
    """
    lead = coarse.ndim - 3
    out = np.ascontiguousarray(np.moveaxis(coarse.astype(np.float32), tuple(range(lead)),
                                           tuple(range(3, 3 + lead))))
    for matrix in matrices:
        flat = out.reshape(out.shape[0], -1)
        if band_from is not None and matrix.shape[1] > band_from:
            product = np.ascontiguousarray((_banded(matrix) @ flat).T)
        else:
            product = flat.T @ matrix.astype(np.float32, copy=False).T
        out = product.reshape(*out.shape[1:], matrix.shape[0])
    return out


def filter_matrix(n: int, filter_1d, rows: slice = slice(None)) -> np.ndarray:
    """(rows, n) float64 matrix of a linear 1-D filter on lines of ``n`` voxels: ``filter_1d``
    (e.g. ``partial(ndimage.gaussian_filter1d, sigma=2.0, mode="nearest")``, called with the
    array and ``axis=0``) applied to the identity, whose column c is the response to an impulse
    at c, boundary included; ``rows``: the output voxels wanted.

    Weights below float32's smallest normal number are 0: a recursive filter's response (the
    B-spline prefilter's falls 6x a voxel) reaches them within 50 voxels, and as float32
    subnormals they made the products of a large lesion's box 1.6x slower in all."""
    matrix = filter_1d(np.eye(n), axis=0)[rows]
    matrix[np.abs(matrix) < np.finfo(np.float32).tiny] = 0.0
    return matrix


def gaussian_blur(block: np.ndarray, sigma_vox, mode: str = "nearest") -> np.ndarray:
    """``ndimage.gaussian_filter(block, sigma_vox, mode=mode)`` (default truncation) as a
    separable matrix product: float32, the block's shape, equal up to float32 rounding."""
    sigma_vox = np.broadcast_to(np.asarray(sigma_vox, dtype=np.float64), (block.ndim,))
    return apply_separable(block, [filter_matrix(n, partial(ndimage.gaussian_filter1d, sigma=float(s), mode=mode))
                                   if s > 1e-15 else np.eye(n)  # an axis SciPy leaves as it is
                                   for n, s in zip(block.shape, sigma_vox)], band_from=None)


def coarse_grid(box_shape, spacing_kji, step_mm: float) -> tuple[list[int], list[float]]:
    """Coarse grid covering the box with nodes every ``step_mm``: sizes and steps in voxels.

    At least 4 nodes per axis (a cubic spline needs them), and no finer than the box's own
    voxels: noise drawn finer than a voxel and interpolated onto it is white noise at that
    voxel, made at several times the cost (CT noise is often sub-voxel: 0.6 mm on a 1 mm grid).
    """
    steps = [max(step_mm / float(s), 1.0) for s in spacing_kji]
    sizes = [max(int(np.ceil((n - 1) / st)) + 2, 4) for n, st in zip(box_shape, steps)]
    return sizes, steps
