"""3-D multi-label classification of CT volumes: which abnormality types a scan shows, each
with a threshold chosen on validation data and an evidence map (Grad-CAM, MONAI) that
``anatomy.locate_in_anatomy`` turns into a location.

Volumes are windowed to [0, 1] and resized to the recipe's ``input_shape`` (MONAI ``Resize``,
trilinear) for the network; evidence maps are resized back to each volume's own grid, so
locations use the volume's geometry.  Networks are MONAI's with ``spatial_dims=3``: "small" (a
residual classifier that trains on a CPU), "densenet121" or "resnet18" (GPU-sized; give a
larger ``input_shape``, e.g. (96, 128, 128)).  Training is seeded inside
``torch.random.fork_rng``; the model folder is a card (recipe, findings, thresholds, training
summary, the weights' SHA-256) and content-addressed weights, loaded with ``weights_only``.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

CARD_FORMAT = "medsynth-volume-classifier/1"


@dataclass(frozen=True)
class VolumeRecipe:
    network: str = "small"
    input_shape: tuple[int, int, int] = (48, 64, 64)  # [k, j, i] the network sees
    channels: tuple[int, ...] = (8, 16, 32, 64)  # "small" only
    window: tuple[float, float] = (-150.0, 250.0)  # CT soft tissue, HU
    epochs: int = 30
    batch_size: int = 4
    learning_rate: float = 1e-3
    augment: bool = True
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VolumeRecipe":
        values = dict(data)
        for key in ("input_shape", "channels", "window"):
            values[key] = tuple(values[key])
        return cls(**values)


def prepare_volume(volume: np.ndarray, recipe: VolumeRecipe) -> np.ndarray:
    """(k, j, i) image units -> (1, *input_shape) float32 in [0, 1]."""
    from monai.transforms import Resize

    volume = np.asarray(volume, np.float32)
    if volume.ndim != 3:
        raise MedSynthInputError(f"A CT volume must be 3-D [k, j, i]; got shape {volume.shape}.")
    low, high = recipe.window
    scaled = np.clip((volume - low) / (high - low), 0.0, 1.0)[None]
    return np.asarray(Resize(recipe.input_shape, mode="trilinear")(scaled), np.float32)


def build_network(recipe: VolumeRecipe, findings: int):
    from monai.networks import nets

    if recipe.network == "small":
        return nets.Classifier(in_shape=(1, *recipe.input_shape), classes=findings, channels=recipe.channels,
                               strides=(2,) * len(recipe.channels), num_res_units=1)
    if recipe.network == "densenet121":
        return nets.DenseNet121(spatial_dims=3, in_channels=1, out_channels=findings)
    if recipe.network == "resnet18":
        return nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=findings)
    raise MedSynthInputError(f"Unknown network {recipe.network!r}; choose small, densenet121 or resnet18.")


def evidence_layer(recipe: VolumeRecipe) -> str:
    """The layer Grad-CAM reads: one block before the last, for a finer map than the last."""
    return {"small": f"net.layer_{len(recipe.channels) - 2}", "densenet121": "features.denseblock3",
            "resnet18": "layer3"}[recipe.network]


@dataclass
class TrainedVolumeClassifier:
    model: object
    recipe: VolumeRecipe
    findings: list[str]
    thresholds: list[float]
    seed: int
    history: list[dict] = field(default_factory=list)
    training: dict = field(default_factory=dict)

    def predict_proba(self, volumes: list[np.ndarray]) -> np.ndarray:
        """(n, findings) probabilities (one sigmoid per finding)."""
        import torch

        self.model.eval()
        with torch.no_grad():
            rows = [torch.sigmoid(self.model(torch.as_tensor(prepare_volume(v, self.recipe))[None]
                                             .to(self.recipe.device)))[0].cpu().numpy() for v in volumes]
        return np.array(rows, np.float64).reshape(len(volumes), len(self.findings))

    def evidence(self, volume: np.ndarray, finding: int) -> np.ndarray:
        """Grad-CAM of ``finding`` on the volume's own grid ([k, j, i], 0-1)."""
        import torch
        from monai.transforms import Resize
        from monai.visualize import GradCAM

        self.model.eval()
        cam = GradCAM(self.model, target_layers=evidence_layer(self.recipe))
        tensor = torch.as_tensor(prepare_volume(volume, self.recipe))[None].to(self.recipe.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            heat = cam(tensor, class_idx=finding)[0].detach().cpu().numpy()  # (1, *input_shape)
        return np.asarray(Resize(np.shape(volume), mode="trilinear")(heat), np.float32)[0]

    def called(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities >= np.asarray(self.thresholds)[None]


def _thresholds(truth: np.ndarray, scores: np.ndarray) -> tuple[list[float], list[str]]:
    """Per finding: the threshold that maximises Youden's J on validation data (0.5 where the
    validation set lacks positives or negatives, with a note)."""
    from sklearn.metrics import roc_curve

    thresholds, notes = [], []
    for f in range(truth.shape[1]):
        if 0 < truth[:, f].sum() < len(truth):
            fpr, tpr, cut = roc_curve(truth[:, f], scores[:, f])
            best = int(np.argmax(tpr - fpr))
            thresholds.append(float(min(cut[best], 1.0)))
        else:
            thresholds.append(0.5)
            notes.append(f"finding {f}: the validation set has only one class; threshold 0.5")
    return thresholds, notes


def train_volume_classifier(volumes: list[np.ndarray], findings: np.ndarray, names: list[str],
                            recipe: VolumeRecipe = VolumeRecipe(), seed: int = 0, validation_fraction: float = 0.25,
                            progress: Callable[[dict], None] | None = None,
                            should_stop: Callable[[], bool] | None = None) -> TrainedVolumeClassifier:
    """Train on ``volumes`` with ``findings`` ((n, F) 0/1, names in ``names``); a stratified
    ``validation_fraction`` is held out to choose each finding's threshold (then the model
    trained on the rest is returned, so the thresholds are honest)."""
    import torch

    findings = np.asarray(findings)
    if findings.ndim != 2 or findings.shape != (len(volumes), len(names)) or not set(np.unique(findings)) <= {0, 1}:
        raise MedSynthInputError(f"findings must be a 0/1 matrix of (volumes, {len(names)}); got {findings.shape}.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(volumes))
    held = max(2, int(round(validation_fraction * len(volumes))))
    validation, train = order[:held], order[held:]
    if len(train) < 2:
        raise MedSynthInputError(f"Too few volumes ({len(volumes)}) to train and validate; give at least 6.")
    inputs = np.stack([prepare_volume(v, recipe) for v in volumes])
    positives = findings[train].sum(axis=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_network(recipe, len(names)).to(recipe.device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=1e-4)
        weights = torch.as_tensor((len(train) - positives) / np.maximum(positives, 1), dtype=torch.float32)
        loss_function = torch.nn.BCEWithLogitsLoss(pos_weight=weights.to(recipe.device))
        generator = torch.Generator().manual_seed(seed)
        history, started = [], time.perf_counter()
        for epoch in range(recipe.epochs):
            model.train()
            total = 0.0
            for start in range(0, len(train), recipe.batch_size):
                if should_stop is not None and should_stop():
                    raise InterruptedError("Training was cancelled.")
                index = train[start:start + recipe.batch_size]
                batch = torch.as_tensor(inputs[index])
                if recipe.augment:
                    batch = _augment(batch, generator)
                loss = loss_function(model(batch.to(recipe.device)),
                                     torch.as_tensor(findings[index], dtype=torch.float32).to(recipe.device))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(index)
            train = train[rng.permutation(len(train))]
            entry = {"epoch": epoch + 1, "loss": total / len(train), "seconds": round(time.perf_counter() - started, 2)}
            history.append(entry)
            if progress is not None:
                progress({**entry, "epochs": recipe.epochs})
    trained = TrainedVolumeClassifier(model, recipe, list(names), [0.5] * len(names), seed, history)
    scores = trained.predict_proba([volumes[i] for i in validation])
    trained.thresholds, notes = _thresholds(findings[validation], scores)
    trained.training = {"volumes": len(volumes), "train": len(train), "validation": len(validation),
                        "positives_per_finding": dict(zip(names, findings.sum(axis=0).astype(int).tolist())),
                        "threshold_rule": "Youden's J on the validation volumes", "notes": notes}
    return trained


def _augment(batch, generator):
    """Shifts of up to 3 voxels per axis and +-10 % intensity; no flips (anatomy has sides)."""
    import torch

    shifts = [int(v) for v in torch.randint(-3, 4, (3,), generator=generator)]
    batch = torch.roll(batch, shifts=shifts, dims=(-3, -2, -1))
    scale = 1.0 + 0.2 * (torch.rand(len(batch), 1, 1, 1, 1, generator=generator) - 0.5)
    return (batch * scale).clamp(0.0, 1.0)


def save_volume_classifier(folder: Path, classifier: TrainedVolumeClassifier) -> Path:
    """Weights under their hash, then the card naming them (the folder is whole at every moment)."""
    from MedSynthCommonLib.storage import prepare_folder, write_json_atomic
    from SynthTranslateLib.model_dir import remove_unreferenced, save_addressed

    folder = prepare_folder(Path(folder), "model folder")
    name, digest = save_addressed(folder, "weights", classifier.model.state_dict())
    write_json_atomic(folder / "card.json", {
        "format": CARD_FORMAT, "recipe": classifier.recipe.to_dict(), "findings": classifier.findings,
        "thresholds": classifier.thresholds, "seed": classifier.seed, "training": classifier.training,
        "history": classifier.history, "weights": name, "weights_sha256": digest})
    remove_unreferenced(folder, "weights", name)
    return folder


def load_volume_classifier(folder: Path, device: str = "cpu") -> TrainedVolumeClassifier:
    """A model folder written by ``save_volume_classifier``; changed or foreign files are refused."""
    import dataclasses

    import torch

    from MedSynthCommonLib.storage import content_sha256
    from SynthTranslateLib.model_dir import referenced_file

    card_path = Path(folder) / "card.json"
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise MedSynthInputError(f"{folder} is not a MedSynth volume-classifier folder (no readable card.json).") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise MedSynthInputError(f"{card_path} is not a MedSynth volume-classifier card.")
    weights = referenced_file(Path(folder), card, "weights", "", str(card_path))
    if not weights.exists() or content_sha256(weights) != card["weights_sha256"]:
        raise MedSynthInputError(f"The weights in {folder} are missing or do not match the card; retrain or restore.")
    recipe = dataclasses.replace(VolumeRecipe.from_dict(card["recipe"]), device=device)
    model = build_network(recipe, len(card["findings"])).to(device)
    model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    return TrainedVolumeClassifier(model.eval(), recipe, card["findings"], card["thresholds"], card["seed"],
                                   card.get("history", []), card.get("training", {}))
