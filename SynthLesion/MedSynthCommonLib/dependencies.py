"""Python packages installed on demand with the user's consent (each module lists its own).

numpy, SimpleITK and VTK come with Slicer and are never installed or replaced here.
"""

from __future__ import annotations

import importlib.util


def missing_requirements(required: dict[str, str]) -> list[str]:
    """pip requirements (``required``: import name -> requirement) whose packages cannot be
    imported in this Python."""
    return [req for name, req in required.items() if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as missing
        return False


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
