"""Local boxes around a lesion: every operation works on one of these, never on the volume."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned block of voxels around a centre, clipped to the volume.

    Attributes:
        slices: (k, j, i) slices into the volume.
        offsets_mm: three open-grid arrays (k, j, i) of each voxel's offset (mm) from the
            centre along the array axes, broadcastable to the box's shape.
        clipped: True when the wanted box reached outside the volume.
    """

    slices: tuple[slice, slice, slice]
    offsets_mm: tuple[np.ndarray, np.ndarray, np.ndarray]
    clipped: bool

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in self.slices)

    @property
    def start(self) -> np.ndarray:
        return np.array([s.start for s in self.slices])

    def crop(self, local: tuple[slice, slice, slice]) -> "Box":
        """The part of this box given by ``local`` slices (relative to the box)."""
        slices = tuple(slice(s.start + l.start, s.start + l.stop) for s, l in zip(self.slices, local))
        offsets = tuple(o[tuple(local[axis] if a == axis else slice(None) for a in range(3))]
                        for axis, o in enumerate(self.offsets_mm))
        return Box(slices, offsets, self.clipped)

    def local_slices_within(self, half_extent_mm: float, spacing_kji: np.ndarray) -> tuple[slice, slice, slice]:
        """Slices (relative to the box) of the voxels within ``half_extent_mm`` of the centre
        along each axis."""
        out = []
        for axis in range(3):
            offsets = self.offsets_mm[axis].reshape(-1)
            inside = np.flatnonzero(np.abs(offsets) <= half_extent_mm + 0.5 * spacing_kji[axis])
            out.append(slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0))
        return tuple(out)

    def squared_distance_mm2(self) -> np.ndarray:
        """Squared distance (mm^2) of every voxel of the box from the centre."""
        dk, dj, di = self.offsets_mm
        return dk * dk + dj * dj + di * di


def box_slices(centre_kji, half_extent_mm: float, spacing_kji,
               volume_shape: tuple[int, int, int]) -> tuple[tuple[slice, slice, slice], bool]:
    """The (k, j, i) slices of the voxels within ``half_extent_mm`` of ``centre_kji`` along each
    axis, clipped to the volume, and whether they were clipped.  Plain Python on three numbers
    (2.2 us: placement asks for thousands of boxes in one search)."""
    slices, clipped = [], False
    for c, s, n in zip(centre_kji, spacing_kji, volume_shape):
        half = math.ceil(half_extent_mm / float(s))
        lo_wanted = math.floor(float(c)) - half
        hi_wanted = lo_wanted + 2 * half + 1
        lo, hi = max(lo_wanted, 0), min(hi_wanted, int(n))
        clipped = clipped or lo != lo_wanted or hi != hi_wanted
        slices.append(slice(lo, hi))
    return tuple(slices), clipped


def box_around(centre_kji: np.ndarray, half_extent_mm: float, spacing_kji: np.ndarray,
               volume_shape: tuple[int, int, int]) -> Box:
    """The box of voxels within ``half_extent_mm`` of ``centre_kji`` along each axis."""
    centre = np.asarray(centre_kji, dtype=float)
    slices, clipped = box_slices(centre, half_extent_mm, spacing_kji, volume_shape)
    offsets = tuple(
        ((np.arange(slices[axis].start, slices[axis].stop) - centre[axis]) * spacing_kji[axis]).astype(
            np.float32).reshape([-1 if a == axis else 1 for a in range(3)])
        for axis in range(3)
    )
    return Box(slices, offsets, clipped)


