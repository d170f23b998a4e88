"""Distances between the feature distributions of real and synthetic images, fully offline.

Every function takes feature matrices (cases x features) that the caller computed, so the
numbers are only comparable between runs that used the same features: the functions return
the feature source they were given, and the protocols record it.  Feature sources here:
- ``radiomic_features``: hand-crafted, deterministic texture and intensity features
  (first-order statistics and grey-level co-occurrence properties from scikit-image), for
  the Frechet Radiomics Distance (FRD);
- any network's embeddings (one the user supplies or one trained in the project), for FID,
  KID and precision/recall/density/coverage.  Nothing is downloaded.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg, stats

from MedSynthCommonLib.errors import MedSynthInputError


def _features(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise MedSynthInputError(f"{name} must be a (cases, features) matrix; got shape {x.shape}.")
    if x.shape[0] < 2:
        raise MedSynthInputError(f"{name} needs at least 2 cases; got {x.shape[0]}.")
    if not np.all(np.isfinite(x)):
        raise MedSynthInputError(f"{name} holds NaN or infinite features.")
    return x


def _pair(a, b):
    a, b = _features(a, "real features"), _features(b, "synthetic features")
    if a.shape[1] != b.shape[1]:
        raise MedSynthInputError(f"Feature sets differ in width: {a.shape[1]} vs {b.shape[1]}; use the same extractor.")
    return a, b


def frechet_distance(real, synthetic) -> float:
    """Frechet distance between Gaussians fitted to both feature sets (the formula of FID)."""
    a, b = _pair(real, synthetic)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # fewer cases than features give singular (but valid) covariances; callers are told
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = np.real(linalg.sqrtm(cov_a @ cov_b))  # tiny imaginary parts are numerical noise
    distance = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * root))
    return max(distance, 0.0)


def kernel_inception_distance(real, synthetic, subsets: int = 50, subset_size: int = 100, seed: int = 0) -> dict:
    """KID: unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets."""
    a, b = _pair(real, synthetic)
    size = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(a.shape[0], size, replace=False)]
        y = b[rng.choice(b.shape[0], size, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        off = ~np.eye(size, dtype=bool)
        values.append(kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean())
    return {"kid": float(np.mean(values)), "std": float(np.std(values)), "subsets": subsets, "subset_size": size}


def inception_score(probabilities, splits: int = 10) -> dict:
    """Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) from a classifier's
    (n, classes) class probabilities, mean and std over ``splits`` equal parts (fewer when there
    are fewer than 10 images per part).  It ranges from 1 to the number of classes and is only
    comparable between runs that used the same classifier: record which one it was."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or len(p) < 2:
        raise MedSynthInputError(f"The Inception Score needs (images, classes >= 2) probabilities; got shape {p.shape}.")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise MedSynthInputError("The Inception Score needs class probabilities (finite, non-negative, rows summing to 1).")
    parts = max(1, min(splits, len(p) // 10))
    scores = []
    for part in np.array_split(p, parts):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None))), axis=1)
        scores.append(float(np.exp(kl.mean())))
    return {"is": float(np.mean(scores)), "std": float(np.std(scores)), "splits": parts, "images": len(p)}


def precision_recall_density_coverage(real, synthetic, k: int = 5) -> dict:
    """Precision, recall, density and coverage (Naeem et al. 2020) with k nearest neighbours."""
    from sklearn.metrics import pairwise_distances

    a, b = _pair(real, synthetic)
    if min(a.shape[0], b.shape[0]) <= k:
        raise MedSynthInputError(f"k = {k} needs more than {k} cases in each set; got {a.shape[0]} and {b.shape[0]}.")
    real_radius = np.sort(pairwise_distances(a, a), axis=1)[:, k]  # k-th neighbour (index 0 is itself)
    fake_radius = np.sort(pairwise_distances(b, b), axis=1)[:, k]
    real_fake = pairwise_distances(a, b)
    inside_real = real_fake <= real_radius[:, np.newaxis]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((real_fake.T <= fake_radius[:, np.newaxis]).any(axis=0).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((real_fake.min(axis=1) <= real_radius).mean()),
        "k": k,
    }


