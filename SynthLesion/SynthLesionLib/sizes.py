"""Lesion size classes by equivalent (volume-equivalent sphere) diameter in mm."""

from __future__ import annotations

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

#: name -> (lowest, highest) equivalent diameter in mm (Hu et al. 2023, plus "tiny").
SIZE_CLASSES: dict[str, tuple[float, float]] = {
    "tiny": (5.0, 10.0),
    "small": (10.0, 20.0),
    "medium": (20.0, 40.0),
    "large": (40.0, 80.0),
}
#: "mix" draws one of the classes above for every lesion, uniformly.
MIX = "mix"


def check_size_class(name: str) -> str:
    """Return ``name`` if it is a known size class, else raise with the valid choices."""
    if name not in SIZE_CLASSES and name != MIX:
        choices = ", ".join([*SIZE_CLASSES, MIX])
        raise MedSynthInputError(f"Unknown size class {name!r}; choose one of: {choices}.")
    return name


def draw_size_class(name: str, rng: np.random.Generator) -> str:
    """Resolve ``mix`` to a concrete class; other names are returned unchanged."""
    check_size_class(name)
    if name == MIX:
        return str(rng.choice(list(SIZE_CLASSES)))
    return name


def equivalent_diameter_mm(volume_mm3: float) -> float:
    """Diameter (mm) of the sphere that has the given volume (mm^3)."""
    return float((6.0 * volume_mm3 / np.pi) ** (1.0 / 3.0))
