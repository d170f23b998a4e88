"""A trained translator on disk: ``card.json`` (architecture, domains, normalisation, image
size, training data, seed, iterations, the weights' file name and SHA-256) and the weights file
it names (generator state dicts, loaded with ``weights_only=True``: a file cannot run code).

Weights are stored under a name that contains their hash (``weights-<sha>.pt``) and written
before the card that names them; the previous weights are removed only after the new card is in
place.  So a model folder is usable at every moment, whenever a run is killed.  The resumable
training state (``checkpoint-<sha>.pt`` + ``checkpoint.json``) follows the same rule.  Loading
refuses files that do not match the card (changed, damaged, foreign).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from pathlib import Path

from MedSynthCommonLib.devices import Accelerator
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.storage import content_sha256, prepare_folder, write_bytes_atomic, write_json_atomic
from MedSynthCommonLib.options import read_json

from .config import TranslatorConfig
from .data import Normalizer
from .models import Translator, build_translator

CARD_FORMAT = "medsynth-translator/1"
CARD = "card.json"
CHECKPOINT_INDEX = "checkpoint.json"
#: the figures of ``medsynth evaluate generator`` for the weights they were measured on
QUALITY = "quality.json"
QUALITY_FORMAT = "medsynth-generator-quality/1"
_SAFE_NAME = re.compile(r"^(weights|checkpoint)-[0-9a-f]{16}\.pt$")


def save_addressed(folder: Path, prefix: str, obj) -> tuple[str, str]:
    """``torch.save`` ``obj`` whole into ``folder/<prefix>-<sha>.pt``; returns (file name, SHA-256)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    name = f"{prefix}-{digest[:16]}.pt"
    write_bytes_atomic(Path(folder) / name, data)
    return name, digest


def remove_unreferenced(folder: Path, prefix: str, keep: str) -> None:
    """Remove earlier ``prefix-<sha>.pt`` files of this folder other than ``keep`` (after the file
    naming ``keep`` is in place).  Only files that ``save_addressed`` wrote are removed: their
    name is the start of their content's SHA-256, which no other file shares by chance; a user's
    ``weights-final.pt`` (or a renamed copy) is kept."""
    for path in Path(folder).glob(f"{prefix}-*.pt"):
        if path.name == keep or not _SAFE_NAME.match(path.name):
            continue
        with contextlib.suppress(OSError):
            if content_sha256(path)[:16] == path.stem.split("-", 1)[1]:
                path.unlink()


