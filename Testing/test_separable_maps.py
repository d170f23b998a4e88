"""Separable maps as matrices (``SynthLesionLib.resample``) do what SciPy's filters and splines
do: interpolation matrices, banded products, Gaussian blurs, the B-spline prefilter, and the
vessel check that smooths with them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from SynthLesionLib import make_ct_phantom, prepare_organ


def test_banded_interpolation_matches_the_dense_one():
    from SynthLesionLib import resample

    rng = np.random.default_rng(1)
    coarse = rng.standard_normal((30, 31, 32)).astype(np.float32)
    matrices = [resample.cubic_matrix(c, n, 1.3, 0.7) for c, n in zip(coarse.shape, (38, 40, 41))]
    banded = resample.apply_separable(coarse, matrices)
    dense = coarse.astype(np.float32)
    for axis in range(3):
        dense = np.moveaxis(np.tensordot(matrices[axis].astype(np.float32), dense, axes=([1], [axis])), 0, axis)
    assert np.abs(banded - dense).max() < 1e-3 * dense.std()


def test_interpolation_matrices_from_the_kept_unit_spline_are_scipys_fit_on_that_grid():
    from scipy import interpolate

    from SynthLesionLib import resample

    for n_coarse, n_fine, step in ((4, 9, 2.5), (7, 40, 6.37), (12, 61, 5.1), (30, 90, 3.0), (7, 33, 4.9)):
        fitted = interpolate.make_interp_spline(np.arange(n_coarse) * step, np.eye(n_coarse), k=3)
        expected = fitted(np.arange(n_fine, dtype=float))
        matrix = resample.cubic_matrix(n_coarse, n_fine, step)
        assert matrix.shape == (n_fine, n_coarse)
        assert np.abs(matrix - expected).max() < 1e-12
        assert np.allclose(matrix.sum(axis=1), 1.0)  # interpolation reproduces a constant
    expected = interpolate.make_interp_spline(np.arange(7) * 4.9, np.eye(7), k=3)(np.arange(33, dtype=float))
    matrix = resample.cubic_matrix(7, 33, 4.9)
    matrix[:] = 0.0  # a caller's matrix is its own: the kept spline is not changed through it
    assert np.abs(resample.cubic_matrix(7, 33, 4.9) - expected).max() < 1e-12


def test_the_prefilter_matrices_are_scipys_prefilter():
    from SynthLesionLib.effects import SPLINE_ORDER, _prefilter_matrix, spline_coefficients

    rng = np.random.default_rng(4)  # liver-like tissue next to air: where a truncated filter would show
    box = np.where(np.arange(40)[:, None, None] < 20, 60.0, -1000.0) + rng.normal(0, 20, (40, 41, 7))
    box = box.astype(np.float32)
    coefficients = spline_coefficients(box)
    exact = ndimage.spline_filter(box, order=SPLINE_ORDER, output=np.float64, mode="mirror")
    assert np.abs(coefficients - exact).max() < 2e-6 * np.abs(exact).max()  # float32 rounding (6 taps: 1e-5)
    nodes = np.indices(box.shape).reshape(3, -1).astype(np.float64)
    back = ndimage.map_coordinates(coefficients, nodes, order=SPLINE_ORDER, prefilter=False, mode="mirror")
    assert np.abs(back - box.ravel()).max() < 0.01  # HU: the spline passes through every voxel
    matrix = _prefilter_matrix(120)  # no float32 subnormals (they slowed a large lesion 1.6x)
    assert not np.any((matrix != 0) & (np.abs(matrix) < np.finfo(np.float32).tiny))


@pytest.mark.parametrize("mode", ["nearest", "mirror", "reflect"])
def test_a_gaussian_blur_as_matrices_is_scipys(mode):
    from SynthLesionLib.resample import gaussian_blur

    rng = np.random.default_rng(5)
    block = rng.integers(-1000, 1500, (17, 30, 41)).astype(np.int16)  # a CT block, anisotropic sigma
    for sigma in ([0.7, 1.3, 2.9], [0.0, 1.0, 4.0], 1.6):
        blurred = gaussian_blur(block, sigma, mode=mode)
        expected = ndimage.gaussian_filter(block.astype(np.float32), sigma, mode=mode)
        assert blurred.dtype == np.float32 and blurred.shape == block.shape and blurred.flags.c_contiguous
        assert np.abs(blurred - expected).max() < 1e-6 * np.abs(expected).max()
    mask = np.zeros((20, 20, 20), np.float32)
    mask[5:15, 6:12, 4:16] = 1.0  # a lesion's alpha: blurred, it stays within [0, 1] up to rounding
    alpha = gaussian_blur(mask, [1.2, 0.8, 2.0], mode=mode)
    assert alpha.min() > -1e-6 and alpha.max() < 1 + 1e-6


def test_the_vessel_check_decides_as_a_full_gaussian_filter(phantom):
    from SynthLesionLib.patch import PatchedMask, box_around
    from SynthLesionLib.placement import VesselCriterion, _has_vessel

    image, organ, spacing = phantom.image, phantom.organ_mask("liver"), phantom.geometry.spacing_kji
    stats = prepare_organ(image, organ, phantom.geometry)
    mask, rng = PatchedMask(organ.view(np.uint8)), np.random.default_rng(6)
    decided = {True: 0, False: 0}
    for _ in range(120):
        centre = stats.candidates_kji[rng.integers(len(stats.candidates_kji))]
        radius, smoothing = float(rng.uniform(3.0, 25.0)), float(rng.uniform(1.0, 4.0))
        grown = box_around(centre, radius + 3.0 * smoothing, spacing, image.shape)
        box = box_around(centre, radius, spacing, image.shape)
        smoothed = ndimage.gaussian_filter(image[grown.slices].astype(np.float32), smoothing / spacing, mode="nearest")
        inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box.slices, grown.slices))
        candidates = smoothed[inner][(box.squared_distance_mm2() <= radius * radius) & (organ[box.slices] != 0)]
        if not candidates.size:
            continue
        threshold = float(candidates.max()) + rng.choice([-1.0, 1.0]) * rng.uniform(0.01, 5.0)  # near the brightest
        if np.min(np.abs(candidates - threshold)) < 1e-3:
            continue  # float32 rounding could decide either way
        vessels = VesselCriterion(threshold, smoothing)
        answer = _has_vessel(image, mask, spacing, centre, radius, vessels)
        assert answer == bool(np.any(candidates > threshold))
        decided[answer] += 1
    assert min(decided.values()) > 30  # both answers were met


@pytest.fixture(scope="module")
def phantom():
    return make_ct_phantom(shape=(40, 128, 128), spacing=(2.0, 2.0, 3.0), seed=1)
