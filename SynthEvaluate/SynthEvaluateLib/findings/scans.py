"""A CT scan as the findings model meets it (``HealthyScan``: image, organ map, geometry, in one
storage order) and the part of it the model reads: a box of one size in mm around its organs
(``organ_bounds``, ``view_box``, ``organ_box``, ``view_extent_mm``), cut with the scan's edge
voxels past its end (``HealthyScan.cut``, ``cut_array``), optionally its organs only
(``organs_only``), what a trained model reads of a scan (``model_box``, ``model_view``,
``box_coverage``) and its evidence back on the whole scan (``evidence_on_scan``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry, in_standard_order

from .anatomy import locate_in_anatomy, organ_words


@dataclass
class HealthyScan:
    """A scan findings are made in, judged on or looked for in.  Stored in the standard order
    (``geometry.standard_order``: i toward the left, j posterior, k superior) whatever order
    it came in, so that a model sees every scan's anatomy the same way round."""

    image: np.ndarray  # [k, j, i] HU
    organs: np.ndarray | None  # [k, j, i] organ label map
    organ_names: dict[int, str]  # label value -> name
    geometry: Geometry

    def __post_init__(self) -> None:
        self.geometry, (self.image, self.organs) = in_standard_order(self.geometry, self.image, self.organs)

    def organ_labels(self) -> dict[str, int]:
        """Label value of each organ the map names (names as ``organ_words`` spells them)."""
        return {organ_words(name): value for value, name in self.organ_names.items()}

    def cut(self, box: tuple[slice, slice, slice]) -> "HealthyScan":
        """The scan's voxels in ``box`` (array slices, which may reach outside the scan), each
        where it was in RAS.  Outside the scan the image goes on as its edge voxels (the body
        goes on past a scan's last slice; air stays air) and the organ map as no organ."""
        g = self.geometry
        image = cut_array(self.image, box, outside="edge")
        organs = None if self.organs is None else cut_array(self.organs, box)
        start = np.array([s.start for s in box], float)
        return HealthyScan(image, organs, self.organ_names, Geometry(g.kji_to_ras(start), g.spacing, g.direction))


def cut_array(array: np.ndarray, box: tuple[slice, ...], outside: str = "zero") -> np.ndarray:
    """``array[box]`` for a box that may reach past the array: there it goes on as its edge
    voxels (``outside="edge"``) or as zeros."""
    inner, local = inside(box, np.shape(array))
    pad = [(part.start, s.stop - s.start - part.stop) for part, s in zip(local, box)]
    part = np.asarray(array)[inner]
    if not any(low or high for low, high in pad):
        return part
    return np.pad(part, pad, mode="edge") if outside == "edge" else np.pad(part, pad)


