"""Every kind of bad input gets a clear error that names the problem and the fix, and the
inputs stay untouched."""

from __future__ import annotations

import numpy as np
import pytest

from SynthLesionLib import Geometry, LesionConfig, MedSynthInputError, PlacementError, synthesize_lesions


def _run(image, mask, geometry, **options):
    mask_geometry = options.pop("mask_geometry", None)
    seed = options.pop("seed", 0)
    return synthesize_lesions(image, mask, geometry, LesionConfig(**options), seed, mask_geometry=mask_geometry)


def _expect(match, image, mask, geometry, error=MedSynthInputError, **options):
    image_before, mask_before = image.copy(), mask.copy()
    with pytest.raises(error, match=match):
        _run(image, mask, geometry, **options)
    assert np.array_equal(image, image_before, equal_nan=image.dtype.kind == "f")
    assert np.array_equal(mask, mask_before)


def test_empty_organ(ct_phantom):
    _expect("organ mask is empty.*right segment", ct_phantom.image, np.zeros_like(ct_phantom.organs), ct_phantom.geometry)


def test_missing_organ_label(ct_phantom):
    with pytest.raises(MedSynthInputError, match="empty"):
        synthesize_lesions(ct_phantom.image, ct_phantom.organs, ct_phantom.geometry, organ_label=99)


def test_a_mask_with_several_labels_is_refused_and_one_label_of_any_type_accepted(ct_phantom):
    """Without organ_label the mask must hold one value besides 0, whatever its integer type
    and sign; the quick test (extremes and counts) says the same as listing the values."""
    from SynthLesionLib.inputs import check_organ_label, organ_of

    two = ct_phantom.organs.astype(np.int16)
    assert len(set(np.unique(two).tolist()) - {0}) > 1
    _expect("holds [0-9]+ labels .*--organ-label", ct_phantom.image, two, ct_phantom.geometry)
    for values, one_label in (([0, 1], True), ([0, 255], True), ([0, -1], True), ([0, -1, -2], False),
                              ([1, 2], False), ([0, 1, 2], False), ([-3, 4], False), ([7], True), ([0], True)):
        for dtype in (np.uint8, np.int16) if min(values) >= 0 and max(values) < 256 else (np.int16,):
            mask = np.resize(np.asarray(values, dtype), (3, 4, 5))
            if one_label:
                check_organ_label(mask, None)
            else:
                with pytest.raises(MedSynthInputError, match="labels"):
                    check_organ_label(mask, None)
    rng = np.random.default_rng(8)
    decided = {True: 0, False: 0}
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64):
        for _ in range(40):
            values = rng.choice(np.arange(-3, 4) if np.issubdtype(dtype, np.signedinteger) else np.arange(0, 7),
                                size=rng.integers(1, 4), replace=False)
            mask = rng.choice(values, size=(4, 5, 6)).astype(dtype)
            one_label = len(set(np.unique(mask).tolist()) - {0}) <= 1
            decided[one_label] += 1
            if one_label:
                check_organ_label(mask, None)
            else:
                with pytest.raises(MedSynthInputError, match="labels"):
                    check_organ_label(mask, None)
    assert min(decided.values()) > 50
    zero_one = (ct_phantom.organs == 1).astype(np.uint8)  # read where it is: the same bytes as a boolean
    assert np.shares_memory(organ_of(zero_one, None), zero_one)
    assert np.array_equal(organ_of(zero_one, None), zero_one == 1)


def test_mask_with_another_shape(ct_phantom):
    _expect("organ mask has .* voxels .* resample", ct_phantom.image, ct_phantom.organs[:, :-1], ct_phantom.geometry)


def test_mask_with_another_geometry(ct_phantom):
    g = ct_phantom.geometry
    shifted = Geometry(g.origin + [5.0, 0, 0], g.spacing, g.direction)
    _expect("geometry differs.*Resample", ct_phantom.image, ct_phantom.organ_mask("liver"), g, mask_geometry=shifted)
    rescaled = Geometry(g.origin, g.spacing * [1, 1, 2], g.direction)
    _expect("geometry differs", ct_phantom.image, ct_phantom.organ_mask("liver"), g, mask_geometry=rescaled)


