"""Lesion synthesis on MRML nodes: what the SynthLesion module's Logic and console users call.

Flow: volume node + segmentation node -> arrays + geometry -> ``synthesize_lesions`` ->
new volume node, new segmentation (organ + lesions), table of lesion records, finding text.
Input nodes are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import LesionConfig
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import bounding_slices
from MedSynthCommonLib.mrml import (array_of, check_untransformed, fill_segmentation, fill_table, geometry_of, output_volume,
                                    segment_array, segment_id_by_name_or_id, volume_buffer)
from .synthesizer import SynthesisResult, synthesize_lesions

ORGAN_COLOUR = (0.85, 0.55, 0.45)
LESION_COLOUR = (1.0, 0.85, 0.1)


@dataclass
class NodeOutputs:
    """Nodes made (or filled) by one call, and the engine's result."""

    volume: object
    segmentation: object
    table: object
    finding_text: object
    result: SynthesisResult = field(repr=False)


def markup_positions_ras(markups_node) -> list[list[float]]:
    """World (RAS) positions of a markups node's control points."""
    points = []
    for i in range(markups_node.GetNumberOfControlPoints()):
        position = [0.0, 0.0, 0.0]
        markups_node.GetNthControlPointPositionWorld(i, position)
        points.append([float(v) for v in position])
    if not points:
        raise MedSynthInputError(f"The markups '{markups_node.GetName()}' has no points; place at least one or untick 'place at markup points'.")
    return points


def insert_lesions_on_nodes(input_volume, segmentation, organ_segment: str, config: LesionConfig | None = None,
                            seed: int = 0, *, output_volume_node=None, output_segmentation=None, output_table=None,
                            output_text=None, one_lesion_segment: bool = False, markups=None,
                            avoid_segment: str | None = None, name_prefix: str | None = None) -> NodeOutputs:
    """Insert synthetic lesions into ``input_volume`` inside ``organ_segment``.

    Usable from Slicer's Python console::

        from SynthLesionLib.logic import insert_lesions_on_nodes
        from SynthLesionLib import LesionConfig
        out = insert_lesions_on_nodes(getNode("CT"), getNode("Segmentation"), "liver",
                                      LesionConfig(size_class="medium", count=2), seed=1)
        print(out.finding_text.GetText())

    Args:
        input_volume: scalar volume node (left unchanged).
        segmentation: segmentation node holding the organ (left unchanged).
        organ_segment: segment ID or name of the organ.
        config: lesion options (``LesionConfig``); ``markups`` overrides its centres.
        seed: same inputs and seed give the same outputs.
        output_*: existing nodes to fill; new nodes are created when None.
        one_lesion_segment: one "Lesion" segment instead of one segment per lesion.
        markups: markups node whose control points are lesion centres.
        avoid_segment: segment (e.g. vessels) that lesions must not touch.
    """
    if input_volume is None or segmentation is None:
        raise MedSynthInputError("Select an input volume and a segmentation that contains the organ.")
    for node in (output_volume_node, output_segmentation):
        if node is not None and node in (input_volume, segmentation):
            raise MedSynthInputError("An output node is also an input; choose or create another output (inputs are never overwritten).")
    check_untransformed(input_volume, "input volume")
    config = LesionConfig(**(config or LesionConfig()).to_dict())
    if markups is not None:
        config.centres_ras = markup_positions_ras(markups)
    image = array_of(input_volume)
    geometry = geometry_of(input_volume)
    organ_id = segment_id_by_name_or_id(segmentation, organ_segment)
    organ = segment_array(segmentation, organ_id, input_volume)
    avoid = segment_array(segmentation, segment_id_by_name_or_id(segmentation, avoid_segment), input_volume) \
        if avoid_segment else None
    voxels = volume_buffer(image.shape, image.dtype)  # the engine writes the new image where the node will hold it
    result = synthesize_lesions(image, organ, geometry, config, seed, avoid_mask=avoid, out=voxels.array)

    scene = input_volume.GetScene()
    prefix = name_prefix or f"{input_volume.GetName()} lesions"
    volume = output_volume(scene, voxels, geometry, prefix, output_volume_node, like=input_volume)
    organ_name = segmentation.GetSegmentation().GetSegment(organ_id).GetName()
    organ_colour = segmentation.GetSegmentation().GetSegment(organ_id).GetColor()
    # the lesions lie in the block the engine changed: their segments are cut from it, and the
    # organ's segment is the input organ's box but in that block, where it is the moved organ
    # less the lesions (whole-volume comparisons and copies took 70 ms of an Apply on a 1 mm CT)
    changed = result.changed
    labels = result.lesion_labels[changed]
    around = bounding_slices(result.organ.base, np.zeros(3, int))
    around = tuple(slice(min(a.start, c.start), max(a.stop, c.stop)) for a, c in zip(around, changed))
    organ_out = result.organ.base[around].copy()
    organ_out[tuple(slice(c.start - a.start, c.stop - a.start) for c, a in zip(changed, around))] = \
        result.organ.read(changed) & (labels == 0)
    segments = [(organ_name, organ_out, tuple(organ_colour), around)]
    if one_lesion_segment:
        segments.append(("Lesion", labels > 0, LESION_COLOUR, changed))
    else:
        segments += [(f"Lesion {r.index}", labels == r.index, LESION_COLOUR, changed) for r in result.records]
    seg_out = output_segmentation or scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{prefix} segmentation"))
    fill_segmentation(seg_out, segments, geometry, volume)
    table = output_table or scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{prefix} records"))
    fill_table(table, [r.to_dict() for r in result.records])
    text = output_text or scene.AddNewNodeByClass("vtkMRMLTextNode", scene.GenerateUniqueName(f"{prefix} finding"))
    text.SetText(result.finding)
    for node in (volume, seg_out, table, text):
        node.SetAttribute("MedSynth.seed", str(seed))
    volume.SetAttribute("MedSynth.record", _json(result.case_record))
    return NodeOutputs(volume, seg_out, table, text, result)


