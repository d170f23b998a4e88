"""What each lesion draws (size, shape, contrast, texture, components), in a fixed order so that
a seed means the same lesion, and where it goes (redrawn within its size class when it fits
nowhere)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry

from .config import MIXED, LesionConfig, type_of_contrast
from .errors import PlacementError
from .organ import OrganStatistics
from .placement import find_centre
from .presets import LESION_TYPES, Preset, draw_range
from .shape import DrawnShape, ShapeTemplate, draw_shape
from .sizes import SIZE_CLASSES, draw_size_class


@dataclass(frozen=True)
class DrawnLesion:
    size_class: str
    lesion_type: str
    diameter_mm: float
    shape: DrawnShape
    contrast: float  # image units
    texture_sd: float
    texture_grain_mm: float
    texture_blur_mm: float
    heterogeneity_sd: float  # image units
    heterogeneity_grain_mm: float
    edge_blur_mm: float
    capsule_contrast: float  # image units, 0 = none
    capsule_width_mm: float
    components: dict  # necrosis / calcification / rim, as drawn (image units, mm)

#: a lesion whose drawn size fits nowhere is redrawn (size within its class) this many times
MAX_DRAWS = 8


def draw_and_place(config, preset, stats, rng, templates, out, organ, lesions, geometry, vessels, avoid,
                   lesion_cores=()):
    """Draw a lesion and find it a place; when no position fits the drawn size, draw again.
    ``lesion_cores``: balls inside earlier lesions (see ``find_centre``).

    Returns (drawn, centre_kji, placement attempts in all, number of draws)."""
    attempts_per_draw = max(config.max_attempts // MAX_DRAWS, 1)
    total_attempts = 0
    for draw in range(1, MAX_DRAWS + 1):
        drawn = draw_lesion(config, preset, stats, rng, templates, geometry)
        lesion_ml = np.pi / 6.0 * drawn.diameter_mm ** 3 / 1000.0
        if stats.volume_ml < lesion_ml:
            reason = (
                f"The organ (about {stats.volume_ml:.1f} mL) is smaller than one {drawn.size_class} lesion "
                f"({drawn.diameter_mm:.0f} mm, {lesion_ml:.1f} mL). Choose a smaller size class.")
            continue
        try:
            placement = find_centre(out, organ, lesions, geometry.spacing_kji, stats,
                                    drawn.diameter_mm / 2.0, vessels, avoid, rng, attempts_per_draw,
                                    clearance_mm=drawn.shape.bounding_radius_mm, lesion_cores=lesion_cores)
        except PlacementError as failure:
            # its message only: the exception's traceback holds this frame, and through the
            # callers' frames the new image, which a kept exception would keep from being freed
            # (or recycled) until the garbage collector finds the cycle
            reason = str(failure)
            total_attempts += attempts_per_draw
            continue
        return drawn, placement.centre_kji, total_attempts + placement.attempts, draw
    raise PlacementError(f"{reason} (Sizes from the class were drawn {MAX_DRAWS} times; none fitted.)")

def check_grid_holds(size_class: str, geometry: Geometry) -> None:
    """Refuse a size class whose largest lesions are smaller than one voxel of the grid."""
    coarsest = float(geometry.spacing.max())
    low, high = SIZE_CLASSES[size_class]
    if high < coarsest:
        raise MedSynthInputError(
            f"This grid cannot hold {size_class} lesions ({low:g}-{high:g} mm): its voxels are {coarsest:g} mm along "
            "the coarsest axis, larger than the lesions. Choose a larger size class or resample the image finer "
            "(and check the image's spacing).")

def _chance(forced: bool | None, probability: float, rng: np.random.Generator) -> bool:
    """Whether an optional component is present: forced by the config, else with ``probability``
    (the draw is made either way, so a seed means the same everything else)."""
    drawn = rng.random() < probability
    return drawn if forced is None else forced


def draw_lesion(config: LesionConfig, preset: Preset, stats: OrganStatistics, rng: np.random.Generator,
          templates: list[ShapeTemplate] | None, geometry: Geometry) -> DrawnLesion:
    """Draw every random parameter of one lesion, in a fixed order (reproducibility)."""
    size_class = draw_size_class(config.size_class, rng)
    check_grid_holds(size_class, geometry)
    if config.contrast is not None and config.lesion_type is None:
        lesion_type = type_of_contrast(config.contrast, preset.contrast["iso"])  # a fixed contrast decides the type
    else:
        lesion_type = config.lesion_type or preset.default_lesion_type
    if lesion_type == MIXED:
        lesion_type = str(rng.choice(LESION_TYPES))
    unit = 1.0 if preset.units == "HU" else stats.robust_sd
    elastic = rng.uniform(*preset.elastic_fraction)
    template = templates[int(rng.integers(len(templates)))] if templates else None
    diameter, shape = draw_shape(SIZE_CLASSES[size_class], elastic, rng, template)
    radius = diameter / 2.0
    contrast = draw_range(preset.contrast[lesion_type], rng) if config.contrast is None else config.contrast
    texture_sd = rng.uniform(*preset.texture_sd_factor) * stats.robust_sd
    if preset.texture_grain_factor is not None and stats.noise_grain_mm:
        grain = rng.uniform(*preset.texture_grain_factor) * stats.noise_grain_mm
    else:
        grain = rng.uniform(*preset.texture_grain_mm)
    blur = rng.uniform(*preset.texture_blur_mm)
    heterogeneity_sd = rng.uniform(*preset.heterogeneity_sd_factor) * stats.robust_sd
    heterogeneity_grain = rng.uniform(*preset.heterogeneity_scale) * radius
    edge = min(rng.uniform(*preset.edge_blur_mm), EDGE_MAX_RADIUS_SHARE * radius)  # tiny lesions stay visible
    has_capsule = _chance(config.capsule, preset.capsule_probability, rng)
    capsule = rng.uniform(*preset.capsule_contrast) if config.capsule_contrast is None else config.capsule_contrast
    width = min(rng.uniform(*preset.capsule_width_mm), 0.2 * radius)  # a capsule never fills the lesion
    if diameter < preset.capsule_min_diameter_mm and config.capsule is not True:
        has_capsule = False  # on small lesions a rim would cancel the lesion's own contrast
    components = {}
    if _chance(config.necrosis, preset.necrosis_probability, rng) and diameter >= preset.necrosis_min_diameter_mm:
        components["necrosis"] = {"contrast": float(rng.uniform(*preset.necrosis_contrast) * unit),
                                  "radius_fraction": float(rng.uniform(*preset.necrosis_fraction))}
    else:
        rng.uniform(size=2)  # keep the stream aligned whether or not the core is drawn
    if _chance(config.calcification, preset.calcification_probability, rng):
        count = int(rng.integers(1, 4))
        components["calcifications"] = [
            {"contrast": float(rng.uniform(*preset.calcification_contrast) * unit),
             "diameter_mm": float(rng.uniform(*preset.calcification_diameter_mm)),
             "position": rng.uniform(-0.6, 0.6, 3).round(4).tolist()} for _ in range(count)]
    if _chance(config.rim, preset.rim_probability, rng):
        components["rim"] = {"contrast": float(rng.uniform(*preset.rim_contrast) * unit),
                             "width_mm": float(rng.uniform(*preset.rim_width_fraction) * radius)}
    capsule_value = _capsule_that_keeps_contrast(capsule * unit, contrast * unit, width, radius) if has_capsule else 0.0
    return DrawnLesion(size_class, lesion_type, diameter, shape, float(contrast * unit), float(texture_sd), float(grain),
                  float(blur), float(heterogeneity_sd), float(heterogeneity_grain), float(edge),
                  float(capsule_value), float(width), components)


#: the edge blur (sigma) is at most this share of the lesion's radius
EDGE_MAX_RADIUS_SHARE = 0.35
#: a capsule may take back at most this share of the lesion's mean contrast
CAPSULE_MAX_SHARE = 0.25


def _capsule_that_keeps_contrast(capsule: float, contrast: float, width_mm: float, radius_mm: float) -> float:
    """The capsule's contrast, limited so that, averaged over the lesion, a capsule of the
    opposite sign never cancels more than ``CAPSULE_MAX_SHARE`` of the lesion's contrast (on
    small lesions the rim is a large share of the volume)."""
    if capsule * contrast >= 0 or contrast == 0:
        return capsule
    rim_share = 1.0 - max(1.0 - width_mm / max(radius_mm, 1e-6), 0.0) ** 3
    limit = CAPSULE_MAX_SHARE * abs(contrast) / max(rim_share, 1e-6)
    return float(np.sign(capsule) * min(abs(capsule), limit))
