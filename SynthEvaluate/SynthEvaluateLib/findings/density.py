"""Is a called finding's density in the image?  "Hypodense" and "hyperdense" say how a region
measures against the organ around it, so a call of either can be checked by measuring: the
voxels of the finding's evidence region in its organ against the organ's other voxels.  A
network trained on a few CTs scores scans from another scanner or phase high for both types;
the measurement does not depend on its scores.

Measured as shifts of the tails, not of the mean: a lesion fills part of its evidence region, and
the region's mean also moves with the vessels it holds.  ``darker_hu`` = the organ's 10th
percentile minus the region's; ``brighter_hu`` = the region's 90th percentile minus the organ's.
Hand-written: a few percentiles, no library computes this comparison.
"""

from __future__ import annotations

import numpy as np

#: the tails compared (percent): the region's darkest and brightest tenth against the organ's
TAIL_PERCENT = 10.0
#: fewer voxels than this in the region or in the rest of the organ: nothing is measured
MIN_VOXELS = 20


def region_density(image: np.ndarray, region: np.ndarray, organ: np.ndarray) -> dict | None:
    """How ``region`` (bool: a finding's ``anatomy.evidence_region``) inside ``organ`` (bool, the
    image's grid) measures against the rest of the organ: {"darker_hu", "brighter_hu",
    "voxels"}; None where either side holds fewer than ``MIN_VOXELS`` voxels."""
    region = region & organ
    inside, rest = image[region], image[organ & ~region]
    if inside.size < MIN_VOXELS or rest.size < MIN_VOXELS:
        return None
    low = TAIL_PERCENT
    high = 100.0 - TAIL_PERCENT
    return {"darker_hu": round(float(np.percentile(rest, low) - np.percentile(inside, low)), 1),
            "brighter_hu": round(float(np.percentile(inside, high) - np.percentile(rest, high)), 1),
            "voxels": int(inside.size)}


def region_organ(region: np.ndarray, organs: np.ndarray) -> int | None:
    """The label of ``organs`` (a label map, 0 = none) that holds the most voxels of ``region``
    (a finding's evidence region); None where the region lies in no organ.  Unlike the location
    (which names an organ only where it holds 30 % of the evidence), a call is measured wherever
    its region touches an organ: diffuse evidence of a false call is checked too."""
    labels = organs[region]
    labels = labels[labels != 0]
    if labels.size == 0:
        return None
    values, counts = np.unique(labels, return_counts=True)
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
