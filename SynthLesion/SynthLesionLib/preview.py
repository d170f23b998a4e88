"""PNG previews: axial slices through lesions, organ outlined green and lesions red."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from .geometry import Geometry
from .imageio import _atomic_target, _sitk


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
                  slices_k: list[int], window: tuple[float, float]) -> np.ndarray:
    """RGB uint8 panel (slices side by side) with outlines; ``window`` is (level, width)."""
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
    return panel


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    sitk = _sitk()
    path = Path(path)
    temporary = _atomic_target(path)
    try:
        sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(rgb), isVector=True), str(temporary))
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def lesion_preview(path: str | Path, image: np.ndarray, organ: np.ndarray, lesions: np.ndarray,
                   geometry: Geometry, records, window: tuple[float, float], max_panels: int = 4) -> Path:
    """Write a PNG with one axial slice through the centre of each of the first lesions."""
    slices = sorted({int(r.centre_ijk[2]) for r in records})[:max_panels] or [image.shape[0] // 2]
    return write_png(path, render_slices(image, organ, lesions, geometry, slices, window))


def window_for(modality: str, organ_median: float, organ_sd: float) -> tuple[float, float]:
    """A soft-tissue window: CT W400 centred on the organ, MR +-6 sd around the organ."""
    if modality == "CT":
        return organ_median, 400.0
    return organ_median, max(12.0 * organ_sd, 1.0)
