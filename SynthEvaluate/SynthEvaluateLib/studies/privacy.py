"""Privacy audit of a synthetic image set: is any synthetic image a near-copy of a training image?

For every synthetic image, its nearest training image and the distance to it ("distance to
closest record", DCR), in two spaces:

- **pixels**: each image resized to the same grid and z-scored (zero mean, unit variance), so
  that brightness and contrast changes do not hide a copy; the RMS difference of two such
  images is sqrt(2 (1 - r)), r their Pearson correlation.  No registration: a copy that was
  shifted or rotated is not caught here, which the feature space covers in part;
- **features**: deterministic radiomic features (first-order and GLCM texture, z-scored with
  the training set's statistics), or a network's embeddings the caller supplies.

The yardstick is how close real images come to one another: for each image of a held-out real
set (or, without one, each training image leaving itself out) its distance to the nearest
training image.  Two judgements per space:

- **closer than real**: the synthetic image lies closer to a training image than the
  ``reference_quantile`` (default 1 %) of the m real distances (the k-th smallest,
  k = ceil(quantile m) >= 1).  An image that is no copy falls there with probability
  k / (m + 1) (the chance rate: 1/31 with 30 real images, 1 % with 1000); a one-sided binomial
  test says whether the synthetic set lands there more often (memorisation in a statistical
  sense, which small sets of similar images can also show by chance);
- **near-copy**: closer than real *and* at most ``copy_fraction`` (default 0.5) of the median
  real distance, i.e. far closer than natural neighbours: the flag a reviewer acts on.  The
  memorisation rate is the share of near-copies.
"""

from __future__ import annotations

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

#: closest pairs shown in the report's picture
SHOWN_PAIRS = 8


def normalised_pixels(images: np.ndarray) -> np.ndarray:
    """(n, h, w) images -> (n, h*w) rows of zero mean and unit variance (constant images: zeros)."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    scale = centred.std(axis=1, keepdims=True)
    return centred / np.where(scale > 0, scale, 1.0)


def nearest(queries: np.ndarray, references: np.ndarray, leave_self_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices) of each query row's nearest reference row (Euclidean, per
    dimension: RMS).  ``leave_self_out``: queries are the references; each skips itself."""
    from sklearn.neighbors import NearestNeighbors

    width = queries.shape[1]
    finder = NearestNeighbors(n_neighbors=2 if leave_self_out else 1).fit(references)
    distances, indices = finder.kneighbors(queries)
    column = 1 if leave_self_out else 0
    return distances[:, column] / np.sqrt(width), indices[:, column]


def _space(name: str, train: np.ndarray, synthetic: np.ndarray, holdout: np.ndarray | None, quantile: float,
           copy_fraction: float) -> dict:
    to_train, match = nearest(synthetic, train)
    if holdout is not None:
        real, _ = nearest(holdout, train)
        yardstick = "held-out real images to their nearest training image"
    else:
        real, _ = nearest(train, train, leave_self_out=True)
        yardstick = "training images to their nearest other training image"
    # the k-th smallest real distance: an image that is no copy (exchangeable with the real ones)
    # falls below it with probability k / (m + 1), the chance rate (exact for a held-out yardstick)
    k = max(1, int(np.ceil(quantile * len(real))))
    closer_limit = float(np.sort(real)[k - 1])
    closer = to_train < closer_limit
    threshold = min(closer_limit, copy_fraction * float(np.median(real)))
    flagged = to_train < threshold
    return {"space": name, "yardstick": yardstick, "threshold": threshold, "closer_limit": closer_limit,
            "closer": closer, "chance_rate": k / (len(real) + 1),
            "synthetic_to_train": to_train, "nearest_train": match, "real_to_train": real, "flagged": flagged,
            "median_ratio": float(np.median(to_train) / max(np.median(real), 1e-12))}


def _binomial(flagged: int, total: int, chance: float) -> float:
    from scipy.stats import binomtest

    return float(binomtest(flagged, total, chance, alternative="greater").pvalue)


