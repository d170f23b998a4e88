"""Organ and modality presets.

A preset says how a lesion looks *relative to the organ it is in*: intensities are offsets
from the organ's measured parenchyma median, in HU for CT and in units of the organ's robust
standard deviation for MR (MR intensities have no absolute scale).  It also says which
intensity range the organ must have for the preset to make sense, so that a CT preset run
on an MR image is refused instead of producing nonsense.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from MedSynthCommonLib.errors import MedSynthInputError

LESION_TYPES = ("hypo", "iso", "hyper")


@dataclass(frozen=True)
class Preset:
    """Appearance of lesions in one organ and modality.

    Ranges are (low, high) tuples, one value drawn uniformly per lesion; a contrast may also be
    (low, mode, high), drawn from the triangular distribution (real contrasts are skewed: most
    tumours are clearly hypodense, a few nearly isodense).
    ``units`` is "HU" (CT) or "sd" (MR: multiples of the parenchyma's robust std).
    """

    name: str
    modality: str  # "CT" or "MR"
    organ: str
    description: str
    units: str
    #: plausible range of the organ's median intensity; outside it the preset is refused
    organ_median_range: tuple[float, float]
    default_lesion_type: str = "hypo"
    #: contrast (lesion mean - parenchyma median) per lesion type, in ``units``
    contrast: dict = field(default_factory=dict)
    #: capsule: brighter rim inside the lesion boundary, in ``units``; drawn with probability
    capsule_contrast: tuple[float, float] = (0.0, 0.0)
    capsule_probability: float = 0.0
    capsule_width_mm: tuple[float, float] = (1.0, 2.0)
    #: capsules only on lesions at least this large (a rim on a tiny lesion cancels its contrast)
    capsule_min_diameter_mm: float = 15.0
    #: texture: grain size of the upscaled noise (mm) and blur of the result (mm)
    texture_grain_mm: tuple[float, float] = (1.5, 4.0)
    #: when set, the grain is the organ's own noise correlation length (measured) times this
    #: factor, and ``texture_grain_mm`` is only the fallback when it cannot be measured
    texture_grain_factor: tuple[float, float] | None = None
    texture_blur_mm: tuple[float, float] = (0.5, 1.0)
    #: std of the texture noise as a multiple of the parenchyma's robust std
    texture_sd_factor: tuple[float, float] = (0.8, 1.2)
    #: smooth low-frequency heterogeneity: std (x parenchyma robust std) and grain (x lesion radius)
    heterogeneity_sd_factor: tuple[float, float] = (0.0, 0.0)
    heterogeneity_scale: tuple[float, float] = (0.4, 0.8)
    edge_blur_mm: tuple[float, float] = (0.6, 1.5)
    #: necrotic (darker) core on lesions at least ``necrosis_min_diameter_mm``: extra contrast
    #: in ``units`` on the inner ``necrosis_fraction`` of the radius
    necrosis_probability: float = 0.0
    necrosis_min_diameter_mm: float = 25.0
    necrosis_contrast: tuple[float, float] = (-30.0, -10.0)
    necrosis_fraction: tuple[float, float] = (0.35, 0.65)
    #: calcifications: 1-3 bright foci of 1-3 mm inside the lesion
    calcification_probability: float = 0.0
    calcification_contrast: tuple[float, float] = (150.0, 400.0)
    calcification_diameter_mm: tuple[float, float] = (1.0, 3.0)
    #: rim enhancement: a brighter peripheral band (thicker than a capsule), e.g. arterial metastases
    rim_probability: float = 0.0
    rim_contrast: tuple[float, float] = (15.0, 35.0)
    rim_width_fraction: tuple[float, float] = (0.15, 0.3)
    #: contrast phases (CT): name -> overrides of this preset's fields for that phase
    phases: dict = field(default_factory=dict)
    default_phase: str | None = None
    #: elastic deformation: displacement magnitude as a fraction of the mean radius
    elastic_fraction: tuple[float, float] = (0.05, 0.15)
    #: vessels: smoothed image above median + this many robust std of the parenchyma
    vessel_threshold_sd: float | None = 3.0
    vessel_smoothing_mm: float = 1.0
    #: default mass-effect strength, 0-100
    mass_effect: float = 30.0

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self, source: str = "preset") -> "Preset":
        """Check every field (types, ranges in order, probabilities, positive lengths); raise
        ``MedSynthInputError`` naming the first bad field of ``source`` and what it must be."""
        def bad(name: str, must: str):
            raise MedSynthInputError(f"{source}: {name} must be {must}, got {getattr(self, name, None)!r}.")

        for name in ("name", "modality", "organ", "units"):
            if not isinstance(getattr(self, name), str):
                bad(name, "text")
        if self.modality not in ("CT", "MR") or self.units not in ("HU", "sd"):
            bad("modality" if self.modality not in ("CT", "MR") else "units", "CT or MR (units HU or sd)")
        if self.default_lesion_type not in LESION_TYPES:
            bad("default_lesion_type", f"one of {', '.join(LESION_TYPES)}")
        if not isinstance(self.contrast, dict) or set(self.contrast) != set(LESION_TYPES):
            bad("contrast", f"an object with the lesion types {', '.join(LESION_TYPES)} as keys")
        for kind, spec in self.contrast.items():
            if not _is_range(spec, (2, 3)):
                raise MedSynthInputError(f"{source}: contrast.{kind} must be [low, high] or [low, mode, high] finite "
                                         f"numbers in increasing order, got {spec!r}.")
        for name, (low, high, strict) in _RANGE_BOUNDS.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_RANGES:
                continue
            if not _is_range(value, (2,)):
                bad(name, "[low, high]: two finite numbers with low <= high")
            if value[0] < low or value[1] > high or (strict and value[0] <= low):
                bad(name, f"within {'(' if strict else '['}{low:g}, {high:g}]")
        for name, (low, high) in _NUMBER_BOUNDS.items():
            value = getattr(self, name)
            if value is None and name == "vessel_threshold_sd":
                continue
            if not _is_number(value) or not low <= value <= high:
                bad(name, f"a number from {low:g} to {high:g}")
        if not isinstance(self.phases, dict) or not all(isinstance(v, dict) for v in self.phases.values()):
            bad("phases", "an object of phase name -> overrides")
        if self.default_phase is not None and self.default_phase not in self.phases:
            bad("default_phase", f"one of its phases ({', '.join(self.phases) or 'none'})")
        for phase, overrides in self.phases.items():
            unknown = set(overrides) - {f.name for f in dataclasses.fields(self)} - {"phases", "default_phase"}
            if unknown:
                raise MedSynthInputError(f"{source}: phase {phase!r} overrides unknown fields {sorted(unknown)}.")
            try:
                phased = Preset.from_dict({**self.to_dict(), **overrides, "phases": {}, "default_phase": None})
            except TypeError as error:
                raise MedSynthInputError(f"{source}: phase {phase!r}: {error}.") from None
            phased.validate(f"{source}, phase {phase}")
        return self

    def for_phase(self, phase: str | None) -> "Preset":
        """This preset as it looks in ``phase`` (None: the preset's default phase)."""
        phase = phase or self.default_phase
        if phase is None:
            return self
        if phase not in self.phases:
            choices = ", ".join(self.phases) or "none (this preset has no phases)"
            raise MedSynthInputError(f"Preset {self.name!r} has no phase {phase!r}; its phases: {choices}.")
        return dataclasses.replace(self, **self.phases[phase], phases={}, default_phase=None,
                                   name=f"{self.name} ({phase})")

    @classmethod
    def from_dict(cls, data: dict) -> "Preset":
        from MedSynthCommonLib.options import check_known_options

        check_known_options(cls, data, "preset fields")
        values = {k: (tuple(v) if isinstance(v, list) and k not in ("phases",) else v) for k, v in data.items()}
        if isinstance(values.get("contrast"), dict):
            values["contrast"] = {k: tuple(v) if isinstance(v, list) else v for k, v in values["contrast"].items()}
        return cls(**values)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_range(value, lengths: tuple[int, ...]) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) in lengths and all(_is_number(v) for v in value)
            and all(a <= b for a, b in zip(value, value[1:])))


