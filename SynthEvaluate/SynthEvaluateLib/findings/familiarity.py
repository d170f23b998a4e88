"""Does a scan look like the scans a model learned from?  A CT findings model trained on a few
CTs of one contrast phase and scanner scores scans of another phase as confidently as any, and
is wrong there (the arterial phase darkens the liver by 20-40 HU; an unenhanced scan by more).
The organs' own levels tell: the median HU of each organ the model reads is kept per training
scan (the range, in the model card), and a scan whose organ lies more than
``LEVEL_TOLERANCE_HU`` outside that range is called unfamiliar in the queue and its report.
Calibrating the model on scans like it (``calibration``) widens the range, since the thresholds
then fit those scans too.  A model trained organ-relative (``FindingsRecipe.organ_relative``)
reads every scan with each organ brought to the training scans' level (``at_reference_levels``):
a lesion is hypo- or hyperdense against its organ, whatever the phase or scanner.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from .anatomy import organ_words

if TYPE_CHECKING:  # scans imports this module
    from .scans import HealthyScan

#: an organ whose median lies this far outside the training scans' range makes a scan unfamiliar
#: (the liver's attenuation differs by tens of HU between unenhanced, arterial and portal-venous
#: scans; a choice, not a measured optimum)
LEVEL_TOLERANCE_HU = 20.0
#: fewer organ voxels in view than this give no level (an organ cut by the scan's end)
MIN_ORGAN_VOXELS = 100


def organ_levels(scan: HealthyScan, organs: list[str]) -> dict[str, float]:
    """Median HU of each of ``organs`` in the scan's organ map ({organ: HU}, organs as
    ``organ_words`` spells them; organs absent or with too few voxels left out)."""
    if scan.organs is None:
        return {}
    by_name = scan.organ_labels()
    levels = {}
    for organ in (organ_words(o) for o in organs):
        if organ in by_name:
            voxels = scan.image[scan.organs == by_name[organ]]
            if voxels.size >= MIN_ORGAN_VOXELS:
                levels[organ] = round(float(np.median(voxels)), 1)
    return levels


def reference_levels(levels: list[dict[str, float]]) -> dict[str, float]:
    """{organ: mean of the scans' median HU}: the level an organ-relative model brings every
    scan's organ to."""
    organs = sorted({organ for scan_levels in levels for organ in scan_levels})
    return {organ: round(float(np.mean([s[organ] for s in levels if organ in s])), 1) for organ in organs}


def at_reference_levels(scan: HealthyScan, organs: list[str], reference: dict[str, float],
                        levels: dict[str, float] | None = None) -> HealthyScan:
    """The scan (float32) with the voxels of each of ``organs`` shifted by one constant, so that
    the organ's median HU is its ``reference`` level; other voxels, and organs without a level
    (absent, cut by the scan's end) or without a reference, as they are.  Everything inside an
    organ, its lesions included, moves together: a lesion keeps its contrast against its organ.
    ``levels``: the scan's ``organ_levels`` when the caller has them."""
    if scan.organs is None or not reference:
        return scan
    image = np.asarray(scan.image, np.float32).copy()
    by_name = scan.organ_labels()
    for organ, level in (organ_levels(scan, organs) if levels is None else levels).items():
        if organ in reference:
            image[scan.organs == by_name[organ]] += np.float32(reference[organ] - level)
    return dataclasses.replace(scan, image=image)


def level_ranges(levels: list[dict[str, float]], ranges: dict | None = None) -> dict[str, list[float]]:
    """{organ: [lowest, highest] median HU} over scans' ``organ_levels``, widening ``ranges``."""
    merged = {organ: list(span) for organ, span in (ranges or {}).items()}
    for scan_levels in levels:
        for organ, level in scan_levels.items():
            low, high = merged.get(organ, [level, level])
            merged[organ] = [min(low, level), max(high, level)]
    return merged


def unfamiliar_organs(levels: dict[str, float], ranges: dict | None,
                      tolerance_hu: float = LEVEL_TOLERANCE_HU) -> list[dict]:
    """The organs of a scan whose level lies more than ``tolerance_hu`` outside the training
    range: [{organ, hu, range}]; empty where the model card keeps no range (older cards)."""
    return [{"organ": organ, "hu": level, "range": ranges[organ]} for organ, level in levels.items()
            if ranges and organ in ranges
            and not ranges[organ][0] - tolerance_hu <= level <= ranges[organ][1] + tolerance_hu]


def familiarity_text(unfamiliar: list[dict]) -> str:
    """E.g. "liver 44 HU (training scans 98-105 HU)", or "(training scans 100 HU)" for one
    level; empty when nothing is unfamiliar."""
    def span(low: float, high: float) -> str:
        return f"{low:.0f}" if round(low) == round(high) else f"{low:.0f}-{high:.0f}"

    return "; ".join(f"{u['organ']} {u['hu']:.0f} HU (training scans {span(*u['range'])} HU)" for u in unfamiliar)
