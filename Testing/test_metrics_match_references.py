"""Our metrics equal the references they cite, on non-trivial data: SynthLesion lesion masks
on an anisotropic grid (segmentation), a CT phantom and its noisy copy (image), random scores
(AUC).  Conventions that differ on purpose are stated in the docstrings and checked here."""

from __future__ import annotations

import numpy as np
import pytest

from SynthEvaluateLib.metrics.classification import auc
from SynthEvaluateLib.metrics.image import image_metrics
from SynthEvaluateLib.metrics.segmentation import dice, hausdorff_95, normalized_surface_dice
from SynthLesionLib import LesionConfig, make_ct_phantom, synthesize_lesions


@pytest.fixture(scope="module")
def lesion_pairs():
    """Reference = lesions of one seed; prediction = the same lesions grown/shrunk/shifted plus
    another lesion, so every metric sees partial overlap, extra and missed surface."""
    from scipy import ndimage

    phantom = make_ct_phantom(shape=(40, 96, 96), spacing=(1.5, 1.5, 2.5), seed=5)
    pairs = []
    for seed in range(4):
        result = synthesize_lesions(phantom.image, phantom.organ_mask("liver"), phantom.geometry,
                                    LesionConfig(size_class="small", count=2), seed)
        reference = result.lesion_labels > 0
        prediction = ndimage.binary_dilation(reference, iterations=seed % 2 + 1) if seed % 2 else \
            ndimage.binary_erosion(reference, iterations=1)
        prediction = np.roll(prediction, seed - 1, axis=2)
        pairs.append((prediction, reference, phantom.geometry.spacing_kji))
    return pairs


def test_dice_nsd_hd95_equal_monai(lesion_pairs):
    torch = pytest.importorskip("torch")
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

    for prediction, reference, spacing in lesion_pairs:
        as_tensor = lambda m: torch.as_tensor(np.stack([~m, m]).astype(np.float32))[None]  # noqa: E731
        p, r = as_tensor(prediction), as_tensor(reference)
        assert dice(prediction, reference) == pytest.approx(float(compute_dice(p, r, include_background=False)), abs=1e-7)
        monai_nsd = float(compute_surface_dice(p, r, class_thresholds=[2.0], include_background=False,
                                               spacing=tuple(spacing.tolist())))
        assert normalized_surface_dice(prediction, reference, spacing, 2.0) == pytest.approx(monai_nsd, abs=1e-7)
        monai_hd95 = float(compute_hausdorff_distance(p, r, include_background=False, percentile=95,
                                                      spacing=tuple(spacing.tolist())))
        assert hausdorff_95(prediction, reference, spacing) == pytest.approx(monai_hd95, abs=1e-6)


def test_psnr_and_ssim_equal_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    phantom = make_ct_phantom(shape=(24, 80, 80), spacing=(2.0, 2.0, 3.0), seed=6)
    reference = phantom.image.astype(np.float64)
    test = reference + np.random.default_rng(0).normal(0, 25, reference.shape)
    value_range = float(reference.max() - reference.min())
    ours = image_metrics(test, reference, data_range=value_range)
    assert ours["psnr_db"] == pytest.approx(peak_signal_noise_ratio(reference, test, data_range=value_range), abs=1e-9)
    assert ours["ssim"] == pytest.approx(structural_similarity(reference, test, data_range=value_range, win_size=7),
                                         abs=1e-12)
    for k in (0, 12):  # 2-D slices too
        ours = image_metrics(test[k], reference[k], data_range=value_range)
        assert ours["ssim"] == pytest.approx(structural_similarity(reference[k], test[k], data_range=value_range,
                                                                   win_size=7), abs=1e-12)


def test_auc_equals_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = labels * 0.6 + rng.normal(0, 0.5, 300)
    scores[:40] = np.round(scores[:40], 1)  # ties
    assert auc(labels, scores) == roc_auc_score(labels, scores)
