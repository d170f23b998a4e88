"""Healthy CT phantoms as findings scans, shared by the CT findings tests."""

from __future__ import annotations

from SynthLesionLib import make_ct_phantom
from SynthLesionLib.phantom import ORGAN_LABELS

ORGANS = ["liver", "spleen", "right kidney", "left kidney"]
PHANTOM = {"shape": (40, 96, 96), "spacing": (3.0, 3.0, 4.0)}


def phantom_scans(seeds) -> list:
    """One ``HealthyScan`` per seed: a CT phantom with its organ map and names."""
    from SynthEvaluateLib.findings.findings_study import HealthyScan

    names = {value: name for name, value in ORGAN_LABELS.items()}
    phantoms = (make_ct_phantom(**PHANTOM, seed=s) for s in seeds)
    return [HealthyScan(p.image, p.organs, names, p.geometry) for p in phantoms]
