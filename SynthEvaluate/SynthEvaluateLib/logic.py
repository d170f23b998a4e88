"""Evaluation on MRML nodes (Qt-free): what the SynthEvaluate module and console users call."""

from __future__ import annotations

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.mrml import fill_table, geometry_of, segment_array, segment_id_by_name_or_id

from .metrics.segmentation import dice, hausdorff_95, lesion_detection, normalized_surface_dice


def segmentation_metrics_on_nodes(reference_segmentation, reference_segment: str, predicted_segmentation,
                                  predicted_segment: str, reference_volume, tolerance_mm: float = 2.0,
                                  table=None, name: str = "Segmentation metrics"):
    """Dice, NSD (``tolerance_mm``), HD95 and lesion-wise detection of a predicted segment
    against a reference segment, both exported onto ``reference_volume``'s grid.

    Returns the filled table node (one row) and the metrics dict.  Inputs are not modified.
    """
    if None in (reference_segmentation, predicted_segmentation, reference_volume):
        raise MedSynthInputError("Select the reference and predicted segmentations and a reference volume.")
    spacing = geometry_of(reference_volume).spacing_kji
    reference = segment_array(reference_segmentation, segment_id_by_name_or_id(reference_segmentation, reference_segment),
                              reference_volume)
    predicted = segment_array(predicted_segmentation, segment_id_by_name_or_id(predicted_segmentation, predicted_segment),
                              reference_volume)
    detection = lesion_detection(predicted, reference, spacing)
    metrics = {
        "reference": reference_segment, "prediction": predicted_segment,
        "dice": dice(predicted, reference),
        f"nsd_{tolerance_mm:g}mm": normalized_surface_dice(predicted, reference, spacing, tolerance_mm),
        "hd95_mm": hausdorff_95(predicted, reference, spacing),
        "reference_volume_ml": float(reference.sum() * np.prod(spacing) / 1000.0),
        "predicted_volume_ml": float(predicted.sum() * np.prod(spacing) / 1000.0),
        "lesions": len(detection.detected), "lesions_detected": int(sum(detection.detected)),
        "false_positive_components": detection.false_positives,
    }
    scene = reference_volume.GetScene()
    table = table or scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    fill_table(table, [metrics])  # HD95 with an empty mask is inf: kept as inf, never a made-up number
    return table, metrics


def roc_chart_from_results(scene, results_json, name: str = "ROC"):
    """Plot chart of the ROC curves (first seed, every arm) stored in a report's results.json;
    None when the report has no curves (e.g. robustness, reader study)."""

    from .mrml import roc_chart

    from MedSynthCommonLib.options import read_json

    data = read_json(results_json, "results file")
    curves = {f"{arm}: {label}": curve for arm, runs in data.get("runs", {}).items() if isinstance(runs, list) and runs
              for label, curve in runs[0].get("roc", {}).items()}
    return roc_chart(scene, curves, name) if curves else None


#: colour map of evidence overlays (Slicer's "Iron": dark to bright, 0 transparent-looking black)
EVIDENCE_COLOUR_TYPE = "Iron"


def queue_table(scene, rows: list[dict], name: str = "Triage queue", node=None):
    """A table node of a triage queue (``triage.triage_queue`` rows or a queue CSV's rows)."""
    node = node or scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    fill_table(node, rows)
    return node


def _evidence_colour_node(scene):
    """Slicer's Iron colour table (the scene's own where the Colors module made it)."""
    node = scene.GetNodeByID(f"vtkMRMLColorTableNode{EVIDENCE_COLOUR_TYPE}")
    if node is None:
        import slicer

        node = slicer.vtkMRMLColorTableNode()
        getattr(node, f"SetTypeTo{EVIDENCE_COLOUR_TYPE}")()
        node.SetName(f"MedSynth evidence ({EVIDENCE_COLOUR_TYPE})")
        scene.AddNode(node)
    return node


def show_queue_case(scene, classifier, row: dict, organ_mask: str | None = None,
                    organ_names: dict[int, str] | None = None) -> dict:
    """Load a queue row's scan with the evidence of its finding: the image volume, the evidence
    map (0-1) as a volume with a colour map for an overlay, and a segmentation whose one segment
    is the evidence region (half-maximum), named by the finding and its location.  Returns
    {"volume", "evidence", "segmentation", "segment", "location"}; the files are not modified."""
    from pathlib import Path

    from MedSynthCommonLib.mrml import fill_segmentation, output_volume

    from .findings.anatomy import evidence_region
    from .findings.ct_findings_cases import CtCase, load_scan
    from .findings.scans import evidence_on_scan
    from .findings.triage import finding_index

    case = str(row.get("case_id") or Path(row["image"]).name)
    # read as triage read it: in the standard order, its organ map checked on its grid; the
    # model reads the region around its organs, and its evidence is shown on the whole scan
    scan = load_scan(CtCase(case, Path(row["image"]), Path(organ_mask) if organ_mask else None, dict(row)),
                     organ_names, need_organs=False)
    finding = row["finding"]
    evidence, where = evidence_on_scan(classifier, scan, finding_index(classifier, finding))
    image, geometry = scan.image, scan.geometry
    volume = output_volume(scene, image, geometry, case)
    evidence_node = output_volume(scene, evidence, geometry, f"{case} - {finding} evidence")
    display = evidence_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(_evidence_colour_node(scene).GetID())
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, 1.0)
    segment = f"{finding}: {where['location']}" + (f" ({row['density']})" if row.get("density") else "")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{case} findings"))
    fill_segmentation(segmentation, [(segment, evidence_region(evidence), (1.0, 0.85, 0.0))], geometry, volume)
    return {"volume": volume, "evidence": evidence_node, "segmentation": segmentation, "segment": segment,
            "location": where["location"]}
