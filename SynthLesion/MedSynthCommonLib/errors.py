"""Errors that MedSynth reports to the user instead of a traceback.

Every message names what is wrong and what the user can do about it, so that the same
text can be shown in Slicer's error popup, on the command line and in a notebook.
"""


class MedSynthError(ValueError):
    """A problem the user can fix; the message says what it is and what to do."""


class MedSynthInputError(MedSynthError):
    """Input that the engine cannot work with; the message says why and how to fix it."""


class MedSynthOutputError(MedSynthError):
    """An output could not be written whole (full disk, file-size limit, read-only folder);
    nothing partial was left in its place."""
