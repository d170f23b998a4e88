"""Applying a trained translator to images and volumes (slice by slice, batched, on the
model's device and precision).

Each slice is seen at the scale the model was trained at: resized to the model's
``image_size`` (as the training slices were, any size and aspect accepted), translated, and
brought back to the slice's own size.  Image-to-image models keep the input's native detail:
the output is the input plus the upsampled change the generator made at model scale
(``x + up(G(x_s) - x_s)``), so regions the translator leaves alone stay bit-for-bit the input
up to interpolation of a zero change.  Label-to-image models return their upsampled output.
The output has the input's shape; the caller keeps geometry.
"""

from __future__ import annotations

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from .data import check_labels, encode_condition
from .model_dir import LoadedModel


def _resize(batch, size: tuple[int, int], labels: bool = False):
    """(n, c, h, w) -> (n, c, *size): bilinear with antialiasing (nearest for label maps)."""
    import torch

    if tuple(batch.shape[-2:]) == tuple(size):
        return batch
    if labels:
        return torch.nn.functional.interpolate(batch, size=size, mode="nearest-exact")
    return torch.nn.functional.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False)


def sample_masks(model: LoadedModel, count: int, seed: int = 0, clean: bool = True) -> np.ndarray:
    """``count`` binary lesion masks from a mask GAN (seeded): (count, size, size[, size]) uint8.

    With ``clean`` each keeps its largest connected component with holes filled, as a lesion
    shape should be; masks left empty are dropped (fewer than ``count`` then).
    """
    import torch

    if model.config.model != "maskgan":
        raise MedSynthInputError(f"Only a mask GAN samples masks; this model is a {model.config.model}.")
    batches = []
    for batch, start in enumerate(range(0, count, SAMPLE_BATCH)):  # memory of one batch, however many asked
        generator = torch.Generator().manual_seed(batch_seed(seed, batch))
        with torch.no_grad():
            z = torch.randn(min(SAMPLE_BATCH, count - start), model.config.latent, generator=generator)
            masks = model.translator.infer(z)[:, 0].numpy() > 0
        if clean:
            masks = np.array([m for m in (_largest_filled(m) for m in masks) if m.any()], bool).reshape(-1, *masks.shape[1:])
        batches.append(masks.astype(np.uint8))
    return np.concatenate(batches)


def sample_images(model: LoadedModel, count: int, class_name: str | None = None, truncation: float = 1.0,
                  seed: int = 0, attributes: dict[str, float] | None = None) -> np.ndarray:
    """``count`` new images of ``class_name`` (None: the model's only class) from a style-based
    generator, seeded: (count, size, size) float32 in the training images' units.
    ``truncation`` < 1 trades variety for typicality (0.7 is common; 1 = none); ``attributes``
    (models trained with numeric conditions): values in the label CSV's units, e.g. {"age": 5}."""
    _require_new_images(model)
    if class_name is None:
        if len(model.config.domains) != 1:
            raise MedSynthInputError(f"Choose the class to sample: one of {model.config.domains}.")
        class_name = model.config.domains[0]
    if not 0.0 <= truncation <= 1.0:
        raise MedSynthInputError(f"truncation must lie between 0 and 1; got {truncation}.")
    return np.concatenate(list(sample_image_batches(model, count, class_name, truncation, seed, attributes)))


#: images (or masks) sampled per forward pass; batch 0 keeps the run's seed, so counts up to
#: this many give the images they always gave
SAMPLE_BATCH = 256


def _require_new_images(model: LoadedModel) -> None:
    if not model.config.kind.new_images:
        raise MedSynthInputError(f"Only a generator of new images (stylegan, fastgan) samples them (a maskgan samples "
                                 f"masks); this model is a {model.config.model}: use translate apply.")


def batch_seed(seed: int, batch: int) -> int:
    """The seed of one batch of samples (batch 0: ``seed`` itself)."""
    return int(seed) if batch == 0 else int(np.random.SeedSequence([int(seed), int(batch)]).generate_state(1, np.uint32)[0])