def _json(data) -> str:
    import json

    return json.dumps(data, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o))


def learn_preset_on_nodes(volume, segmentation, organ_segment: str, lesion_segment: str, out_path,
                          base: str = "ct-generic", seed: int = 0) -> dict:
    """Fit a preset to the lesions of ``lesion_segment`` (against ``organ_segment``) in a loaded
    case and write it to ``out_path`` (.json); returns the fit report.  Nodes are not modified.

    Console::

        from SynthLesionLib.logic import learn_preset_on_nodes
        report = learn_preset_on_nodes(getNode("CT"), getNode("Segmentation"), "liver", "tumour", "/tmp/my_liver.json")
    """
    from pathlib import Path

    from MedSynthCommonLib.storage import write_json_atomic

    from .fit import FitCase, fit_preset

    if None in (volume, segmentation):
        raise MedSynthInputError("Select the volume and the segmentation that holds the organ and the lesions.")
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".json":
        raise MedSynthInputError(f"The preset file {out_path} must end in .json.")
    check_untransformed(volume, "volume")
    check_untransformed(segmentation, "segmentation")
    organ_id = segment_id_by_name_or_id(segmentation, organ_segment)
    lesion_id = segment_id_by_name_or_id(segmentation, lesion_segment)
    if organ_id == lesion_id:
        raise MedSynthInputError("The organ and the lesion segment are the same; choose the tumour segment.")
    labels = segment_array(segmentation, organ_id, volume).astype(np.uint8)
    labels[segment_array(segmentation, lesion_id, volume) > 0] = 2
    case = FitCase(np.asarray(array_of(volume)), labels, geometry_of(volume), 1, 2, volume.GetName())
    result = fit_preset([case], base=base, name=out_path.stem, seed=seed)
    write_json_atomic(out_path, result)
    return result["fit"]
