"""The downstream classifier recipe: one recipe, trained the same way on every arm of a study.
One class per image (softmax); images with several findings each train the findings model
(``findings.multilabel_2d``, the one that reads CT volumes).

Networks, data and augmentation come from MONAI: the images are a ``monai.data.Dataset`` whose
items are augmented by MONAI transforms (``augment.shift_and_scale``) and batched by a MONAI
``DataLoader`` (``ClassifierRecipe.workers`` worker processes, or none); the optimiser steps are
the project's one loop (``loop.train_epochs``).  Randomness is seeded inside
``torch.random.fork_rng``, so the caller's global RNG state is left untouched and the same
seed (and number of workers) gives the same model: the loader draws its augmentation from a
generator seeded by (seed, rank).  Long runs report progress and
can be stopped between steps.

Under ``torchrun`` the recipe trains with DistributedDataParallel: a ``DistributedSampler``
(its epoch set every epoch) gives each rank its share of every epoch, the batch size is the
global batch, augmentation and dropout draw from per-rank streams of the seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from MedSynthCommonLib.distributed import Ranks, rank_seed
from MedSynthCommonLib.errors import MedSynthInputError

from .augment import pad_for_shifts, shift_and_scale
from .data import ImageSet
from .loop import data_loader, train_epochs


@dataclass(frozen=True)
class ClassifierRecipe:
    """How a classifier is built and trained.

    network: "small" (MONAI ``Classifier``, residual conv net for small images, fast on CPU),
        "densenet121" or "resnet18" (MONAI).
    pretrained_weights: a state-dict file to start from (transfer learning), loaded with
        ``weights_only=True`` (no code runs from it); tensors whose shape differs (the last
        layer, for another number of classes) keep their fresh initialisation.
    workers: DataLoader worker processes that augment and batch the images (0: in the training
        process, the fastest for small images on a few cores).
    """

    network: str = "small"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    augment: bool = True
    pretrained_weights: str | None = None
    device: str = "cpu"
    workers: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainedClassifier:
    model: object
    recipe: ClassifierRecipe
    class_names: list[str]
    seed: int
    history: list[dict] = field(default_factory=list)
    train_summary: dict = field(default_factory=dict)

    def predict_proba(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(n, classes) probabilities (softmax) for (n, h, w) images in [0, 1]."""
        import torch

        self.model.eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = torch.as_tensor(np.asarray(images[start:start + batch_size], np.float32))[:, None]
                outputs.append(torch.softmax(self.model(batch.to(self.recipe.device)), dim=1).cpu().numpy())
        return np.concatenate(outputs)


def build_network(recipe: ClassifierRecipe, classes: int, size: int):
    """The recipe's MONAI network, initialised from ``pretrained_weights`` when given."""
    from monai.networks import nets

    # measured: the small net needs more than one pixel after its last halving but one, DenseNet 32 px
    smallest = {"small": 2 ** (len(recipe.channels) - 1) + 1, "densenet121": 32}.get(recipe.network, 8)
    if size < smallest:
        raise MedSynthInputError(f"Images of {size} px are too small for the {recipe.network} network (it halves them "
                                 f"down to a few pixels); use an image size of at least {smallest}.")
    if recipe.network == "small":
        strides = (2,) * len(recipe.channels)
        network = nets.Classifier(in_shape=(1, size, size), classes=classes, channels=recipe.channels,
                                  strides=strides, num_res_units=1, dropout=0.1)
    elif recipe.network == "densenet121":
        network = nets.DenseNet121(spatial_dims=2, in_channels=1, out_channels=classes)
    elif recipe.network == "resnet18":
        network = nets.resnet18(spatial_dims=2, n_input_channels=1, num_classes=classes)
    else:
        raise MedSynthInputError(f"Unknown network {recipe.network!r}; choose small, densenet121 or resnet18.")
    if recipe.pretrained_weights:
        _load_pretrained(network, recipe.pretrained_weights)
    return network


