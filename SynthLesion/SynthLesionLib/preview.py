"""PNG previews that people can read: for each lesion, the whole axial slice (organ outlined
green, a box around the lesion) and a zoomed before / after pair with the lesion outlined,
its number, size and contrast, the slice index and a scale bar in mm.  CT is shown in a
soft-tissue window in HU; MR in a percentile window, with contrast in organ SDs.

Drawn with matplotlib (Agg, no screen), which the command line installs; Slicer shows results in
its own views and never calls this.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from MedSynthCommonLib.geometry import Geometry
from MedSynthCommonLib.storage import atomic_write

#: lesions shown in one preview (each gets a row)
MAX_LESIONS = 4


def _display_orientation(slice_2d: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Flip an axial ``[j, i]`` slice so that patient right is on the left, anterior on top."""
    axes = geometry.direction  # columns: RAS of i, j
    if axes[0, 0] > 0:  # i points to patient right: flip so that right is on the left
        slice_2d = slice_2d[:, ::-1]
    if axes[1, 1] > 0:  # j points anterior: flip so that anterior is on top
        slice_2d = slice_2d[::-1, :]
    return slice_2d


def window_for(modality: str, organ_median: float) -> tuple[float, float] | None:
    """CT: soft-tissue window W400 centred on the organ.  MR has no absolute scale: None,
    meaning the 1st-99.5th percentile of the slices shown."""
    if modality == "CT":
        return organ_median, 400.0
    return None


def _scale_bar_mm(field_mm: float) -> float:
    for length in (100, 50, 20, 10, 5, 2, 1):
        if length <= field_mm / 3:
            return float(length)
    return 0.5


def lesion_preview(path: str | Path, image: np.ndarray, organ: np.ndarray, lesions: np.ndarray,
                   geometry: Geometry, records, window: tuple[float, float] | None, units: str = "HU",
                   before: np.ndarray | None = None, organ_sd: float = 1.0, max_lesions: int = MAX_LESIONS) -> Path:
    """Write the preview PNG: one row per lesion (the first ``max_lesions``): whole slice,
    zoomed before (when ``before`` is given) and zoomed after.  ``units``: "HU" (CT) or "sd"
    (MR: contrast shown in multiples of ``organ_sd``, the organ's robust SD)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    shown = list(records)[:max_lesions]
    slices = [int(r.centre_ijk[2]) for r in shown] or [image.shape[0] // 2]
    if window is None:
        low, high = np.percentile(image[sorted(set(slices))], [1.0, 99.5])
        window = ((low + high) / 2.0, max(high - low, 1e-6))
    level, width = window
    vmin, vmax = level - width / 2, level + width / 2
    unit_text = "HU" if units == "HU" else "organ SD"
    aspect = geometry.spacing[1] / geometry.spacing[0]  # row height / column width in mm
    columns = 3 if before is not None else 2
    rows = max(len(shown), 1)
    figure = Figure(figsize=(3.2 * columns, 3.3 * rows), dpi=110)
    for row, k in enumerate(slices):
        record = shown[row] if shown else None
        def panel(volume, column, title):
            axes = figure.add_subplot(rows, columns, row * columns + column)
            axes.imshow(_display_orientation(volume[k], geometry), cmap="gray", vmin=vmin, vmax=vmax,
                        aspect=aspect, interpolation="nearest")
            axes.set_title(title, fontsize=8)
            axes.set_xticks([])
            axes.set_yticks([])
            return axes

        def outline(axes, mask, colour):
            shown_mask = _display_orientation(mask[k] > 0, geometry).astype(float)
            if shown_mask.any():
                axes.contour(shown_mask, levels=[0.5], colors=[colour], linewidths=0.8)

        overview = panel(image, 1, f"slice k = {k} of {image.shape[0]}")
        outline(overview, organ, "lime")
        if record is None:
            continue
        mask_shown = _display_orientation(lesions[k] == record.index, geometry)
        rows_idx, cols_idx = np.nonzero(mask_shown) if mask_shown.any() else (np.array([image.shape[1] // 2]),
                                                                            np.array([image.shape[2] // 2]))
        half = max(int(np.ceil(max(np.ptp(rows_idx), np.ptp(cols_idx)) * 1.5)), 12)
        centre = (int(np.mean(rows_idx)), int(np.mean(cols_idx)))
        box = (max(centre[0] - half, 0), min(centre[0] + half, image.shape[1]),
               max(centre[1] - half, 0), min(centre[1] + half, image.shape[2]))
        overview.add_patch(Rectangle((box[2] - 0.5, box[0] - 0.5), box[3] - box[2], box[1] - box[0],
                                     fill=False, edgecolor="yellow", linewidth=0.8))
        overview.text(box[2], box[0] - 2, str(record.index), color="yellow", fontsize=8, va="bottom")
        zoom_columns = ([(before, "before")] if before is not None else []) + [(image, "after")]
        for offset, (volume, label) in enumerate(zoom_columns, start=2):
            axes = panel(volume, offset, f"lesion {record.index} {label}")
            axes.set_xlim(box[2] - 0.5, box[3] - 0.5)
            axes.set_ylim(box[1] - 0.5, box[0] - 0.5)
            if label == "after":
                outline(axes, lesions == record.index, "red")
            bar_mm = _scale_bar_mm((box[3] - box[2]) * geometry.spacing[0])
            bar_px = bar_mm / geometry.spacing[0]
            y = box[1] - 0.08 * (box[1] - box[0])
            axes.plot([box[2] + 2, box[2] + 2 + bar_px], [y, y], color="white", linewidth=2)
            axes.text(box[2] + 2, y - 0.03 * (box[1] - box[0]), f"{bar_mm:g} mm", color="white", fontsize=7)
        contrast = f"{record.contrast_measured:+.0f} HU" if units == "HU" else \
            f"{record.contrast_measured / max(organ_sd, 1e-9):+.1f} {unit_text}"
        figure.axes[-1].set_xlabel(f"{record.size_class}, {record.lesion_type}, "
                                   f"{record.equivalent_diameter_mm:.1f} mm, contrast {contrast}", fontsize=7)
    figure.suptitle(f"{len(records)} lesion(s); window L{level:.0f} W{width:.0f} "
                    f"{'HU' if units == 'HU' else '(MR signal, a.u.)'}; organ green, lesions red", fontsize=8)
    figure.tight_layout()

    def write(partial: Path) -> None:
        figure.savefig(partial, format="png")

    from MedSynthCommonLib.integrity import check_image_file

    return atomic_write(Path(path), write, check_image_file)
