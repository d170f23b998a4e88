"""Synthetic image sets made by a SynthTranslate model, for GAN-train/GAN-test and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from .data import ImageSet


def translated(images: ImageSet, model_dir: Path, seed: int, scale: float = 255.0) -> ImageSet:
    """Every image translated by a multi-domain model (StarGAN, MI-GAN) into another class,
    drawn per image (seeded), and labelled with that target class.

    Classes and the model's domains are matched by name (their order may differ); every class
    must be one of the model's domains.  ``scale`` maps the set's [0, 1] back to the model's
    image units (255 for 8-bit films)."""
    from SynthTranslateLib.apply import translate_volume
    from SynthTranslateLib.model_dir import load_model

    model = load_model(model_dir)
    unknown = [name for name in images.class_names if name not in model.config.domains]
    if unknown:
        raise MedSynthInputError(f"The translator in {model_dir} knows the domains {model.config.domains}, "
                                 f"not the class(es) {unknown}; train it on the same classes.")
    k = len(images.class_names)
    if k < 2:
        raise MedSynthInputError("Translation into another class needs at least two classes.")
    targets = (images.labels + np.random.default_rng(seed).integers(1, k, len(images))) % k
    out = np.empty_like(images.images)
    for target in range(k):
        chosen = targets == target
        if chosen.any():
            out[chosen] = translate_volume(model, images.images[chosen] * scale, images.class_names[target]) / scale
    return ImageSet(np.clip(out, 0, 1), targets, images.class_names, [f"{model.config.model}:{i}" for i in images.ids],
                    f"{model.config.model} translations ({model.card['iterations']} iterations)", images.preprocessing)
