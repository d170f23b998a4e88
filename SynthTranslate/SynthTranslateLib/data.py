"""Training data for the translators: intensity normalisation and seeded batch samplers.

Samplers draw batches with their own ``numpy.random.Generator``, whose state is part of the
checkpoint, so a resumed run draws exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError


class Normalizer:
    """Image units <-> [-1, 1] through a fixed window (low, high)."""

    def __init__(self, window: tuple[float, float]):
        low, high = (float(v) for v in window)
        if not high > low:
            raise MedSynthInputError(f"The intensity window must have high > low, got {window}.")
        self.low, self.high = low, high

    @classmethod
    def fit(cls, images) -> "Normalizer":
        """Window = 1st-99th percentile of the training images (then fixed in the model card)."""
        values = np.concatenate([np.ravel(np.asarray(i, np.float32))[::7] for i in images])
        low, high = np.percentile(values, [1, 99])
        return cls((float(low), float(high) if high > low else float(low) + 1.0))

    def forward(self, image) -> np.ndarray:
        scaled = (np.asarray(image, np.float32) - self.low) / (self.high - self.low)
        return (np.clip(scaled, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)

    def inverse(self, values) -> np.ndarray:
        return ((np.asarray(values, np.float32) + 1.0) / 2.0 * (self.high - self.low) + self.low).astype(np.float32)


class BatchSampler:
    """Random batches of one kind: "paired" (source, target), "unpaired" (a, b), "domains"
    (image, domain index[, attributes: standardised numeric conditions]) or "masks".  Arrays are already normalised to [-1, 1] (masks: 0/1).

    ``batch_size`` is the global batch; ``share`` (a slice of it, set by a distributed run to
    this rank's share) is what ``next`` returns.  Every rank draws the same global batch from
    the same stream, so N ranks together see exactly the samples one process would."""

    def __init__(self, kind: str, batch_size: int, seed: int, **arrays):
        self.kind, self.batch_size = kind, batch_size
        self.share = slice(None)
        self.rng = np.random.default_rng(seed)
        self.arrays = arrays
        if kind == "paired" and len(arrays["source"]) != len(arrays["target"]):
            raise MedSynthInputError("Paired training needs as many targets as sources.")
        if kind == "masks":
            masks = arrays["mask"]
            if not set(np.unique(masks).tolist()) <= {0.0, 1.0}:
                raise MedSynthInputError("Mask GAN training needs binary masks (0/1).")
            self.arrays = {"mask": masks * 2.0 - 1.0}

    def next(self) -> dict:
        import torch

        def take(array):
            index = self.rng.integers(len(array), size=self.batch_size)[self.share]
            return index, torch.as_tensor(np.ascontiguousarray(array[index]))

        if self.kind == "paired":
            index, source = take(self.arrays["source"])
            target = torch.as_tensor(np.ascontiguousarray(self.arrays["target"][index]))
            if source.ndim == 3:
                source = source[:, None]
            return {"source": source, "target": target[:, None]}
        if self.kind == "unpaired":
            return {"a": take(self.arrays["a"])[1][:, None], "b": take(self.arrays["b"])[1][:, None]}
        if self.kind == "domains":
            index, image = take(self.arrays["image"])
            batch = {"image": image[:, None], "domain": torch.as_tensor(self.arrays["domain"][index], dtype=torch.long)}
            if self.arrays.get("attributes") is not None and self.arrays["attributes"].shape[1]:
                batch["attributes"] = torch.as_tensor(np.ascontiguousarray(self.arrays["attributes"][index]))
            return batch
        if self.kind == "masks":
            return {"mask": take(self.arrays["mask"])[1][:, None]}
        raise MedSynthInputError(f"Unknown batch kind {self.kind!r}.")

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def check_labels(label_maps, labels: list[int]) -> np.ndarray:
    """The label maps as an array; values outside ``labels`` are refused (a model cannot
    condition on labels it never saw)."""
    maps = np.asarray(label_maps)
    unknown = sorted(set(np.unique(maps).tolist()) - set(labels))
    if unknown:
        raise MedSynthInputError(f"Label values {unknown} are not in the model's label set {labels}.")
    return maps


def one_hot_labels(label_maps, labels: list[int]) -> np.ndarray:
    """(n, h, w) integer label maps -> (n, len(labels), h, w) one-hot in {-1, 1}; unknown values are refused."""
    maps = check_labels(label_maps, labels)
    return np.stack([(maps == value) for value in labels], axis=1).astype(np.float32) * 2.0 - 1.0


def encode_label_map(label_maps, labels: list[int]) -> np.ndarray:
    """(n, h, w) label maps -> (n, h, w) values in [-1, 1]: label i of ``labels`` becomes
    -1 + 2 i / (len - 1).  The pix2pix condition encoding; unknown values are refused."""
    maps = check_labels(label_maps, labels)
    lookup = {value: -1.0 + 2.0 * i / max(len(labels) - 1, 1) for i, value in enumerate(labels)}
    out = np.zeros(maps.shape, np.float32)
    for value, code in lookup.items():
        out[maps == value] = code
    return out


def encode_condition(config, label_maps) -> np.ndarray:
    """Label maps as the model's condition input, the same in training and inference: one-hot
    channels (n, labels, h, w) for models that take a label map (SPADE), one scalar channel
    (n, h, w) for pix2pix trained on label values."""
    if config.kind.input == "label map":
        return one_hot_labels(label_maps, config.labels)
    return encode_label_map(label_maps, config.labels)
