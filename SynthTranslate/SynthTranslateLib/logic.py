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


def label_map_from_segmentation(segmentation, reference_volume) -> np.ndarray:
    """Segments -> integer label map on the reference grid: segment n (in order) gets n + 1."""
    segments = segmentation.GetSegmentation()
    labels = np.zeros(array_of(reference_volume).shape, np.int16)
    for n in range(segments.GetNumberOfSegments()):
        labels[segment_array(segmentation, segments.GetNthSegmentID(n), reference_volume) > 0] = n + 1
    return labels


def translate_volume_node(model_folder: str | Path, input_volume, target_domain: str | None = None,
                          condition_segmentation=None, output_volume_node=None, device: str = "auto"):
    """Apply a trained model to ``input_volume`` (slice by slice along k, on ``device``: auto,
    cpu, cuda, cuda:N, mps; mixed precision on a GPU) into a new volume with the input's geometry.  Label-map models take ``condition_segmentation`` (its segments
    in order become labels 1, 2, ...; 0 is background).  The input is not modified.

    Console::

        from SynthTranslateLib.logic import translate_volume_node
        out = translate_volume_node("/models/migan_xray", getNode("CXR"), target_domain="viral")
    """
    if input_volume is None:
        raise MedSynthInputError("Select the input volume (for label-map models: the volume giving the grid).")
    if output_volume_node is not None and output_volume_node is input_volume:
        raise MedSynthInputError("The output volume is also the input; choose or create another (inputs are never overwritten).")
    check_untransformed(input_volume, "input volume")
    model = load_model(model_folder, resolve_accelerator(device))
    geometry = geometry_of(input_volume)
    needs_labels = model.config.conditioned
    if needs_labels:
        if condition_segmentation is None:
            raise MedSynthInputError(f"This {model.config.model} model turns label maps into images: select a segmentation.")
        condition = label_map_from_segmentation(condition_segmentation, input_volume)
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
    card = Path(model_folder) / "card.json"
    if not card.exists():
        return []
    return list(json.loads(card.read_text())["config"].get("domains", []))