def is_translator_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a translator (card) or an interrupted training (checkpoint index)."""
    folder = Path(folder)
    if (folder / CHECKPOINT_INDEX).is_file():
        return True
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return json.loads((folder / CARD).read_text(encoding="utf-8")).get("format") == CARD_FORMAT
    return False


def referenced_file(folder: Path, index: dict, key: str, default: str, what: str) -> Path:
    """The file an index (card, checkpoint index) names, refusing names that leave the folder."""
    name = index.get(key, default)
    if not isinstance(name, str) or not (name == default or _SAFE_NAME.match(name)):
        raise MedSynthInputError(f"{what} names {name!r} as its file; a MedSynth file name was expected.")
    return Path(folder) / name


def generator_names(translator: Translator) -> list[str]:
    return [name for name in translator.modules if name.startswith("generator")]


def save_model(folder: Path, translator: Translator, normalizer: Normalizer, seed: int, iterations: int,
               training_data: dict, losses: dict | None = None, world_size: int = 1) -> Path:
    """Write the weights (under their hash), then the card that names them, then drop old weights."""
    folder = prepare_folder(Path(folder), "model folder")
    name, digest = save_addressed(folder, "weights",
                                  {n: translator.modules[n].state_dict() for n in generator_names(translator)})
    card = {"format": CARD_FORMAT, "config": translator.config.to_dict(), "window": [normalizer.low, normalizer.high],
            "seed": seed, "iterations": iterations, "training_data": training_data, "last_losses": losses or {},
            "trained_on": {**translator.accelerator.describe(), "world_size": world_size},
            "weights": name, "weights_sha256": digest}
    write_json_atomic(folder / CARD, card)
    remove_unreferenced(folder, "weights", name)
    return folder


def read_format_card(folder: Path, card_format: str, what: str, required: tuple[str, ...] = ()) -> dict:
    """The ``card.json`` of ``folder``, checked to be JSON of ``card_format`` holding ``required``
    keys (``what`` names the kind of folder in messages)."""
    card_path = Path(folder) / CARD
    if not card_path.exists():
        raise MedSynthInputError(f"{folder} is not a MedSynth model folder (it has no card.json).")
    card = read_json(card_path, "model card")
    if not isinstance(card, dict) or card.get("format") != card_format:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise MedSynthInputError(f"{card_path} is not a MedSynth {what} card (format {found!r}).")
    for key in required:
        if key not in card:
            raise MedSynthInputError(f"{card_path} lacks {key!r}: it is damaged or from another program; retrain the model.")
    return card


def verified_weights(folder: Path, card: dict, default: str = "") -> Path:
    """The weights file ``card`` names in ``folder``, present and matching its SHA-256."""
    weights = referenced_file(Path(folder), card, "weights", default, f"{Path(folder) / CARD}")
    if not weights.exists():
        raise MedSynthInputError(f"{folder} lacks the weights its card names ({weights.name}); restore it or retrain.")
    if content_sha256(weights) != card.get("weights_sha256"):
        raise MedSynthInputError(
            f"{weights} does not match its model card (changed, corrupted or from another model); "
            "retrain or restore the original files.")
    return weights


def read_card(folder: Path) -> dict:
    """The model card of ``folder``, checked to be a MedSynth translator card."""
    card = read_format_card(folder, CARD_FORMAT, "translator", ("config", "window", "weights_sha256"))
    if not isinstance(card["config"], dict) or not (isinstance(card["window"], list) and len(card["window"]) == 2):
        raise MedSynthInputError(f"{Path(folder) / CARD} has a malformed 'config' or 'window'; retrain the model.")
    return card


def weights_path(folder: Path) -> Path:
    """The weights file the card of ``folder`` names."""
    return referenced_file(folder, read_card(folder), "weights", "weights.pt", f"{Path(folder) / CARD}")


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
    card = read_card(folder)
    weights = verified_weights(folder, card, "weights.pt")
    config = TranslatorConfig.from_dict(card["config"])
    translator = build_translator(config, seed=0, accelerator=accelerator)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        for name in generator_names(translator):
            translator.modules[name].load_state_dict(state[name])
    except Exception as error:
        raise MedSynthInputError(f"The weights in {folder} are not those of a {config.model} with this card: {error}") from None
    return LoadedModel(translator, Normalizer(card["window"]), card)


def write_quality(folder: Path, record: dict) -> Path:
    """Write ``record`` (a generator's measured figures) as ``folder/quality.json``, atomically,
    naming the SHA-256 of the weights it was measured on; the card itself is not touched."""
    card = read_card(folder)
    path = Path(folder) / QUALITY
    write_json_atomic(path, {"format": QUALITY_FORMAT, "weights_sha256": card.get("weights_sha256"),
                             "iterations": card.get("iterations"), **record})
    return path


def read_quality(folder: Path) -> dict | None:
    """The recorded figures of ``folder`` if they were measured on its current weights, else None
    (none recorded, unreadable, or from weights trained since)."""
    path = Path(folder) / QUALITY
    if not path.is_file():
        return None
    try:
        record = read_json(path, "generator quality record")
        current = read_card(folder).get("weights_sha256")
    except MedSynthInputError:
        return None
    if not isinstance(record, dict) or record.get("format") != QUALITY_FORMAT or record.get("weights_sha256") != current:
        return None
    return record


def quality_text(record: dict) -> str:
    """One readable line of a quality record (for the Slicer panel)."""
    classes = record.get("per_class", {})
    diversity = [v.get("diversity_ratio") for v in classes.values() if isinstance(v.get("diversity_ratio"), (int, float))]
    text = (f"Measured at step {record.get('iterations')}: {record.get('recognised', 0):.0%} of samples recognised as "
            f"their class (real images: {record.get('real_test_recognised', 0):.0%})")
    if diversity:
        text += f"; diversity {min(diversity):.2f}-{max(diversity):.2f} of real"
    copies = record.get("near_copies")
    if copies is not None:
        text += f"; {copies} near copies" if copies else "; no near copy"
    return text + "."
