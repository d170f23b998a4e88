"""Training-time augmentation shared by the recipes, as MONAI dictionary transforms on one item
of a Dataset (``{"image": (1, *spatial) in [0, 1], ...}``): label-preserving shifts and intensity
scaling (``shift_and_scale``: the 2-D classifier, and the findings model where no score maps
must move with the image), scans that end early (``findings_data.ScanEndsd``) and transforms that imitate
other CT scanners and protocols (``scanner_augmentation``).  No flips anywhere: anatomy has
sides (the heart is on the left, the liver on the right)."""

from __future__ import annotations

import numpy as np


def shift_and_scale(shape: tuple[int, ...], scale_width: float) -> list:
    """MONAI dictionary transforms for an item whose image is stored padded by its edge values
    (``pad_for_shifts``): a random crop of ``shape``, i.e. a shift by whole pixels or voxels
    (slicing: 8 epochs of 300 images of 64 px trained in 3.2 s, against 4.9 s with an affine
    resampling, ``RandAffined``), then the intensity scaled by a factor in 1 +- ``scale_width`` / 2
    and clipped to [0, 1]."""
    from monai.transforms import RandScaleIntensityd, RandSpatialCropd

    return [RandSpatialCropd(keys="image", roi_size=tuple(shape), random_size=False),
            RandScaleIntensityd(keys="image", factors=scale_width / 2.0, prob=1.0), clip_to_unit()]


def clip_to_unit():
    """The window's clip: image values outside [0, 1] set to its ends."""
    from monai.transforms import ScaleIntensityRanged

    return ScaleIntensityRanged(keys="image", a_min=0.0, a_max=1.0, b_min=0.0, b_max=1.0, clip=True)


def pad_for_shifts(image: np.ndarray, max_shift: int, channels: bool = False) -> np.ndarray:
    """An image or volume padded by ``max_shift`` copies of its edge values on every side of its
    spatial axes (with ``channels``, its first axis is channels and is not padded), for
    ``shift_and_scale``'s shifts (padded once, not per item and epoch)."""
    widths = [(0, 0)] * int(channels) + [(max_shift, max_shift)] * (image.ndim - int(channels))
    return np.pad(image, widths, mode="edge")


def scanner_augmentation(spatial: bool = True) -> list:
    """MONAI random dictionary transforms that make one scanner's CT look like another's, on a
    windowed volume (``image``: (1, k, j, i) in [0, 1]; the window is 400 HU wide, so 0.1 is
    40 HU), clipped to the window at the end:

    - level and contrast of the enhancement (another phase or contrast dose, another calibration):
      a shift of up to +-40 HU, a scale of +-15 %, a gamma of 0.8-1.25;
    - reconstruction kernel and slice thickness: Gaussian blur of 0.25-1 voxel;
    - dose: Gaussian noise of up to 12 HU;
    - with ``spatial``, field of view and body size: a zoom of 0.9-1.15 about the centre (the
      findings model moves its score-map targets with it: ``findings_data.ZoomWithMapsd``).

    A lesion's sign against its organ survives every one of them (each is monotonic in
    intensity or a local average), so hypodense stays hypodense; what the network can no longer
    use is the training scans' own levels, noise and sharpness."""
    from monai.transforms import (RandAdjustContrastd, RandGaussianNoised, RandGaussianSmoothd,
                                  RandScaleIntensityd, RandShiftIntensityd, RandZoomd)

    steps = [RandShiftIntensityd("image", offsets=0.1, prob=0.8), RandScaleIntensityd("image", factors=0.15, prob=0.8),
             RandAdjustContrastd("image", prob=0.3, gamma=(0.8, 1.25)),
             RandGaussianSmoothd("image", sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0), sigma_z=(0.25, 1.0), prob=0.3),
             RandGaussianNoised("image", prob=0.5, std=0.03)]
    if spatial:
        steps.append(RandZoomd("image", prob=0.3, min_zoom=0.9, max_zoom=1.15, mode="trilinear", keep_size=True))
    return steps + [clip_to_unit()]
