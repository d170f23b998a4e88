"""Packages SynthLesion needs beyond what Slicer ships; installed on demand with consent."""

from __future__ import annotations

from MedSynthCommonLib.dependencies import missing_requirements as _missing

REQUIRED = {"scipy": "scipy>=1.10"}
#: offered once per session, not needed: threadpoolctl keeps BLAS on one thread inside the
#: lesion work (``MedSynthCommonLib.threads``).  Slicer ships SciPy but not it; without it medium
#: and large lesions took 1.1-1.4x as long with the other cores busy (the real CT at 1 mm; the
#: same when they are idle), and build-db's worker processes each start a BLAS thread per core
OPTIONAL = {"threadpoolctl": "threadpoolctl>=3.1"}
OPTIONAL_GAIN = "with them lesions are made up to 1.4x faster on a busy machine and in build-db's worker processes"


def missing_requirements() -> list[str]:
    """pip requirements of SynthLesion whose packages cannot be imported in this Python."""
    return _missing(REQUIRED)


def missing_options() -> list[str]:
    """pip requirements of ``OPTIONAL`` whose packages cannot be imported in this Python."""
    return _missing(OPTIONAL)
