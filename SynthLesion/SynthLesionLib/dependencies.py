"""Packages SynthLesion needs beyond what Slicer ships; installed on demand with consent."""

from __future__ import annotations

from MedSynthCommonLib.dependencies import missing_requirements as _missing

#: threadpoolctl keeps BLAS on one thread inside the lesion work (``MedSynthCommonLib.threads``):
#: Slicer ships SciPy but not it, and without it medium and large lesions took 1.1-1.4x as long
#: with the other cores busy (the real CT at 1 mm; the same when they are idle)
REQUIRED = {"scipy": "scipy>=1.10", "threadpoolctl": "threadpoolctl>=3.1"}


def missing_requirements() -> list[str]:
    """pip requirements of SynthLesion whose packages cannot be imported in this Python."""
    return _missing(REQUIRED)