def inside(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The part of ``box`` that lies in an array of ``shape``: (its slices in the array, the
    same voxels' slices in the box)."""
    inner = tuple(slice(max(s.start, 0), min(s.stop, n)) for s, n in zip(box, shape))
    return inner, tuple(slice(i.start - s.start, i.stop - s.start) for i, s in zip(inner, box))


def organ_voxels(scan: HealthyScan, organs: list[str]) -> np.ndarray | None:
    """Where ``organs`` (names, as in ``scan.organ_names``) lie in the scan (bool [k, j, i]); None
    for a scan without an organ map or whose map names none of them."""
    labels = scan.organ_labels()
    values = [labels[o] for o in {organ_words(o) for o in organs} if o in labels]
    return np.isin(scan.organs, values) if scan.organs is not None and values else None


def organ_bounds(scan: HealthyScan, organs: list[str], margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) voxel indices [k, j, i] of the box around ``organs`` (names, as in
    ``scan.organ_names``) with ``margin_mm`` on every side, not clipped to the scan.  A scan
    without any of those organs is refused: a model that reads the box would read the whole scan
    as another body."""
    from MedSynthCommonLib.geometry import bounding_slices

    inside_organs = organ_voxels(scan, organs)
    tight = None if inside_organs is None else bounding_slices(inside_organs, np.zeros(3, int))
    if tight is None:
        raise MedSynthInputError(
            f"The model reads the region around its organs ({', '.join(organs)}); "
            + ("this scan has no organ map" if scan.organs is None else "this scan's organ map holds none of them")
            + ": give the scan an organ_mask with those organs (e.g. TotalSegmentator's) and their --organ-names, "
              "or train the model with --whole-scan.")
    margin = np.ceil(float(margin_mm) / scan.geometry.spacing_kji).astype(int)
    return np.array([t.start for t in tight]) - margin, np.array([t.stop for t in tight]) + margin


def view_box(bounds: tuple[np.ndarray, np.ndarray], scan: HealthyScan,
             view_mm: tuple[float, float, float] | None = None) -> tuple[slice, slice, slice]:
    """Array slices of the box a model reads, from the organs' ``organ_bounds``.

    Without ``view_mm`` the box is the bounds clipped to the scan.  With it (mm per axis
    [k, j, i], from ``view_extent_mm``) the box is that size, centred on the organs, and may reach
    past the scan (``HealthyScan.cut`` goes on with the edge voxels there): every scan is then
    shown at one scale whatever its organs' size or framing, as ``Spacingd`` to one spacing would.
    Organs larger than the view get their own box (smaller on the model's input) rather than
    being cut."""
    low, high = bounds
    if view_mm is None:
        low, high = np.maximum(low, 0), np.minimum(high, scan.image.shape)
    else:
        size = np.maximum(np.round(np.asarray(view_mm, float) / scan.geometry.spacing_kji).astype(int), high - low)
        low = (low + high - size) // 2
        high = low + size
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def organ_box(scan: HealthyScan, organs: list[str], margin_mm: float | None,
              view_mm: tuple[float, float, float] | None = None) -> tuple[slice, slice, slice]:
    """``view_box`` of the scan's ``organ_bounds``; the whole scan when ``margin_mm`` is None."""
    if margin_mm is None:
        return tuple(slice(0, n) for n in scan.image.shape)
    return view_box(organ_bounds(scan, organs, margin_mm), scan, view_mm)


def view_extent_mm(scans: list[HealthyScan], bounds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, float]:
    """The box a model reads (mm per axis [k, j, i]): the largest of the ``scans``' organ boxes
    (``bounds``, their ``organ_bounds``; the model's training scans), so that each fits it whole."""
    extents = [(high - low) * scan.geometry.spacing_kji for scan, (low, high) in zip(scans, bounds)]
    return tuple(round(float(v), 3) for v in np.max(extents, axis=0))


def organs_only(scan: HealthyScan, organs: list[str], margin_mm: float, value: float) -> HealthyScan:
    """The scan with every voxel farther than ``margin_mm`` from ``organs`` (names, as in
    ``scan.organ_names``) set to ``value`` (image units): what a model that reads its organs only
    sees (``FindingsRecipe.organs_only_mm``).  Past a scan's end, where a cut scan's organ map is
    no organ, the image is ``value`` too.  The organ map is kept."""
    from scipy import ndimage

    inside_organs = organ_voxels(scan, organs)
    if inside_organs is None or not inside_organs.any():
        raise MedSynthInputError(f"The model reads its organs only ({', '.join(organs)}); this scan's organ map "
                                 "holds none of them: give the scan an organ_mask with those organs.")
    distance = ndimage.distance_transform_edt(~inside_organs, sampling=scan.geometry.spacing_kji)
    image = np.where(distance > float(margin_mm), np.float32(value), scan.image).astype(scan.image.dtype, copy=False)
    return HealthyScan(image, scan.organs, scan.organ_names, scan.geometry)


def organ_region(scan: HealthyScan, organs: list[str], margin_mm: float | None,
                 view_mm: tuple[float, float, float] | None = None) -> HealthyScan:
    """The scan cut to ``organ_box``; the scan itself when ``margin_mm`` is None."""
    return scan if margin_mm is None else scan.cut(organ_box(scan, organs, margin_mm, view_mm))


def model_box(classifier, scan: HealthyScan) -> tuple[slice, slice, slice] | None:
    """The box ``classifier`` reads of ``scan``: around the organs it was trained on, with the
    recipe's margin (``FindingsRecipe.organ_margin_mm``) and its view size (None in cards written
    before it existed: the box clipped to the scan); None for a whole-scan model."""
    if not classifier.organs or classifier.recipe.organ_margin_mm is None:
        return None
    return organ_box(scan, classifier.organs, classifier.recipe.organ_margin_mm, classifier.view_mm)


def box_coverage(box: tuple[slice, ...] | None, shape: tuple[int, ...]) -> float:
    """The share (0-1) of ``box`` that lies inside an array of ``shape`` (1 for None, the whole
    scan): below 1 where a scan ends within the box a model reads (a shorter field of view), which
    the model saw in training only at the training scans' own ends."""
    if box is None:
        return 1.0
    inner, _ = inside(box, shape)
    return float(np.prod([i.stop - i.start for i in inner]) / np.prod([s.stop - s.start for s in box]))


def model_view(classifier, scan: HealthyScan, box: tuple[slice, slice, slice] | None = None,
               levels: dict[str, float] | None = None) -> HealthyScan:
    """What ``classifier`` reads of a scan: the box around its organs (``box`` when the caller has
    it from ``model_box``), or the whole scan; for an organ-relative model with each organ at the
    training scans' level (``familiarity.at_reference_levels``; ``levels``: the scan's
    ``organ_levels`` when the caller has them)."""
    box = box or model_box(classifier, scan)
    if getattr(classifier.recipe, "organ_relative", False):  # before the cut: a box reaching past the
        from .familiarity import at_reference_levels  # scan's end goes on with the shifted edge voxels

        scan = at_reference_levels(scan, classifier.organs, classifier.organ_reference_hu, levels)
    view = scan if box is None else scan.cut(box)
    return reads_organs_only(classifier.recipe, classifier.organs, view)


def reads_organs_only(recipe, organs: list[str], view: HealthyScan) -> HealthyScan:
    """``view`` (a scan cut to the box a model reads) as a model of ``recipe`` reads it: with
    ``recipe.organs_only_mm``, nothing but ``organs`` and that margin (``organs_only``; the rest at
    the window's lower end); else as it is."""
    margin = recipe.organs_only_mm  # a card without it reads None (FindingsRecipe.from_dict)
    return view if margin is None else organs_only(view, organs, margin, recipe.window[0])


def evidence_on_scan(classifier, scan: HealthyScan, finding: int) -> tuple[np.ndarray, dict]:
    """The evidence of ``finding`` on the whole scan's grid (zero outside the region the model
    reads) and where it lies (``locate_in_anatomy``, from that region)."""
    box = model_box(classifier, scan) or tuple(slice(0, n) for n in scan.image.shape)
    view = model_view(classifier, scan, box)
    seen = classifier.evidence(view.image, finding)
    evidence = np.zeros(scan.image.shape, np.float32)
    inner, local = inside(box, scan.image.shape)
    evidence[inner] = seen[local]
    return evidence, locate_in_anatomy(seen, view.geometry, view.organs, view.organ_names)


@dataclass
class RealFindings:
    """The user's real labelled scans joining the training set: ``findings`` (n, F) 0/1 in the
    study's finding order; ``masks`` as in ``FindingsSet`` (on each scan's grid) where lesion
    masks exist, else None.  The study cuts each to the box the network reads, as it cuts the
    healthy scans."""
    scans: list[HealthyScan]
    findings: np.ndarray
    masks: list[dict[int, np.ndarray] | None] | None = None