def test_organ_too_small_for_the_size_class(ct_phantom):
    _expect("smaller size class", ct_phantom.image, ct_phantom.organ_mask("pancreas"), ct_phantom.geometry,
            error=PlacementError, preset="ct-pancreas", size_class="large")


def test_no_vessel_free_position(ct_phantom):
    # a threshold below the parenchyma makes every voxel a "vessel"
    _expect("No vessel-free position.*vessel_threshold_sd", ct_phantom.image, ct_phantom.organ_mask("liver"),
            ct_phantom.geometry, error=PlacementError, vessel_threshold_sd=-5.0, max_attempts=400)


@pytest.mark.parametrize("shape,words", [((64, 64), "2-D image"), ((3, 8, 32, 32), "4-D")])
def test_not_a_3d_volume(shape, words):
    image = np.zeros(shape, np.int16)
    with pytest.raises(MedSynthInputError, match=f"{words}.*3-D scalar volume"):
        _run(image, np.ones(shape, np.uint8), Geometry())


def test_nan_values(ct_phantom):
    image = ct_phantom.image.astype(np.float32)
    image[ct_phantom.organ_mask("liver")] = np.nan
    _expect("NaN", image, ct_phantom.organ_mask("liver"), ct_phantom.geometry)


def test_ct_preset_on_mr(mr_phantom):
    _expect("expects a CT .*MR preset", mr_phantom.image, mr_phantom.organ_mask("brain"), mr_phantom.geometry,
            preset="ct-liver")
    # an MR whose organ happens to lie in the CT range: no negative values gives it away
    dim = mr_phantom.image // 4
    _expect("for CT in HU.*does not look like CT", dim, mr_phantom.organ_mask("brain"), mr_phantom.geometry,
            preset="ct-generic")


def test_mr_preset_on_ct(ct_phantom):
    _expect("is for MR.*suggests CT", ct_phantom.image, ct_phantom.organ_mask("liver"), ct_phantom.geometry,
            preset="mr-liver")


def test_unscaled_ct(ct_phantom):
    raw = (ct_phantom.image.astype(np.int32) + 1024).astype(np.uint16)
    _expect("rescale", raw, ct_phantom.organ_mask("liver"), ct_phantom.geometry)


@pytest.mark.parametrize("options,match", [
    ({"size_class": "huge"}, "Unknown size class 'huge'; choose one of: tiny, small, medium, large, mix"),
    ({"preset": "ct-lung"}, "Unknown preset 'ct-lung'. Available presets: ct-liver"),
    ({"lesion_type": "dark"}, "Unknown lesion type"),
    ({"mass_effect": 150}, "mass_effect must be between 0 and 100"),
    ({"count": 0}, "count must be between 1 and 1000"),
    ({"centres_ras": [[1, 2]]}, "3 finite RAS coordinates"),
])
def test_bad_options(ct_phantom, options, match):
    _expect(match, ct_phantom.image, ct_phantom.organ_mask("liver"), ct_phantom.geometry, **options)


def test_given_point_outside_the_organ(ct_phantom):
    corner = ct_phantom.geometry.kji_to_ras([0, 0, 0]).tolist()
    _expect("outside the organ", ct_phantom.image, ct_phantom.organ_mask("liver"), ct_phantom.geometry,
            centres_ras=[corner])


def test_bad_spacing_and_sheared_direction():
    with pytest.raises(MedSynthInputError, match="spacing must be positive"):
        Geometry(spacing=(1.0, 0.0, 1.0))
    with pytest.raises(MedSynthInputError, match="not orthonormal"):
        Geometry(direction=[[1, 0.3, 0], [0, 1, 0], [0, 0, 1]])
