"""Learn a preset from the user's own annotated tumours (``medsynth lesion fit``).

1. Measure every real lesion against its parenchyma (``features``): contrast, internal SD
   ratio, edge sharpness, grain, size, sphericity; lesions per case.
2. Start from a base preset with contrasts scaled from the measured ones.
3. Simulate lesions of the real sizes into the user's own organs with the candidate preset,
   measure them the same way, and correct the drawn parameters by the ratio of real to
   simulated figures (contrast: median and spread; texture: the excess variance over the
   parenchyma; edge: blur inversely to sharpness); repeat.
The result is a preset (JSON) usable wherever a preset name is, plus a report of what was
measured, how close the simulated lesions came, and how uncertain the fit is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry, check_same_grid

from .features import LesionFeatures, measure_lesions, summarise
from .presets import Preset, get_preset

#: fewer real lesions than this give a fit whose uncertainty is stated prominently
MIN_LESIONS = 3
#: simulated lesions per fitting round, and rounds
SIMULATED = 12
ROUNDS = 2


@dataclass
class FitCase:
    """One annotated case: image, label map and the label values of organ and lesions."""

    image: np.ndarray
    labels: np.ndarray
    geometry: Geometry
    organ_label: int
    lesion_label: int
    name: str = "case"

    def organ(self) -> np.ndarray:
        """Parenchyma plus lesions (tumour masks usually sit inside the organ's outline)."""
        return (self.labels == self.organ_label) | (self.labels == self.lesion_label)

    def lesions(self) -> np.ndarray:
        return (self.labels == self.lesion_label).astype(np.uint8)


def check_case(case: FitCase) -> None:
    values = set(np.unique(case.labels).tolist())
    if case.lesion_label not in values:
        raise MedSynthInputError(f"{case.name}: the label map has no voxel of the lesion label {case.lesion_label} "
                                 f"(it holds {sorted(values)[:12]}); give the tumour label with --lesion-label.")
    if case.organ_label not in values:
        raise MedSynthInputError(f"{case.name}: the label map has no voxel of the organ label {case.organ_label}; "
                                 "give the organ label with --organ-label.")
    from scipy import ndimage

    organ = case.labels == case.organ_label
    touching = ndimage.binary_dilation(organ, iterations=2)
    lesions, count = ndimage.label(case.labels == case.lesion_label)
    outside = [n for n in range(1, count + 1) if not np.any(touching[lesions == n])]
    if outside:
        raise MedSynthInputError(f"{case.name}: {len(outside)} lesion(s) lie outside the organ (they do not touch "
                                 f"label {case.organ_label}); check the labels, or crop them out.")


def measure_cases(cases: list[FitCase]) -> tuple[list[LesionFeatures], list[int]]:
    """Features of every real lesion, and the number of lesions per case."""
    features, counts = [], []
    for case in cases:
        found = measure_lesions(case.image, case.lesions(), case.organ(), case.geometry.spacing_kji)
        features += found
        counts.append(len(found))
    return features, counts


def _median(features: list[LesionFeatures], name: str) -> float | None:
    values = [getattr(f, name) for f in features if getattr(f, name) is not None]
    return float(np.median(values)) if values else None


def _initial_preset(base: Preset, real: list[LesionFeatures], name: str) -> Preset:
    contrasts = np.array([f.contrast for f in real if f.contrast is not None])
    lesion_type = "hypo" if np.median(contrasts) < 0 else "hyper"
    low, mode, high = np.percentile(contrasts, [5, 50, 95]) / 0.77  # drawn ~ measured / 0.77 (validation)
    if lesion_type == "hyper":
        low, high = min(low, mode - 1.0), max(high, mode + 1.0)
    else:
        low, high = min(low, mode - 1.0), max(high, mode + 1.0)
    contrast = dict(base.contrast)
    contrast[lesion_type] = (float(low), float(mode), float(high))
    return dataclasses.replace(base, name=name, contrast=contrast, default_lesion_type=lesion_type, phases={},
                               default_phase=None, description=f"Fitted by medsynth lesion fit to {len(real)} real lesions.")


def _simulate(preset: Preset, cases: list[FitCase], diameters: list[float], seed: int) -> list[LesionFeatures]:
    from . import presets as registry
    from .config import LesionConfig
    from .sizes import SIZE_CLASSES
    from .synthesizer import synthesize_lesions

    key = f"__fit_{id(preset)}"
    registry.PRESETS[key] = dataclasses.replace(preset, name=key)
    rng = np.random.default_rng(seed)
    found = []
    try:
        for n in range(SIMULATED):
            case = cases[n % len(cases)]
            diameter = float(rng.choice(diameters))
            size_class = next((name for name, (low, high) in SIZE_CLASSES.items() if low <= diameter < high),
                              "large" if diameter >= 40 else "tiny")
            organ = case.labels == case.organ_label
            try:
                result = synthesize_lesions(case.image, organ, case.geometry,
                                            LesionConfig(preset=key, size_class=size_class, count=1, mass_effect=0),
                                            int(rng.integers(2**31)))
            except MedSynthInputError:
                continue
            found += measure_lesions(result.image, result.lesion_labels, result.organ_mask > 0,
                                     case.geometry.spacing_kji)
    finally:
        registry.PRESETS.pop(key, None)
    return found


def _corrected(preset: Preset, real: list[LesionFeatures], simulated: list[LesionFeatures]) -> Preset:
    changes = {}
    lesion_type = preset.default_lesion_type
    real_c, sim_c = _median(real, "contrast"), _median(simulated, "contrast")
    if real_c is not None and sim_c and np.sign(real_c) == np.sign(sim_c):
        scale = float(np.clip(real_c / sim_c, 0.5, 2.0))
        contrast = dict(preset.contrast)
        contrast[lesion_type] = tuple(float(v * scale) for v in preset.contrast[lesion_type])
        changes["contrast"] = contrast
    real_r, sim_r = _median(real, "sd_ratio"), _median(simulated, "sd_ratio")
    if real_r and sim_r:
        excess_real, excess_sim = max(real_r ** 2 - 1.0, 0.01), max(sim_r ** 2 - 1.0, 0.01)
        scale = float(np.clip(np.sqrt(excess_real / excess_sim), 0.3, 3.0))
        changes["texture_sd_factor"] = tuple(float(v * scale) for v in preset.texture_sd_factor)
        changes["heterogeneity_sd_factor"] = tuple(float(v * scale) for v in preset.heterogeneity_sd_factor)
    real_e, sim_e = _median(real, "edge"), _median(simulated, "edge")
    if real_e and sim_e:
        scale = float(np.clip(sim_e / real_e, 0.4, 2.5))  # sharper simulated edges: blur more
        changes["edge_blur_mm"] = tuple(float(v * scale) for v in preset.edge_blur_mm)
    return dataclasses.replace(preset, **changes)


def fit_preset(cases: list[FitCase], base: str = "ct-generic", name: str = "fitted", seed: int = 0,
               progress: Callable[[str], None] | None = None) -> dict:
    """Fit a preset to the lesions of ``cases``; returns ``{"preset": dict, "fit": report}``."""
    if not cases:
        raise MedSynthInputError("Give at least one case (image and label map).")
    for case in cases:
        check_same_grid(case.image, case.geometry, case.labels, None, f"label map of {case.name}")
        check_case(case)
    base_preset = get_preset(base).for_phase(None)
    real, counts = measure_cases(cases)
    usable = [f for f in real if f.contrast is not None]
    if not usable:
        raise MedSynthInputError("No lesion is large enough to measure (each needs at least 8 voxels and a ring of "
                                 "parenchyma around it).")
    preset = _initial_preset(base_preset, usable, name)
    diameters = [f.diameter_mm for f in usable]
    rounds = []
    for number in range(ROUNDS):
        simulated = _simulate(preset, cases, diameters, seed + number)
        if progress:
            progress(f"round {number + 1}/{ROUNDS}: simulated median contrast {_median(simulated, 'contrast')}, "
                     f"real {_median(usable, 'contrast'):.1f}")
        rounds.append(summarise(simulated))
        preset = _corrected(preset, usable, simulated)
    final = summarise(_simulate(preset, cases, diameters, seed + ROUNDS))
    uncertainty = _uncertainty(usable, seed)
    report = {"cases": [c.name for c in cases], "lesions": len(real), "measured_lesions": len(usable),
              "lesions_per_case": counts, "real": summarise(usable), "simulated_with_fit": final,
              "rounds": rounds, "uncertainty": uncertainty,
              "suggested_size_mm": [round(float(np.percentile(diameters, 5)), 1),
                                    round(float(np.percentile(diameters, 95)), 1)]}
    if len(usable) < MIN_LESIONS:
        report["warning"] = (f"Only {len(usable)} measurable lesion(s): the fitted contrasts and textures are uncertain "
                             f"(see 'uncertainty'); fit on at least {MIN_LESIONS} lesions for a usable preset.")
    return {"preset": preset.to_dict(), "fit": report}


def _uncertainty(features: list[LesionFeatures], seed: int) -> dict:
    """Bootstrap 95 % interval of the median contrast (None with fewer than 3 lesions)."""
    values = np.array([f.contrast for f in features])
    if values.size < MIN_LESIONS:
        return {"median_contrast_ci": None, "note": f"{values.size} lesion(s): no interval"}
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, (2000, values.size)), axis=1)
    return {"median_contrast_ci": [round(float(np.percentile(medians, 2.5)), 2),
                                   round(float(np.percentile(medians, 97.5)), 2)]}


def read_fit_cases(images: list[Path], labels: list[Path], organ_label: int, lesion_label: int) -> list[FitCase]:
    """Cases from image and label-map files (pairs in order)."""
    from MedSynthCommonLib.imageio import read_volume

    if len(images) != len(labels):
        raise MedSynthInputError(f"{len(images)} --image but {len(labels)} --label; give one label map per image.")
    if organ_label == lesion_label:
        raise MedSynthInputError(f"--organ-label and --lesion-label are both {organ_label}; the organ and its tumours "
                                 "need their own values in the label maps (LiTS: liver 1, tumour 2).")
    cases = []
    for image_path, label_path in zip(images, labels):
        image, geometry = read_volume(image_path)
        label_map, label_geometry = read_volume(label_path)
        check_same_grid(image, geometry, label_map, label_geometry, f"label map {Path(label_path).name}")
        cases.append(FitCase(image, label_map, geometry, organ_label, lesion_label, Path(image_path).name))
    return cases