def radiomic_features(image: np.ndarray, mask: np.ndarray | None = None, levels: int = 32,
                      intensity_range: tuple[float, float] | None = None) -> np.ndarray:
    """Deterministic radiomic features of one 2-D image or 3-D volume (inside ``mask``).

    First-order: mean, std, skewness, kurtosis, 10/50/90th percentiles, entropy; texture:
    GLCM contrast, homogeneity, energy, correlation, dissimilarity, averaged over 4 in-plane
    directions at distance 1, on ``levels`` grey levels over ``intensity_range`` (give the same
    range for every image compared, e.g. a CT window; default: the image's 1st-99th percentile).
    """
    from skimage.feature import graycomatrix, graycoprops

    image = np.asarray(image, dtype=np.float64)
    if image.ndim not in (2, 3):
        raise MedSynthInputError(f"Radiomic features need a 2-D or 3-D image; got shape {image.shape}.")
    region = np.ones(image.shape, bool) if mask is None else np.asarray(mask).astype(bool)
    if region.shape != image.shape or not region.any():
        raise MedSynthInputError("The mask must have the image's shape and cover at least one voxel.")
    values = image[region]
    low, high = intensity_range if intensity_range is not None else np.percentile(values, [1, 99])
    if high <= low:
        high = low + 1.0
    quantised = np.clip(((image - low) / (high - low) * (levels - 1)).round(), 0, levels - 1).astype(np.uint8)
    histogram = np.bincount(quantised[region], minlength=levels) / region.sum()
    entropy = -float(np.sum(histogram[histogram > 0] * np.log2(histogram[histogram > 0])))
    slices = quantised[np.newaxis] if image.ndim == 2 else quantised
    masks = region[np.newaxis] if image.ndim == 2 else region
    glcm = np.zeros((levels + 1, levels + 1, 1, 4))
    for plane, plane_mask in zip(slices, masks):
        if plane_mask.any():
            # level 0 is reserved for "outside the mask" and dropped below
            shifted = np.where(plane_mask, plane + 1, 0).astype(np.uint8)
            glcm += graycomatrix(shifted, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=levels + 1)
    glcm = glcm[1:, 1:]
    totals = glcm.sum(axis=(0, 1), keepdims=True)
    glcm = glcm / np.where(totals == 0, 1.0, totals)  # a probability matrix per direction
    texture = [float(graycoprops(glcm, prop).mean()) for prop in
               ("contrast", "homogeneity", "energy", "correlation", "dissimilarity")]
    first_order = [values.mean(), values.std(), float(stats.skew(values)), float(stats.kurtosis(values)),
                   *np.percentile(values, [10, 50, 90]), entropy]
    return np.nan_to_num(np.array(first_order + texture, dtype=np.float64))


RADIOMIC_FEATURE_NAMES = ["mean", "std", "skewness", "kurtosis", "p10", "p50", "p90", "entropy",
                          "glcm_contrast", "glcm_homogeneity", "glcm_energy", "glcm_correlation", "glcm_dissimilarity"]


def frechet_radiomics_distance(real_images, synthetic_images, masks_real=None, masks_synthetic=None,
                               intensity_range=None) -> dict:
    """FRD: Frechet distance between z-scored radiomic features of two image sets.

    Features are standardised with the real set's mean and std, so that no feature dominates
    by its units.
    """
    def extract(images, masks):
        masks = masks if masks is not None else [None] * len(images)
        return np.stack([radiomic_features(im, m, intensity_range=intensity_range) for im, m in zip(images, masks)])

    real = extract(real_images, masks_real)
    synthetic = extract(synthetic_images, masks_synthetic)
    mean, std = real.mean(axis=0), real.std(axis=0)
    std[std == 0] = 1.0
    result = {"frd": frechet_distance((real - mean) / std, (synthetic - mean) / std),
              "features": RADIOMIC_FEATURE_NAMES, "cases": [len(real), len(synthetic)]}
    if min(len(real), len(synthetic)) <= len(RADIOMIC_FEATURE_NAMES):
        result["note"] = (f"fewer cases than the {len(RADIOMIC_FEATURE_NAMES)} features: covariances are singular "
                          "and FRD is only indicative; compare sets of at least 50 images")
    return result


def network_features(classifier, images: np.ndarray, batch_size: int = 64) -> dict:
    """Embeddings of ``images`` from a classifier trained in the project: the input of its
    last linear layer.  Returns the features and a description of where they come from,
    to be recorded with any FID/KID/PRDC computed on them."""
    import torch

    model = classifier.model.eval()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not last:
        raise MedSynthInputError("The network has no linear layer to take features from.")
    captured = []
    handle = last[-1].register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                model(torch.as_tensor(np.asarray(images[start:start + batch_size], np.float32))[:, None])
    finally:
        handle.remove()
    features = torch.cat(captured).flatten(1).numpy().astype(np.float64)
    source = {"network": classifier.recipe.network, "seed": classifier.seed, "trained_on": classifier.train_summary,
              "layer": "input of the last linear layer", "width": int(features.shape[1])}
    return {"features": features, "source": source}
