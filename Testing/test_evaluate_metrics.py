"""SynthEvaluateLib metrics against values known by construction, edge cases and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from SynthEvaluateLib.metrics.classification import (auc, binary_metrics, delong_auc, delong_paired_test, mcnemar_test,
                                             per_class_auc)
from SynthEvaluateLib.metrics.image import image_metrics
from SynthEvaluateLib.studies.leakage import check_disjoint
from SynthEvaluateLib.metrics.segmentation import (detection_by_size, dice, hausdorff_95, lesion_detection,
                                           normalized_surface_dice, scan_level_detection)
from SynthEvaluateLib.metrics.statistics import bootstrap_ci, paired_difference
from SynthLesionLib import MedSynthInputError


def _sphere(shape, centre, radius_mm, spacing):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)) <= radius_mm ** 2


# --- segmentation -----------------------------------------------------------------------

def test_dice_of_known_overlap():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros_like(a)
    a[2:6, 2:6, 2:6] = True  # 64 voxels
    b[4:8, 2:6, 2:6] = True  # 64 voxels, 32 shared
    assert dice(a, b) == pytest.approx(2 * 32 / 128)
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0


def test_empty_masks_are_handled_by_stated_convention():
    empty = np.zeros((8, 8, 8), bool)
    full = empty.copy()
    full[2:5, 2:5, 2:5] = True
    assert (dice(empty, empty), normalized_surface_dice(empty, empty, (1, 1, 1)), hausdorff_95(empty, empty, (1, 1, 1))) == (1.0, 1.0, 0.0)
    assert (dice(full, empty), normalized_surface_dice(full, empty, (1, 1, 1))) == (0.0, 0.0)
    assert hausdorff_95(empty, full, (1, 1, 1)) == float("inf")


def test_surface_metrics_of_concentric_spheres_in_mm():
    spacing = (2.0, 1.0, 1.0)  # anisotropic: k voxels are 2 mm
    shape, centre = (40, 80, 80), (20, 40, 40)
    inner, outer = _sphere(shape, centre, 15.0, spacing), _sphere(shape, centre, 19.0, spacing)
    hd = hausdorff_95(inner, outer, spacing)
    assert 3.0 <= hd <= 5.0  # 4 mm apart, up to a voxel of discretisation
    assert normalized_surface_dice(inner, outer, spacing, tolerance_mm=5.5) == 1.0
    assert normalized_surface_dice(inner, outer, spacing, tolerance_mm=2.0) < 0.2
    assert normalized_surface_dice(inner, inner, spacing, tolerance_mm=0.0) == 1.0


def test_surface_distance_uses_spacing():
    a = np.zeros((20, 20, 20), bool)
    a[5:10, 5:10, 5:10] = True
    b = np.roll(a, 3, axis=0)  # 3 voxels along k
    assert hausdorff_95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.0)
    assert hausdorff_95(a, b, (2.5, 1.0, 1.0)) == pytest.approx(7.5)


def test_lesion_detection_and_size_strata():
    spacing = (1.0, 1.0, 1.0)
    reference = _sphere((40, 40, 40), (10, 10, 10), 4.0, spacing) | _sphere((40, 40, 40), (28, 28, 28), 9.0, spacing)
    prediction = _sphere((40, 40, 40), (28, 28, 28), 8.0, spacing).copy()
    prediction[2:4, 35:37, 2:4] = True  # a false positive far from both lesions
    case = lesion_detection(prediction, reference, spacing)
    assert case.detected == [False, True]
    assert case.false_positives == 1 and case.predicted_components == 2
    strata = detection_by_size([case], bins_mm=(0, 10, 40))
    assert strata[0]["lesions"] == 1 and strata[0]["sensitivity"] == 0.0
    assert strata[1]["lesions"] == 1 and strata[1]["sensitivity"] == 1.0
    assert detection_by_size([case], bins_mm=(40, 80))[0]["sensitivity"] is None  # no lesion: undefined


def test_scan_level_sensitivity_specificity():
    lesion = np.zeros((4, 4, 4), bool)
    lesion[1, 1, 1] = True
    none = np.zeros_like(lesion)
    result = scan_level_detection([lesion, none, lesion, none], [lesion, lesion, none, none])
    assert result["sensitivity"] == 0.5 and result["specificity"] == 0.5
    assert scan_level_detection([none], [none])["sensitivity"] is None


def test_segmentation_bad_input():
    a = np.zeros((5, 5, 5), bool)
    with pytest.raises(MedSynthInputError, match="shape .* resample"):
        dice(a, np.zeros((5, 5, 4), bool))
    with pytest.raises(MedSynthInputError, match="not binary.*mask == label"):
        dice(a, np.full((5, 5, 5), 3))
    from SynthEvaluateLib.metrics.segmentation import check_masks

    with pytest.raises(MedSynthInputError, match="spacing"):
        check_masks(a, a, (1, 1, 1), (1, 1, 2))


# --- classification ---------------------------------------------------------------------

def test_hand_computable_auc_and_delong_matches_it():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]  # pairs (pos > neg): 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3 of 4
    assert auc(y, s) == 0.75
    assert delong_auc(y, s)["auc"] == pytest.approx(0.75)


def test_delong_standard_error_agrees_with_bootstrap():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(150, int), np.ones(100, int)]
    s = rng.normal(size=250) + y * 1.0
    result = delong_auc(y, s)
    boot = []
    for _ in range(2000):
        i = rng.integers(0, 250, 250)
        if 0 < y[i].sum() < 250:
            boot.append(auc(y[i], s[i]))
    assert result["se"] == pytest.approx(np.std(boot), rel=0.15)
    assert result["ci"][0] < result["auc"] < result["ci"][1]


def test_delong_paired_test_finds_a_real_difference_and_not_a_fake_one():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(200, int), np.ones(200, int)]
    noise = rng.normal(size=400)
    strong, weak = noise + 2.0 * y, noise + 0.3 * y + rng.normal(size=400)
    assert delong_paired_test(y, strong, weak)["p_value"] < 1e-6
    same = delong_paired_test(y, strong, strong * 2 + 1)  # same ranking
    assert same["difference"] == 0.0 and same["p_value"] == 1.0


def test_binary_metrics_with_wilson_intervals_and_undefined_parts():
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    p = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    m = binary_metrics(y, p)
    assert (m["tp"], m["fn"], m["tn"], m["fp"]) == (3, 1, 5, 1)
    assert m["sensitivity"]["value"] == 0.75 and m["specificity"]["value"] == pytest.approx(5 / 6)
    low, high = stats.binomtest(3, 4).proportion_ci(0.95, method="wilson")
    assert m["sensitivity"]["ci"] == pytest.approx([low, high])
    never_positive = binary_metrics([1, 0, 0], [0, 0, 0])
    assert never_positive["ppv"]["value"] is None  # a class never predicted: undefined, not NaN
    assert binary_metrics([0, 0], [0, 1])["sensitivity"]["value"] is None  # no positives in the test set


def test_per_class_auc_multiclass_multilabel_and_missing_class():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 30)
    scores = rng.normal(size=(90, 3)) + np.eye(3)[y] * 2
    result = per_class_auc(y, scores, ["normal", "bacterial", "viral"])
    assert set(result["per_class"]) == {"normal", "bacterial", "viral"} and result["classes_averaged"] == 3
    assert result["macro"] > 0.8
    low, high = result["per_class_ci"]["viral"]
    assert low < result["per_class"]["viral"] < high  # DeLong interval per class (one-vs-rest)
    multilabel = (rng.random((90, 3)) < 0.4).astype(int)
    multilabel[:, 2] = 0  # a finding nobody has
    result = per_class_auc(multilabel, rng.normal(size=(90, 3)))
    assert result["per_class"]["2"] is None and result["classes_averaged"] == 2


def test_single_class_test_set_is_refused():
    with pytest.raises(MedSynthInputError, match="one class only"):
        auc([1, 1, 1], [0.2, 0.5, 0.9])


def test_mcnemar_exact():
    a = np.array([True] * 10 + [False] * 2 + [True] * 20)
    b = np.array([False] * 10 + [True] * 2 + [True] * 20)
    result = mcnemar_test(a, b)
    assert (result["only_a_correct"], result["only_b_correct"]) == (10, 2)
    assert result["p_value"] == pytest.approx(stats.binomtest(10, 12).pvalue)
    assert mcnemar_test(a, a)["p_value"] == 1.0


# --- statistics -------------------------------------------------------------------------

def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    values = np.random.default_rng(3).normal(0.8, 0.05, size=40)
    first, again = bootstrap_ci(values, seed=7, n_resamples=2000), bootstrap_ci(values, seed=7, n_resamples=2000)
    assert first == again
    assert first["ci"][0] < values.mean() < first["ci"][1]
    assert bootstrap_ci(np.full(6, 0.5))["ci"] == [0.5, 0.5]


def test_bootstrap_refuses_too_few_cases_and_infinite_values():
    with pytest.raises(MedSynthInputError, match="at least 5 cases"):
        bootstrap_ci([0.1, 0.2, 0.3])
    with pytest.raises(MedSynthInputError, match="non-finite.*HD95"):
        bootstrap_ci([1.0, 2.0, np.inf, 3.0, 4.0, 5.0])


def test_paired_difference():
    rng = np.random.default_rng(4)
    base = rng.normal(0.7, 0.1, 30)
    better = base + 0.05 + rng.normal(0, 0.01, 30)
    result = paired_difference(better, base, n_resamples=2000)
    assert result["ci"][0] > 0 and result["wilcoxon_p"] < 1e-4
    assert paired_difference(base, base)["wilcoxon_p"] == 1.0
    assert "excludes 0" in result["conclusion"]
    noisy = paired_difference(base + np.random.default_rng(3).normal(0.005, 0.05, base.size), base, n_resamples=2000)
    assert "no conclusion" in noisy["conclusion"] and noisy["cases_needed"] > base.size


def test_paired_difference_over_seeds_and_a_non_inferiority_margin():
    rng = np.random.default_rng(5)
    right_a = (rng.random((3, 200)) < 0.80).astype(float)  # three seeds, 200 cases scored right (1) or wrong (0)
    right_b = (rng.random((3, 200)) < 0.80).astype(float)
    pooled = paired_difference(right_a, right_b, n_resamples=2000, margin=0.1)
    assert pooled["seeds"] == 3 and pooled["n"] == 200
    assert pooled["mean_difference"] == pytest.approx(right_a.mean() - right_b.mean())
    one = paired_difference(right_a[0], right_b[0], n_resamples=2000)
    assert pooled["ci"][1] - pooled["ci"][0] < one["ci"][1] - one["ci"][0]  # seeds averaged: a narrower interval
    low, high = pooled["ci"]
    assert low < 0 < high and low > -0.1 and "not worse by more than 0.1" in pooled["conclusion"]
    strict = paired_difference(right_a, right_b, n_resamples=2000, margin=0.001)
    assert "no conclusion" in strict["conclusion"] and strict["cases_needed_for_margin"] > 200
    assert "worse)" in paired_difference(right_b - 0.3, right_b, n_resamples=2000)["conclusion"]
    with pytest.raises(MedSynthInputError, match="same cases and seeds"):
        paired_difference(right_a, right_b[:2])
    with pytest.raises(MedSynthInputError, match="margin must be above 0"):
        paired_difference(right_a, right_b, margin=0.0)


# --- images and leakage -----------------------------------------------------------------

def test_image_metrics_known_values():
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 4096, size=(12, 32, 32)).astype(np.uint16)
    same = image_metrics(reference, reference, data_range=4095)
    assert same["rmse"] == 0 and same["psnr_db"] == float("inf") and same["ssim"] == pytest.approx(1.0)
    shifted = image_metrics(reference.astype(float) + 10, reference, data_range=4095)
    assert shifted["rmse"] == pytest.approx(10) and shifted["mae"] == pytest.approx(10)
    assert shifted["psnr_db"] == pytest.approx(10 * np.log10(4095 ** 2 / 100))
    mask = np.zeros(reference.shape, bool)
    mask[:, :16] = True
    half = reference.astype(float)
    half[:, 16:] += 100  # differences only outside the mask
    assert image_metrics(half, reference, mask=mask, data_range=4095)["rmse"] == 0


def test_image_metrics_bad_input():
    a = np.zeros((8, 8, 8))
    with pytest.raises(MedSynthInputError, match="differ in shape"):
        image_metrics(a, np.zeros((8, 8, 7)))
    with pytest.raises(MedSynthInputError, match="constant.*data_range"):
        image_metrics(a, a)
    with pytest.raises(MedSynthInputError, match="mask is empty"):
        image_metrics(a, a, mask=np.zeros_like(a, bool), data_range=1)


def test_overlapping_train_and_test_sets_are_refused():
    rng = np.random.default_rng(6)
    images = {f"case{i}": rng.integers(0, 100, (4, 8, 8)) for i in range(4)}
    check_disjoint({k: images[k] for k in ("case0", "case1")}, {k: images[k] for k in ("case2", "case3")})
    with pytest.raises(MedSynthInputError, match="case3 = training case0"):
        check_disjoint({"case0": images["case0"]}, {"case3": images["case0"].copy()})


def test_benchmark_gives_the_baselines_numbers():
    from SynthEvaluateLib.cli.benchmark import bench_evaluate

    result = bench_evaluate(shape=(24, 96, 96), spacing=(2.5, 0.8, 0.8))
    assert 0.0 < result["surface_metrics"]["nsd_2mm"] < 1.0  # the numbers equal the baseline's (asserted inside)
    assert result["bootstrap_10000"]["ci"][0] < 0.8 < result["bootstrap_10000"]["ci"][1]


# --- distribution distances -------------------------------------------------------------

def test_frechet_distance_of_shifted_sets_is_the_squared_shift():
    from SynthEvaluateLib.metrics.distances import frechet_distance

    features = np.random.default_rng(8).normal(size=(300, 6))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0, 0, 0.5, 0])
    assert frechet_distance(features, features + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_kid_and_prdc_separate_equal_from_different_distributions():
    from SynthEvaluateLib.metrics.distances import kernel_inception_distance, precision_recall_density_coverage

    rng = np.random.default_rng(9)
    real, same, other = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)), rng.normal(1.5, 1, size=(200, 8))
    assert abs(kernel_inception_distance(real, same)["kid"]) < 0.05 < kernel_inception_distance(real, other)["kid"]
    identical = precision_recall_density_coverage(real, real)
    assert identical["precision"] == identical["recall"] == identical["coverage"] == 1.0
    shifted = precision_recall_density_coverage(real, other)
    assert shifted["precision"] < 0.6 and shifted["coverage"] < 0.6


def test_radiomic_features_and_frd():
    from SynthEvaluateLib.metrics.distances import RADIOMIC_FEATURE_NAMES, frechet_radiomics_distance, radiomic_features

    rng = np.random.default_rng(10)
    smooth = [np.cumsum(rng.normal(size=(32, 32)), axis=1) for _ in range(12)]
    noisy = [im + rng.normal(0, 5, im.shape) for im in smooth]
    features = radiomic_features(smooth[0], intensity_range=(-20, 20))
    assert features.shape == (len(RADIOMIC_FEATURE_NAMES),)
    assert np.array_equal(features, radiomic_features(smooth[0], intensity_range=(-20, 20)))
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    assert not np.array_equal(features, radiomic_features(smooth[0], mask, intensity_range=(-20, 20)))
    same = frechet_radiomics_distance(smooth, smooth, intensity_range=(-20, 20))["frd"]
    different = frechet_radiomics_distance(smooth, noisy, intensity_range=(-20, 20))["frd"]
    assert same == pytest.approx(0.0, abs=1e-6) and different > 1.0


def test_distances_bad_input():
    from SynthEvaluateLib.metrics.distances import frechet_distance, precision_recall_density_coverage

    with pytest.raises(MedSynthInputError, match="differ in width"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(MedSynthInputError, match="k = 5 needs more than 5 cases"):
        precision_recall_density_coverage(np.zeros((4, 2)), np.zeros((9, 2)))


def test_ms_ssim_identical_degraded_and_small_images():
    pytest.importorskip("monai")
    from SynthEvaluateLib.metrics.image import ms_ssim

    rng = np.random.default_rng(11)
    reference = ndimage_smooth(rng.random((128, 128)))
    assert ms_ssim(reference, reference, data_range=1.0) == pytest.approx(1.0, abs=1e-5)
    noisy = np.clip(reference + rng.normal(0, 0.1, reference.shape), 0, 1)
    assert ms_ssim(noisy, reference, data_range=1.0) < 0.95
    small = ms_ssim(noisy[:20, :20], reference[:20, :20], data_range=1.0)  # falls back to fewer scales
    assert 0 < small < 1
    volume = ndimage_smooth(rng.random((24, 48, 48)))
    assert ms_ssim(volume, volume, data_range=1.0) == pytest.approx(1.0, abs=1e-5)


def ndimage_smooth(array):
    from scipy import ndimage

    return ndimage.gaussian_filter(array, 2.0)