def sample_image_batches(model: LoadedModel, count: int, class_name: str, truncation: float = 1.0, seed: int = 0,
                         attributes: dict[str, float] | None = None):
    """``sample_images`` in batches of at most ``SAMPLE_BATCH`` (memory stays that of one batch
    however many are asked for); yields (n, size, size) float32 arrays."""
    import torch

    _require_new_images(model)
    for batch, start in enumerate(range(0, count, SAMPLE_BATCH)):
        size, generator_seed = min(SAMPLE_BATCH, count - start), batch_seed(seed, batch)
        z = torch.randn(size, model.config.latent, generator=torch.Generator().manual_seed(generator_seed))
        with torch.no_grad():
            images = model.translator.sample(z, model.domain_index(class_name), truncation, noise_seed=generator_seed,
                                             attributes=attributes)
        yield model.normalizer.inverse(images[:, 0].numpy())


def translate_volume(model: LoadedModel, volume: np.ndarray | None = None, target_domain: str | None = None,
                     condition: np.ndarray | None = None, batch_size: int = 8) -> np.ndarray:
    """Translate a 2-D image or a 3-D volume ``[k, j, i]`` slice by slice (along the model's
    ``slice_axis``, as in training).

    - pix2pix, cyclegan, stargan, migan: ``volume`` in image units; multi-domain models need
      ``target_domain`` (cyclegan: its first domain name translates B -> A).
    - spade, and pix2pix trained on label maps: ``condition`` is an integer label map (same
      shape) instead of an image.
    Returns float32 in image units.  (Mask GANs: ``sample_masks``.)
    """
    import torch

    config = model.config
    translator = model.translator
    if config.kind.input == "latent":
        raise MedSynthInputError(f"A {config.model} translates nothing; it makes new samples: medsynth translate sample "
                                 "(sample_masks / sample_images).")
    conditioned = config.conditioned
    source = condition if conditioned else volume
    if source is None:
        raise MedSynthInputError("Give the condition label map." if conditioned else "Give the image to translate.")
    source = np.asarray(source)
    if source.ndim not in (2, 3):
        raise MedSynthInputError(f"Expected a 2-D image or a 3-D volume, got shape {source.shape}.")
    flat = source[np.newaxis] if source.ndim == 2 else np.moveaxis(source, config.slice_axis, 0)
    target = model.domain_index(target_domain)
    if config.kind.target_domain and config.model != "cyclegan" and target is None:
        raise MedSynthInputError(f"Choose a target domain: one of {config.domains}.")
    if conditioned:
        check_labels(flat, config.labels)  # on the full map: small labels may vanish at model size
    model_size = (config.image_size, config.image_size)
    out = np.empty(flat.shape, np.float32)
    with torch.no_grad():
        for start in range(0, len(flat), batch_size):
            chunk = torch.as_tensor(np.ascontiguousarray(flat[start:start + batch_size]))[:, None]
            native = tuple(chunk.shape[-2:])
            if conditioned:  # label maps: nearest to the model's size, then encoded as in training
                small = _resize(chunk.float(), model_size, labels=True)[:, 0].long().numpy()
                encoded = encode_condition(config, small)
                encoded = encoded if encoded.ndim == 4 else encoded[:, None]
                result = _resize(translator.infer(torch.as_tensor(encoded), target), native)
            else:
                image = torch.as_tensor(model.normalizer.forward(chunk.numpy()))
                small = _resize(image, model_size)
                change = translator.infer(small, target) - small
                result = (image + _resize(change, native)).clamp(-1.0, 1.0)
            out[start:start + batch_size] = result[:, 0].numpy()
    out = model.normalizer.inverse(out)
    return out[0] if source.ndim == 2 else np.moveaxis(out, 0, config.slice_axis)


def _largest_filled(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return ndimage.binary_fill_holes(largest)
