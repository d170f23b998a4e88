"""The downstream segmenter recipe: MONAI UNet (2-D on slices or 3-D), DiceCE loss, patches
sampled half on the foreground, sliding-window inference over whole slices or volumes.

Intensities are windowed to [0, 1] with the recipe's ``window`` (part of the recipe, applied
identically at training and inference).  Seeded inside ``torch.random.fork_rng``.

Under ``torchrun`` the recipe trains with DistributedDataParallel: every rank draws the same
global batch of patches from the seed's stream and trains on its share (``batch_size`` is the
global batch), so N ranks take the steps one process would.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from MedSynthCommonLib.distributed import Ranks
from MedSynthCommonLib.errors import MedSynthInputError


@dataclass(frozen=True)
class SegmenterRecipe:
    spatial_dims: int = 2
    channels: tuple[int, ...] = (16, 32, 64, 128)
    num_res_units: int = 1
    patch_size: tuple[int, ...] = (64, 64)
    iterations: int = 500
    batch_size: int = 8
    learning_rate: float = 1e-3
    window: tuple[float, float] = (-150.0, 250.0)  # CT soft tissue, HU
    foreground_fraction: float = 0.5
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainedSegmenter:
    model: object
    recipe: SegmenterRecipe
    seed: int
    history: list[dict] = field(default_factory=list)

    def _normalise(self, image: np.ndarray) -> np.ndarray:
        low, high = self.recipe.window
        return np.clip((np.asarray(image, np.float32) - low) / (high - low), 0.0, 1.0)

    def predict(self, volume: np.ndarray) -> np.ndarray:
        """Binary mask (uint8) of a 3-D volume ``[k, j, i]`` (2-D recipes run slice by slice)."""
        import torch
        from monai.inferers import sliding_window_inference

        self.model.eval()
        data = self._normalise(volume)
        with torch.no_grad():
            if self.recipe.spatial_dims == 2:
                tensor = torch.as_tensor(data)[:, None]  # slices as a batch
            else:
                tensor = torch.as_tensor(data)[None, None]
            logits = sliding_window_inference(tensor.to(self.recipe.device), self.recipe.patch_size, 4, self.model,
                                              overlap=0.25, mode="gaussian")
            mask = logits.argmax(dim=1).cpu().numpy().astype(np.uint8)
        return mask if self.recipe.spatial_dims == 2 else mask[0]


def _sample_patch(volume, label, size, rng, foreground_fraction):
    """One patch (and its label) from a 3-D volume; 2-D patches are taken from one slice."""
    dims = len(size)
    if dims == 2:
        slice_index = None
        if rng.random() < foreground_fraction and label.any():
            k, j, i = np.argwhere(label)[rng.integers(int(label.sum()))]
            slice_index, centre = k, (j, i)
        else:
            slice_index = rng.integers(volume.shape[0])
            centre = tuple(rng.integers(0, n) for n in volume.shape[1:])
        image2, label2 = volume[slice_index], label[slice_index]
        return _crop(image2, centre, size), _crop(label2, centre, size)
    if rng.random() < foreground_fraction and label.any():
        centre = tuple(np.argwhere(label)[rng.integers(int(label.sum()))])
    else:
        centre = tuple(rng.integers(0, n) for n in volume.shape)
    return _crop(volume, centre, size), _crop(label, centre, size)


def _crop(array, centre, size):
    """A block of ``size`` centred near ``centre``, zero-padded where it leaves the array."""
    out = np.zeros(size, dtype=array.dtype)
    src, dst = [], []
    for c, s, n in zip(centre, size, array.shape):
        start = int(c) - s // 2
        lo, hi = max(start, 0), min(start + s, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out[tuple(dst)] = array[tuple(src)]
    return out


def train_segmenter(volumes: list[np.ndarray], labels: list[np.ndarray], recipe: SegmenterRecipe = SegmenterRecipe(),
                    seed: int = 0, progress: Callable[[dict], None] | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    fresh_cases: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]] | None = None,
                    pool_size: int = 4, refresh_probability: float = 0.25,
                    ranks: Ranks | None = None) -> TrainedSegmenter:
    """Train a lesion segmenter on 3-D volumes with binary labels (lists of equal length).

    With ``fresh_cases`` (on-the-fly synthesis), a pool of ``pool_size`` cases made by it joins
    the given ones, and at every iteration one pool case is replaced by a new one with
    probability ``refresh_probability``: the network keeps seeing new lesions (``volumes`` may
    then be empty; every rank of a distributed run makes the same cases).  ``ranks``: this
    process's place in a torchrun run (default: from the environment)."""
    import dataclasses

    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    if len(volumes) != len(labels) or (not volumes and fresh_cases is None):
        raise MedSynthInputError(f"Give one label per volume; got {len(volumes)} volumes and {len(labels)} labels.")
    if len(recipe.patch_size) != recipe.spatial_dims:
        raise MedSynthInputError(f"patch_size {recipe.patch_size} must have {recipe.spatial_dims} entries.")
    factor = 2 ** (len(recipe.channels) - 1)
    if any(s % factor for s in recipe.patch_size):
        raise MedSynthInputError(f"patch_size {recipe.patch_size} must be divisible by {factor} for this UNet depth.")
    for v, l in zip(volumes, labels):
        if np.shape(v) != np.shape(l):
            raise MedSynthInputError(f"A volume {np.shape(v)} and its label {np.shape(l)} differ in shape.")
    ranks = ranks or Ranks.from_environment(recipe.device.split(":")[0])
    recipe = dataclasses.replace(recipe, device=ranks.device(recipe.device))
    share = ranks.shard(recipe.batch_size)
    rng = np.random.default_rng(seed)
    low, high = recipe.window

    def prepare(volume, label):
        return np.clip((np.asarray(volume, np.float32) - low) / (high - low), 0, 1), (np.asarray(label) > 0).astype(np.int64)

    prepared = [prepare(v, l) for v, l in zip(volumes, labels)]
    fixed = len(prepared)
    if fresh_cases is not None:
        prepared += [prepare(*fresh_cases(rng)) for _ in range(pool_size)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNet(recipe.spatial_dims, 1, 2, recipe.channels, (2,) * (len(recipe.channels) - 1),
                     num_res_units=recipe.num_res_units).to(recipe.device)
        trained = ranks.wrap(model)
        optimiser = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
        loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
        history, started = [], time.perf_counter()
        for iteration in range(1, recipe.iterations + 1):
            if should_stop is not None and should_stop():
                raise InterruptedError("Training was cancelled.")
            if fresh_cases is not None and rng.random() < refresh_probability:
                prepared[fixed + int(rng.integers(pool_size))] = prepare(*fresh_cases(rng))
            pairs = [_sample_patch(prepared[c][0], prepared[c][1], recipe.patch_size, rng, recipe.foreground_fraction)
                     for c in rng.integers(len(prepared), size=recipe.batch_size)][share]
            x = torch.as_tensor(np.stack([p[0] for p in pairs]))[:, None]
            y = torch.as_tensor(np.stack([p[1] for p in pairs]))[:, None]
            loss = loss_function(trained(x.to(recipe.device)), y.to(recipe.device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if iteration % 10 == 0 or iteration == recipe.iterations:
                entry = {"iteration": iteration, "loss": ranks.mean({"loss": float(loss.detach())})["loss"],
                         "seconds": time.perf_counter() - started}
                history.append(entry)
                if progress is not None and ranks.is_main:
                    progress({**entry, "iterations": recipe.iterations})
    return TrainedSegmenter(model, recipe, seed, history)
