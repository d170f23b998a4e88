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
from monai.transforms import Compose, MapTransform, RandomizableTransform, RandZoomd, apply_transform
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


class ZoomWithMapsd(RandomizableTransform):
    """The image's zoom (``zoom``: a ``RandZoomd``, its probability and range) applied alike to
    the item's score-map targets (``map_key``: (F, *map), the image grid divided by whole
    ``factors``): the targets are spread onto the image grid, zoomed with the image by nearest
    neighbour, and each cell is a lesion cell again where at least half of it is (zooming the
    coarse map itself rounds its size apart from the image's, by up to a cell).  Targets of -1
    (a scan without lesion masks) stay -1."""

    def __init__(self, zoom: RandZoomd, factors: tuple[int, ...], map_key: str = "cells"):
        RandomizableTransform.__init__(self, 1.0)
        self.factors, self.map_key = tuple(int(f) for f in factors), map_key
        self.zoom = RandZoomd(("image", "_spread"), prob=zoom.prob, min_zoom=zoom.rand_zoom.min_zoom,
                              max_zoom=zoom.rand_zoom.max_zoom, mode=("trilinear", "nearest"),
                              keep_size=zoom.rand_zoom.keep_size, allow_missing_keys=True)

    def set_random_state(self, seed=None, state=None) -> "ZoomWithMapsd":
        self.zoom.set_random_state(seed=seed, state=state)
        return self

    def __call__(self, data):
        item = dict(data)
        cells = np.asarray(item[self.map_key], np.float32)
        if (cells < 0).any():  # no masks: only the image moves (the zoom draws the same either way)
            item["image"] = self.zoom({"image": item["image"]})["image"]
            return item
        spread = cells
        for axis, factor in enumerate(self.factors, start=1):
            spread = np.repeat(spread, factor, axis=axis)
        zoomed = self.zoom({"image": item["image"], "_spread": spread})
        spread = np.asarray(zoomed["_spread"], np.float32)
        blocks = spread.reshape(spread.shape[0], *[n for size, f in zip(cells.shape[1:], self.factors) for n in (size, f)])
        item["image"] = zoomed["image"]
        item[self.map_key] = (blocks.mean(axis=tuple(range(2, blocks.ndim, 2))) >= 0.5).astype(np.float32)
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
                       map_shape: tuple[int, ...] | None):
    """The recipe's per-item augmentation, or None: ``shifts`` (whole-voxel shifts of up to
    ``MAX_SHIFT`` and intensity scaling, only where no score maps must move with the image),
    ``scan_ends`` (``ScanEndsd``, within the lesion-free slices the targets show), then
    ``scanner`` (``augment.scanner_augmentation``; with score maps of ``map_shape`` its zoom
    moves their targets with the scan, ``ZoomWithMapsd``)."""
    steps = []
    if shifts:
        steps += shift_and_scale(input_shape, SCALE_WIDTH)
    if scan_ends:
        steps.append(ScanEndsd())
    if scanner:
        factors = None if map_shape is None else [n // m for n, m in zip(input_shape, map_shape)]
        steps += [ZoomWithMapsd(step, factors) if isinstance(step, RandZoomd) and factors else step
                  for step in scanner_augmentation(spatial=True)]
    return Compose(steps) if steps else None