#: (low, high, low bound exclusive) of each range field's values
_RANGE_BOUNDS = {
    "organ_median_range": (-math.inf, math.inf, False), "capsule_contrast": (-2000.0, 2000.0, False),
    "capsule_width_mm": (0.0, 50.0, False), "texture_grain_mm": (0.0, 100.0, True),
    "texture_grain_factor": (0.0, 100.0, True), "texture_blur_mm": (0.0, 50.0, False),
    "texture_sd_factor": (0.0, 20.0, False), "heterogeneity_sd_factor": (0.0, 20.0, False),
    "heterogeneity_scale": (0.0, 10.0, True), "edge_blur_mm": (0.0, 50.0, False),
    "necrosis_contrast": (-2000.0, 2000.0, False), "necrosis_fraction": (0.0, 1.0, False),
    "calcification_contrast": (-2000.0, 4000.0, False), "calcification_diameter_mm": (0.0, 50.0, True),
    "rim_contrast": (-2000.0, 2000.0, False), "rim_width_fraction": (0.0, 1.0, False),
    "elastic_fraction": (0.0, 1.0, False),
}
_OPTIONAL_RANGES = ("texture_grain_factor",)
#: (low, high) of each number field
_NUMBER_BOUNDS = {
    "capsule_probability": (0.0, 1.0), "necrosis_probability": (0.0, 1.0), "calcification_probability": (0.0, 1.0),
    "rim_probability": (0.0, 1.0), "capsule_min_diameter_mm": (0.0, 1000.0),
    "necrosis_min_diameter_mm": (0.0, 1000.0), "vessel_threshold_sd": (-100.0, 100.0),
    "vessel_smoothing_mm": (1e-3, 50.0), "mass_effect": (0.0, 100.0),
}


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="ct-liver", modality="CT", organ="liver", units="HU",
            description="Liver tumours on contrast-enhanced CT, calibrated to real expert-segmented tumours "
            "(REALISM.md): hypodense in the portal-venous and delayed phases (median -30 HU against the "
            "parenchyma), hyperdense in the arterial phase (+19 to +26 HU).",
            organ_median_range=(0.0, 250.0),
            # drawn contrasts are stronger than measured ones (partial volume at the blurred edge
            # dilutes the median by ~0.77 on a 0.8 x 0.8 x 2.5 mm grid): triangular, skewed like the
            # real contrasts (Testing/validation/lesion_realism.py measures the result)
            contrast={"hypo": (-64.0, -58.0, -9.0), "iso": (-8.0, 6.0), "hyper": (21.0, 32.0)},
            capsule_contrast=(8.0, 20.0), capsule_probability=0.1, rim_contrast=(8.0, 20.0),
            texture_grain_factor=(0.9, 1.4), texture_sd_factor=(0.25, 0.5),
            heterogeneity_sd_factor=(0.2, 0.7), edge_blur_mm=(0.7, 1.8), elastic_fraction=(0.08, 0.2),
            necrosis_probability=0.3, calcification_probability=0.05,
            phases={"arterial": {"default_lesion_type": "hyper", "capsule_probability": 0.0, "rim_probability": 0.25},
                    "portal-venous": {"default_lesion_type": "hypo"},
                    "delayed": {"default_lesion_type": "hypo", "capsule_probability": 0.3}},
            default_phase="portal-venous",
        ),
        Preset(
            name="ct-kidney", modality="CT", organ="kidney", units="HU",
            description="Renal masses on contrast-enhanced CT: hypoenhancing tumours, "
            "cyst-like and hyperenhancing lesions.",
            organ_median_range=(20.0, 350.0),
            contrast={"hypo": (-150.0, -40.0), "iso": (-10.0, 10.0), "hyper": (20.0, 80.0)},
            capsule_contrast=(10.0, 30.0), capsule_probability=0.2,
            vessel_threshold_sd=4.0, mass_effect=20.0,
        ),
        Preset(
            name="ct-pancreas", modality="CT", organ="pancreas", units="HU",
            description="Pancreatic lesions on contrast-enhanced CT: hypoattenuating "
            "adenocarcinoma, iso- and hyperenhancing (neuroendocrine) lesions.",
            organ_median_range=(0.0, 250.0),
            contrast={"hypo": (-70.0, -15.0), "iso": (-8.0, 8.0), "hyper": (20.0, 60.0)},
            capsule_probability=0.0, texture_grain_mm=(1.0, 3.0), mass_effect=15.0,
        ),
        Preset(
            name="mr-brain", modality="MR", organ="brain", units="sd",
            description="Brain lesions on MR (e.g. T1: hypointense infarcts/tumours; "
            "T2/FLAIR: use 'hyper').",
            organ_median_range=(-1e12, 1e12),
            contrast={"hypo": (-3.0, -1.0), "iso": (-0.3, 0.3), "hyper": (1.0, 3.0)},
            capsule_contrast=(0.5, 1.5), capsule_probability=0.1,
            # the brain's spread is grey/white-matter contrast, not noise: a gentler texture
            texture_sd_factor=(0.25, 0.5), texture_grain_mm=(2.0, 5.0),
            vessel_threshold_sd=None, mass_effect=20.0,
        ),
        Preset(
            name="mr-liver", modality="MR", organ="liver", units="sd",
            description="Liver lesions on MR (T1-weighted: hypointense by default).",
            organ_median_range=(-1e12, 1e12),
            contrast={"hypo": (-4.0, -1.5), "iso": (-0.3, 0.3), "hyper": (1.5, 4.0)},
            capsule_contrast=(0.8, 2.0), capsule_probability=0.3,
            vessel_threshold_sd=3.5,
        ),
        Preset(
            name="ct-generic", modality="CT", organ="organ", units="HU",
            description="Any soft-tissue organ on CT.",
            organ_median_range=(-200.0, 400.0),
            contrast={"hypo": (-80.0, -20.0), "iso": (-8.0, 8.0), "hyper": (20.0, 70.0)},
            capsule_contrast=(10.0, 30.0), capsule_probability=0.1,
        ),
        Preset(
            name="mr-generic", modality="MR", organ="organ", units="sd",
            description="Any organ on MR; contrast in units of the organ's spread.",
            organ_median_range=(-1e12, 1e12),
            contrast={"hypo": (-3.5, -1.2), "iso": (-0.3, 0.3), "hyper": (1.2, 3.5)},
            capsule_contrast=(0.5, 1.5), capsule_probability=0.1,
            vessel_threshold_sd=None,
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``, or read from a JSON file (``medsynth lesion fit`` writes one);
    raise with the list of presets if unknown."""
    if name in PRESETS:
        return PRESETS[name]
    if str(name).lower().endswith(".json"):
        return load_preset_file(Path(name))
    try:
        return PRESETS[name]
    except KeyError:
        lines = "; ".join(f"{p.name} ({p.modality} {p.organ})" for p in PRESETS.values())
        raise MedSynthInputError(f"Unknown preset {name!r}. Available presets: {lines}.") from None


def load_preset_file(path: Path) -> Preset:
    """A preset from a JSON file (plain data, nothing executed); refused clearly when unreadable."""
    from MedSynthCommonLib.options import read_json

    data = read_json(path, "preset file")
    if isinstance(data, dict) and "preset" in data and isinstance(data["preset"], dict):
        data = data["preset"]  # a fit report: the preset plus how it was measured
    if not isinstance(data, dict):
        raise MedSynthInputError(f"{path} is not a preset (a JSON object of preset fields).")
    try:
        preset = Preset.from_dict(data)
    except (TypeError, ValueError) as error:
        detail = str(error).replace("__init__() ", "").replace("Preset.", "")
        raise MedSynthInputError(f"{path} is not a complete preset ({detail}).") from None
    return preset.validate(str(path))


def draw_range(spec, rng) -> float:
    """One value from a (low, high) uniform or a (low, mode, high) triangular range."""
    if len(spec) == 3:
        low, mode, high = spec
        return float(rng.triangular(low, mode, high)) if high > low else float(low)
    return float(rng.uniform(*spec))