def privacy_audit(train: np.ndarray, synthetic: np.ndarray, train_ids: list[str], synthetic_ids: list[str],
                  holdout: np.ndarray | None = None, features: dict | None = None,
                  reference_quantile: float = 0.01, copy_fraction: float = 0.5, radiomics: bool = True) -> dict:
    """Audit ``synthetic`` (n, h, w) against ``train`` (m, h, w) images on one grid, in [0, 1].

    ``holdout``: real images not used in training (the better yardstick); ``features``: extra
    feature spaces ``{name: (train features, synthetic features, holdout features or None)}``
    (e.g. a network's embeddings, with where they come from recorded by the caller).
    Returns a result for ``write_report`` (protocol "privacy"), with the closest pairs' pixels
    under ``_pairs`` (for the picture; not written to JSON)."""
    train, synthetic = np.asarray(train, np.float32), np.asarray(synthetic, np.float32)
    if train.ndim != 3 or synthetic.ndim != 3 or train.shape[1:] != synthetic.shape[1:]:
        raise MedSynthInputError(f"Training and synthetic images must be (n, h, w) on one grid; got {train.shape} "
                                 f"and {synthetic.shape}.")
    if len(train) < 3 or len(synthetic) < 1:
        raise MedSynthInputError(f"The audit needs at least 3 training images and 1 synthetic image; got "
                                 f"{len(train)} and {len(synthetic)}.")
    if not 0 < reference_quantile < 0.5:
        raise MedSynthInputError(f"The reference quantile must lie in (0, 0.5); got {reference_quantile}.")
    if not 0 < copy_fraction <= 1:
        raise MedSynthInputError(f"The copy fraction must lie in (0, 1]; got {copy_fraction}.")
    if holdout is not None and len(holdout) < 3:
        raise MedSynthInputError(f"The held-out set needs at least 3 images; got {len(holdout)}.")
    spaces = [_space("pixels", normalised_pixels(train), normalised_pixels(synthetic),
                     None if holdout is None else normalised_pixels(holdout), reference_quantile, copy_fraction)]
    if radiomics:
        spaces.append(_radiomic_space(train, synthetic, holdout, reference_quantile, copy_fraction))
    for name, (train_features, synthetic_features, holdout_features) in (features or {}).items():
        mean, std = _standardiser(np.asarray(train_features, np.float64))
        spaces.append(_space(name, (np.asarray(train_features) - mean) / std, (np.asarray(synthetic_features) - mean) / std,
                             None if holdout_features is None else (np.asarray(holdout_features) - mean) / std,
                             reference_quantile, copy_fraction))
    pixels = spaces[0]
    flagged = int(pixels["flagged"].sum())
    images = []
    for n in range(len(synthetic)):
        entry = {"synthetic": synthetic_ids[n], "nearest_training_image": train_ids[int(pixels["nearest_train"][n])],
                 "pixel_distance": float(pixels["synthetic_to_train"][n]), "near_copy": bool(pixels["flagged"][n])}
        for space in spaces[1:]:
            entry[f"{space['space']}_distance"] = float(space["synthetic_to_train"][n])
            entry[f"{space['space']}_near_copy"] = bool(space["flagged"][n])
        images.append(entry)
    order = np.argsort(pixels["synthetic_to_train"], kind="stable")
    summary = {}
    for space in spaces:
        count, closer = int(space["flagged"].sum()), int(space["closer"].sum())
        summary[space["space"]] = {
            "flagged": count, "memorisation_rate": count / len(synthetic), "threshold": space["threshold"],
            "closer_than_real": closer, "closer_than_real_rate": closer / len(synthetic),
            "chance_rate": space["chance_rate"],
            "p_value_more_than_chance": _binomial(closer, len(synthetic), space["chance_rate"]),
            "yardstick": space["yardstick"],
            "median_synthetic_to_train": float(np.median(space["synthetic_to_train"])),
            "median_real_to_train": float(np.median(space["real_to_train"])),
            "median_ratio": space["median_ratio"],
            "synthetic_to_train": space["synthetic_to_train"].tolist(), "real_to_train": space["real_to_train"].tolist()}
    if flagged:
        verdict = (f"{flagged} near-copies of training images found: do not share this set as anonymous before "
                   "removing them (per_image.csv) and checking the generator")
    elif summary["pixels"]["p_value_more_than_chance"] < 0.05:
        verdict = ("no near-copy, but synthetic images lie closer to training images than real images do "
                   f"(p = {summary['pixels']['p_value_more_than_chance']:.3g}): look at the closest pairs")
    else:
        verdict = "no near-copy; synthetic images lie no closer to training images than real images do"
    return {"protocol": "privacy", "verdict": verdict, "summary": summary,
            "sets": {"train": len(train), "synthetic": len(synthetic), "holdout": None if holdout is None else len(holdout),
                     "grid": list(train.shape[1:])},
            "settings": {"reference_quantile": reference_quantile, "copy_fraction": copy_fraction, "spaces": [s["space"] for s in spaces],
                         "pixel_space": "images resized to one grid, z-scored per image, RMS distance; no registration"},
            "per_image": images, "closest": [images[i] for i in order[:SHOWN_PAIRS]],
            "_pairs": [(synthetic[i], train[int(pixels["nearest_train"][i])], images[i]) for i in order[:SHOWN_PAIRS]]}


def _standardiser(train_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train_features.mean(axis=0), train_features.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def _radiomic_space(train, synthetic, holdout, quantile, copy_fraction) -> dict:
    from ..metrics.distances import radiomic_features

    def extract(images):
        return np.stack([radiomic_features(image, intensity_range=(0.0, 1.0)) for image in images])

    train_features = extract(train)
    mean, std = _standardiser(train_features)
    return _space("radiomics", (train_features - mean) / std, (extract(synthetic) - mean) / std,
                  None if holdout is None else (extract(holdout) - mean) / std, quantile, copy_fraction)
