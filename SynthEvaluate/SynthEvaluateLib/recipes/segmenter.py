"""The downstream segmenter recipe: MONAI UNet (2-D on slices, 2.5-D with neighbouring slices as
channels, or 3-D), DiceCE loss, patches
sampled half on lesions and half on the rest of the organ, sliding-window inference inside
the organ's region.

Each training case is cut once to its organ's bounding box plus ``organ_margin_mm`` and its
lesion and organ voxels are indexed once (MONAI's ``map_binary_to_indices``); patches then come
from MONAI's ``RandCropByPosNegLabeld`` with those cached indices (2-D patches are crops one
slice deep).  Without an organ mask the whole volume is the region (background patches from
anywhere).

Intensities are windowed to [0, 1] with the recipe's ``window`` (part of the recipe, applied
identically at training and inference).  Seeded inside ``torch.random.fork_rng``.

Under ``torchrun`` the recipe trains with DistributedDataParallel: every rank draws the same
global batch of patches from the seed's stream and trains on its share (``batch_size`` is the
global batch), so N ranks take the steps one process would.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from MedSynthCommonLib.distributed import Ranks
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.threads import prefetched, torch_threads

from .fresh_cases import FreshCasePool
from .loop import optimisation_steps


@dataclass(frozen=True)
class SegmenterRecipe:
    spatial_dims: int = 2
    #: 2-D recipes: this many neighbouring slices on each side are extra input channels (2.5-D)
    context_slices: int = 0
    channels: tuple[int, ...] = (16, 32, 64, 128)
    num_res_units: int = 1
    patch_size: tuple[int, ...] = (64, 64)
    iterations: int = 500
    batch_size: int = 8
    learning_rate: float = 1e-3
    window: tuple[float, float] = (-150.0, 250.0)  # CT soft tissue, HU
    foreground_fraction: float = 0.5
    device: str = "cpu"
    organ_margin_mm: float = 10.0
    #: predicted components smaller than this equivalent diameter (mm) are dropped (0: none)
    min_lesion_mm: float = 0.0
    #: with validation cases: their mean Dice every this many iterations; the best model is kept
    validate_every: int = 100
    #: with validation cases: stop after this many validations without a better Dice (0: never)
    patience: int = 0
    #: stop after this many minutes of training (None: no limit); the best (or last) model is kept
    budget_minutes: float | None = None
    #: every case is resampled to this spacing (mm, [k, j, i]; 0 keeps an axis as it is) in
    #: training and inference, so that a patch covers the same anatomy in every scan; None: none
    spacing_mm: tuple[float, float, float] | None = None
    #: "fp32", "bf16" or "fp16": autocast of the network's forward passes (the loss, weights and
    #: optimiser stay fp32; fp16 adds a loss scaler), in training and inference; "auto": bf16 on a
    #: GPU that has it, fp16 on other GPUs, fp32 on a CPU
    precision: str = "fp32"
    #: batches of patches made this many steps ahead in a background thread while the network
    #: trains (``threads.prefetched``: MONAI's ``ThreadBuffer``); the same batches in the same
    #: order, so the same model; 0: made between the steps
    prefetch_batches: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def accelerator(self):
        """The device and precision the recipe runs with (MedSynthCommonLib's ``Accelerator``)."""
        from MedSynthCommonLib.devices import resolve_accelerator

        return resolve_accelerator(self.device, self.precision, channels_last=False)


@dataclass
class TrainedSegmenter:
    model: object
    recipe: SegmenterRecipe
    seed: int
    history: list[dict] = field(default_factory=list)
    #: how training ended: {"iterations", "stopped_by" ("iterations", "early stopping", "budget"),
    #: "best_iteration" and "validation_dice" (with validation cases)}
    training: dict = field(default_factory=dict)

    def _normalise(self, image: np.ndarray) -> np.ndarray:
        low, high = self.recipe.window
        return np.clip((np.asarray(image, np.float32) - low) / (high - low), 0.0, 1.0)

    def predict(self, volume: np.ndarray, organ: np.ndarray | None = None,
                spacing_kji: np.ndarray | None = None, inside_organ: bool = True) -> np.ndarray:
        """Binary mask (uint8) of a 3-D volume ``[k, j, i]`` (2-D recipes run slice by slice).
        With ``organ`` (a mask on the volume's grid), the network looks only at the organ's box
        plus the recipe's margin, and (``inside_organ``) reports lesions only inside the organ."""
        out = np.zeros(np.shape(volume), np.uint8)
        box = organ_box(organ, spacing_kji, self.recipe.organ_margin_mm) if organ is not None else None
        if box is None and organ is not None:
            return out  # no organ: nothing to find in it
        region = np.asarray(volume)[box] if box is not None else np.asarray(volume)
        factors = resampling_factors(self.recipe, spacing_kji)
        if factors is None:
            predicted = self._predict_region(region)
        else:  # predicted on the recipe's grid, back on the case's by nearest neighbour
            predicted = resample_to_shape(self._predict_region(resample(region, factors, order=1)), region.shape)
        found = _without_small(predicted, spacing_kji, self.recipe.min_lesion_mm)
        if box is None:
            return found
        out[box] = found
        if inside_organ:
            out &= np.asarray(organ, bool).view(np.uint8)
        return out

    def _predict_region(self, volume: np.ndarray) -> np.ndarray:
        import torch
        from monai.inferers import sliding_window_inference

        self.model.eval()
        data = self._normalise(volume)
        with torch.no_grad(), self.recipe.accelerator().autocast():
            if self.recipe.spatial_dims == 2:
                tensor = torch.as_tensor(with_neighbours(data[None], self.recipe.context_slices)).transpose(0, 1).contiguous()
                # slices as a batch, (2 context + 1) channels each
            else:
                tensor = torch.as_tensor(data)[None, None]
            logits = sliding_window_inference(tensor.to(self.recipe.device), self.recipe.patch_size, 4, self.model,
                                              overlap=0.25, mode="gaussian")
            mask = logits.float().argmax(dim=1).cpu().numpy().astype(np.uint8)
        return mask if self.recipe.spatial_dims == 2 else mask[0]


def _without_small(mask: np.ndarray, spacing_kji, min_lesion_mm: float) -> np.ndarray:
    """``mask`` without connected components of equivalent diameter below ``min_lesion_mm``."""
    if min_lesion_mm <= 0 or not mask.any():
        return mask
    from scipy import ndimage

    voxel_mm3 = float(np.prod(np.ones(3) if spacing_kji is None else np.asarray(spacing_kji, float)))
    components, count = ndimage.label(mask)
    volumes = np.bincount(components.ravel())[1:] * voxel_mm3
    keep = np.concatenate([[False], (6.0 * volumes / np.pi) ** (1.0 / 3.0) >= min_lesion_mm])
    return keep[components].astype(mask.dtype)


def resampling_factors(recipe: SegmenterRecipe, spacing_kji) -> np.ndarray | None:
    """Zoom factors [k, j, i] from a case's spacing to the recipe's (None: no resampling)."""
    if recipe.spacing_mm is None:
        return None
    if spacing_kji is None:
        raise MedSynthInputError("The recipe resamples to a common spacing (spacing_mm): give each case's spacing.")
    target = np.asarray(recipe.spacing_mm, float)
    native = np.asarray(spacing_kji, float)
    factors = np.where(target > 0, native / np.where(target > 0, target, 1.0), 1.0)
    return None if np.allclose(factors, 1.0) else factors


def resample(array: np.ndarray, factors: np.ndarray, order: int) -> np.ndarray:
    """``array`` zoomed by ``factors`` (linear for images, nearest for masks)."""
    from scipy import ndimage

    return ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)


