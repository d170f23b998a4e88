"""Training-time augmentation shared by the recipes: label-preserving shifts and intensity
scaling, as MONAI transforms on each image of a Dataset (``image_augmentation``, the 2-D
classifier) or drawn on a batch from the training's torch generator (``roll_and_scale``, the
findings model), scans that end early (``scan_ends``), and MONAI transforms that imitate other
CT scanners and protocols (``scanner_augmentation``).  No flips anywhere: anatomy
has sides (the heart is on the left, the liver on the right)."""

from __future__ import annotations


def image_augmentation(size: int, scale_width: float):
    """MONAI dictionary transforms for one item ``{"image": (1, h, w) in [0, 1], ...}`` whose image
    is stored padded by its edge rows (``pad_for_shifts``): a random crop of ``size`` x ``size``,
    i.e. a shift by whole pixels (slicing: 8 epochs of 300 images of 64 px trained in 3.2 s, against
    4.9 s with an affine resampling, ``RandAffined``),
    the intensity scaled by a factor in 1 +- ``scale_width`` / 2, clipped to [0, 1]."""
    from monai.transforms import Compose, RandScaleIntensityd, RandSpatialCropd, ScaleIntensityRanged

    return Compose([RandSpatialCropd(keys="image", roi_size=(size, size), random_size=False),
                    RandScaleIntensityd(keys="image", factors=scale_width / 2.0, prob=1.0),
                    ScaleIntensityRanged(keys="image", a_min=0.0, a_max=1.0, b_min=0.0, b_max=1.0, clip=True)])


def pad_for_shifts(image, max_shift: int):
    """A (h, w) image padded by ``max_shift`` copies of its edge rows and columns on every side,
    for ``image_augmentation``'s shifts (padded once, not per item and epoch)."""
    import numpy as np

    return np.pad(image, max_shift, mode="edge")


def roll_and_scale(batch, generator, max_shift: int, scale_width: float):
    """A (B, C, *spatial) batch in [0, 1] shifted by up to ``max_shift`` voxels per spatial axis
    (one shift for the batch, wrapping around) and each item's intensity scaled by a factor in
    1 +- ``scale_width`` / 2, clamped to [0, 1]."""
    import torch

    dims = tuple(range(-(batch.ndim - 2), 0))
    shifts = [int(v) for v in torch.randint(-max_shift, max_shift + 1, (len(dims),), generator=generator)]
    batch = torch.roll(batch, shifts=shifts, dims=dims)
    scale = 1.0 + scale_width * (torch.rand(len(batch), *([1] * (batch.ndim - 1)), generator=generator) - 0.5)
    return (batch * scale).clamp(0.0, 1.0)


def scan_ends(batch, free_slices, generator, probability: float = 0.5, deepest: float = 0.5):
    """Some scans of a (B, C, k, j, i) batch cut short at their bottom or top, as a scan of a
    shorter field of view that a model's box reaches past: the slices beyond the cut repeat the
    last slice kept, as ``HealthyScan.cut`` goes on past a scan's end.  ``free_slices`` (B, 2):
    per scan the slices at the bottom and at the top that hold no lesion; a cut stays within them
    (so the labels and lesion maps hold) and goes at most ``deepest`` of the slices deep.  Each
    scan is cut with ``probability``, side and depth drawn from ``generator``."""
    import torch

    out = batch.clone()
    draws = torch.rand(len(batch), 3, generator=generator).tolist()
    for item, (cut, side, depth) in enumerate(draws):
        most = min(int(free_slices[item][int(side < 0.5)]), int(deepest * batch.shape[2]))
        if cut >= probability or most < 1:
            continue
        slices = 1 + min(int(depth * most), most - 1)
        if side < 0.5:
            out[item, :, -slices:] = out[item, :, -slices - 1:-slices]
        else:
            out[item, :, :slices] = out[item, :, slices:slices + 1]
    return out


def scanner_augmentation(spatial: bool = True):
    """MONAI random transforms that make one scanner's CT look like another's, on a windowed
    volume (1, k, j, i) in [0, 1] (the window is 400 HU wide, so 0.1 is 40 HU):

    - level and contrast of the enhancement (another phase or contrast dose, another calibration):
      a shift of up to +-40 HU, a scale of +-15 %, a gamma of 0.8-1.25;
    - reconstruction kernel and slice thickness: Gaussian blur of 0.25-1 voxel;
    - dose: Gaussian noise of up to 12 HU;
    - with ``spatial``, field of view: a zoom of 0.9-1.15 (not with the score-map loss, whose
      targets would have to move too).

    A lesion's sign against its organ survives every one of them (each is monotonic in
    intensity or a local average), so hypodense stays hypodense; what the network can no longer
    use is the training scans' own levels, noise and sharpness."""
    from monai.transforms import (Compose, RandAdjustContrast, RandGaussianNoise, RandGaussianSmooth,
                                  RandScaleIntensity, RandShiftIntensity, RandZoom)

    steps = [RandShiftIntensity(offsets=0.1, prob=0.8), RandScaleIntensity(factors=0.15, prob=0.8),
             RandAdjustContrast(prob=0.3, gamma=(0.8, 1.25)),
             RandGaussianSmooth(sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0), sigma_z=(0.25, 1.0), prob=0.3),
             RandGaussianNoise(prob=0.5, std=0.03)]
    if spatial:
        steps.append(RandZoom(prob=0.3, min_zoom=0.9, max_zoom=1.15, mode="trilinear", keep_size=True))
    return Compose(steps)


def scanner_augmented(batch, generator, augment):
    """``augment`` (a ``scanner_augmentation``, made once per training) on every scan of a
    (B, 1, k, j, i) batch, each seeded from the training's torch generator (so a resumed run
    draws what the killed one would have)."""
    import torch

    seeds = torch.randint(0, 2**31 - 1, (len(batch),), generator=generator).tolist()
    out = []
    for volume, seed in zip(batch, seeds):
        augment.set_random_state(seed=int(seed))
        out.append(torch.as_tensor(augment(volume)).as_subclass(torch.Tensor).clamp(0.0, 1.0))  # the window clips
    return torch.stack(out).to(batch.dtype)
