"""Packages SynthEvaluate needs beyond what Slicer ships; installed on demand with consent."""

from __future__ import annotations

from SynthLesionLib.dependencies import missing_requirements as _missing

REQUIRED = {"scipy": "scipy>=1.10", "sklearn": "scikit-learn>=1.3", "skimage": "scikit-image>=0.21"}


def missing_requirements() -> list[str]:
    """pip requirements of SynthEvaluate whose packages cannot be imported in this Python."""
    return _missing(REQUIRED)