def _load_pretrained(network, path: str) -> None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, foreign or pickled-code files all end here
        raise MedSynthInputError(f"Could not load pretrained weights from {path}: {error}") from None
    own = network.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < len(own) // 2:
        raise MedSynthInputError(
            f"{path} matches only {len(usable)} of {len(own)} tensors of the network; it is for another architecture.")
    network.load_state_dict(usable, strict=False)


def train_classifier(train: ImageSet, recipe: ClassifierRecipe = ClassifierRecipe(), seed: int = 0,
                     progress: Callable[[dict], None] | None = None,
                     should_stop: Callable[[], bool] | None = None, ranks: Ranks | None = None) -> TrainedClassifier:
    """Train ``recipe`` on ``train``; returns the model with its loss history.  ``ranks``: this
    process's place in a torchrun run (default: from the environment; one process without it)."""
    import dataclasses

    import torch
    from torch.utils.data import DistributedSampler

    if train.findings is not None:
        raise MedSynthInputError("The image set has several findings per image: train the findings model on it "
                                 "(findings.multilabel_2d.train_image_findings), not a one-class-per-image classifier.")
    if len(np.unique(train.labels)) < 2:
        raise MedSynthInputError(f"The training set has one class only ({train.summary()['per_class']}).")
    ranks = ranks or Ranks.from_environment(recipe.device.split(":")[0])
    recipe = dataclasses.replace(recipe, device=ranks.device(recipe.device))
    size = train.images.shape[-1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_network(recipe, len(train.class_names), size).to(recipe.device)
        if ranks.active:
            torch.manual_seed(rank_seed(seed, ranks.rank))  # dropout: this rank's stream
        trained = ranks.wrap(model)
        optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
        # inverse-frequency class weights: rare classes (e.g. viral) are not ignored
        counts = np.bincount(train.labels, minlength=len(train.class_names)).astype(np.float32)
        weights = torch.as_tensor(counts.sum() / np.maximum(counts, 1) / len(counts))
        loss_function = torch.nn.CrossEntropyLoss(weight=weights.to(recipe.device))
        dataset = image_dataset(train, recipe.augment)
        # every rank's share of each epoch, equal in length (padded), reshuffled per epoch from the seed
        sampler = DistributedSampler(dataset, num_replicas=ranks.world_size, rank=ranks.rank, shuffle=True, seed=seed)
        local_batch = max(1, recipe.batch_size // ranks.world_size)

        loader = data_loader(dataset, sampler, local_batch, recipe.workers, rank_seed(seed, ranks.rank))

        def batches(epoch: int):
            sampler.set_epoch(epoch)
            return loader

        def batch_loss(batch):
            images = batch["image"].as_subclass(torch.Tensor)  # MONAI's MetaTensor: its metadata is not needed
            return loss_function(trained(images.to(recipe.device)), batch["label"].to(recipe.device))

        history = train_epochs(model, optimiser, recipe.epochs, batches, batch_loss, should_stop=should_stop,
                               progress=progress if ranks.is_main else None,
                               epoch_loss=lambda mean: ranks.mean({"loss": mean})["loss"],
                               items_in=lambda batch: len(batch["label"]))
    return TrainedClassifier(model, recipe, train.class_names, seed, history,
                             {**train.summary(), "processes": ranks.world_size})


def image_dataset(images: ImageSet, augment: bool):
    """A ``monai.data.Dataset`` of ``{"image": (1, h, w) float32, "label": class index}``, each item
    shifted by up to 6 % of the image size and its intensity scaled by +-5 % when ``augment``."""
    from monai.data import Dataset
    from monai.transforms import Compose

    size = images.images.shape[-1]
    max_shift = max(1, int(0.06 * size))
    stored = (pad_for_shifts(image, max_shift) for image in images.images) if augment else images.images
    items = [{"image": image[None], "label": int(label)} for image, label in zip(stored, images.labels)]
    return Dataset(items, transform=Compose(shift_and_scale((size, size), scale_width=0.1)) if augment else None)
