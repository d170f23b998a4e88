"""Organ and modality presets.

A preset says how a lesion looks *relative to the organ it is in*: intensities are offsets
from the organ's measured parenchyma median, in HU for CT and in units of the organ's robust
standard deviation for MR (MR intensities have no absolute scale).  It also says which
intensity range the organ must have for the preset to make sense, so that a CT preset run
on an MR image is refused instead of producing nonsense.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from MedSynthCommonLib.errors import MedSynthInputError

LESION_TYPES = ("hypo", "iso", "hyper")


@dataclass(frozen=True)
class Preset:
    """Appearance of lesions in one organ and modality.

    Ranges are (low, high) tuples; one value is drawn uniformly per lesion.
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
    #: texture: grain size of the upscaled noise (mm) and blur of the result (mm)
    texture_grain_mm: tuple[float, float] = (1.5, 4.0)
    texture_blur_mm: tuple[float, float] = (0.5, 1.0)
    #: std of the texture noise as a multiple of the parenchyma's robust std
    texture_sd_factor: tuple[float, float] = (0.8, 1.2)
    edge_blur_mm: tuple[float, float] = (0.6, 1.5)
    #: elastic deformation: displacement magnitude as a fraction of the mean radius
    elastic_fraction: tuple[float, float] = (0.05, 0.15)
    #: vessels: smoothed image above median + this many robust std of the parenchyma
    vessel_threshold_sd: float | None = 3.0
    vessel_smoothing_mm: float = 1.0
    #: default mass-effect strength, 0-100
    mass_effect: float = 30.0

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="ct-liver", modality="CT", organ="liver", units="HU",
            description="Liver lesions on contrast-enhanced CT (portal venous phase): "
            "hypodense metastases/HCC, iso- and hyperdense lesions.",
            organ_median_range=(0.0, 250.0),
            contrast={"hypo": (-90.0, -20.0), "iso": (-8.0, 8.0), "hyper": (20.0, 70.0)},
            capsule_contrast=(15.0, 40.0), capsule_probability=0.3,
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
    """The preset called ``name``; raise with the list of presets if unknown."""
    try:
        return PRESETS[name]
    except KeyError:
        lines = "; ".join(f"{p.name} ({p.modality} {p.organ})" for p in PRESETS.values())
        raise MedSynthInputError(f"Unknown preset {name!r}. Available presets: {lines}.") from None
