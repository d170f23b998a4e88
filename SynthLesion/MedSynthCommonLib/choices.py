"""Choices that the library defines once and the GUI shows: an ``Enum`` per list of options.

Each member's value is the id the engine, the command line and model cards use; ``label(member)``
is the readable text.  Slicer's parameter-node wrapper fills a ``QComboBox`` bound to such an
enum with the labels and stores the member (its ``QComboBoxToEnumConnector`` calls the enum's
``label``), so no option list is written a second time in a ``.ui`` file or a module.
"""

from __future__ import annotations

import enum
import re


def choice_enum(name: str, labels: dict[str, str]) -> type[enum.Enum]:
    """An Enum of the ids in ``labels`` (in order), with ``label(member)`` giving their text.

    >>> Colour = choice_enum("Colour", {"dark-red": "dark red", "blue": "blue"})
    >>> Colour("dark-red").name, Colour.label(Colour("dark-red"))
    ('dark_red', 'dark red')
    """
    members = [(re.sub(r"\W", "_", key), key) for key in labels]
    choices = enum.Enum(name, members)
    text = dict(labels)
    choices.label = staticmethod(lambda member: text[member.value])
    choices.ids = staticmethod(lambda: list(text))
    return choices
