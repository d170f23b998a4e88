"""Is a called finding's density in the image?  "Hypodense" and "hyperdense" say how a region
measures against the organ around it, so a call of either can be checked by measuring: the
voxels of the finding's evidence region in its organ against the organ's other voxels.  A
network trained on a few CTs scores scans from another scanner or phase high for both types;
the measurement does not depend on its scores.

Measured as shifts of the tails, not of the mean: a lesion fills part of its evidence region, and
the region's mean also moves with the vessels it holds.  ``darker_hu`` = the organ's 10th
percentile minus the region's; ``brighter_hu`` = the region's 90th percentile minus the organ's,
measured after a grey-level opening that removes bright structures narrower than about
``VESSEL_WIDTH_MM``.  Enhanced vessels are the bright tail of a healthy organ: an evidence region
lying on them measured 51-63 HU "brighter" on healthy CT phantoms (liver vessels at +90 HU), and
confirmed a hyperdense call there.  The footprint is a ball (``opening_ball``): it fits in a lesion
at least as wide and in no tube narrower, so on a 1 mm grid lesions of 6 mm and more keep their
contrast and vessels under 6 mm wide drop out; on grids of 2 mm and coarser it is a voxel's 18
nearest neighbours (a 3 mm grid: lesions from about 9 mm keep their contrast, vessels 2 voxels
wide drop out).  A hyperdense lesion narrower than that is not confirmed by the check (no density
measurement tells it from a vessel's cross-section).  Dark
tails need no opening: nothing in an enhanced organ is darker than its parenchyma but lesions,
fat and fluid.  The region's dark tail is taken without the organ's surface voxels, which share
the fat beyond it (partial volume), against the whole organ's tail: on the real 3 mm CT,
lesion-free 24 mm regions centred anywhere in the liver and spleen passed 10 HU in 8 of 120 with
them and in none without, hypodense lesions in 17 of 20 either way
(``Testing/validation/density_check.py``).  Leaving them out of the organ's side too raised its
tail and confirmed lesion-free scans (a real CT's crop: specificity 14/14 -> 2/14).
Hand-written: a few percentiles, no library computes this comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: the tails compared (percent): the region's darkest and brightest tenth against the organ's
TAIL_PERCENT = 10.0
#: fewer voxels than this in the region or in the rest of the organ: nothing is measured
MIN_VOXELS = 20
#: diameter (mm) of the ball of the opening before the bright tails are compared (``opening_ball``:
#: 7 voxels wide at 1 mm, 9 x 9 x 3 at 0.75 x 0.75 x 2.5 mm, 3 x 3 x 3 less its corners at 2 mm and coarser)
VESSEL_WIDTH_MM = 6.0


@dataclass(frozen=True)
class OrganView:
    """An organ's bounding box (grown by the opening) with the image, the organ and the opened
    image on it: measured once per organ and scan, for every called finding in that organ."""

    box: tuple[slice, slice, slice]
    image: np.ndarray  # float32
    organ: np.ndarray  # bool
    opened: np.ndarray  # float32, ``image`` after the opening
    interior: np.ndarray  # bool, ``organ`` without its surface voxels (eroded by one voxel)


def organ_view(image: np.ndarray, organ: np.ndarray, spacing_kji) -> OrganView:
    """The ``OrganView`` of ``organ`` (bool, the image's grid, voxels of ``spacing_kji`` mm; not empty)."""
    footprint = opening_ball(spacing_kji)
    where = np.nonzero(organ)
    box = tuple(slice(max(int(w.min()) - n, 0), int(w.max()) + n + 1) for w, n in zip(where, footprint.shape))
    values = np.asarray(image[box], np.float32)
    return OrganView(box, values, organ[box], ndimage.grey_opening(values, footprint=footprint, mode="nearest"),
                     ndimage.binary_erosion(organ[box]))  # 6-connected; the box's faces count as outside


def region_density(image: np.ndarray, region: np.ndarray, organ: np.ndarray, spacing_kji,
                   view: OrganView | None = None) -> dict | None:
    """How ``region`` (bool: a finding's ``anatomy.evidence_region``) inside ``organ`` (bool, the
    image's grid, voxels of ``spacing_kji`` mm) measures against the rest of the organ:
    {"darker_hu", "brighter_hu", "voxels"}; None where either side holds fewer than
    ``MIN_VOXELS`` voxels.  ``view``: the organ's ``organ_view`` when the caller keeps it."""
    region = region & organ
    voxels = int(np.count_nonzero(region))
    if voxels < MIN_VOXELS or np.count_nonzero(organ) - voxels < MIN_VOXELS:
        return None
    view = view or organ_view(image, organ, spacing_kji)
    region = region[view.box]
    rest = view.organ & ~region
    inner = region & view.interior  # the region's dark tail without the organ's surface voxels
    dark = inner if np.count_nonzero(inner) >= MIN_VOXELS else region
    low, high = TAIL_PERCENT, 100.0 - TAIL_PERCENT
    return {"darker_hu": round(float(np.percentile(view.image[rest], low) - np.percentile(view.image[dark], low)), 1),
            "brighter_hu": round(float(np.percentile(view.opened[region], high)
                                       - np.percentile(view.opened[rest], high)), 1),
            "voxels": voxels}


def opening_ball(spacing_kji) -> np.ndarray:
    """The opening's footprint (bool, odd sizes): the voxels within ``VESSEL_WIDTH_MM`` / 2 of the
    centre (an ellipsoid in voxels), and at least a voxel's 18 nearest neighbours (semi-axes of
    at least sqrt(2) voxels: on a 3 mm grid a lesion holds it from 9 mm, a vessel 2 voxels wide
    does not)."""
    radius = [max(VESSEL_WIDTH_MM / 2.0 / float(s), np.sqrt(2.0)) for s in spacing_kji]
    grid = np.ogrid[tuple(slice(-int(r), int(r) + 1) for r in radius)]
    return sum((g / r) ** 2 for g, r in zip(grid, radius)) <= 1.0 + 1e-9


def region_organ(region: np.ndarray, organs: np.ndarray, among: set[int] | None = None) -> int | None:
    """The label of ``organs`` (a label map, 0 = none) that holds the most voxels of ``region``
    (a finding's evidence region); None where the region lies in no organ.  Unlike the location
    (which names an organ only where it holds 30 % of the evidence), a call is measured wherever
    its region touches an organ: diffuse evidence of a false call is checked too.  ``among``: only
    these labels count (the organs a model reads), and one holding fewer than ``MIN_VOXELS`` of
    the region is none (nothing could be measured there)."""
    labels = organs[region]
    labels = labels[labels != 0] if among is None else labels[np.isin(labels, sorted(among))]
    if labels.size == 0:
        return None
    values, counts = np.unique(labels, return_counts=True)
    if among is not None and counts.max() < MIN_VOXELS:
        return None
    return int(values[np.argmax(counts)])


def density_kind(finding: str, rules: dict) -> str | None:
    """"darker" or "brighter" for a finding type the rules give a density (``density``: a
    finding matches a key it starts with, e.g. "hypodense lesion (liver)"); None otherwise."""
    return next((kind for name, kind in rules["density"].items() if finding.startswith(name)), None)


def supported(finding: str, density: dict | None, rules: dict) -> bool | None:
    """Whether the measured ``density`` shows the finding's kind by at least ``density_min_hu``;
    None where nothing was measured or the finding has no kind (then nothing is decided here)."""
    kind = density_kind(finding, rules)
    if kind is None or density is None:
        return None
    return density[f"{kind}_hu"] >= float(rules["density_min_hu"])
