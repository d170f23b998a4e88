"""Errors of the lesion engine (the shared ``MedSynthInputError`` lives in ``MedSynthCommonLib.errors``)."""

from MedSynthCommonLib.errors import MedSynthInputError


class PlacementError(MedSynthInputError):
    """No valid lesion position could be found (organ too small, or vessels everywhere)."""


class PresetMismatchError(MedSynthInputError):
    """The preset's modality or organ intensity range does not fit the image's organ."""
