"""Train/test leakage: the same image in both sets makes every evaluation meaningless."""

from __future__ import annotations

import hashlib

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError


def content_hash(array: np.ndarray) -> str:
    """SHA-256 of an array's shape, dtype and voxels (identical images hash the same)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(f"{array.shape}{array.dtype.str}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def check_disjoint(train: dict, test: dict, test_role: str = "test", train_role: str = "training") -> None:
    """Refuse when any test item equals a training item.

    ``train``/``test``: name -> array (or an already computed ``content_hash``); the roles name
    the two sets in the message (e.g. "calibration" scans against the "test" set).
    """
    def hashes(items):
        return {name: value if isinstance(value, str) else content_hash(value) for name, value in items.items()}

    train_hashes = {}
    for name, digest in hashes(train).items():
        train_hashes.setdefault(digest, name)
    overlap = [(name, train_hashes[digest]) for name, digest in hashes(test).items() if digest in train_hashes]
    if overlap:
        listed = ", ".join(f"{t} = {train_role} {r}" for t, r in overlap[:5])
        raise MedSynthInputError(
            f"{len(overlap)} {test_role} case(s) also appear in the {train_role} set ({listed}"
            f"{', ...' if len(overlap) > 5 else ''}); remove them from one side before evaluating.")
