"""New images from a style-based generator, written as a labelled set: one image file per
sample, ``labels.csv`` (path, label: the layout ``medsynth evaluate`` reads) and
``sampling.json`` (model card SHA-256, seeds, truncation: what made every image).  All files
are staged and checked, then committed together, the record last."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.tables import FILE_COLUMN, LABEL_COLUMN, csv_text

from .apply import SAMPLE_BATCH, sample_image_batches
from .model_dir import CARD, LoadedModel


def class_seed(seed: int, class_index: int) -> int:
    """The seed of one class's latents in a run seeded ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(class_index)]).generate_state(1, np.uint32)[0])


def _format(model: LoadedModel, chosen: str | None) -> tuple[str, object]:
    """(extension, integer dtype or None): PNG when the model's intensity window fits 8 or 16
    bits, else NIfTI float32."""
    low, high = model.normalizer.low, model.normalizer.high
    fits8, fits16 = low >= 0 and high <= 255, low >= 0 and high <= 65535
    if chosen == "png" and not fits16:
        raise MedSynthInputError(f"The model's intensities ({low:g} to {high:g}) do not fit a PNG; use --format nii.gz.")
    if chosen == "nii.gz" or (chosen is None and not fits16):
        return "nii.gz", None
    return "png", np.uint8 if fits8 else np.uint16


def _file_label(name: str, index: int) -> str:
    from MedSynthCommonLib.paths import safe_file_stem

    try:
        return safe_file_stem(name, "class name")
    except MedSynthInputError:
        return f"class{index:02d}"


def write_samples(model: LoadedModel, model_dir: Path, out: Path, count: int, classes: list[str] | None = None,
                  truncation: float = 1.0, seed: int = 0, file_format: str | None = None,
                  attributes: dict[str, float] | None = None) -> dict:
    """``count`` images of each class in ``classes`` (default all), with ``attributes`` (default
    the training means), into ``out``; returns a summary."""
    from MedSynthCommonLib.imageio import image_2d_writer
    from MedSynthCommonLib.progress import progress_bar
    from MedSynthCommonLib.storage import OutputSet, bytes_writer, content_sha256, json_bytes

    classes = list(classes or model.config.domains)
    unknown = [name for name in classes if name not in model.config.domains]
    if unknown:
        raise MedSynthInputError(f"Unknown class(es) {unknown}; this model knows {model.config.domains}.")
    extension, dtype = _format(model, file_format)
    # every attribute of the model, at the value asked for or its training mean, in labels.csv
    values = {name: float((attributes or {}).get(name, mean))
              for name, (mean, _) in zip(model.config.attributes, model.config.attribute_stats)}
    rows, seeds = [], {}
    digits = max(5, len(str(count - 1)))
    with OutputSet() as outputs, progress_bar(count * len(classes), "sampling", "image",
                                              enabled=count * len(classes) > SAMPLE_BATCH) as bar:
        for name in classes:
            index = model.config.domains.index(name)
            seeds[name] = class_seed(seed, index)
            n = 0
            for images in sample_image_batches(model, count, name, truncation, seeds[name], attributes):
                for image in images:
                    file_name = f"{_file_label(name, index)}_{n:0{digits}d}.{extension}"
                    if dtype is not None:
                        info = np.iinfo(dtype)
                        image = np.clip(np.round(image), max(info.min, model.normalizer.low), info.max).astype(dtype)
                    outputs.add(out / file_name, *image_2d_writer(image))
                    rows.append({FILE_COLUMN: file_name, LABEL_COLUMN: name, **values})
                    n += 1
                bar.update(len(images))
        outputs.add(out / "labels.csv", *bytes_writer(csv_text(rows, [FILE_COLUMN, LABEL_COLUMN, *values]).encode("utf-8")))
        record = {"model_card_sha256": content_sha256(Path(model_dir) / CARD), "model": model.config.model,
                  "classes": classes, "count_per_class": count, "truncation": truncation, "seed": seed,
                  "class_seeds": seeds, "attributes": values, "format": extension, "images": len(rows)}
        outputs.add(out / "sampling.json", *bytes_writer(json_bytes(record, "sampling record")))
        outputs.commit()
    return {"folder": str(out), "images": len(rows), "classes": classes, "labels": str(out / "labels.csv")}
