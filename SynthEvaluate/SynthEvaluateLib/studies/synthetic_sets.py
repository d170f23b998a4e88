"""Synthetic image sets made by a SynthTranslate model, for GAN-train/GAN-test and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from ..recipes.data import ImageSet


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


def is_generator_folder(path: Path) -> bool:
    """A SynthTranslate model folder whose model makes new images of a chosen class."""
    from SynthTranslateLib.config import TranslatorConfig
    from SynthTranslateLib.model_dir import CARD, read_card

    if not (Path(path) / CARD).is_file():
        return False
    return TranslatorConfig.from_dict(read_card(Path(path))["config"]).kind.new_images


def sampled(model_dir: Path, class_names: list[str], counts: list[int], seed: int, preprocessing,
            truncation: float = 1.0) -> ImageSet:
    """``counts[c]`` new images of each class ``class_names[c]`` from a generator's model folder
    (stylegan, fastgan), seeded per class as ``translate sample --seed`` seeds them (the same
    images as its files, before they are rounded to 8 bits), brought to ``preprocessing``'s size
    and window as a folder of those files would be.  Every class must be one of the model's."""
    from SynthTranslateLib.apply import sample_image_batches
    from SynthTranslateLib.model_dir import load_model
    from SynthTranslateLib.sampling import class_seed

    model = load_model(model_dir)
    if not model.config.kind.new_images:
        raise MedSynthInputError(f"{model_dir} holds a {model.config.model} model, which does not make new images of "
                                 "a class; give a stylegan or fastgan model folder, or a folder of images.")
    unknown = [name for name in class_names if name not in model.config.domains]
    if unknown:
        raise MedSynthInputError(f"The generator in {model_dir} makes the classes {model.config.domains}, not "
                                 f"{unknown}; train it on the same classes as the real images.")
    images, labels, ids = [], [], []
    for label, (name, count) in enumerate(zip(class_names, counts)):
        index = model.config.domains.index(name)
        n = 0
        for batch in sample_image_batches(model, int(count), name, truncation, class_seed(seed, index)):
            for image in batch:
                images.append(preprocessing.apply(image))
                labels.append(label)
                ids.append(f"{model.config.model}:{name}:{n}")
                n += 1
    size = preprocessing.size
    return ImageSet(np.asarray(images, np.float32).reshape(-1, size, size), np.asarray(labels, np.int64),
                    list(class_names), ids, f"{model.config.model} samples ({model.card['iterations']} iterations, "
                    f"seed {seed}, truncation {truncation:g})", preprocessing)
