"""Translators on MRML nodes (Qt-free): what the SynthTranslate module and console users call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.mrml import array_of, check_untransformed, geometry_of, output_volume, segment_array

from MedSynthCommonLib.devices import resolve_accelerator
from .apply import translate_volume
from .model_dir import load_model


def segment_label_values(segmentation, names_to_values: dict[str, int] | None = None) -> dict[str, int]:
    """The label value of every segment, by one rule for training and applying: the value the
    model card names for the segment's name; else the segments' own label values when they are
    distinct (a label map loaded as a segmentation keeps its values, e.g. TotalSegmentator's
    1-117); else each segment's position + 1 (segments drawn by hand all carry value 1)."""
    segments = segmentation.GetSegmentation()
    named = [segments.GetNthSegment(n) for n in range(segments.GetNumberOfSegments())]
    if names_to_values:
        unknown = [s.GetName() for s in named if s.GetName() not in names_to_values]
        if unknown:
            raise MedSynthInputError(f"Segment {unknown[0]!r} is not one of the labels this model was trained on "
                                     f"({', '.join(names_to_values)}); rename it or remove it.")
        return {s.GetName(): int(names_to_values[s.GetName()]) for s in named}
    own = [int(s.GetLabelValue()) if hasattr(s, "GetLabelValue") else 0 for s in named]
    if all(v > 0 for v in own) and len(set(own)) == len(own):
        return {s.GetName(): v for s, v in zip(named, own)}
    return {s.GetName(): n + 1 for n, s in enumerate(named)}


def label_map_from_segmentation(segmentation, reference_volume,
                                names_to_values: dict[str, int] | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Segments -> integer label map on the reference grid (values by ``segment_label_values``)
    and the {segment name: value} mapping used."""
    values = segment_label_values(segmentation, names_to_values)
    segments = segmentation.GetSegmentation()
    labels = np.zeros(array_of(reference_volume).shape, np.int32)
    for n in range(segments.GetNumberOfSegments()):
        segment_id = segments.GetNthSegmentID(n)
        labels[segment_array(segmentation, segment_id, reference_volume) > 0] = values[segments.GetNthSegment(n).GetName()]
    return labels, values


def translate_volume_node(model_folder: str | Path, input_volume, target_domain: str | None = None,
                          condition_segmentation=None, output_volume_node=None, device: str = "auto",
                          precision: str = "auto"):
    """Apply a trained model to ``input_volume`` (slice by slice along k, on ``device``: auto,
    cpu, cuda, cuda:N, mps; mixed precision on a GPU) into a new volume with the input's geometry.  Label-map models take ``condition_segmentation`` (its segments
    become label values as in training: by the names stored in the model card, else by the
    segments' own label values; 0 is background).  The input is not modified.

    Console::

        from SynthTranslateLib.logic import translate_volume_node
        out = translate_volume_node("/models/migan_xray", getNode("CXR"), target_domain="viral")
    """
    if input_volume is None:
        raise MedSynthInputError("Select the input volume (for label-map models: the volume giving the grid).")
    if output_volume_node is not None and output_volume_node is input_volume:
        raise MedSynthInputError("The output volume is also the input; choose or create another (inputs are never overwritten).")
    check_untransformed(input_volume, "input volume")
    model = load_model(model_folder, resolve_accelerator(device, precision))
    geometry = geometry_of(input_volume)
    needs_labels = model.config.conditioned
    if needs_labels:
        if condition_segmentation is None:
            raise MedSynthInputError(f"This {model.config.model} model turns label maps into images: select a segmentation.")
        condition, _ = label_map_from_segmentation(condition_segmentation, input_volume,
                                                   model.config.label_names or None)
        result = translate_volume(model, None, target_domain, condition)
    else:
        result = translate_volume(model, array_of(input_volume), target_domain)
    name = f"{input_volume.GetName()} {model.config.model}" + (f" to {target_domain}" if target_domain else "")
    node = output_volume(input_volume.GetScene(), result, geometry, name, output_volume_node, like=input_volume)
    node.SetAttribute("MedSynth.translator", json.dumps({"model_folder": str(model_folder), "model": model.config.model,
                                                         "target_domain": target_domain,
                                                         "iterations": model.card["iterations"]}))
    return node


def model_domains(model_folder: str | Path) -> list[str]:
    """Domain names of a model folder (for the GUI's target list); [] for one-way models."""
    summary = model_summary(model_folder)
    return summary["domains"] if summary else []


def model_summary(model_folder: str | Path) -> dict | None:
    """What the GUI needs to know of a model folder before applying it: model, target domains
    (when the model takes one), whether it takes a label map or samples new images, and the
    line of measured figures of a generator (``quality``, "" when none apply); None if it is
    not a model."""
    from .config import TranslatorConfig
    from .model_dir import quality_text, read_card, read_quality

    try:
        config = TranslatorConfig.from_dict(read_card(Path(model_folder))["config"])
    except MedSynthInputError:
        return None
    quality = read_quality(Path(model_folder)) if config.kind.new_images else None
    return {"model": config.model, "domains": list(config.domains) if config.kind.target_domain else [],
            "conditioned": config.conditioned, "samples": config.kind.new_images,
            "quality": quality_text(quality) if quality else ""}


def sample_volume_node(scene, model_folder: str | Path, class_name: str | None = None, count: int = 16,
                       truncation: float = 0.7, seed: int = 0, output_volume_node=None, device: str = "auto",
                       precision: str = "auto"):
    """``count`` new images of ``class_name`` from a stylegan or fastgan model folder as the slices of one
    scalar volume (k = sample number; 1 mm pixels, identity direction: synthetic images have no
    patient geometry), in the training images' units; what made them is stored in the node's
    ``MedSynth.samples`` attribute.

    Console::

        from SynthTranslateLib.logic import sample_volume_node
        node = sample_volume_node(slicer.mrmlScene, "/models/stylegan_xray", "viral", count=32, truncation=0.7)
    """
    from MedSynthCommonLib.geometry import Geometry
    from MedSynthCommonLib.storage import content_sha256

    from .apply import sample_images
    from .model_dir import CARD

    model = load_model(model_folder, resolve_accelerator(device, precision))
    if count < 1:
        raise MedSynthInputError(f"Ask for at least one image; got {count}.")
    images = sample_images(model, count, class_name, truncation, seed)
    class_name = class_name or model.config.domains[0]
    node = output_volume(scene, images, Geometry(), f"{model.config.model} {class_name} samples", output_volume_node)
    node.SetAttribute("MedSynth.samples", json.dumps({
        "model_folder": str(model_folder), "model_card_sha256": content_sha256(Path(model_folder) / CARD),
        "class": class_name, "count": count, "truncation": truncation, "seed": seed}))
    return node
