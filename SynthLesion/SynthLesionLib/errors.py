"""Errors raised on bad input.

Every message names what is wrong and what the user can do about it, so that the same
text can be shown in Slicer's error popup, on the command line and in a notebook.
"""


class MedSynthInputError(ValueError):
    """Input that the engine cannot work with; the message says why and how to fix it."""


class PlacementError(MedSynthInputError):
    """No valid lesion position could be found (organ too small, or vessels everywhere)."""
