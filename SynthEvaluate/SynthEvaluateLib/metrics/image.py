"""Image fidelity between a test and a reference image, optionally inside a mask.

The intensity range matters for PSNR and SSIM and is never guessed silently: pass
``data_range`` (e.g. 4095 for 12-bit CT, the window width you judge in), or it is taken as the
reference's max - min and returned with the result, so figures are only compared when they
were computed with the same range.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError


def _prepare(test, reference, mask):
    test, reference = np.asarray(test, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if test.shape != reference.shape:
        raise MedSynthInputError(f"Images differ in shape: {test.shape} vs {reference.shape}; resample first.")
    if not (np.all(np.isfinite(test)) and np.all(np.isfinite(reference))):
        raise MedSynthInputError("An image holds NaN or infinite values; replace them first.")
    if mask is not None:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != test.shape:
            raise MedSynthInputError(f"Mask shape {mask.shape} differs from the image shape {test.shape}.")
        if not mask.any():
            raise MedSynthInputError("The mask is empty: there is nothing to compare inside it.")
    return test, reference, mask


def _range(reference, mask, data_range):
    if data_range is not None:
        if data_range <= 0:
            raise MedSynthInputError(f"data_range must be positive, got {data_range}.")
        return float(data_range)
    values = reference[mask] if mask is not None else reference
    spread = float(values.max() - values.min())
    if spread == 0:
        raise MedSynthInputError("The reference is constant, so its range is 0: give data_range explicitly.")
    return spread


def image_metrics(test, reference, mask=None, data_range: float | None = None) -> dict:
    """RMSE, MAE, PSNR (dB) and SSIM of ``test`` against ``reference`` (2-D or 3-D).

    Identical images give RMSE 0, MAE 0, PSNR ``inf`` and SSIM 1.  Inside a mask, SSIM is the
    mean of the SSIM map over the mask (the map is computed on the whole image, so windows
    at the mask border see real neighbours).
    """
    from skimage.metrics import structural_similarity

    test, reference, mask = _prepare(test, reference, mask)
    value_range = _range(reference, mask, data_range)
    error = (test - reference) if mask is None else (test - reference)[mask]
    mse = float(np.mean(error ** 2))
    smallest = min(test.shape)
    window = min(7, smallest if smallest % 2 else smallest - 1)  # odd, at most 7, fits the image
    if window < 3:
        raise MedSynthInputError(f"Images of shape {test.shape} are too small for SSIM (needs 3 voxels per axis).")
    mean_ssim, ssim_map = structural_similarity(reference, test, data_range=value_range, full=True, win_size=window)
    return {
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(error))),
        "psnr_db": float("inf") if mse == 0 else float(10.0 * np.log10(value_range ** 2 / mse)),
        # no mask: scikit-image's own value (its map averaged without the border it cannot fill);
        # with a mask: the map averaged over the mask
        "ssim": float(mean_ssim if mask is None else ssim_map[mask].mean()),
        "data_range": value_range,
        "voxels": int(error.size),
    }


def ms_ssim(test, reference, data_range: float | None = None, mask=None, scales: int = 5) -> float:
    """Multi-scale SSIM (MONAI's ``MultiScaleSSIMMetric``) of 2-D or 3-D images.

    With a mask, the images are cropped to the mask's bounding box (MS-SSIM needs whole
    windows at every scale).  Each axis needs at least (window - 1) x 2^(scales - 1) + 1
    voxels; fewer scales are used for smaller images, down to 1 (plain SSIM).
    """
    import torch
    from monai.metrics import MultiScaleSSIMMetric

    test, reference, mask = _prepare(test, reference, mask)
    value_range = _range(reference, mask, data_range)
    if mask is not None:
        box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
        test, reference = test[box], reference[box]
    window = 7
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    def fits(levels: int) -> bool:  # MONAI's own size check, and whole windows at the coarsest level
        return min(test.shape) // max(1, levels - 1) ** 2 > window - 1 and \
            min(test.shape) >= (window - 1) * 2 ** (levels - 1) + 1

    while scales > 1 and not fits(scales):
        scales -= 1
    if min(test.shape) < window:
        raise MedSynthInputError(f"Images of shape {test.shape} are too small for MS-SSIM (needs {window} voxels per axis).")
    metric = MultiScaleSSIMMetric(spatial_dims=test.ndim, data_range=value_range, kernel_size=window,
                                  weights=tuple((weights[:scales] / weights[:scales].sum()).tolist()))
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)[None, None]  # noqa: E731
    return float(metric(as_tensor(test), as_tensor(reference)).item())


def evaluate_images(real: list[np.ndarray], synthetic: list[np.ndarray], paired: bool,
                    data_range: float | None = None, masks: list[np.ndarray] | None = None) -> dict:
    """Fidelity of a synthetic image set against a real one.

    ``paired``: synthetic[i] is a rendition of real[i] (e.g. a translation): per-pair PSNR,
    SSIM, RMSE, MAE averaged.  Always: the Frechet Radiomics Distance between the two sets.
    """
    from .distances import frechet_radiomics_distance

    if not real or not synthetic:
        raise MedSynthInputError("Give at least one real and one synthetic image.")
    metrics: dict = {}
    if paired:
        if len(real) != len(synthetic):
            raise MedSynthInputError(f"Paired evaluation needs as many synthetic as real images: {len(synthetic)} vs {len(real)}.")
        per_pair = [image_metrics(s, r, None if masks is None else masks[i], data_range)
                    for i, (r, s) in enumerate(zip(real, synthetic))]
        for key in ("psnr_db", "ssim", "rmse", "mae"):
            values = np.array([m[key] for m in per_pair], float)
            metrics[f"{key}_mean"] = float(values.mean()) if np.all(np.isfinite(values)) else float("inf")
        metrics["data_range"] = per_pair[0]["data_range"]
        if importlib.util.find_spec("monai") is not None:  # MS-SSIM comes from MONAI (installed on demand)
            try:
                metrics["ms_ssim_mean"] = float(np.mean([ms_ssim(s, r, data_range, None if masks is None else masks[i])
                                                         for i, (r, s) in enumerate(zip(real, synthetic))]))
            except MedSynthInputError as error:  # too small for any scale: say so, keep the other metrics
                metrics["ms_ssim_mean"] = None
                metrics["ms_ssim_note"] = str(error)
    elif len(real) < 2 or len(synthetic) < 2:
        raise MedSynthInputError(
            f"Unpaired evaluation compares the two sets' distributions and needs at least 2 real and 2 synthetic "
            f"images (got {len(real)} and {len(synthetic)}); add images, or use --paired when synthetic[i] renders real[i].")
    if len(real) >= 2 and len(synthetic) >= 2:
        all_values = np.concatenate([np.ravel(x) for x in real])
        window = tuple(np.percentile(all_values, [1, 99]).tolist())
        metrics["frd"] = frechet_radiomics_distance(real, synthetic, intensity_range=window)["frd"]
    return {"protocol": "images", "paired": paired, "cases": [len(real), len(synthetic)], "metrics": metrics}
