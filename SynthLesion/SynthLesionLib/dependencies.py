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


def ensure_installed(required: list[str], confirm, install, module: str) -> bool:
    """Install missing ``required`` pip requirements after one confirmation listing them all.

    ``confirm(text) -> bool`` and ``install(requirements)`` are given by the caller (in Slicer:
    ``slicer.util.confirmOkCancelDisplay`` and ``slicer.util.pip_install``), so this stays
    Qt-free.  Returns True when everything is (now) installed.
    """
    if not required:
        return True
    text = (f"{module} needs these Python packages, which will be installed now:\n\n" + "\n".join(required)
            + "\n\nPackages that come with Slicer are not changed.")
    if not confirm(text):
        return False
    install(required)
    return True
