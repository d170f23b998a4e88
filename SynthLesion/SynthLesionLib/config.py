"""What the user asks for: one ``LesionConfig`` per call, serialisable to JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.options import check_known_options
from .presets import LESION_TYPES, get_preset
from .sizes import check_size_class

MIXED = "mixed"
#: largest |contrast| (lesion mean - organ median) a user may ask for, per preset unit: beyond
#: it a "lesion" is bone, metal or air, and integer images would saturate
CONTRAST_LIMITS = {"HU": 1000.0, "sd": 20.0}
#: lesion centres given closer than this (mm) are the same point given twice
SAME_CENTRE_MM = 1.0


def type_of_contrast(contrast: float, iso_range) -> str:
    """hypo, iso or hyper for a contrast (lesion mean - organ median), with the preset's iso range."""
    low, high = min(iso_range), max(iso_range)
    return "hypo" if contrast < low else "hyper" if contrast > high else "iso"


def _check_contrast_and_type(config: "LesionConfig", preset) -> None:
    """A fixed contrast decides the lesion type; an asked type of the other sign is refused."""
    limit = CONTRAST_LIMITS.get(preset.units, CONTRAST_LIMITS["HU"])
    for name in ("contrast", "capsule_contrast"):
        value = getattr(config, name)
        if value is not None and abs(value) > limit:
            raise MedSynthInputError(
                f"{name.replace('_', ' ')} {value:g} {preset.units} is out of range for {preset.name}: lesions differ from "
                f"their organ by at most {limit:g} {preset.units} (more is bone, metal or air, and saturates integer "
                "images).")
    if config.contrast is None:
        return
    implied = type_of_contrast(config.contrast, preset.contrast["iso"])
    asked = config.lesion_type
    words = {"hypo": "darker than", "iso": "like", "hyper": "brighter than"}
    if asked == MIXED:
        raise MedSynthInputError(f"--lesion-type mixed draws a type per lesion, but a fixed --contrast {config.contrast:g} "
                                 f"makes every lesion {implied}; leave one of them out.")
    if asked is not None and (asked == "iso" and implied != "iso" or asked == "hypo" and config.contrast >= 0
                              or asked == "hyper" and config.contrast <= 0):
        raise MedSynthInputError(
            f"--lesion-type {asked} asks for a lesion {words[asked]} the organ, but --contrast {config.contrast:g} "
            f"{preset.units} makes it {words[implied]} it; give a contrast of the other sign or --lesion-type {implied} "
            "(or leave --lesion-type out: a fixed contrast decides the type).")


@dataclass
class LesionConfig:
    """Options of one synthesis call.  ``None`` means "use the preset's value".

    Attributes:
        preset: organ/modality preset name (see ``presets.PRESETS``).
        size_class: tiny, small, medium, large or mix (see ``sizes.SIZE_CLASSES``).
        count: number of lesions (ignored when ``centres_ras`` is given).
        lesion_type: hypo, iso, hyper or mixed (one drawn per lesion).  With a fixed
            ``contrast`` the type follows its sign (an asked type of the other sign is refused).
        contrast: fixed lesion contrast in the preset's units (HU, or organ sd for MR), at most
            ``CONTRAST_LIMITS`` in size.
        mass_effect: push on the surrounding tissue, 0 (none) to 100.
        capsule: True always, False never, None with the preset's probability.
        capsule_contrast: fixed capsule contrast in the preset's units.
        avoid_vessels: reject positions with vessels inside the lesion.
        vessel_threshold_sd: vessels are above median + this many organ sd (smoothed image).
        centres_ras: lesion centres (RAS, mm) instead of random placement.
        max_attempts: random positions tried per lesion before giving up, shared by up to
            8 draws of the lesion (a size that fits nowhere is drawn again within its class).
        phase: contrast phase of a CT preset that has phases (ct-liver: arterial, portal-venous,
            delayed); None = the preset's default phase.  It decides hypo/hyper and the contrasts.
        allow_fewer: when a lesion fits nowhere (a small or truncated organ), place the others
            and say so in the record and the finding (False: refuse the whole case).
        necrosis, calcification, rim: True always, False never, None with the preset's probability.
    """

    preset: str = "ct-liver"
    size_class: str = "small"
    count: int = 1
    lesion_type: str | None = None
    contrast: float | None = None
    mass_effect: float | None = None
    capsule: bool | None = None
    capsule_contrast: float | None = None
    avoid_vessels: bool = True
    vessel_threshold_sd: float | None = None
    centres_ras: list[list[float]] | None = field(default=None)
    max_attempts: int = 1000
    phase: str | None = None
    allow_fewer: bool = True
    necrosis: bool | None = None
    calcification: bool | None = None
    rim: bool | None = None

    def validate(self) -> "LesionConfig":
        """Check every option; raise ``MedSynthInputError`` naming the first bad one."""
        preset = get_preset(self.preset).for_phase(self.phase)
        check_size_class(self.size_class)
        if self.centres_ras is None and not (1 <= int(self.count) <= 1000):
            raise MedSynthInputError(f"count must be between 1 and 1000, got {self.count}.")
        if self.lesion_type is not None and self.lesion_type not in (*LESION_TYPES, MIXED):
            raise MedSynthInputError(
                f"Unknown lesion type {self.lesion_type!r}; choose one of: {', '.join((*LESION_TYPES, MIXED))}."
            )
        for name in ("contrast", "mass_effect", "capsule_contrast", "vessel_threshold_sd"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise MedSynthInputError(f"{name} must be a finite number, got {value!r}.")
        if not isinstance(self.count, int) or isinstance(self.count, bool):
            raise MedSynthInputError(f"count must be a whole number, got {self.count!r}.")
        _check_contrast_and_type(self, preset)
        if self.mass_effect is not None and not 0.0 <= self.mass_effect <= 100.0:
            raise MedSynthInputError(f"mass_effect must be between 0 and 100, got {self.mass_effect}.")
        if self.max_attempts < 1:
            raise MedSynthInputError(f"max_attempts must be at least 1, got {self.max_attempts}.")
        if self.centres_ras is not None:
            if len(self.centres_ras) == 0:
                raise MedSynthInputError("centres_ras is empty; give at least one point or leave it unset.")
            for point in self.centres_ras:
                if not isinstance(point, (list, tuple)) or len(point) != 3 or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in point):
                    raise MedSynthInputError(f"Each centre needs 3 finite RAS coordinates (mm), got {point!r}.")
            for n, first in enumerate(self.centres_ras):
                for second in self.centres_ras[n + 1:]:
                    if math.dist(first, second) < SAME_CENTRE_MM:
                        raise MedSynthInputError(f"The lesion centre {list(first)} is given twice; each centre makes one "
                                                 "lesion, so give each point once.")
        return self

    @property
    def lesion_count(self) -> int:
        return len(self.centres_ras) if self.centres_ras is not None else int(self.count)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LesionConfig":
        check_known_options(cls, data, "lesion options")
        return cls(**data)
