"""Image geometry: origin, spacing and direction of a 3-D volume, in RAS.

Arrays in MedSynth follow the numpy layout of SimpleITK and Slicer: ``array[k, j, i]``.
``Geometry.spacing`` is in (i, j, k) order, like ITK and Slicer; ``spacing_kji`` gives it in
array-axis order for numpy/scipy functions.  ``direction`` holds the RAS unit vectors of the
i, j and k axes as columns.  Distances are the same in the index-aligned frame and in RAS
because the direction matrix is orthonormal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import MedSynthInputError

#: LPS (ITK, DICOM, NIfTI readers through SimpleITK) <-> RAS (Slicer) flip.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """Where a voxel grid lies in patient space.

    Attributes:
        origin: RAS position (mm) of voxel (0, 0, 0), shape (3,).
        spacing: voxel size (mm) along i, j, k, shape (3,).
        direction: 3x3 matrix whose columns are the RAS unit vectors of the i, j, k axes.
    """

    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    spacing: np.ndarray = field(default_factory=lambda: np.ones(3))
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        origin = np.asarray(self.origin, dtype=float).reshape(3)
        spacing = np.asarray(self.spacing, dtype=float).reshape(3)
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
            raise MedSynthInputError(
                f"Voxel spacing must be positive and finite, got {spacing.tolist()} mm; "
                "fix the image header (spacing) before synthesis."
            )
        if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
            raise MedSynthInputError(
                "The image direction matrix is not orthonormal (sheared or scaled axes); "
                "resample the image to an orthogonal grid first."
            )
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "direction", direction)

    @property
    def spacing_kji(self) -> np.ndarray:
        """Spacing (mm) in numpy array-axis order (k, j, i)."""
        return self.spacing[::-1].copy()

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    def ijk_to_ras_matrix(self) -> np.ndarray:
        """The 4x4 matrix from voxel (i, j, k, 1) to RAS (mm), as Slicer's IJKToRAS and MONAI's
        affines hold it."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.direction * self.spacing
        matrix[:3, 3] = self.origin
        return matrix

    def kji_to_ras(self, kji: np.ndarray) -> np.ndarray:
        """RAS positions (mm) of array indices ``[..., (k, j, i)]``."""
        ijk = np.asarray(kji, dtype=float)[..., ::-1]
        return ijk * self.spacing @ self.direction.T + self.origin

    def ras_to_kji(self, ras: np.ndarray) -> np.ndarray:
        """Continuous array indices ``[..., (k, j, i)]`` of RAS positions (mm)."""
        ijk = (np.asarray(ras, dtype=float) - self.origin) @ self.direction / self.spacing
        return ijk[..., ::-1]

    def is_close(self, other: "Geometry", tolerance_mm: float = 1e-3) -> bool:
        """True when both grids coincide within ``tolerance_mm`` (origin) and 1e-4 (rest)."""
        return (
            np.allclose(self.origin, other.origin, atol=tolerance_mm)
            and np.allclose(self.spacing, other.spacing, rtol=1e-4, atol=1e-6)
            and np.allclose(self.direction, other.direction, atol=1e-4)
        )

    def to_dict(self) -> dict:
        return {
            "origin_ras_mm": self.origin.tolist(),
            "spacing_mm": self.spacing.tolist(),
            "direction_ras": self.direction.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Geometry":
        return cls(data["origin_ras_mm"], data["spacing_mm"], data["direction_ras"])


#: RAS directions of the i, j, k axes in the standard storage order: toward the patient's left,
#: posterior and superior (DICOM's LPS order; the order SimpleITK reads most DICOM series in)
STANDARD_AXES_RAS = np.diag([-1.0, -1.0, 1.0])


def standard_order(array: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, Geometry]:
    """The same volume stored with its i, j, k axes as close to ``STANDARD_AXES_RAS`` as its
    direction allows, and the geometry that keeps every voxel where it was in RAS.

    A transpose and flips of ``array`` (a view, nothing resampled); an oblique grid stays
    oblique.  Networks see arrays, not patients: a volume stored right-to-left and one stored
    left-to-right show them mirrored images of one anatomy, and a model trained on one kind
    reads the other as a different body.  (SimpleITK's ``DICOMOrient`` does this to an ITK
    image; here the volume is a numpy array with its ``Geometry``.)"""
    direction = geometry.direction
    runs_along = np.argmax(np.abs(direction), axis=0)  # the RAS axis each of i, j, k runs closest to
    if sorted(runs_along.tolist()) != [0, 1, 2]:
        raise MedSynthInputError("The image axes are too oblique (45 degrees) to tell which one runs left-right, "
                                 "front-back and up-down; resample the image to an axis-aligned grid first.")
    source = [int(np.flatnonzero(runs_along == n)[0]) for n in range(3)]  # new axis n (i, j, k) <- old axis
    flip = [np.sign(direction[n, source[n]]) != STANDARD_AXES_RAS[n, n] for n in range(3)]
    shape_ijk = np.asarray(array.shape[::-1])
    corner_ijk = np.zeros(3)  # the old index of the new voxel (0, 0, 0)
    for n in range(3):
        if flip[n]:
            corner_ijk[source[n]] = shape_ijk[source[n]] - 1
    moved = np.transpose(array, [2 - source[2 - p] for p in range(3)])  # array axes are (k, j, i)
    moved = np.flip(moved, axis=[2 - n for n in range(3) if flip[n]]) if any(flip) else moved
    columns = np.stack([direction[:, source[n]] * (-1.0 if flip[n] else 1.0) for n in range(3)], axis=1)
    return moved, Geometry(geometry.kji_to_ras(corner_ijk[::-1]), geometry.spacing[source], columns)


def in_standard_order(geometry: Geometry, *arrays: np.ndarray | None) -> tuple[Geometry, list[np.ndarray | None]]:
    """``standard_order`` of arrays on one grid (an image and its masks; the first must be
    given), each made contiguous; None stays None.  Returns the new geometry and the arrays in
    the order given."""
    ordered = [None if a is None else standard_order(a, geometry) for a in arrays]
    return ordered[0][1], [None if o is None else np.ascontiguousarray(o[0]) for o in ordered]


def check_volume(array: np.ndarray, name: str) -> None:
    """Raise ``MedSynthInputError`` unless ``array`` is a 3-D scalar volume."""
    if array.ndim != 3:
        kind = {2: "a 2-D image", 4: "a 4-D (multi-component or time-series) volume"}.get(
            array.ndim, f"a {array.ndim}-D array"
        )
        raise MedSynthInputError(
            f"{name} is {kind} with shape {tuple(array.shape)}; lesion synthesis needs a 3-D "
            "scalar volume. Extract one 3-D frame or component (or stack 2-D slices) first."
        )
    if min(array.shape) < 1:
        raise MedSynthInputError(f"{name} is empty (shape {tuple(array.shape)}).")


def check_same_grid(image: np.ndarray, image_geometry: Geometry, mask: np.ndarray,
                    mask_geometry: Geometry | None, mask_name: str = "organ mask") -> None:
    """Raise unless ``mask`` lies on exactly the image's voxel grid."""
    if mask.shape != image.shape:
        raise MedSynthInputError(
            f"The {mask_name} has {mask.shape[::-1]} voxels (i, j, k) but the image has "
            f"{image.shape[::-1]}; resample the mask onto the image grid "
            "(e.g. Slicer's 'Resample Scalar/Vector/DWI Volume' with nearest neighbour)."
        )
    if mask_geometry is not None and not image_geometry.is_close(mask_geometry):
        differences = []
        if not np.allclose(mask_geometry.origin, image_geometry.origin, atol=1e-3):
            differences.append(f"origin {np.round(mask_geometry.origin, 3).tolist()} vs "
                               f"{np.round(image_geometry.origin, 3).tolist()} mm")
        if not np.allclose(mask_geometry.spacing, image_geometry.spacing, rtol=1e-4, atol=1e-6):
            differences.append(f"spacing {np.round(mask_geometry.spacing, 4).tolist()} vs "
                               f"{np.round(image_geometry.spacing, 4).tolist()} mm")
        if not np.allclose(mask_geometry.direction, image_geometry.direction, atol=1e-4):
            differences.append(f"direction (axes in RAS) {np.round(mask_geometry.direction, 3).tolist()} vs "
                               f"{np.round(image_geometry.direction, 3).tolist()}")
        raise MedSynthInputError(
            f"The {mask_name}'s geometry differs from the image's: {'; '.join(differences)}. "
            "Resample the mask onto the image grid (nearest neighbour) before synthesis."
        )


def count_nonfinite(values: np.ndarray) -> int:
    """NaN and infinite values in a float array, in one reduction pass when there are none: a
    sum keeps NaN and infinity (inf - inf is NaN) and needs no boolean volume.  It runs in the
    array's own precision (float32 at least; twice as fast as a float64 sum of float32 volumes):
    only whether the sum is finite counts, and where finite values overflow it (sums near the
    type's range) each value is looked at."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(values.ravel(), dtype=np.promote_types(values.dtype, np.float32))):
            return 0
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def check_finite(array: np.ndarray, name: str) -> None:
    """Raise unless every value of a floating-point ``array`` is finite (integers always are)."""
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating):
        bad = count_nonfinite(array.view(array.real.dtype) if np.iscomplexobj(array) else array)
        if bad:
            raise MedSynthInputError(
                f"{name} has {bad} NaN or infinite value(s); replace them (e.g. with the background value) first."
            )


def bounding_slices(mask: np.ndarray, margin: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Slices of the smallest block holding every True voxel of ``mask``, grown by ``margin``
    voxels per axis and clipped to the array; None when ``mask`` is empty.

    The slices (first axis) that hold a voxel are found in one pass over the mask, and the other
    two axes from those slices only: 3.3 against 12.6 ms for the liver on a 1 mm CT (37 M
    voxels, uint8), where one pass per axis read the whole mask three times."""
    rows = mask.reshape(mask.shape[0], -1) if mask.flags.c_contiguous else mask
    first = np.flatnonzero(rows.any(axis=tuple(range(1, rows.ndim))))
    if first.size == 0:
        return None
    plane = mask[first[0]:first[-1] + 1].any(axis=0)
    hits = [first, np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))]
    return tuple(slice(max(int(h[0]) - int(m), 0), min(int(h[-1]) + int(m) + 1, n))
                 for h, m, n in zip(hits, margin, mask.shape))
