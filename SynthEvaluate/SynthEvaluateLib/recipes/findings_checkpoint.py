"""Resumable training of the volume classifier: the state after every epoch (weights,
optimiser, the numpy stream that orders the scans, sample order, history; each item's
augmentation is seeded by seed, epoch and item, ``findings_data``) under its SHA-256, an index naming it and a
fingerprint of the data and recipe; a killed run started again resumes bit for bit (on a CPU),
and another run's state is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

CHECKPOINT_FORMAT = "medsynth-volume-classifier-checkpoint/1"


def training_fingerprint(inputs, findings, targets, names, recipe, seed, train, validation) -> str:
    """SHA-256 of everything a resumed run must share with the killed one."""
    import hashlib

    digest = hashlib.sha256()
    for array in (inputs, findings, np.sort(train), validation, targets):
        digest.update(b"none" if array is None else np.ascontiguousarray(array).tobytes())
    settings = {k: v for k, v in recipe.to_dict().items() if k != "workers"}  # any number gives the same batches
    digest.update(json.dumps([names, settings, seed]).encode())
    return digest.hexdigest()


def save_state(folder: Path, fingerprint: str, epoch: int, model, optimiser, rng, train, history) -> None:
    """The state after ``epoch`` under its hash, then the index naming it, then older states go."""
    import torch

    from MedSynthCommonLib.storage import prepare_folder, write_json_atomic
    from SynthTranslateLib.model_dir import CHECKPOINT_INDEX, remove_unreferenced, save_addressed

    folder = prepare_folder(folder, "model folder")
    state = {"epoch": epoch, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
             "numpy_rng": rng.bit_generator.state, "train": torch.as_tensor(train), "history": history}
    name, digest = save_addressed(folder, "checkpoint", state)
    write_json_atomic(folder / CHECKPOINT_INDEX, {"format": CHECKPOINT_FORMAT, "file": name, "sha256": digest,
                                                  "epoch": epoch, "fingerprint": fingerprint})
    remove_unreferenced(folder, "checkpoint", name)


def load_state(folder: Path, fingerprint: str, device: str) -> dict | None:
    """The last state in ``folder`` (None when there is none); a damaged or changed checkpoint,
    or another run's, is refused (the index and its SHA-256 are read as a translator's are)."""
    from SynthTranslateLib.training import load_checkpoint

    found = load_checkpoint(folder)
    if found is None:
        return None
    index, state = found
    advice = "delete checkpoint.json and checkpoint-*.pt there to start again, or train into another folder"
    if index.get("format") != CHECKPOINT_FORMAT:
        raise MedSynthInputError(f"{folder / 'checkpoint.json'} is not a volume-classifier checkpoint; {advice}.")
    if index.get("fingerprint") != fingerprint:
        raise MedSynthInputError(f"The interrupted training in {folder} used other data or settings; {advice}.")
    return state
