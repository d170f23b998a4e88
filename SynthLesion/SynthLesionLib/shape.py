"""Lesion shapes as implicit functions: ``level <= 1`` inside, ``level = 1`` on the surface.

A shape is evaluated at physical offsets (mm) from the lesion centre after a smooth random
displacement (elastic deformation) and a random rotation, so the result is the same
physical shape on any voxel grid, isotropic or not.  Two kinds of shape share this:
a distorted ellipsoid (Hu et al. 2023) and a template made from a real or generated mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import bounding_slices
from .patch import Box
from .resample import apply_separable, coarse_grid, cubic_matrix
from .sizes import equivalent_diameter_mm


@dataclass(frozen=True)
class ShapeTemplate:
    """A lesion shape taken from a binary mask (a bank of real lesions, or a mask GAN).

    Holds the mask's normalised signed distance: ``level = 1 + distance / radius`` where
    ``radius`` is the mask's equivalent radius, so a template scaled by ``s`` has the
    equivalent diameter ``s * 2 * radius``.
    """

    level: np.ndarray  # float32, array order (k, j, i)
    spacing_kji: np.ndarray
    centroid_kji: np.ndarray
    radius_mm: float
    name: str = "template"

    @classmethod
    def from_mask(cls, mask: np.ndarray, spacing_kji=(1.0, 1.0, 1.0), name: str = "template") -> "ShapeTemplate":
        """Build a template from a 3-D binary mask of one lesion.

        A 2-D mask (or a lesion one voxel thick) is refused: scaled into a 3-D lesion it would
        become a thin sheet.  (Mask GAN shapes for SynthLesion: train it with 3-D patches.)"""
        mask = np.asarray(mask) > 0
        if mask.ndim != 3 or not mask.any():
            raise MedSynthInputError(
                f"Shape template {name!r} must be a non-empty 3-D binary mask, got shape "
                f"{mask.shape} with {int(mask.sum())} voxels set."
            )
        spacing = np.asarray(spacing_kji, dtype=float)
        mask = mask[bounding_slices(mask, np.zeros(3, int))]  # the distance map needs the lesion only
        if min(mask.shape) < 2:
            raise MedSynthInputError(
                f"Shape template {name!r} is a single slice ({mask.shape[::-1]} voxels, i j k): a 3-D lesion would "
                "become a thin sheet. Give a 3-D mask of a lesion (for mask GAN shapes, train with --spatial-dims 3).")
        padded = np.pad(mask, 2)
        inside = ndimage.distance_transform_edt(padded, sampling=spacing)
        outside = ndimage.distance_transform_edt(~padded, sampling=spacing)
        signed = np.where(padded, -inside, outside)
        radius = equivalent_diameter_mm(mask.sum() * spacing.prod()) / 2.0
        centroid = np.array(ndimage.center_of_mass(padded))
        return cls((1.0 + signed / radius).astype(np.float32), spacing, centroid, radius, name)


@dataclass(frozen=True)
class DrawnShape:
    """Everything drawn for one lesion's shape (recorded, so it can be regenerated)."""

    semi_axes_mm: np.ndarray  # ellipsoid semi-axes, or the template's scaled radius x3
    rotation: np.ndarray  # 3x3, columns: the shape's axes in the array (k, j, i) frame
    elastic_magnitude_mm: float
    elastic_scale_mm: float
    template: ShapeTemplate | None = None

    @property
    def bounding_radius_mm(self) -> float:
        """Radius (mm) that contains the shape, deformation included."""
        if self.template is not None:
            extent = np.array(self.template.level.shape) * self.template.spacing_kji / 2.0
            reach = float(np.linalg.norm(extent)) * self.scale
        else:
            reach = float(self.semi_axes_mm.max())
        return reach + 3.0 * self.elastic_magnitude_mm

    @property
    def scale(self) -> float:
        if self.template is None:
            return 1.0
        return float(self.semi_axes_mm[0] / self.template.radius_mm)


