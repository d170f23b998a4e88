"""Packages SynthLesion needs beyond what Slicer ships; installed on demand with consent."""

from __future__ import annotations

from MedSynthCommonLib.dependencies import missing_requirements as _missing

REQUIRED = {"scipy": "scipy>=1.10"}


def missing_requirements() -> list[str]:
    """pip requirements of SynthLesion whose packages cannot be imported in this Python."""
    return _missing(REQUIRED)
