"""Packages SynthTranslate needs beyond what Slicer ships; installed on demand with consent."""

from __future__ import annotations

from MedSynthCommonLib.dependencies import missing_requirements as _missing

REQUIRED = {"scipy": "scipy>=1.10", "skimage": "scikit-image>=0.21", "matplotlib": "matplotlib>=3.7",
            "torch": "torch>=2.2", "monai": "monai>=1.4"}


def missing_requirements() -> list[str]:
    """pip requirements of SynthTranslate whose packages cannot be imported in this Python."""
    return _missing(REQUIRED)
