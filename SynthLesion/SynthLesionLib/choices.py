"""SynthLesion's options as GUI choices, derived from the engine's own registries."""

from __future__ import annotations

from MedSynthCommonLib.choices import choice_enum

from .presets import LESION_TYPES, PRESETS
from .sizes import MIX, SIZE_CLASSES

_TYPE_WORDS = {"hypo": "hypo (darker than the organ)", "iso": "iso (like the organ)",
               "hyper": "hyper (brighter than the organ)"}

PresetChoice = choice_enum("PresetChoice", {
    name: f"{preset.modality} {preset.organ} ({name})" for name, preset in PRESETS.items()})
SizeChoice = choice_enum("SizeChoice", {
    **{name: f"{name} ({low:g}-{high:g} mm)" for name, (low, high) in SIZE_CLASSES.items()},
    MIX: f"{MIX} (one class drawn per lesion)"})
LesionTypeChoice = choice_enum("LesionTypeChoice", {
    "preset": "the preset's", **{t: _TYPE_WORDS[t] for t in LESION_TYPES}, "mixed": "mixed (drawn per lesion)"})
PhaseChoice = choice_enum("PhaseChoice", {
    "preset": "the preset's", **{phase: phase for phase in sorted({p for preset in PRESETS.values() for p in preset.phases})}})
CapsuleChoice = choice_enum("CapsuleChoice", {"auto": "with the preset's frequency", "yes": "always", "no": "never"})
#: GUI value -> LesionConfig value
CAPSULE_VALUES = {"auto": None, "yes": True, "no": False}
