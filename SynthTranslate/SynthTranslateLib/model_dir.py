"""A trained translator on disk: a folder with ``card.json`` (architecture, domains,
normalisation, image size, training data, seed, iterations, SHA-256 of the weights) and
``weights.pt`` (generator state dicts, loaded with ``weights_only=True``: a checkpoint file
cannot run code).  Loading refuses weights that do not match their card."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from MedSynthCommonLib.errors import MedSynthInputError

from .config import TranslatorConfig
from MedSynthCommonLib.devices import Accelerator
from .data import Normalizer
from .models import Translator, build_translator

CARD_FORMAT = "medsynth-translator/1"


def atomic_torch_save(obj, path: Path) -> None:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save(obj, temporary)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def generator_names(translator: Translator) -> list[str]:
    return [name for name in translator.modules if name.startswith("generator")]


def save_model(folder: Path, translator: Translator, normalizer: Normalizer, seed: int, iterations: int,
               training_data: dict, losses: dict | None = None) -> Path:
    """Write weights then card (both atomically); the card names the weights' hash."""
    from MedSynthCommonLib.storage import write_json_atomic

    folder = Path(folder)
    weights = folder / "weights.pt"
    atomic_torch_save({name: translator.modules[name].state_dict() for name in generator_names(translator)}, weights)
    card = {"format": CARD_FORMAT, "config": translator.config.to_dict(), "window": [normalizer.low, normalizer.high],
            "seed": seed, "iterations": iterations, "training_data": training_data, "last_losses": losses or {},
            "trained_on": translator.accelerator.describe(),
            "weights_sha256": _sha256(weights)}
    write_json_atomic(folder / "card.json", card)
    return folder


class LoadedModel:
    """A translator ready for inference, with its card and normaliser."""

    def __init__(self, translator: Translator, normalizer: Normalizer, card: dict):
        self.translator, self.normalizer, self.card = translator, normalizer, card
        self.config = translator.config
        for module in translator.modules.values():
            module.eval()

    def domain_index(self, name: str | None) -> int | None:
        if name is None:
            return None
        if name not in self.config.domains:
            raise MedSynthInputError(f"Unknown target domain {name!r}; this model knows {self.config.domains}.")
        return self.config.domains.index(name)


def load_model(folder: Path, accelerator: Accelerator | None = None) -> LoadedModel:
    """Load a model folder for inference on ``accelerator`` (default CPU fp32); raise
    ``MedSynthInputError`` if anything does not match."""
    import torch

    folder = Path(folder)
    card_path, weights = folder / "card.json", folder / "weights.pt"
    if not card_path.exists() or not weights.exists():
        raise MedSynthInputError(f"{folder} is not a MedSynth model folder (card.json and weights.pt are needed).")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError:
        raise MedSynthInputError(f"{card_path} is not valid JSON.") from None
    if card.get("format") != CARD_FORMAT:
        raise MedSynthInputError(f"{card_path} is not a MedSynth translator card (format {card.get('format')!r}).")
    if _sha256(weights) != card.get("weights_sha256"):
        raise MedSynthInputError(
            f"{weights} does not match its model card (changed, corrupted or from another model); "
            "retrain or restore the original files.")
    config = TranslatorConfig.from_dict(card["config"])
    translator = build_translator(config, seed=0, accelerator=accelerator)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        for name in generator_names(translator):
            translator.modules[name].load_state_dict(state[name])
    except Exception as error:
        raise MedSynthInputError(f"The weights in {folder} are not those of a {config.model} with this card: {error}") from None
    return LoadedModel(translator, Normalizer(card["window"]), card)
