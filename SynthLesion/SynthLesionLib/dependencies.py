"""Python packages the engine needs beyond what Slicer ships, installed on demand with consent."""

from __future__ import annotations

import importlib.util

#: import name -> pip requirement.  numpy, SimpleITK and VTK come with Slicer and are never
#: installed or replaced here.
REQUIRED = {"scipy": "scipy>=1.10"}


def missing_requirements(required: dict[str, str] = REQUIRED) -> list[str]:
    """pip requirements (``required``: import name -> requirement) whose packages cannot be
    imported in this Python."""
    return [req for name, req in required.items() if importlib.util.find_spec(name) is None]
