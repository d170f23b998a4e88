"""Feature networks a user supplies (e.g. a RadImageNet DenseNet for FID), loaded without
running anything from the user's files.

A feature network is a JSON card naming one of MONAI's 2-D architectures and a weights file
beside it::

    {"format": "medsynth-feature-network/1", "network": "densenet121",
     "weights": "densenet121.pt", "in_channels": 3, "out_channels": 1000, "input_size": 224,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

The weights are a ``state_dict`` saved with ``torch.save`` (or ``.safetensors`` where the
``safetensors`` package is installed).  The code is MedSynth's (MONAI's classes); the file
holds numbers only: the archive's members are checked before torch opens it, and it is read
with ``weights_only=True``.  Features are the input of the network's last linear layer (the
pooled embedding), as for the project's own classifiers (``distances.network_features``).

``torch.export`` programs (``.pt2``) and TorchScript files are refused without being opened:
both formats can run code of the file's author when loaded or run (``.pt2`` unpickles
constants and sample inputs, resolves operator names and parses shape expressions;
TorchScript ops reach the file system), and no loader in torch refuses all of it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.options import read_json

CARD_FORMAT = "medsynth-feature-network/1"

#: MONAI constructors by the name a card uses (2-D, with a final linear classifier)
NETWORKS = {
    "densenet121": ("DenseNet121", "densenet"), "densenet169": ("DenseNet169", "densenet"),
    "densenet201": ("DenseNet201", "densenet"), "resnet18": ("resnet18", "resnet"), "resnet34": ("resnet34", "resnet"),
    "resnet50": ("resnet50", "resnet"), "resnet101": ("resnet101", "resnet"),
}
_REQUIRED = ("format", "network", "weights", "in_channels", "out_channels", "input_size")
_OPTIONAL = ("mean", "std", "weights_sha256", "description")
#: members of a plain ``torch.save`` zip archive; anything else (TorchScript's ``code/`` and
#: ``constants.pkl``, a ``.pt2``'s ``models/`` and configs) is not a weights file
_SAVE_MEMBERS = ("data.pkl", "byteorder", "version", ".format_version", ".storage_alignment", ".data/version",
                 ".data/serialization_id")

_HOW_TO = ("describe the network in a feature-network card (JSON naming a MONAI architecture and a weights file saved "
           "with torch.save(model.state_dict(), PATH)); see 'Feature networks' in the README")


def _refuse_programs(path: Path) -> None:
    """Refuse ``.pt2``/TorchScript files by name and by content, without handing them to torch."""
    if path.suffix.lower() in (".pt2", ".ts", ".torchscript", ".jit"):
        raise MedSynthInputError(
            f"{path} is a torch.export or TorchScript program; MedSynth does not load such files, because loading or "
            f"running them can execute code of the file's author. Instead, {_HOW_TO}.")


def _check_weights_archive(path: Path) -> None:
    """A weights file must be a plain ``torch.save`` archive (or safetensors): no program inside."""
    if path.suffix.lower() == ".safetensors":
        return
    if not zipfile.is_zipfile(path):
        raise MedSynthInputError(f"{path} is not a torch.save weights file (it is not a zip archive; legacy "
                                 "pre-1.6 files are not read). Save the weights again with torch.save.")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    prefixes = {name.split("/", 1)[0] for name in names}
    foreign = [name for name in names if "/" not in name or not (
        name.split("/", 1)[1] in _SAVE_MEMBERS or name.split("/", 1)[1].startswith("data/"))]
    if len(prefixes) != 1 or foreign:
        example = (foreign or names)[0]
        raise MedSynthInputError(
            f"{path} is not a plain weights file: it holds {example!r}, which belongs to a program (TorchScript or "
            f"torch.export) rather than to saved weights. MedSynth does not load programs; {_HOW_TO}.")


def _load_state_dict(path: Path) -> dict:
    import torch

    _refuse_programs(path)
    _check_weights_archive(path)
    try:
        if path.suffix.lower() == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise MedSynthInputError(f"{path} is a safetensors file; install the 'safetensors' package to read it, "
                                         "or save the weights with torch.save.") from None
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except MedSynthInputError:
        raise
    except Exception as error:
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        if "weights only load failed" in detail.lower():
            detail = "it holds pickled objects that are not plain weights, and unpickling them could run code"
        raise MedSynthInputError(f"{path} cannot be read as weights ({detail}).") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # the common {"state_dict": ...} checkpoint layout
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MedSynthInputError(f"{path} does not hold a state_dict (names -> tensors); save model.state_dict().")
    return state


def _positive_int(card: dict, key: str, card_path: Path) -> int:
    value = card[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MedSynthInputError(f"{card_path}: {key!r} must be a whole number >= 1, got {value!r}.")
    return value


def _channel_stats(card: dict, key: str, channels: int, card_path: Path) -> np.ndarray | None:
    value = card.get(key)
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == channels
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value)):
        raise MedSynthInputError(f"{card_path}: {key!r} must list {channels} finite numbers (one per input channel).")
    if key == "std" and min(value) <= 0:
        raise MedSynthInputError(f"{card_path}: every 'std' must be positive.")
    return np.asarray(value, np.float32)


class FeatureNetwork:
    """A MONAI network built from a card, with the user's weights; ``features(images)`` maps
    (n, y, x) float images in [0, 1] to (n, d) features."""

    def __init__(self, card_path: str | Path):
        import torch
        from monai.networks import nets

        card_path = Path(card_path)
        _refuse_programs(card_path)
        if card_path.is_dir():
            card_path = card_path / "card.json"
        if card_path.suffix.lower() != ".json":
            raise MedSynthInputError(f"--feature-extractor {card_path}: give a feature-network card (.json); {_HOW_TO}.")
        card = read_json(card_path, "feature-network card")
        if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
            raise MedSynthInputError(f"{card_path} is not a feature-network card (its 'format' must be {CARD_FORMAT!r}).")
        missing = [key for key in _REQUIRED if key not in card]
        unknown = sorted(set(card) - set(_REQUIRED) - set(_OPTIONAL))
        if missing or unknown:
            raise MedSynthInputError(f"{card_path}: " + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(unknown)}"] if unknown else [])) + ".")
        if card["network"] not in NETWORKS:
            raise MedSynthInputError(f"{card_path}: unknown network {card['network']!r}; one of {', '.join(NETWORKS)}.")
        name = card["weights"]
        if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
            raise MedSynthInputError(f"{card_path}: 'weights' must name a file beside the card, got {name!r}.")
        weights = card_path.parent / name
        if not weights.is_file():
            raise MedSynthInputError(f"{card_path} names the weights {name}, which is not beside it.")
        if "weights_sha256" in card:
            from MedSynthCommonLib.storage import content_sha256

            if content_sha256(weights) != card["weights_sha256"]:
                raise MedSynthInputError(f"{weights} does not match the SHA-256 its card gives (changed or damaged).")
        self.in_channels = _positive_int(card, "in_channels", card_path)
        out_channels = _positive_int(card, "out_channels", card_path)
        self.input_size = _positive_int(card, "input_size", card_path)
        self.mean = _channel_stats(card, "mean", self.in_channels, card_path)
        self.std = _channel_stats(card, "std", self.in_channels, card_path)
        constructor, family = NETWORKS[card["network"]]
        if family == "densenet":
            model = getattr(nets, constructor)(spatial_dims=2, in_channels=self.in_channels, out_channels=out_channels)
        else:
            model = getattr(nets, constructor)(spatial_dims=2, n_input_channels=self.in_channels, num_classes=out_channels)
        state = _load_state_dict(weights)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            detail = str(error).strip().splitlines()[0][:240]
            raise MedSynthInputError(f"The weights {weights.name} do not fit MONAI's {card['network']} with "
                                     f"in_channels={self.in_channels}, out_channels={out_channels} ({detail}).") from None
        self.model = model.eval()
        self.card = card
        self.source = {"feature_network": card_path.name, "network": card["network"], "weights": weights.name,
                       "input_size": self.input_size}
        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        self._last_linear = last[-1]

    def features(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(n, y, x) float images in [0, 1] -> (n, d) float64 features (grey repeated over channels)."""
        import torch
        from torch.nn import functional

        captured = []
        handle = self._last_linear.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
        try:
            with torch.no_grad():
                for start in range(0, len(images), batch_size):
                    batch = torch.as_tensor(np.asarray(images[start:start + batch_size], np.float32))[:, None]
                    batch = functional.interpolate(batch, size=(self.input_size,) * 2, mode="bilinear",
                                                   align_corners=False).repeat(1, self.in_channels, 1, 1)
                    if self.mean is not None:
                        batch = batch - torch.as_tensor(self.mean)[None, :, None, None]
                    if self.std is not None:
                        batch = batch / torch.as_tensor(self.std)[None, :, None, None]
                    self.model(batch)
        finally:
            handle.remove()
        return torch.cat(captured).flatten(1).numpy().astype(np.float64)


def feature_network_features(card_path: str | Path, images: np.ndarray, batch_size: int = 32) -> dict:
    """``{"features": (n, d), "source": {...}}`` of ``images`` in the feature network of a card."""
    network = FeatureNetwork(card_path)
    features = network.features(images, batch_size)
    return {"features": features, "source": {**network.source, "width": int(features.shape[1])}}
