"""Packages SynthEvaluate needs beyond what Slicer ships; installed on demand with consent."""

from __future__ import annotations

from MedSynthCommonLib.dependencies import missing_requirements as _missing

REQUIRED = {"scipy": "scipy>=1.10", "sklearn": "scikit-learn>=1.3", "skimage": "scikit-image>=0.21"}
#: only for protocols that train networks (GAN-train/test, augmentation, segmenters)
#: torch itself comes from the PyTorch extension (``MedSynthCommonLib.dependencies.ensure_torch``)
REQUIRED_FOR_TRAINING = {"monai": "monai>=1.4"}


def missing_requirements(training: bool = False) -> list[str]:
    """pip requirements of SynthEvaluate (and of its training protocols when ``training``)
    whose packages cannot be imported in this Python."""
    return _missing({**REQUIRED, **(REQUIRED_FOR_TRAINING if training else {})})
