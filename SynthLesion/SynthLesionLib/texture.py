"""Lesion texture: Gaussian noise, scaled up by cubic interpolation, then blurred.

The noise grain is set in mm, so the texture has the same physical look on a 0.8 mm and on a
3 mm grid, and along anisotropic axes.  Upscaling and blur are one separable linear map
(``resample``), and its output is scaled to the wanted standard deviation analytically.
"""

from __future__ import annotations

import numpy as np

from .resample import apply_separable, coarse_grid, cubic_matrix


def lesion_texture(shape: tuple[int, int, int], spacing_kji: np.ndarray, sd: float, grain_mm: float,
                   blur_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean texture with standard deviation ``sd`` (float32, array order k, j, i).

    Args:
        shape: box shape in voxels.
        spacing_kji: voxel size (mm) along the array axes.
        sd: wanted standard deviation (image units), e.g. the parenchyma's spread.
        grain_mm: distance (mm) between the independent noise values before upscaling.
        blur_mm: Gaussian blur (sigma, mm) applied after upscaling.
    """
    if sd <= 0.0:
        return np.zeros(shape, dtype=np.float32)
    sizes, steps = coarse_grid(shape, spacing_kji, grain_mm)
    matrices = [cubic_matrix(c, n, st, blur_mm / s) for c, n, st, s in zip(sizes, shape, steps, spacing_kji)]
    # variance of a separable map of white noise, averaged over the box, is the product over
    # axes of the mean squared row norm: scale so that the texture's sd is ``sd``
    variance = np.prod([np.mean(np.sum(m * m, axis=1)) for m in matrices])
    matrices[0] = matrices[0] * (sd / np.sqrt(variance))
    noise = rng.standard_normal(sizes, dtype=np.float32)
    return apply_separable(noise, matrices)
