"""The findings model: multi-label classification of 3-D CT volumes or 2-D images (which
abnormality types an image shows), each finding with a threshold chosen on validation data and
an evidence map that the findings layer turns into a location (``anatomy.locate_in_anatomy`` in
a scan's organs, ``multilabel_2d.locate`` in an image's regions).

The recipe's ``input_shape`` says which: three values [k, j, i] for volumes, two [y, x] for
images (``FindingsRecipe.spatial_dims``); the same networks, training, thresholds, evidence and
model folder serve both.  Inputs are windowed to [0, 1] and resized to ``input_shape`` (MONAI
``Resize``, linear) for the network; evidence maps are resized back to each input's own grid, so
locations use its geometry.  Networks are MONAI's with the recipe's ``spatial_dims``: "small" (a
residual classifier that trains on a CPU), "densenet121" or "resnet18" (GPU-sized; give a
larger ``input_shape``, e.g. (96, 128, 128)).  Training is seeded inside
``torch.random.fork_rng``; the model folder is a card (recipe, findings, thresholds, training
summary, the weights' SHA-256) and content-addressed weights, loaded with ``weights_only``.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from .loop import data_loader, train_epochs

CARD_FORMAT = "medsynth-volume-classifier/1"


@dataclass(frozen=True)
class FindingsRecipe:
    network: str = "small"
    # [k, j, i] the network sees (3 mm CT: ~5 x 4 x 4 mm); two values [y, x] for 2-D images
    input_shape: tuple[int, ...] = (64, 96, 96)
    channels: tuple[int, ...] = (8, 16, 32, 32)  # "small" only: widths of its residual units
    strides: tuple[int, ...] = (2, 2, 1, 1)  # "small" only: its evidence map is input_shape / 4
    window: tuple[float, float] = (-150.0, 250.0)  # CT soft tissue, HU; (0, 1) for images already in [0, 1]
    epochs: int = 60
    batch_size: int = 4
    learning_rate: float = 1e-3
    augment: bool = True  # shifts and intensity scaling; not with the map loss (maps would need shifting too)
    # other scanners' levels, contrast, noise, sharpness and field of view (``augment.scanner_augmentation``;
    # its zoom moves the score maps too); off by default: from phantoms to a real CT it helped within
    # the noise (AUC 0.63 / 0.59 -> 0.71 / 0.75, intervals +-0.25), on phantoms framed as in
    # training it cost a little (0.97 / 1.00 -> 0.91 / 0.96; seed 0, README)
    scanner_augment: bool = False
    map_loss_weight: float = 1.0  # "small" only: weight of the score-map loss where lesion masks are known
    # the network reads the box around the findings' organs with this margin (mm), not the whole
    # scan, so a longer or wider scan shows it the same anatomy at the same size (phantoms,
    # ct_findings_field_of_view.py: test scans twice as long took the AUCs from 0.95 / 0.86 to
    # 0.55 / 0.61 reading the whole scan, 0.77 / 0.93 reading the box; 1.5 times wider: 0.39 /
    # 0.56 against 1.00 / 1.00); None: the whole scan (cards written before it existed).  The
    # findings layer cuts the box (``scans.organ_region``)
    organ_margin_mm: float | None = 15.0
    # scans cut short at their top or bottom in training, away from their lesions (``augment.
    # scan_ends``; with the score-map loss, which says where the lesions are), so that a box reaching
    # past a scan's end might be learnt to tell nothing.  Off by default: on phantoms framed as in
    # training it raised the hyperdense AUC (mean of 3 seeds 0.89 -> 0.97), on the real CT's
    # upper-abdomen crop it lowered it (0.77 -> 0.37, one run), the hypodense AUC about the same
    # (ct_findings_field_of_view.py, ct_findings_abdomen.py --test-on upper)
    scan_end_augment: bool = False
    # each organ of every scan read at the training scans' level of that organ (its median HU, kept
    # in the model: ``FindingsModel.organ_reference_hu``; ``familiarity.at_reference_levels``), so
    # that a lesion is told by its contrast against its organ, not by the organ's own level, which
    # another contrast phase or scanner moves by tens of HU.  Off by default (cards written before
    # it existed read scans as they are)
    organ_relative: bool = False
    # the network reads its organs only: in the box, every voxel farther than this (mm) from the
    # findings' organs reads as the window's lower end (``scans.organs_only``), so that nothing
    # outside them (bone, bowel, the body's outline, a scan's end) can be what it learns or where
    # its evidence lies.  None (default): the whole box.  With 10 mm, trained on a real CT and tested
    # on its upper-abdomen crop (two seeds, README): the right organ 13 and 15 times against 10 and
    # 10, the whole CT's thresholds carried over in 3 of 4 finding x seed cells (specificity 0-0.12
    # before), AUCs both ways; on phantoms framed as in training 0.91 / 0.98 against 0.97 / 1.00
    organs_only_mm: float | None = None
    device: str = "cpu"
    # DataLoader worker processes that augment and batch the scans (0: in the training process;
    # each worker holds its own copy of the training inputs); the same model with any number
    # (each item's draws are seeded by seed, epoch and item)
    workers: int = 0

    def __post_init__(self):
        if len(self.input_shape) not in (2, 3):
            raise MedSynthInputError(f"input_shape {self.input_shape} must be [k, j, i] (volumes) or [y, x] (images).")
        if self.spatial_dims == 2 and (self.scanner_augment or self.scan_end_augment):
            raise MedSynthInputError("Scanner and scan-end augmentation are for 3-D CT volumes; switch them off "
                                     "for 2-D images.")
        if self.organs_only_mm is not None and (self.organ_margin_mm is None
                                                or not 0.0 <= float(self.organs_only_mm) < float("inf")):
            raise MedSynthInputError("Reading the organs only needs the box around them (not --whole-scan) and a "
                                     f"margin of 0 mm or more; got {self.organs_only_mm}.")

    @property
    def spatial_dims(self) -> int:
        """3 for CT volumes, 2 for images (from ``input_shape``)."""
        return len(self.input_shape)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FindingsRecipe":
        values = dict(data)
        values.setdefault("scanner_augment", False)  # cards written before these existed trained without them
        values.setdefault("organ_margin_mm", None)
        values.setdefault("organ_relative", False)
        values.setdefault("organs_only_mm", None)
        for key in ("input_shape", "channels", "strides", "window"):
            values[key] = tuple(values[key])
        return cls(**values)


def prepare_input(image: np.ndarray, recipe: FindingsRecipe) -> np.ndarray:
    """A volume (k, j, i) or an image (y, x) in image units -> (1, *input_shape) float32 in [0, 1]."""
    from monai.transforms import Resize

    image = np.asarray(image, np.float32)
    if image.ndim != recipe.spatial_dims:
        expected = "a 3-D CT volume [k, j, i]" if recipe.spatial_dims == 3 else "a 2-D image [y, x]"
        raise MedSynthInputError(f"This findings model reads {expected}; got shape {image.shape}.")
    low, high = recipe.window
    scaled = np.clip((image - low) / (high - low), 0.0, 1.0)[None]
    return np.asarray(Resize(recipe.input_shape, mode=_linear(recipe))(scaled), np.float32)


def _linear(recipe: FindingsRecipe) -> str:
    return "trilinear" if recipe.spatial_dims == 3 else "bilinear"


def build_network(recipe: FindingsRecipe, findings: int):
    from monai.networks import nets

    if recipe.network == "small":
        from .findings_networks import FindingMapNet

        return FindingMapNet(findings, recipe.channels, recipe.strides, recipe.spatial_dims)
    if recipe.network == "densenet121":
        return nets.DenseNet121(spatial_dims=recipe.spatial_dims, in_channels=1, out_channels=findings)
    if recipe.network == "resnet18":
        return nets.resnet18(spatial_dims=recipe.spatial_dims, n_input_channels=1, num_classes=findings)
    raise MedSynthInputError(f"Unknown network {recipe.network!r}; choose small, densenet121 or resnet18.")


def evidence_layer(recipe: FindingsRecipe) -> str:
    """The layer Grad-CAM reads (for "small" this gives its score map exactly)."""
    return {"small": "features", "densenet121": "features.denseblock3",
            "resnet18": "layer3"}[recipe.network]


@dataclass
class FindingsModel:
    model: object
    recipe: FindingsRecipe
    findings: list[str]
    thresholds: list[float]
    seed: int
    history: list[dict] = field(default_factory=list)
    training: dict = field(default_factory=dict)
    organs: list[str] = field(default_factory=list)  # whose box the network reads (``recipe.organ_margin_mm``)
    # the box's size, mm [k, j, i] (``scans.view_extent_mm``); None: the box clipped to each
    # scan, resized whole to the input (cards written before it existed)
    view_mm: tuple[float, float, float] | None = None
    # organ-relative models (``recipe.organ_relative``): {organ: HU} each organ is read at
    organ_reference_hu: dict[str, float] = field(default_factory=dict)

    def predict_proba(self, volumes: list[np.ndarray]) -> np.ndarray:
        """(n, findings) probabilities (one sigmoid per finding)."""
        import torch

        self.model.eval()
        with torch.no_grad():
            rows = [torch.sigmoid(self.model(torch.as_tensor(prepare_input(v, self.recipe))[None]
                                             .to(self.recipe.device)))[0].cpu().numpy() for v in volumes]
        return np.array(rows, np.float64).reshape(len(volumes), len(self.findings))

    def evidence_maps(self, image: np.ndarray, findings: list[int]) -> dict[int, np.ndarray]:
        """Where each of ``findings`` lies, on the input's own grid ({finding: [k, j, i] or
        [y, x] 0-1 float32}).

        "small" trained with lesion masks (or any "small" volume model): the findings'
        probability maps (sigmoid of their score maps), all from one forward pass: class
        activation maps that the lesion masks trained, and what Grad-CAM reduces to on this
        network (without the head's bias and the ReLU that empties it on a scan of low scores).
        Images whose model no masks trained: occlusion sensitivity (MONAI), the drop of the
        finding's probability when a region is hidden.  An untrained score map peaks wherever
        its receptive field reaches the lesion (measured on 32 px images: a spot in the lower
        third located at mid-height every time), and hiding regions of an image takes a few
        dozen passes (of a volume, hundreds).  Other networks: Grad-CAM (``monai.visualize``)
        at ``evidence_layer``, one pass per finding."""
        import torch
        from monai.transforms import Resize

        findings = [int(f) for f in dict.fromkeys(findings)]
        if not findings:
            return {}
        self.model.eval()
        tensor = torch.as_tensor(prepare_input(image, self.recipe))[None].to(self.recipe.device)
        if self.recipe.spatial_dims == 2 and not self.training.get("map_loss", False):
            heat = self._occlusion(tensor, findings)
        elif hasattr(self.model, "score_maps"):
            with torch.no_grad():
                heat = torch.sigmoid(self.model.score_maps(tensor))[0, findings].cpu().numpy()
        else:
            from monai.visualize import GradCAM

            cam = GradCAM(self.model, target_layers=evidence_layer(self.recipe))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                heat = np.concatenate([cam(tensor, class_idx=f)[0].detach().cpu().numpy() for f in findings])
        resized = np.asarray(Resize(np.shape(image), mode=_linear(self.recipe))(heat), np.float32)
        return dict(zip(findings, resized))

    def _occlusion(self, tensor, findings: list[int], mask_fraction: float = 0.25) -> np.ndarray:
        """(findings, *input_shape) drop of each finding's probability when a square of
        ``mask_fraction`` of the input's size around each pixel is hidden (MONAI), clipped at 0."""
        import torch
        from monai.visualize import OcclusionSensitivity

        size = max(2, int(min(self.recipe.input_shape) * mask_fraction))
        occlusion = OcclusionSensitivity(self.model, mask_size=size, n_batch=32, verbose=False, overlap=0.5,
                                         activate=torch.sigmoid)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # MONAI's own indexing deprecation notices
            baseline = torch.sigmoid(self.model(tensor))[0, findings].cpu().numpy()
            occluded = occlusion(tensor)[0][0, findings].cpu().numpy()
        drop = baseline.reshape(-1, *[1] * self.recipe.spatial_dims) - occluded
        return np.clip(drop, 0.0, None).astype(np.float32)

    def evidence(self, image: np.ndarray, finding: int) -> np.ndarray:
        """``evidence_maps`` of one finding."""
        return self.evidence_maps(image, [finding])[int(finding)]

    def called(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities >= np.asarray(self.thresholds)[None]

    def certainty(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities rescaled piecewise-linearly so that each finding's threshold is 0.5
        (0 and 1 stay): a report's certainty bands then mean the same for every finding, and a
        called finding is never below "possible"."""
        p = np.asarray(probabilities, np.float64)
        t = np.clip(np.asarray(self.thresholds, np.float64), 1e-6, 1 - 1e-6)
        return np.where(p < t, 0.5 * p / t, 0.5 + 0.5 * (p - t) / (1 - t))


def choose_thresholds(truth: np.ndarray, scores: np.ndarray,
                      fallback: list[float] | None = None) -> tuple[list[float], list[str]]:
    """Per finding: the threshold that maximises Youden's J on validation data (``truth`` and
    ``scores`` (cases, findings)); where those lack positives or negatives for a finding, its
    ``fallback`` threshold (default 0.5), with a note."""
    from sklearn.metrics import roc_curve

    thresholds, notes = [], []
    for f in range(truth.shape[1]):
        if 0 < truth[:, f].sum() < len(truth):
            fpr, tpr, cut = roc_curve(truth[:, f], scores[:, f], drop_intermediate=False)
            best = int(np.argmax(tpr - fpr))
            # every threshold between this score and the next lower one scores the same J on the
            # validation scans: take the middle (in logits), not the edge next to the positives
            high = min(float(cut[best]), 1 - 1e-6)
            low = float(cut[best + 1]) if best + 1 < len(cut) else high
            logit = (np.log(high / (1 - high)) + np.log(max(low, 1e-6) / (1 - max(low, 1e-6)))) / 2
            thresholds.append(float(1 / (1 + np.exp(-logit))))
        else:
            kept = 0.5 if fallback is None else float(fallback[f])
            thresholds.append(kept)
            notes.append(f"finding {f}: the validation set has only one class; threshold {kept:g}")
    return thresholds, notes


def map_targets(masks: list[dict[int, np.ndarray] | None], findings: int, map_shape: tuple[int, ...]) -> np.ndarray:
    """Per scan and finding, the score-map cells (``map_shape``) that a lesion covers by at least
    a tenth ((n, F, *map_shape) float32; -1 where the scan has no masks: no map loss).
    ``masks``: per scan {finding index: [k, j, i] lesion voxels} or None."""
    from monai.transforms import Resize

    targets = np.full((len(masks), findings, *map_shape), -1.0, np.float32)
    for n, mask in enumerate(masks):
        if mask is None:
            continue
        targets[n] = 0.0
        for f, voxels in mask.items():
            covered = Resize(map_shape, mode="area")(np.asarray(voxels, np.float32)[None])
            targets[n, f] = np.asarray(covered, np.float32)[0] >= 0.1
    return targets


def lesion_free_ends(targets: np.ndarray, slices: int) -> np.ndarray:
    """Per scan, the input slices at its bottom and top (``slices`` in all) that are at least
    one score-map cell away from any lesion cell of ``targets`` (``map_targets``); (0, 0) for a
    scan without masks (where its lesions lie is not known).  (n, 2) int."""
    free = np.zeros((len(targets), 2), np.int64)
    rows = targets.shape[2]
    cell = slices / rows
    for n, target in enumerate(targets):
        if (target < 0).any():
            continue
        lesion = np.flatnonzero(target.max(axis=(0, 2, 3)) > 0)
        if lesion.size == 0:
            free[n] = slices
        else:
            free[n] = [int(max(lesion[0] - 1, 0) * cell), int(max(rows - 2 - lesion[-1], 0) * cell)]
    return free


def _score_map_shape(model, recipe: FindingsRecipe) -> tuple[int, ...] | None:
    import torch

    if not hasattr(model, "score_maps"):
        return None
    with torch.no_grad():
        return tuple(model.score_maps(torch.zeros(1, 1, *recipe.input_shape, device=recipe.device)).shape[2:])


def train_findings_model(volumes: list[np.ndarray], findings: np.ndarray, names: list[str],
                            recipe: FindingsRecipe = FindingsRecipe(), seed: int = 0, validation_fraction: float = 0.25,
                            masks: list[dict[int, np.ndarray] | None] | None = None, groups: list | None = None,
                            progress: Callable[[dict], None] | None = None,
                            should_stop: Callable[[], bool] | None = None,
                            checkpoint_dir: Path | None = None) -> FindingsModel:
    """Train on ``volumes`` with ``findings`` ((n, F) 0/1, names in ``names``); a
    ``validation_fraction`` is held out to choose each finding's threshold (then the model
    trained on the rest is returned, so the thresholds are honest).

    ``masks`` (per volume {finding index: [k, j, i] lesion voxels}, or None where only the
    scan's labels are known, e.g. a real case) add a loss on the "small" network's score
    maps: exact synthetic labels teach it where, not only whether, so its evidence points at the
    lesion and it learns from fewer scans.

    ``groups`` (per volume, e.g. the patient a synthetic scan was made from): with 3 or more,
    whole groups are held out for validation, so thresholds are chosen on patients the network
    did not see (scans of one patient share anatomy, and thresholds chosen on them are optimistic).

    ``checkpoint_dir``: the state after every epoch is kept there (``checkpoint.json`` naming a
    content-addressed file), and a killed or cancelled run resumes from it, bit for bit on a CPU,
    when called again with the same data and recipe (anything else is refused);
    ``save_findings_model`` into the same folder removes it."""
    import torch

    from .findings_checkpoint import load_state, save_state, training_fingerprint
    from .findings_data import EpochOrder, EpochSeededDataset, findings_items, findings_transform

    findings = np.asarray(findings)
    if findings.ndim != 2 or findings.shape != (len(volumes), len(names)) or not set(np.unique(findings)) <= {0, 1}:
        raise MedSynthInputError(f"findings must be a 0/1 matrix of (scans or images, {len(names)}); got {findings.shape}.")
    rng = np.random.default_rng(seed)
    validation, train = _split(len(volumes), groups, validation_fraction, rng)
    if len(train) < 2:
        raise MedSynthInputError(f"Too few scans or images ({len(volumes)}) to train and validate; give at least 6.")
    inputs = np.stack([prepare_input(v, recipe) for v in volumes])
    positives = findings[train].sum(axis=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_network(recipe, len(names)).to(recipe.device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=1e-4)
        weights = torch.as_tensor((len(train) - positives) / np.maximum(positives, 1), dtype=torch.float32)
        loss_function = torch.nn.BCEWithLogitsLoss(pos_weight=weights.to(recipe.device))
        map_shape = _score_map_shape(model, recipe) if masks is not None and recipe.map_loss_weight > 0 else None
        targets = None if map_shape is None else map_targets(masks, len(names), map_shape)
        history, first = [], 0
        fingerprint = training_fingerprint(inputs, findings, targets, names, recipe, seed, train, validation)
        if checkpoint_dir is not None:
            resumed = load_state(Path(checkpoint_dir), fingerprint, recipe.device)
            if resumed is not None:
                model.load_state_dict(resumed["model"])
                optimiser.load_state_dict(resumed["optimiser"])
                rng.bit_generator.state = resumed["numpy_rng"]
                train, history, first = resumed["train"].numpy(), resumed["history"], resumed["epoch"]
                if progress is not None:
                    progress({"resumed_at_epoch": first, "epochs": recipe.epochs})
        # shifts and intensity scaling where no score maps would have to move with them; scans cut
        # short; other scanners' intensity, noise, sharpness and field of view (a zoom that moves
        # the score maps with the scan)
        shifts = targets is None and recipe.augment
        free = None if targets is None or not recipe.scan_end_augment else \
            lesion_free_ends(targets, recipe.input_shape[0])
        dataset = EpochSeededDataset(
            findings_items(inputs, findings, targets, free, shifts),
            findings_transform(recipe.input_shape, shifts, recipe.scanner_augment, free is not None,
                               map_shape), seed)
        order = EpochOrder(len(inputs))
        del inputs  # the items hold what training reads (padded copies where shifted): one copy of the scans
        loader = data_loader(dataset, order, recipe.batch_size, recipe.workers, seed)

        def batches(epoch: int):
            order.set(epoch, train)
            return loader

        def batch_loss(batch):
            images = batch["image"].as_subclass(torch.Tensor).to(recipe.device)  # MONAI's MetaTensor: no metadata needed
            truth = batch["findings"].to(recipe.device)
            if "cells" not in batch:
                return loss_function(model(images), truth)
            maps = model.score_maps(images)  # scans with a mask learn from their map,
            cells = batch["cells"].to(recipe.device)  # the others from their labels
            unmapped = cells.flatten(1).amax(dim=1) < 0
            loss = recipe.map_loss_weight * _map_loss(maps, cells)
            if unmapped.any():
                loss = loss + loss_function(torch.amax(maps[unmapped].flatten(2), dim=2), truth[unmapped])
            return loss

        def after_epoch(epoch: int, entry: dict) -> None:
            nonlocal train  # the next epoch's order of the training scans
            train = train[rng.permutation(len(train))]
            if checkpoint_dir is not None:
                save_state(Path(checkpoint_dir), fingerprint, epoch + 1, model, optimiser, rng, train, history)

        train_epochs(model, optimiser, recipe.epochs, batches, batch_loss, first_epoch=first, history=history,
                     should_stop=should_stop, progress=progress, after_epoch=after_epoch,
                     items_in=lambda batch: len(batch["findings"]))
    trained = FindingsModel(model, recipe, list(names), [0.5] * len(names), seed, history)
    scores = trained.predict_proba([volumes[i] for i in validation])
    trained.thresholds, notes = choose_thresholds(findings[validation], scores)
    trained.training = {"volumes": len(volumes), "train": len(train), "validation": len(validation),
                        "with_lesion_masks": 0 if masks is None else sum(m is not None for m in masks),
                        "map_loss": targets is not None,
                        "positives_per_finding": dict(zip(names, findings.sum(axis=0).astype(int).tolist())),
                        "threshold_rule": "Youden's J on the validation volumes (midway to the next score)",
                        "validation_by": "group" if groups is not None and len(set(groups)) >= 3 else "volume",
                        "notes": notes}
    return trained


def _split(count: int, groups: list | None, fraction: float, rng: np.random.Generator):
    """(validation, train) indices: whole groups when there are 3 or more, else volumes."""
    if groups is not None and len(set(groups)) >= 3:
        if len(groups) != count:
            raise MedSynthInputError(f"groups has {len(groups)} entries for {count} scans or images.")
        names = sorted(set(groups), key=str)
        held = set(rng.permutation(len(names))[:max(1, int(round(fraction * len(names))))].tolist())
        in_validation = np.array([names.index(g) in held for g in groups])
        return np.flatnonzero(in_validation), rng.permutation(np.flatnonzero(~in_validation))
    order = rng.permutation(count)
    held = max(2, int(round(fraction * count)))
    return order[:held], order[held:]


def _map_loss(maps, targets):
    """Binary cross-entropy over the cells of scans with a mask (target -1: none), positives
    weighted by the negatives-to-positives ratio of the batch (at most 20)."""
    import torch

    known = targets >= 0
    if not known.any():
        return maps.sum() * 0.0
    positives = float((targets == 1).sum())
    weight = torch.tensor(min(20.0, float(known.sum()) / max(positives, 1.0) - 1.0) if positives else 1.0)
    return torch.nn.functional.binary_cross_entropy_with_logits(
        maps[known], targets[known], pos_weight=weight.clamp(min=1.0).to(maps.device))


def check_new_model_folder(folder: Path, option: str) -> Path:
    """``folder`` (a model folder to write) when it holds no model yet; a trained model is never
    overwritten (``option``: the command-line option that names the folder)."""
    from SynthTranslateLib.model_dir import CARD

    folder = Path(folder)
    if (folder / CARD).exists():
        raise MedSynthInputError(f"{folder} already holds a model; choose another {option} (or move that one away): "
                                 "a trained model is never overwritten.")
    return folder


def save_findings_model(folder: Path, classifier: FindingsModel) -> Path:
    """Weights under their hash, then the card naming them (the folder is whole at every moment)."""
    from MedSynthCommonLib.storage import prepare_folder, write_json_atomic
    from SynthTranslateLib.model_dir import CARD, CHECKPOINT_INDEX, remove_unreferenced, save_addressed

    folder = prepare_folder(Path(folder), "model folder")
    name, digest = save_addressed(folder, "weights", classifier.model.state_dict())
    write_json_atomic(folder / CARD, {
        "format": CARD_FORMAT, "recipe": classifier.recipe.to_dict(), "findings": classifier.findings,
        "thresholds": classifier.thresholds, "seed": classifier.seed, "training": classifier.training,
        "organs": classifier.organs, "view_mm": None if classifier.view_mm is None else list(classifier.view_mm),
        "organ_reference_hu": classifier.organ_reference_hu,
        "history": classifier.history, "weights": name, "weights_sha256": digest})
    remove_unreferenced(folder, "weights", name)
    with contextlib.suppress(FileNotFoundError):  # a finished training's checkpoint is not needed
        (folder / CHECKPOINT_INDEX).unlink()
    remove_unreferenced(folder, "checkpoint", "")
    return folder


def load_findings_model(folder: Path, device: str = "cpu") -> FindingsModel:
    """A model folder written by ``save_findings_model``; changed or foreign files are refused."""
    import dataclasses

    import torch

    from SynthTranslateLib.model_dir import read_format_card, verified_weights

    card = read_format_card(folder, CARD_FORMAT, "volume-classifier",
                            ("recipe", "findings", "thresholds", "seed", "weights", "weights_sha256"))
    weights = verified_weights(folder, card)
    recipe = dataclasses.replace(FindingsRecipe.from_dict(card["recipe"]), device=device)
    model = build_network(recipe, len(card["findings"])).to(device)
    try:
        model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    except Exception as error:
        raise MedSynthInputError(f"The weights in {folder} do not fit the network its card describes: "
                                 f"{str(error).splitlines()[0][:200]}") from None
    return FindingsModel(model.eval(), recipe, card["findings"], card["thresholds"], card["seed"],
                                   card.get("history", []), card.get("training", {}), card.get("organs", []),
                                   None if card.get("view_mm") is None else tuple(card["view_mm"]),
                                   card.get("organ_reference_hu", {}))
