"""PNG previews: axial slices through lesions, organ outlined green and lesions red."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from MedSynthCommonLib.geometry import Geometry
from MedSynthCommonLib.imageio import write_png


def _display_orientation(slice_2d: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Flip an axial ``[j, i]`` slice so that patient right is on the left, anterior on top."""
    axes = geometry.direction  # columns: RAS of i, j
    if axes[0, 0] > 0:  # i points to patient right: flip so that right is on the left
        slice_2d = slice_2d[:, ::-1]
    if axes[1, 1] > 0:  # j points anterior: flip so that anterior is on top
        slice_2d = slice_2d[::-1, :]
    return slice_2d


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def render_slices(image: np.ndarray, organ: np.ndarray, lesions: np.ndarray, geometry: Geometry,
                  slices_k: list[int], window: tuple[float, float], min_size_px: int = 360) -> np.ndarray:
    """RGB uint8 panel (slices side by side) with outlines; ``window`` is (level, width).

    Outlines are drawn on the voxel grid, then the panel is enlarged to at least
    ``min_size_px`` pixels high."""
    level, width = window
    panels = []
    for k in slices_k:
        grey = np.clip((image[k].astype(np.float32) - (level - width / 2)) / width, 0, 1) * 255
        rgb = np.repeat(grey[..., np.newaxis], 3, axis=2).astype(np.uint8)
        rgb[_outline(organ[k] > 0)] = (0, 200, 0)
        rgb[_outline(lesions[k] > 0)] = (255, 40, 40)
        panels.append(_display_orientation(rgb, geometry))
    # resample rows so that pixels are square in mm
    aspect = geometry.spacing[1] / geometry.spacing[0]
    panel = np.concatenate(panels, axis=1)
    if abs(aspect - 1.0) > 0.01:
        rows = np.clip(np.round(np.arange(int(panel.shape[0] * aspect)) / aspect).astype(int), 0, panel.shape[0] - 1)
        panel = panel[rows]
    # coarse grids (e.g. 3 mm) give tiny pictures: enlarge by whole pixels, voxels stay visible
    factor = max(1, int(np.ceil(min_size_px / min(panel.shape[:2]))))
    return np.repeat(np.repeat(panel, factor, axis=0), factor, axis=1)


def lesion_preview(path: str | Path, image: np.ndarray, organ: np.ndarray, lesions: np.ndarray,
                   geometry: Geometry, records, window: tuple[float, float] | None, units: str = "HU",
                   max_panels: int = 4) -> Path:
    """Write a PNG with one axial slice through the centre of each of the first lesions."""
    slices = sorted({int(r.centre_ijk[2]) for r in records})[:max_panels] or [image.shape[0] // 2]
    if window is None:
        low, high = np.percentile(image[slices], [1.0, 99.5])
        window = ((low + high) / 2.0, max(high - low, 1e-6))
    return write_png(path, render_slices(image, organ, lesions, geometry, slices, window))


def window_for(modality: str, organ_median: float) -> tuple[float, float] | None:
    """CT: soft-tissue window W400 centred on the organ.  MR has no absolute scale: None,
    meaning the 1st-99.5th percentile of the slices shown."""
    if modality == "CT":
        return organ_median, 400.0
    return None
