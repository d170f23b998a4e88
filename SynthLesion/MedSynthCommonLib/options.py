"""Option records (configs, model cards) read back from JSON written by another version or program."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from .errors import MedSynthInputError


def check_known_options(dataclass_type, data, what: str) -> None:
    """Raise unless ``data`` is a JSON object whose keys are all fields of ``dataclass_type``."""
    if not isinstance(data, dict):
        raise MedSynthInputError(f"The {what} must be a JSON object of options, got {type(data).__name__}.")
    unknown = set(data) - {f.name for f in fields(dataclass_type)}
    if unknown:
        raise MedSynthInputError(f"Unknown {what}: {', '.join(sorted(unknown))} (written by another program or version?).")


def chosen_path(value) -> Path | None:
    """A path chosen in the GUI, or None when the field is empty.  (Slicer's parameter node stores
    an empty path field as ``Path(".")``, which is truthy: test with this, not with ``bool``.)"""
    if value is None or str(value).strip() in ("", "."):
        return None
    return Path(value)
