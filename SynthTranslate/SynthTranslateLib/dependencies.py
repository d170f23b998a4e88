"""Packages SynthTranslate needs beyond what Slicer ships; installed on demand with consent."""

from __future__ import annotations

from MedSynthCommonLib.dependencies import missing_requirements as _missing

#: installed with pip after torch, which comes from the PyTorch extension (``ensure_torch``), so that
#: MONAI's requirement on torch is already met and pip never pulls a torch build of its own
REQUIRED = {"scipy": "scipy>=1.10", "skimage": "scikit-image>=0.21", "matplotlib": "matplotlib>=3.7",
            "monai": "monai>=1.4"}


def missing_requirements() -> list[str]:
    """pip requirements of SynthTranslate whose packages cannot be imported in this Python."""
    return _missing(REQUIRED)
