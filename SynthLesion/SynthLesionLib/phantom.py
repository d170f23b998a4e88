"""Synthetic test anatomy: CT and MR volumes with organs, vessels and noise.

Used by the demo, the tests and the benchmark so that none of them needs real data.  The
phantoms are anisotropic and can carry any direction matrix, so that geometry handling is
exercised; anatomy is laid out along the array axes (k inferior->superior, j anterior->
posterior, i right->left, as in an LPS-stored axial CT) whatever the header says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from MedSynthCommonLib.geometry import Geometry

#: organ label values in ``Phantom.organs``
ORGAN_LABELS = {"liver": 1, "right kidney": 2, "left kidney": 3, "pancreas": 4, "spleen": 5, "brain": 6}

# tissue -> (CT HU, MR T1-like signal)
_TISSUES = {
    "air": (-1000.0, 0.0), "fat": (-100.0, 900.0), "muscle": (45.0, 350.0), "liver": (100.0, 500.0),
    "kidney": (150.0, 420.0), "pancreas": (95.0, 480.0), "spleen": (110.0, 380.0), "bone": (650.0, 150.0),
    "vessel": (190.0, 120.0), "csf": (8.0, 80.0), "grey matter": (38.0, 450.0), "white matter": (28.0, 620.0),
}


@dataclass
class Phantom:
    """A synthetic volume: ``image[k, j, i]``, its organ label map and grid."""

    image: np.ndarray
    organs: np.ndarray  # uint8, values from ORGAN_LABELS
    vessels: np.ndarray  # bool, the vessels drawn inside organs
    geometry: Geometry
    modality: str

    def organ_mask(self, name: str) -> np.ndarray:
        return self.organs == ORGAN_LABELS[name]


def _grid_mm(shape, spacing_kji):
    """Open grids of voxel positions (mm) relative to the volume centre, float32."""
    return [((np.arange(n) - (n - 1) / 2.0) * s).astype(np.float32).reshape([-1 if a == ax else 1 for a in range(3)])
            for ax, (n, s) in enumerate(zip(shape, spacing_kji))]


def _ellipsoid(grid, centre, axes):
    return sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, axes)) <= 1.0


def _tube(grid, start, end, radius):
    """Voxels within ``radius`` mm of the segment start-end (mm, k j i)."""
    start, end = np.asarray(start, np.float32), np.asarray(end, np.float32)
    d = end - start
    t = sum((g - s) * dd for g, s, dd in zip(grid, start, d)) / np.float32(d @ d)
    t = np.clip(t, 0.0, 1.0)
    dist2 = sum((g - s - t * dd) ** 2 for g, s, dd in zip(grid, start, d))
    return dist2 <= radius * radius


def _tissue_volume(shape, spacing_kji, kind, rng):
    grid = _grid_mm(shape, spacing_kji)
    extent = np.array(shape) * spacing_kji
    tissue = np.zeros(shape, dtype=np.uint8)
    organs = np.zeros(shape, dtype=np.uint8)
    names = list(_TISSUES)

    def paint(mask, name, organ=None):
        tissue[mask] = names.index(name)
        if organ is not None:
            organs[mask] = ORGAN_LABELS[organ]

    if kind == "brain":
        head = (min(extent[1], extent[2]) * 0.45, min(extent[1], extent[2]) * 0.38)
        head_axes = (extent[0] * 0.6, head[0], head[1])
        paint(_ellipsoid(grid, (0, 0, 0), head_axes), "fat")
        paint(_ellipsoid(grid, (0, 0, 0), [a - 5 for a in head_axes]), "bone")
        paint(_ellipsoid(grid, (0, 0, 0), [a - 10 for a in head_axes]), "csf")
        brain_axes = [a - 13 for a in head_axes]
        brain = _ellipsoid(grid, (0, 0, 0), brain_axes)
        paint(brain, "grey matter", "brain")
        paint(_ellipsoid(grid, (0, 0, 0), [a - 4 for a in brain_axes]) & brain, "white matter")
        ventricles = _ellipsoid(grid, (0, 0, 0), (brain_axes[0] * 0.25, brain_axes[1] * 0.3, brain_axes[2] * 0.12))
        paint(ventricles, "csf")
        return tissue, organs, np.zeros(shape, bool)

    # trunk: body, muscle wall, spine, aorta, abdominal organs with vessels in the liver
    ax_j, ax_i = extent[1] * 0.42, extent[2] * 0.46
    paint(_ellipsoid(grid, (0, 0, 0), (1e6, ax_j, ax_i)), "fat")
    paint(_ellipsoid(grid, (0, 0, 0), (1e6, ax_j - 12, ax_i - 12)), "muscle")
    paint(_ellipsoid(grid, (0, 0, 0), (1e6, ax_j - 20, ax_i - 20)), "fat")
    paint(_ellipsoid(grid, (0, ax_j * 0.62, 0), (1e6, 18, 20)), "bone")
    paint(_ellipsoid(grid, (0, ax_j * 0.3, 8), (1e6, 11, 11)), "vessel")
    liver_c = np.array([extent[0] * 0.1, -ax_j * 0.05, -ax_i * 0.38])
    liver_axes = np.array([extent[0] * 0.38, ax_j * 0.68, ax_i * 0.5])
    liver = _ellipsoid(grid, liver_c, liver_axes) | _ellipsoid(
        grid, liver_c + [extent[0] * 0.08, -ax_j * 0.1, ax_i * 0.35], liver_axes * [0.55, 0.5, 0.45])
    paint(liver, "liver", "liver")
    vessels = np.zeros(shape, bool)
    hilum = liver_c + [0.0, liver_axes[1] * 0.1, liver_axes[2] * 0.35]
    for _ in range(7):
        direction = rng.normal(size=3)
        direction[0] *= 0.6
        direction /= np.linalg.norm(direction)
        end = hilum + direction * liver_axes * rng.uniform(0.6, 0.95)
        vessels |= _tube(grid, hilum, end, rng.uniform(2.0, 4.0)) & liver
    paint(vessels, "vessel")
    for side, organ in ((-1, "right kidney"), (1, "left kidney")):
        kidney = _ellipsoid(grid, (-extent[0] * 0.12, ax_j * 0.4, side * ax_i * 0.38), (45, 25, 22))
        paint(kidney, "kidney", organ)
    paint(_ellipsoid(grid, (-extent[0] * 0.02, ax_j * 0.05, ax_i * 0.1), (14, 11, ax_i * 0.4)), "pancreas", "pancreas")
    paint(_ellipsoid(grid, (extent[0] * 0.1, ax_j * 0.25, ax_i * 0.62), (50, 30, 22)), "spleen", "spleen")
    return tissue, organs, vessels


def make_phantom(modality: str = "CT", kind: str = "abdomen", shape=(48, 128, 128),
                 spacing=(2.0, 2.0, 4.0), direction=None, origin=None, noise_sd: float | None = None,
                 seed: int = 0) -> Phantom:
    """Build a phantom.

    Args:
        modality: "CT" (int16 HU) or "MR" (uint16, positive, Rician-like noise).
        kind: "abdomen" (liver, kidneys, pancreas, spleen, liver vessels) or "brain".
        shape: array shape (k, j, i).
        spacing: voxel size (mm) in (i, j, k) order.
        direction: 3x3 RAS direction (columns i, j, k); default LPS-stored axial.
        origin: RAS origin (mm); default centres the volume near (0, 0, 0).
        noise_sd: noise standard deviation (default 12 HU for CT, 25 for MR).
        seed: random seed of vessels and noise.
    """
    rng = np.random.default_rng(seed)
    spacing = np.asarray(spacing, dtype=float)
    spacing_kji = spacing[::-1]
    tissue, organs, vessels = _tissue_volume(tuple(shape), spacing_kji, kind, rng)
    column = 0 if modality == "CT" else 1
    lut = np.array([values[column] for values in _TISSUES.values()], dtype=np.float32)
    image = lut[tissue]
    sd = noise_sd if noise_sd is not None else (12.0 if modality == "CT" else 25.0)
    if modality == "CT":
        image += rng.normal(0.0, sd, size=image.shape).astype(np.float32)
        image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    else:
        real = image + rng.normal(0.0, sd, size=image.shape).astype(np.float32)
        imag = rng.normal(0.0, sd, size=image.shape).astype(np.float32)
        image = np.rint(np.hypot(real, imag)).astype(np.uint16)
    if direction is None:
        direction = np.diag([-1.0, -1.0, 1.0])  # i -> patient left, j -> posterior (LPS storage)
    direction = np.asarray(direction, dtype=float)
    if origin is None:
        origin = -(direction * spacing) @ ((np.array(shape[::-1]) - 1) / 2.0)
    return Phantom(image, organs, vessels, Geometry(origin, spacing, direction), modality)


def make_ct_phantom(**kwargs) -> Phantom:
    """Abdominal CT phantom (int16 HU); see ``make_phantom`` for the options."""
    return make_phantom(modality="CT", kind="abdomen", **kwargs)


def make_mr_phantom(kind: str = "brain", **kwargs) -> Phantom:
    """MR phantom (uint16), a head with a brain by default; see ``make_phantom``."""
    return make_phantom(modality="MR", kind=kind, **kwargs)