def draw_semi_axes(diameter_range_mm: tuple[float, float], rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Draw a target diameter in the range and semi-axes from U(0.75 r, 1.25 r).

    Axes are redrawn until their equivalent diameter ``2 (abc)^(1/3)`` also lies in the
    range, so a lesion of class "small" is small by volume, not only by its target.
    """
    low, high = diameter_range_mm
    for _ in range(1000):
        diameter = rng.uniform(low, high)
        r = diameter / 2.0
        axes = rng.uniform(0.75 * r, 1.25 * r, size=3)
        if low <= 2.0 * np.cbrt(axes.prod()) <= high:
            return float(diameter), axes
    return float(diameter), np.full(3, r)  # unreachable for ranges as wide as the classes


def draw_shape(diameter_range_mm: tuple[float, float], elastic_fraction: float,
               rng: np.random.Generator, template: ShapeTemplate | None = None) -> tuple[float, DrawnShape]:
    """Draw one lesion shape; returns the target diameter (mm) and the shape."""
    diameter, axes = draw_semi_axes(diameter_range_mm, rng)
    rotation = Rotation.random(random_state=rng).as_matrix()
    mean_radius = float(np.cbrt(axes.prod()))
    if template is not None:
        axes = np.full(3, diameter / 2.0)
        mean_radius = diameter / 2.0
    magnitude = elastic_fraction * mean_radius
    scale = max(0.6 * mean_radius, 2.0)
    return diameter, DrawnShape(axes, rotation, magnitude, scale, template)


def shape_level(box: Box, spacing_kji: np.ndarray, shape: DrawnShape, rng: np.random.Generator) -> np.ndarray:
    """Evaluate the deformed, rotated shape on a box around its centre.

    The elastic deformation is a random smooth displacement d(p) (mm): independent normal
    control points every ``elastic_scale_mm`` with std ``elastic_magnitude_mm``, interpolated
    by cubic splines; the shape is evaluated at ``p + d(p)``.  Rotation and axis scaling are
    linear, so they are applied to the few control points rather than to every voxel.

    Returns a float32 array of the box's shape: < 1 inside, 1 on the surface.
    """
    if shape.template is None:
        scale = np.asarray(shape.semi_axes_mm, dtype=float)
        offset = np.zeros(3)
    else:
        scale = shape.scale * shape.template.spacing_kji
        offset = shape.template.centroid_kji
    # v_b = sum_a R[a, b] (p_a + d_a) / scale_b + offset_b : coordinates in the shape's frame
    linear = shape.rotation / scale[np.newaxis, :]
    sizes, steps = coarse_grid(box.shape, spacing_kji, shape.elastic_scale_mm)
    control = rng.normal(0.0, shape.elastic_magnitude_mm, size=(3, *sizes))
    # the linear part rides on the control points: a cubic spline reproduces a linear function
    # exactly, so one separable pass gives the coordinates with no per-voxel arithmetic
    first_mm = [float(box.offsets_mm[a].reshape(-1)[0]) for a in range(3)]  # the box's first voxel from the centre
    nodes_mm = np.meshgrid(*[first_mm[a] + np.arange(sizes[a]) * steps[a] * spacing_kji[a] for a in range(3)],
                           indexing="ij")
    control = control + np.stack(nodes_mm)
    control = np.einsum("ab,a...->b...", linear, control) + offset.reshape(3, 1, 1, 1)
    matrices = [cubic_matrix(c, n, st) for c, n, st in zip(sizes, box.shape, steps)]
    coords = apply_separable(control, matrices)  # the three components in one pass
    if shape.template is None:
        level = np.einsum("c...,c...->...", coords, coords)  # one pass over the three components
        return np.sqrt(level, out=level)
    return ndimage.map_coordinates(shape.template.level, coords, order=1, mode="constant", cval=10.0)
