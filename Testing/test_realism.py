"""Lesions like real tumours: phases, calibrated defaults, components, a capsule that never
cancels a small lesion, fewer lesions than asked when they do not fit, presets from files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry
from SynthLesionLib import LesionConfig, PlacementError, make_ct_phantom, synthesize_lesions
from SynthLesionLib.features import measure_lesions, summarise
from SynthLesionLib.presets import get_preset


@pytest.fixture(scope="module")
def clinical():
    """A liver phantom on a clinical grid (0.8 x 0.8 x 2.5 mm) with correlated noise (15 HU)."""
    phantom = make_ct_phantom(shape=(44, 224, 224), spacing=(0.8, 0.8, 2.5), noise_sd=0.0, seed=3)
    rng = np.random.default_rng(7)
    noise = ndimage.gaussian_filter(rng.standard_normal(phantom.image.shape), (0.25, 1.0, 1.0))
    image = (phantom.image + noise * (15.0 / noise.std())).round().astype(np.int16)
    return image, phantom.organ_mask("liver"), phantom.geometry


def _features(clinical, seeds, **options):
    image, liver, geometry = clinical
    found = []
    for seed in seeds:
        result = synthesize_lesions(image, liver, geometry, LesionConfig(size_class="small", **options), seed)
        found += measure_lesions(result.image, result.lesion_labels, result.organ_mask > 0, geometry.spacing_kji)
    return found


def test_ct_liver_defaults_fall_in_the_real_tumour_ranges(clinical):
    """REALISM.md: hypodense (portal venous) median -30 HU [-45, -7], internal SD / ring SD 1.09
    [0.74, 2.1], sphericity 0.61 [0.55, 0.66].  A small sample: the medians must lie well inside."""
    summary = summarise(_features(clinical, range(14)))
    assert -38.0 <= summary["contrast"]["median"] <= -22.0, summary["contrast"]
    assert 0.95 <= summary["sd_ratio"]["median"] <= 1.25, summary["sd_ratio"]
    assert 0.55 <= summary["sphericity"]["median"] <= 0.66, summary["sphericity"]


def test_phase_decides_hypo_or_hyper(clinical):
    arterial = summarise(_features(clinical, range(8), phase="arterial"))
    assert 12.0 <= arterial["contrast"]["median"] <= 32.0  # real arterial: +19 ... +26 HU
    with pytest.raises(MedSynthInputError, match="no phase 'late'.*arterial, portal-venous, delayed"):
        LesionConfig(phase="late").validate()
    with pytest.raises(MedSynthInputError, match="no phase"):
        LesionConfig(preset="mr-liver", phase="arterial").validate()


def test_a_capsule_never_cancels_a_tiny_lesion():
    """Tiny lesions keep at least 70 % of their contrast with a capsule forced on: noise-free
    phantom on a fine grid and no texture, so that only the capsule differs between the runs."""
    import dataclasses

    import SynthLesionLib.presets as registry

    phantom = make_ct_phantom(shape=(40, 160, 160), spacing=(0.8, 0.8, 1.0), noise_sd=0.0, seed=3)
    image, liver, geometry = phantom.image.astype(np.float32), phantom.organ_mask("liver"), phantom.geometry
    registry.PRESETS["plain-liver"] = dataclasses.replace(registry.PRESETS["ct-liver"], name="plain-liver",
                                                          texture_sd_factor=(0.0, 0.0), heterogeneity_sd_factor=(0.0, 0.0))
    kept = []
    try:
        for seed in range(10):
            values = []
            for capsule in (False, True):
                config = LesionConfig(preset="plain-liver", size_class="tiny", capsule=capsule, lesion_type="hypo")
                values.append(synthesize_lesions(image, liver, geometry, config, seed).records[0].contrast_measured)
            kept.append(values[1] / values[0])
    finally:
        registry.PRESETS.pop("plain-liver")
    assert min(kept) >= 0.7, kept


def test_components_are_drawn_recorded_and_visible(clinical):
    image, liver, geometry = clinical
    for seed in range(40):  # a medium lesion large enough for a necrotic core (>= 25 mm)
        options = dict(size_class="medium", necrosis=True, calcification=True, mass_effect=0)
        result = synthesize_lesions(image, liver, geometry, LesionConfig(**options), seed)
        if result.records[0].target_diameter_mm >= 25.0:
            break
    record = result.records[0]
    assert {"necrosis", "calcifications"} <= set(record.components)
    lesion = result.lesion_labels == 1
    depth = ndimage.distance_transform_edt(lesion, sampling=geometry.spacing_kji)
    core, shell = lesion & (depth > depth.max() * 0.7), lesion & (depth < depth.max() * 0.3)
    brightest = float(result.image[lesion].max())
    assert brightest > record.organ_median + 100  # a calcified focus
    calcified = ndimage.binary_dilation(result.image > record.organ_median + 60, iterations=3)
    assert np.median(result.image[core & ~calcified]) < np.median(result.image[shell & ~calcified]) - 5  # darker core
    plain = synthesize_lesions(image, liver, geometry, LesionConfig(size_class="medium", necrosis=False,
                                                                    calcification=False, rim=False), seed)
    assert plain.records[0].components == {}
    assert json.loads(json.dumps(result.case_record))["lesions"][0]["components"]["necrosis"]["contrast"] < 0


def test_fewer_lesions_than_asked_when_they_do_not_fit(clinical):
    image, liver, geometry = clinical
    small_organ = liver & (np.indices(liver.shape)[2] < np.percentile(np.nonzero(liver)[2], 35))
    result = synthesize_lesions(image, small_organ, geometry, LesionConfig(size_class="medium", count=6,
                                                                           max_attempts=200), 0)
    placed = result.case_record["lesions_placed"]
    assert 1 <= placed < 6 and result.case_record["lesions_asked"] == 6
    assert f"Placed {placed} of the 6 lesions" in result.case_record["warnings"][0]
    assert f"{placed} of 6 asked for" in result.finding
    assert sorted(set(np.unique(result.lesion_labels)) - {0}) == list(range(1, placed + 1))  # numbered, no overlap
    with pytest.raises(PlacementError):
        synthesize_lesions(image, small_organ, geometry, LesionConfig(size_class="medium", count=6, max_attempts=200,
                                                                      allow_fewer=False), 0)


def test_texture_grain_follows_the_organs_noise(clinical):
    from SynthLesionLib.organ import measure_organ

    image, liver, geometry = clinical
    stats = measure_organ(image, liver, geometry, np.random.default_rng(0))
    white = make_ct_phantom(shape=(44, 224, 224), spacing=(0.8, 0.8, 2.5), noise_sd=15.0, seed=3)
    white_stats = measure_organ(white.image, white.organ_mask("liver"), white.geometry, np.random.default_rng(0))
    assert stats.noise_grain_mm > 1.3 * white_stats.noise_grain_mm  # correlated noise: a coarser grain


def test_presets_from_files(tmp_path):
    data = get_preset("ct-liver").to_dict() | {"name": "my-liver", "contrast": {"hypo": [-40, -20], "iso": [-5, 5],
                                                                                 "hyper": [20, 30]}}
    path = tmp_path / "my_preset.json"
    path.write_text(json.dumps(data))
    assert get_preset(str(path)).contrast["hypo"] == (-40, -20)
    (tmp_path / "bad.json").write_text(json.dumps({"name": "x", "colour": "red"}))
    with pytest.raises(MedSynthInputError, match="Unknown preset fields: colour"):
        get_preset(str(tmp_path / "bad.json"))


def _annotated_cases(clinical, contrast, seeds=(0, 1), count=3):
    """Phantom cases whose tumours were made with a known contrast (the 'real' annotated data)."""
    import dataclasses

    import SynthLesionLib.presets as registry
    from SynthLesionLib.fit import FitCase

    image, liver, geometry = clinical
    known = dataclasses.replace(registry.PRESETS["ct-generic"], name="known", contrast={
        "hypo": contrast, "iso": (-5.0, 5.0), "hyper": (20.0, 30.0)}, edge_blur_mm=(1.0, 1.3),
        texture_sd_factor=(0.3, 0.4), capsule_probability=0.0)
    registry.PRESETS["known"] = known
    try:
        cases = []
        for seed in seeds:
            result = synthesize_lesions(image, liver, geometry, LesionConfig(preset="known", size_class="small",
                                                                             count=count, mass_effect=0), seed)
            cases.append(FitCase(result.image, result.label_map(), geometry, 1, 2, f"case{seed}"))
        return cases
    finally:
        registry.PRESETS.pop("known")


def test_fit_round_trip(clinical):
    from SynthLesionLib.fit import fit_preset

    cases = _annotated_cases(clinical, (-45.0, -35.0, -25.0))
    result = fit_preset(cases, base="ct-generic", name="mine")
    fit, preset = result["fit"], result["preset"]
    real, simulated = fit["real"], fit["simulated_with_fit"]
    assert fit["measured_lesions"] >= 5 and fit["lesions_per_case"] == [3, 3]
    assert abs(simulated["contrast"]["median"] - real["contrast"]["median"]) <= 6.0
    assert abs(simulated["sd_ratio"]["median"] - real["sd_ratio"]["median"]) <= 0.2
    assert abs(simulated["edge"]["median"] / real["edge"]["median"] - 1.0) <= 0.3
    low, mode, high = preset["contrast"]["hypo"]
    assert -50.0 <= mode <= -20.0 and low < mode < high  # the known drawn contrasts were -45 ... -25
    assert preset["default_lesion_type"] == "hypo" and fit["uncertainty"]["median_contrast_ci"] is not None


def test_a_fitted_preset_changes_the_output_the_way_it_should(clinical, tmp_path):
    from SynthLesionLib.fit import fit_preset

    contrasts = {}
    for name, drawn in (("faint", (-20.0, -15.0, -10.0)), ("strong", (-75.0, -65.0, -55.0))):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(fit_preset(_annotated_cases(clinical, drawn, seeds=(2,), count=4), name=name)))
        contrasts[name] = summarise(_features(clinical, range(4), preset=str(path)))["contrast"]["median"]
    assert contrasts["strong"] < contrasts["faint"] - 25.0 < 0


def test_fit_refuses_bad_cases(clinical, capsys, tmp_path):
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import write_volume
    from SynthLesionLib.fit import FitCase, fit_preset

    image, liver, geometry = clinical
    labels = liver.astype(np.uint8)
    with pytest.raises(MedSynthInputError, match="no voxel of the lesion label 2"):
        fit_preset([FitCase(image, labels, geometry, 1, 2)])
    outside = labels.copy()
    outside[2:5, 2:8, 2:8] = 2  # a 'lesion' far from the liver
    with pytest.raises(MedSynthInputError, match="lie outside the organ"):
        fit_preset([FitCase(image, outside, geometry, 1, 2)])
    one = _annotated_cases(clinical, (-40.0, -30.0, -20.0), seeds=(5,), count=1)
    result = fit_preset(one)
    assert "Only 1 measurable lesion" in result["fit"]["warning"]
    write_volume(tmp_path / "ct.nii.gz", image, geometry)
    shifted = Geometry(geometry.origin + 5.0, geometry.spacing, geometry.direction)
    write_volume(tmp_path / "labels.nii.gz", one[0].labels, shifted)
    assert main(["lesion", "fit", "--image", str(tmp_path / "ct.nii.gz"), "--label", str(tmp_path / "labels.nii.gz"),
                 "--organ-label", "1", "--lesion-label", "2", "--out", str(tmp_path / "p.json")]) == 2
    assert "origin" in capsys.readouterr().err
