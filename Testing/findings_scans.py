"""Healthy CT phantoms as findings scans, shared by the CT findings tests."""

from __future__ import annotations

import numpy as np

from MedSynthCommonLib.geometry import Geometry
from SynthLesionLib import make_ct_phantom
from SynthLesionLib.phantom import ORGAN_LABELS

ORGANS = ["liver", "spleen", "right kidney", "left kidney"]
PHANTOM = {"shape": (40, 96, 96), "spacing": (3.0, 3.0, 4.0)}


def phantom_scans(seeds, shape: tuple[int, int, int] | None = None) -> list:
    """One ``HealthyScan`` per seed: a CT phantom with its organ map and names (``shape``: another
    body size at the same spacing; the phantom's organs grow with it)."""
    from SynthEvaluateLib.findings.scans import HealthyScan

    names = {value: name for name, value in ORGAN_LABELS.items()}
    phantoms = (make_ct_phantom(**{**PHANTOM, **({"shape": shape} if shape else {})}, seed=s) for s in seeds)
    return [HealthyScan(p.image, p.organs, names, p.geometry) for p in phantoms]


def framed(scan, slices: int, columns: int):
    """The scan going on ``slices`` further above and below (its edge slices repeated, no organ
    labelled there) and ``columns`` wider on each side (air), every voxel where it was in RAS."""
    from SynthEvaluateLib.findings.scans import HealthyScan

    image = np.pad(np.pad(scan.image, ((slices, slices), (0, 0), (0, 0)), mode="edge"),
                   ((0, 0), (columns, columns), (columns, columns)), constant_values=-1000)
    organs = np.pad(scan.organs, ((slices, slices), (columns, columns), (columns, columns)))
    start = scan.geometry.kji_to_ras(-np.array([slices, columns, columns], float))
    return HealthyScan(image, organs, scan.organ_names, Geometry(start, scan.geometry.spacing, scan.geometry.direction))