class PatchedMask:
    """A label volume that is an input mask plus local changes, without copying the input.

    Lesions change the organ only near themselves (the mass effect moves its border), so the
    changes live in patches: ``writable(slices)`` returns a private array for a box (patches that
    overlap it are merged into one), ``read(slices)`` the mask as changed so far, and ``full()``
    the whole changed volume (made once, when asked).  The input is never written.
    """

    def __init__(self, base: np.ndarray):
        self.base = base
        self.shape = base.shape
        self.dtype = base.dtype
        self._patches: list[tuple[tuple[slice, ...], np.ndarray]] = []
        self._full: np.ndarray | None = None

    @staticmethod
    def _overlaps(a, b) -> bool:
        return all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b))

    @staticmethod
    def _view_within(overlapping: list, slices: tuple[slice, ...]) -> np.ndarray | None:
        """A view of the one patch that holds the whole box ``slices``, given the patches that
        overlap it; None when the box is not all in one patch."""
        if len(overlapping) != 1:
            return None
        where, patch = overlapping[0]
        if not all(s.start >= w.start and s.stop <= w.stop for s, w in zip(slices, where)):
            return None
        return patch[tuple(slice(s.start - w.start, s.stop - w.start) for s, w in zip(slices, where))]

    def writable(self, slices: tuple[slice, ...]) -> np.ndarray:
        """A writable array of the box ``slices`` (a view into one private patch)."""
        if self._full is not None:
            return self._full[slices]
        merged = [p for p in self._patches if self._overlaps(p[0], slices)]
        view = self._view_within(merged, slices)
        if view is not None:
            return view
        union = slices
        while True:  # the union of overlapping patches may reach others: grow it until none is left out
            union = tuple(slice(min([u.start] + [p[0][a].start for p in merged]), max([u.stop] + [p[0][a].stop for p in merged]))
                          for a, u in enumerate(union))
            grown = [p for p in self._patches if self._overlaps(p[0], union)]
            if len(grown) == len(merged):
                break
            merged = grown
        patch = self.base[union].copy()
        for where, old in merged:
            patch[tuple(slice(w.start - u.start, w.stop - u.start) for w, u in zip(where, union))] = old
        self._patches = [p for p in self._patches if all(p is not m for m in merged)] + [(union, patch)]
        return patch[tuple(slice(s.start - u.start, s.stop - u.start) for s, u in zip(slices, union))]

    def changed(self, slices: tuple[slice, ...]) -> bool:
        """Whether the box ``slices`` may differ from the input mask (a patch overlaps it)."""
        return self._full is not None or any(self._overlaps(p[0], slices) for p in self._patches)

    def at(self, points: tuple[np.ndarray, ...], within: tuple[slice, ...] | None = None) -> np.ndarray:
        """The values at voxels ``points`` (index arrays) as changed so far, read without merging
        patches (14 us for a probe of 256 voxels beside one patch, where ``read`` of their box may
        copy patches together).
        ``within``: a box that holds every point (patches outside it are skipped at once)."""
        if self._full is not None:
            return self._full[points]
        values = self.base[points]
        for where, patch in self._patches:  # (patches never overlap: writable merges them)
            if within is not None and not self._overlaps(where, within):
                continue
            hit = np.logical_and.reduce([(p >= w.start) & (p < w.stop) for p, w in zip(points, where)])
            if hit.any():
                values[hit] = patch[tuple(p[hit] - w.start for p, w in zip(points, where))]
        return values

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        """The box ``slices`` as changed so far (do not write into it)."""
        if self._full is not None:
            return self._full[slices]
        touched = [p for p in self._patches if self._overlaps(p[0], slices)]
        if not touched:
            return self.base[slices]
        view = self._view_within(touched, slices)
        if view is not None:
            return view
        # a copy with the patches' parts pasted, the patches left as they are (merging them, as a
        # write must, would make ever larger patches of the boxes placement reads around them)
        out = self.base[slices].copy()
        for where, patch in touched:
            common = [slice(max(s.start, w.start), min(s.stop, w.stop)) for s, w in zip(slices, where)]
            out[tuple(slice(c.start - s.start, c.stop - s.start) for c, s in zip(common, slices))] = \
                patch[tuple(slice(c.start - w.start, c.stop - w.start) for c, w in zip(common, where))]
        return out

    def full(self) -> np.ndarray:
        """The whole volume with every change (the input copied once, the patches pasted)."""
        if self._full is None:
            full = self.base.copy()
            for where, patch in self._patches:
                full[where] = patch
            self._full, self._patches = full, []
        return self._full