def resample_to_shape(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A mask brought back to ``shape`` by nearest neighbour."""
    from scipy import ndimage

    return ndimage.zoom(array, np.asarray(shape, float) / np.asarray(array.shape, float), order=0, mode="nearest",
                        grid_mode=True)


def with_neighbours(image: np.ndarray, context: int) -> np.ndarray:
    """(1, K, J, I) -> (2 context + 1, K, J, I): channel c holds slice k + c - context (edges
    repeat the first and last slice), the input of a 2.5-D network."""
    if context <= 0:
        return image
    depth = image.shape[1]
    return np.stack([image[0, np.clip(np.arange(depth) + offset, 0, depth - 1)]
                     for offset in range(-context, context + 1)])


def organ_box(organ: np.ndarray | None, spacing_kji, margin_mm: float) -> tuple[slice, ...] | None:
    """Slices of the organ's bounding box plus ``margin_mm`` (clipped to the volume); None when
    the organ is empty."""
    from MedSynthCommonLib.geometry import bounding_slices

    spacing = np.ones(3) if spacing_kji is None else np.asarray(spacing_kji, float)
    return bounding_slices(np.asarray(organ, bool), np.ceil(margin_mm / spacing).astype(int))


def prepare_case(volume: np.ndarray, label: np.ndarray, organ: np.ndarray | None, recipe: SegmenterRecipe,
                 spacing_kji=None) -> dict:
    """One training case as the sampler wants it, made once: cut to the organ's region,
    resampled to the recipe's spacing (when it has one), windowed to [0, 1], channel first,
    padded to a patch, and its lesion ("fg") and other organ ("bg") voxels indexed."""
    from monai.transforms.utils import map_binary_to_indices

    volume, label = np.asarray(volume), np.asarray(label) > 0
    if organ is not None:
        organ = np.asarray(organ, bool) | label
        box = organ_box(organ, spacing_kji, recipe.organ_margin_mm)
        if box is not None:
            volume, label, organ = volume[box], label[box], organ[box]
    factors = resampling_factors(recipe, spacing_kji)
    if factors is not None:
        volume = resample(volume.astype(np.float32), factors, order=1)
        label = resample(label.astype(np.uint8), factors, order=0) > 0
        organ = None if organ is None else resample(organ.astype(np.uint8), factors, order=0) > 0
    low, high = recipe.window
    image = with_neighbours(np.clip((volume.astype(np.float32) - low) / (high - low), 0, 1)[None],
                            recipe.context_slices if recipe.spatial_dims == 2 else 0)
    label = label.astype(np.uint8)[None]
    patch = (1, *recipe.patch_size) if recipe.spatial_dims == 2 else tuple(recipe.patch_size)
    pad = [(0, 0)] + [(0, max(p - n, 0)) for p, n in zip(patch, image.shape[1:])]
    image, label = np.pad(image, pad), np.pad(label, pad)
    region = None if organ is None else np.pad(organ, pad[1:])[None].astype(np.float32)
    fg, bg = map_binary_to_indices(label, region, 0.5)
    if bg.size == 0:  # a region that is all lesion: its background patches come from anywhere
        bg = np.flatnonzero(label.ravel() == 0)
    return {"image": image, "label": label, "fg": fg, "bg": bg}


def _patch_sampler(recipe: SegmenterRecipe, seed: int):
    """MONAI's positive/negative crop on cached indices, seeded."""
    from monai.transforms import RandCropByPosNegLabeld

    patch = (1, *recipe.patch_size) if recipe.spatial_dims == 2 else tuple(recipe.patch_size)
    sampler = RandCropByPosNegLabeld(("image", "label"), "label", patch, pos=recipe.foreground_fraction,
                                     neg=1.0 - recipe.foreground_fraction, num_samples=1, fg_indices_key="fg",
                                     bg_indices_key="bg")
    sampler.set_random_state(seed)

    def sample(case: dict) -> tuple[np.ndarray, np.ndarray]:
        crop = sampler(case)[0]
        image, label = np.asarray(crop["image"]), np.asarray(crop["label"])
        if recipe.spatial_dims == 2:
            image, label = image[:, 0], label[:, 0]  # (C, 1, y, x) -> (C, y, x)
        return image, label.astype(np.int64)

    return sample


def train_segmenter(volumes: list[np.ndarray], labels: list[np.ndarray], recipe: SegmenterRecipe = SegmenterRecipe(),
                    seed: int = 0, progress: Callable[[dict], None] | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    fresh_cases: Callable[[np.random.Generator], tuple] | None = None,
                    pool_size: int = 4, refresh_probability: float = 0.25,
                    ranks: Ranks | None = None, organs: list[np.ndarray | None] | None = None,
                    spacings: list | None = None, validation: list[tuple] | None = None) -> TrainedSegmenter:
    """Train a lesion segmenter on 3-D volumes with binary labels (lists of equal length).

    With ``fresh_cases`` (on-the-fly synthesis, called with a generator), a pool of ``pool_size``
    cases made by it joins the given ones, and every ``round(1 / refresh_probability)``
    iterations the oldest pool case is replaced by a new one, made in the background while
    training goes on (``FreshCasePool``, MONAI's ``SmartCacheDataset``): the network keeps seeing
    new lesions (``volumes`` may then be empty; every rank of a distributed run makes the same
    cases, and the cases do not depend on timing).  ``ranks``: this
    process's place in a torchrun run (default: from the environment).  ``organs`` (masks on
    each volume's grid, or None) and ``spacings`` (mm, ``[k, j, i]``) let training look inside
    the organ; ``fresh_cases`` may return (volume, label) or (volume, label, organ, spacing).

    ``validation``: (volume, label, organ or None, spacing) cases of other patients: every
    ``recipe.validate_every`` iterations their mean Dice (inside the organ) is measured, the best
    model is the one returned, and ``recipe.patience`` validations without a better Dice stop
    training early.  ``recipe.budget_minutes`` stops training at a time limit (checked every 10
    iterations).  ``TrainedSegmenter.training`` says how it ended."""
    import dataclasses

    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    if len(volumes) != len(labels) or (not volumes and fresh_cases is None):
        raise MedSynthInputError(f"Give one label per volume; got {len(volumes)} volumes and {len(labels)} labels.")
    if recipe.context_slices and recipe.spatial_dims != 2:
        raise MedSynthInputError("Neighbouring slices as channels (2.5-D) are for 2-D recipes; a 3-D UNet sees them anyway.")
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
    accelerator = recipe.accelerator()  # refuses an unknown precision before any work
    recipe = dataclasses.replace(recipe, precision=accelerator.precision)
    share = ranks.shard(recipe.batch_size)
    rng = np.random.default_rng(seed)
    organs = organs or [None] * len(volumes)
    spacings = spacings or [None] * len(volumes)

    def prepare(volume, label, organ=None, spacing=None):
        return prepare_case(volume, label, organ, recipe, spacing)

    prepared = [prepare(v, l, o, sp) for v, l, o, sp in zip(volumes, labels, organs, spacings)]
    fixed = len(prepared)
    pool, pooled, refresh_every, threads = contextlib.nullcontext(), 0, None, torch.get_num_threads()
    if fresh_cases is not None:
        refresh_every = max(1, round(1.0 / refresh_probability)) if refresh_probability > 0 else None
        pool = FreshCasePool(fresh_cases, prepare, pool_size,
                             recipe.iterations // refresh_every if refresh_every else 0, seed)
        pooled = pool_size
        if recipe.device == "cpu":
            threads = _threads_beside_case_making(pool.voxels_per_case)
    sample = _patch_sampler(recipe, seed)
    with torch.random.fork_rng(devices=[]), pool, torch_threads(threads):
        torch.manual_seed(seed)
        inputs = 2 * recipe.context_slices + 1 if recipe.spatial_dims == 2 else 1
        model = UNet(recipe.spatial_dims, inputs, 2, recipe.channels, (2,) * (len(recipe.channels) - 1),
                     num_res_units=recipe.num_res_units).to(recipe.device)
        trained = ranks.wrap(model)
        optimiser = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
        scaler = accelerator.grad_scaler()  # fp16 only; a pass-through otherwise
        loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
        history, started = [], time.perf_counter()
        keeper = _BestModel(model, recipe, seed, validation or [], ranks)

        def batches():
            """This rank's share of each iteration's patches, drawn from the seed's stream."""
            for iteration in range(1, recipe.iterations + 1):
                if refresh_every and iteration % refresh_every == 0:
                    pool.refresh()
                cases = rng.integers(fixed + pooled, size=recipe.batch_size)
                pairs = [sample(prepared[c] if c < fixed else pool[c - fixed]) for c in cases][share]
                yield torch.as_tensor(np.stack([p[0] for p in pairs])), torch.as_tensor(np.stack([p[1] for p in pairs]))

        def batch_loss(batch):
            x, y = batch
            with accelerator.autocast():
                logits = trained(x.to(recipe.device))
            return loss_function(logits.float(), y.to(recipe.device))  # the loss in fp32

        steps = optimisation_steps(model, optimiser, prefetched(batches(), recipe.prefetch_batches), batch_loss,
                                   should_stop=should_stop, scaler=scaler)
        iteration = 0
        for iteration, (_, loss) in enumerate(steps, start=1):
            if iteration % 10 == 0 or iteration == recipe.iterations:
                entry = {"iteration": iteration, "loss": ranks.mean({"loss": float(loss)})["loss"],
                         "seconds": time.perf_counter() - started}
                history.append(entry)
                if progress is not None and ranks.is_main:
                    elapsed = entry["seconds"]
                    eta = elapsed / iteration * (recipe.iterations - iteration)
                    if recipe.budget_minutes is not None:
                        eta = min(eta, max(recipe.budget_minutes * 60 - elapsed, 0.0))
                    progress({**entry, "iterations": recipe.iterations, "eta_s": eta})
            if iteration % recipe.validate_every == 0 or iteration == recipe.iterations:
                if keeper.validate(iteration, history):
                    break
            if recipe.budget_minutes is not None and iteration % 10 == 0 and \
                    ranks.broadcast(time.perf_counter() - started >= recipe.budget_minutes * 60):
                keeper.stopped_by = "budget"
                keeper.validate(iteration, history)
                break
        training = keeper.finish(iteration)
        if fresh_cases is not None:
            training["torch_threads_beside_case_making"] = torch.get_num_threads()
    return TrainedSegmenter(model, recipe, seed, history, training)


#: on-the-fly cases of at least this many voxels (the whole scan a case is made in) get a core of
#: their own: making them then costs more than the training steps between two refreshes
LEAVE_A_CORE_FROM_VOXELS = 8_000_000


def _threads_beside_case_making(voxels_per_case: float) -> int:
    """torch's threads while the pool makes cases of ``voxels_per_case`` in its thread.  Decided
    by the data, not by timing, so that a run repeats exactly.  Measured on 2 cores (the
    threshold lies between the two): cases made in a 512x512x100 CT (26 M voxels, 0.2-0.3 s a
    case) trained at 21.9-23.4 it/s with torch on 1 thread against 19.5 on 2 (and 17.7-18.3 when
    the loop made them itself); in a 122x101x112 CT (1.4 M voxels, 58 ms a case) 2,000 steps took
    75 s on 2 threads against 94 s on 1."""
    import torch

    threads = torch.get_num_threads()
    return threads - 1 if threads > 1 and voxels_per_case >= LEAVE_A_CORE_FROM_VOXELS else threads


class _BestModel:
    """Validation during training: the mean Dice of the validation cases, the best weights so
    far (a CPU copy), and whether patience has run out.  Without validation cases the last
    model is the result."""

    def __init__(self, model, recipe: SegmenterRecipe, seed: int, cases: list[tuple], ranks: Ranks):
        self.model, self.recipe, self.seed, self.cases, self.ranks = model, recipe, seed, cases, ranks
        self.best_dice, self.best_iteration, self.best_state, self.waited = -1.0, 0, None, 0
        self.stopped_by, self.last_validated = "iterations", 0

    def validate(self, iteration: int, history: list[dict]) -> bool:
        """Measure at ``iteration`` (once per iteration); True when training should stop early."""
        from ..metrics.segmentation import dice

        if not self.cases or iteration == self.last_validated:
            return False
        self.last_validated = iteration
        judge = TrainedSegmenter(self.model, self.recipe, self.seed)
        scores = [dice(judge.predict(volume, organ, spacing).astype(bool), np.asarray(label) > 0)
                  for volume, label, organ, spacing in self.cases]  # the next step sets training mode again
        value = self.ranks.mean({"dice": float(np.nanmean(scores)) if scores else 0.0})["dice"]
        history.append({"iteration": iteration, "validation_dice": value})
        if value > self.best_dice:
            self.best_dice, self.best_iteration, self.waited = value, iteration, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            return False
        self.waited += 1
        if self.recipe.patience and self.waited >= self.recipe.patience:
            self.stopped_by = "early stopping"
            return True
        return False

    def finish(self, iteration: int) -> dict:
        """Load the best weights (with validation) and say how training ended."""
        training = {"iterations": iteration, "stopped_by": self.stopped_by}
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            training.update(best_iteration=self.best_iteration, validation_dice=self.best_dice,
                            validation_cases=len(self.cases))
        return training
