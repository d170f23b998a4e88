"""The findings model's training data as MONAI sees it: the training scans (or images) as a
``monai.data.Dataset`` of items ``{"image": (1, *input_shape) in [0, 1], "findings": (F,) 0/1,
"cells": (F, *map) score-map targets, "free": (2,) lesion-free slices}`` ("cells" and "free" only
with the score-map loss), augmented per item by MONAI dictionary transforms (``findings_transform``)
and batched by a MONAI ``DataLoader`` (``loop.data_loader``, worker processes or none).

Each item's random draws are seeded by (seed, epoch, item) (``EpochSeededDataset``), not by the
stream of the process that makes it: an epoch's batches are the same with any number of workers,
and a training resumed after a kill draws what the killed one would have (bit for bit on a CPU).
The order of an epoch's items is the training's (``EpochOrder``).  This module imports MONAI:
import it where training starts, not at the top of a module."""

from __future__ import annotations

import numpy as np
from monai.data import Dataset
from monai.transforms import Compose, MapTransform, RandomizableTransform, apply_transform
from torch.utils.data import Sampler

from .augment import pad_for_shifts, scanner_augmentation, shift_and_scale

#: the findings model's shifts (voxels or pixels per axis, whole) and intensity scaling (1 +- 0.1),
#: where no score maps would have to move with the image
MAX_SHIFT, SCALE_WIDTH = 3, 0.2


class ScanEndsd(RandomizableTransform, MapTransform):
    """A scan (``image``: (C, k, j, i)) cut short at its bottom or top with probability ``prob``,
    as a scan of a shorter field of view that a model's box reaches past: the slices beyond the
    cut repeat the last slice kept, as ``HealthyScan.cut`` goes on past a scan's end.
    ``free_key``: the item's (2,) slices at the bottom and at the top that hold no lesion
    (``findings_model.lesion_free_ends``); a cut stays within them (so the labels and lesion maps
    hold) and goes at most ``deepest`` of the slices deep.  Side and depth are drawn from the
    transform's random state."""

    def __init__(self, keys="image", free_key: str = "free", prob: float = 0.5, deepest: float = 0.5):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys)
        self.free_key, self.deepest = free_key, deepest
        self._top, self._depth = False, 0.0

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self._top, self._depth = bool(self.R.random_sample() < 0.5), float(self.R.random_sample())

    def __call__(self, data):
        item = dict(data)
        self.randomize()
        for key in self.key_iterator(item):
            image = item[key]
            most = min(int(item[self.free_key][int(self._top)]), int(self.deepest * image.shape[1]))
            if not self._do_transform or most < 1:
                continue
            slices = 1 + min(int(self._depth * most), most - 1)
            image = image.clone() if hasattr(image, "clone") else np.array(image)
            if self._top:
                image[:, -slices:] = image[:, -slices - 1:-slices]
            else:
                image[:, :slices] = image[:, slices:slices + 1]
            item[key] = image
        return item


class EpochSeededDataset(Dataset):
    """Item ``epoch * len(data) + n`` is ``data[n]`` through ``transform``, its random state
    seeded by (``seed``, epoch, n): what an item draws depends on nothing else (not on the
    process or worker that makes it, nor on the items made before it)."""

    def __init__(self, data: list[dict], transform, seed: int):
        super().__init__(data, transform)
        self.seed = seed

    def __getitem__(self, index):
        epoch, n = divmod(int(index), len(self.data))
        if self.transform is None:
            return self.data[n]
        self.transform.set_random_state(seed=int(np.random.SeedSequence([self.seed, epoch, n]).generate_state(1)[0]))
        return apply_transform(self.transform, self.data[n])


class EpochOrder(Sampler):
    """The indices of one epoch's items (``EpochSeededDataset``) in the order ``set`` gives."""

    def __init__(self, count: int):
        self.count, self.indices = count, []

    def set(self, epoch: int, order) -> None:
        self.indices = [epoch * self.count + int(n) for n in order]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def findings_items(inputs: np.ndarray, findings: np.ndarray, targets: np.ndarray | None,
                   free: np.ndarray | None, shifts: bool) -> list[dict]:
    """One item per scan or image: ``inputs`` (n, 1, *input_shape) float32 (padded by
    ``MAX_SHIFT`` when ``shifts``), ``findings`` (n, F) 0/1, ``targets`` (n, F, *map) or None,
    ``free`` (n, 2) or None."""
    items = []
    for n, image in enumerate(inputs):
        item = {"image": pad_for_shifts(image, MAX_SHIFT, channels=True) if shifts else image,
                "findings": np.asarray(findings[n], np.float32)}
        if targets is not None:
            item["cells"] = targets[n]
        if free is not None:
            item["free"] = free[n]
        items.append(item)
    return items


def findings_transform(input_shape: tuple[int, ...], shifts: bool, scanner: bool, scan_ends: bool,
                       spatial_scanner: bool):
    """The recipe's per-item augmentation, or None: ``shifts`` (whole-voxel shifts of up to
    ``MAX_SHIFT`` and intensity scaling, only where no score maps must move with the image),
    ``scanner`` (``augment.scanner_augmentation``, its zoom only with ``spatial_scanner``),
    ``scan_ends`` (``ScanEndsd``)."""
    steps = []
    if shifts:
        steps += shift_and_scale(input_shape, SCALE_WIDTH)
    if scanner:
        steps += scanner_augmentation(spatial=spatial_scanner)
    if scan_ends:
        steps.append(ScanEndsd())
    return Compose(steps) if steps else None
