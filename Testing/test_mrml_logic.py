"""The node-level logic on real MRML nodes (slicer-core): what Slicer's module and console use."""

from __future__ import annotations

import numpy as np
import pytest

from SynthLesionLib import Geometry, LesionConfig, MedSynthInputError
from SynthLesionLib.logic import insert_lesions_on_nodes
from MedSynthCommonLib.mrml import (array_of, fill_segmentation, geometry_of, output_volume, segment_array,
                                 table_rows)


@pytest.fixture
def ct_nodes(scene, ct_phantom):
    volume = output_volume(scene, ct_phantom.image, ct_phantom.geometry, "CT")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Organs")
    fill_segmentation(segmentation, [("liver", ct_phantom.organ_mask("liver"), (0.8, 0.4, 0.3)),
                                     ("vessels", ct_phantom.vessels, (0.9, 0.1, 0.1))], ct_phantom.geometry, volume)
    return volume, segmentation


def _segment_names(node):
    segmentation = node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def test_volume_node_round_trip_keeps_geometry(scene, ct_phantom, ct_nodes):
    volume, segmentation = ct_nodes
    assert geometry_of(volume).is_close(ct_phantom.geometry, 1e-6)
    assert np.array_equal(array_of(volume), ct_phantom.image)
    liver_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("liver")
    assert np.array_equal(segment_array(segmentation, liver_id, volume), ct_phantom.organ_mask("liver"))


def test_segments_are_exact_from_their_own_boxes_overlapping_empty_and_at_the_edges(scene, ct_phantom, ct_nodes):
    """fill_segmentation hands each segment over as its bounding box only: on the oblique,
    anisotropic grid every segment reads back voxel for voxel, also where segments overlap,
    touch the volume's faces or hold one voxel; an empty array gives an empty segment; names and
    colours are kept, in order, and filling again replaces the segments."""
    volume, _ = ct_nodes
    shape = ct_phantom.image.shape
    liver = ct_phantom.organ_mask("liver")
    corner = np.zeros(shape, np.uint8)
    corner[:3, :5, -4:] = 1  # touches three faces
    corner[-1, -1, 0] = 1  # and the opposite corner
    single = np.zeros(shape, bool)
    single[20, 70, 33] = True
    overlapping = liver.copy()
    overlapping[:, :, : shape[2] // 2] = False  # half the liver, inside it
    arrays = [("liver", liver, (0.8, 0.4, 0.3)), ("half", overlapping, (0.1, 0.2, 0.9)),
              ("corner", corner, (0.3, 0.9, 0.1)), ("empty", np.zeros(shape, np.uint8), (0.5, 0.5, 0.5)),
              ("one voxel", single, (1.0, 1.0, 0.0))]
    block = (slice(10, 30), slice(40, 90), slice(0, 50))  # a segment given as a block of the grid
    arrays.append(("block", liver[block], (0.2, 0.2, 0.2), block))
    in_block = np.zeros(shape, bool)
    in_block[block] = liver[block]
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "filled")
    fill_segmentation(node, [("stale", liver, (0, 0, 0))], ct_phantom.geometry, volume)
    fill_segmentation(node, arrays, ct_phantom.geometry, volume)
    assert _segment_names(node) == [name for name, *_ in arrays]
    segmentation = node.GetSegmentation()
    for index, (name, array, colour, *where) in enumerate(arrays):
        segment = segmentation.GetNthSegment(index)
        assert segment.GetColor() == pytest.approx(colour)
        read = segment_array(node, segmentation.GetNthSegmentID(index), volume)
        assert np.array_equal(read > 0, (in_block if where else np.asarray(array)) > 0), name


def test_a_segment_on_the_volumes_grid_is_read_from_its_own_box_as_the_export_gives_it(scene, ct_phantom, ct_nodes,
                                                                                        monkeypatch):
    """segment_array reads a segment made on the volume's grid from its own labelmap (no
    whole-volume export), voxel for voxel what the export gives: also in shared layers (label
    values other than 1), empty, at the faces; on another grid it exports."""
    from MedSynthCommonLib import mrml

    volume, _ = ct_nodes
    shape = ct_phantom.image.shape
    liver = ct_phantom.organ_mask("liver")
    corner = np.zeros(shape, np.uint8)
    corner[:3, :5, -4:] = 1
    dot = np.zeros(shape, bool)
    dot[20, 70, 33] = True
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read back")
    fill_segmentation(node, [("liver", liver, (1, 0, 0)), ("corner", corner, (0, 1, 0)), ("dot", dot, (0, 0, 1)),
                             ("empty", np.zeros(shape, np.uint8), (1, 1, 0))], ct_phantom.geometry, volume)
    segmentation = node.GetSegmentation()
    segmentation.CollapseBinaryLabelmaps(False)  # non-overlapping segments share a layer, told apart by label value
    ids = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
    assert max(segmentation.GetSegment(i).GetLabelValue() for i in ids) >= 2
    shifted = output_volume(scene, ct_phantom.image, Geometry(ct_phantom.geometry.origin + 0.5,
                                                              ct_phantom.geometry.spacing, ct_phantom.geometry.direction),
                            "shifted CT")
    read = {(i, name): segment_array(node, i, v) for i in ids for name, v in (("same", volume), ("shifted", shifted))}
    assert all(mrml._segment_on_volume_grid(node, i, volume) is not None for i in ids)
    assert all(mrml._segment_on_volume_grid(node, i, shifted) is None for i in ids)
    monkeypatch.setattr(mrml, "_segment_on_volume_grid", lambda *args: None)  # the export, always
    for (i, name), array in read.items():
        assert array.dtype == np.uint8 and np.array_equal(array, segment_array(node, i, volume if name == "same" else shifted))
    for i, expected in zip(ids, (liver, corner, dot, np.zeros(shape))):
        assert np.array_equal(read[(i, "same")] > 0, np.asarray(expected) > 0)


def test_insert_on_nodes_creates_outputs_and_leaves_inputs(scene, ct_phantom, ct_nodes):
    volume, segmentation = ct_nodes
    before = array_of(volume).copy()
    segments_before = _segment_names(segmentation)
    out = insert_lesions_on_nodes(volume, segmentation, "liver", LesionConfig(size_class="small", count=2), seed=3)

    assert np.array_equal(array_of(volume), before)
    assert _segment_names(segmentation) == segments_before
    assert out.volume is not volume and geometry_of(out.volume).is_close(geometry_of(volume), 1e-9)
    assert np.array_equal(array_of(out.volume), out.result.image)
    assert np.shares_memory(array_of(out.volume), out.result.image)  # the engine wrote into the node's voxels
    assert _segment_names(out.segmentation) == ["liver", "Lesion 1", "Lesion 2"]
    seg = out.segmentation.GetSegmentation()
    for record in out.result.records:
        lesion = segment_array(out.segmentation, seg.GetSegmentIdBySegmentName(f"Lesion {record.index}"), out.volume)
        assert np.array_equal(lesion > 0, out.result.lesion_labels == record.index)
    organ = segment_array(out.segmentation, seg.GetSegmentIdBySegmentName("liver"), out.volume)
    assert np.array_equal(organ > 0, (out.result.organ_mask > 0) & (out.result.lesion_labels == 0))
    rows = table_rows(out.table)
    assert [int(r["index"]) for r in rows] == [1, 2]
    assert rows[0]["volume_ml"] == pytest.approx(out.result.records[0].volume_ml)
    assert "liver" in out.finding_text.GetText()
    assert out.volume.GetAttribute("MedSynth.seed") == "3"


def test_existing_output_nodes_are_filled_and_one_lesion_segment(scene, ct_nodes):
    volume, segmentation = ct_nodes
    out_volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "mine")
    out_seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine seg")
    out = insert_lesions_on_nodes(volume, segmentation, "liver", LesionConfig(count=3, size_class="tiny"), seed=1,
                                  output_volume_node=out_volume, output_segmentation=out_seg, one_lesion_segment=True)
    assert out.volume is out_volume and out.segmentation is out_seg
    assert _segment_names(out_seg) == ["liver", "Lesion"]
    first = out.result.image.copy()
    # running again replaces, never accumulates; the first run's image is left as it was
    again = insert_lesions_on_nodes(volume, segmentation, "liver", LesionConfig(count=1, size_class="tiny"), seed=2,
                                    output_volume_node=out_volume, output_segmentation=out_seg)
    assert _segment_names(out_seg) == ["liver", "Lesion 1"]
    assert np.array_equal(out.result.image, first) and not np.array_equal(again.result.image, first)
    assert np.array_equal(array_of(out_volume), again.result.image)


def test_markup_points_place_the_lesions(scene, ct_phantom, ct_nodes):
    volume, segmentation = ct_nodes
    liver = np.argwhere(ct_phantom.organ_mask("liver") & ~ct_phantom.vessels)
    points = [liver[len(liver) // 3], liver[2 * len(liver) // 3]]
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "centres")
    for kji in points:
        markups.AddControlPoint(*ct_phantom.geometry.kji_to_ras(kji))
    out = insert_lesions_on_nodes(volume, segmentation, "liver", LesionConfig(size_class="tiny"), seed=0, markups=markups)
    assert [out.result.lesion_labels[tuple(p)] for p in points] == [1, 2]


def test_avoid_segment_keeps_lesions_off_it(scene, ct_phantom, ct_nodes):
    volume, segmentation = ct_nodes
    overlap = 0
    for seed in range(4):
        out = insert_lesions_on_nodes(volume, segmentation, "liver",
                                      LesionConfig(size_class="medium", avoid_vessels=False, mass_effect=0),
                                      seed=seed, avoid_segment="vessels")
        centre = np.round(ct_phantom.geometry.ras_to_kji(out.result.records[0].centre_ras)).astype(int)
        overlap += int(ct_phantom.vessels[tuple(centre)])
    assert overlap == 0


def test_an_apply_that_fails_leaves_the_scene_and_its_output_nodes_as_they_were(scene, ct_nodes):
    """The engine writes into a buffer that a volume node takes only when the call succeeded: a
    failed Apply adds no node and leaves a chosen output volume's voxels as they were."""
    from SynthLesionLib import PlacementError

    volume, segmentation = ct_nodes
    mine = output_volume(scene, np.full(array_of(volume).shape, 7, np.int16), geometry_of(volume), "mine")
    before = array_of(mine).copy()
    nodes = scene.GetNumberOfNodes()
    with pytest.raises(PlacementError):
        insert_lesions_on_nodes(volume, segmentation, "liver", LesionConfig(size_class="large", count=40, allow_fewer=False), seed=0,
                                output_volume_node=mine)
    assert scene.GetNumberOfNodes() == nodes
    assert np.array_equal(array_of(mine), before)


def test_bad_node_input(scene, ct_nodes):
    volume, segmentation = ct_nodes
    with pytest.raises(MedSynthInputError, match="no segment 'spleen'.*liver, vessels"):
        insert_lesions_on_nodes(volume, segmentation, "spleen")
    with pytest.raises(MedSynthInputError, match="also an input"):
        insert_lesions_on_nodes(volume, segmentation, "liver", output_volume_node=volume)
    with pytest.raises(MedSynthInputError, match="Select an input volume"):
        insert_lesions_on_nodes(None, segmentation, "liver")
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(MedSynthInputError, match="no image data"):
        insert_lesions_on_nodes(empty, segmentation, "liver")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "t")
    volume.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(MedSynthInputError, match="harden the transform"):
        insert_lesions_on_nodes(volume, segmentation, "liver")


def test_learn_preset_from_segments(scene, tmp_path):
    import json

    from MedSynthCommonLib.mrml import fill_segmentation, output_volume
    from SynthLesionLib import LesionConfig, make_ct_phantom, synthesize_lesions
    from SynthLesionLib.logic import insert_lesions_on_nodes, learn_preset_on_nodes

    phantom = make_ct_phantom(shape=(30, 96, 96), spacing=(1.5, 1.5, 3.0), seed=2)
    result = synthesize_lesions(phantom.image, phantom.organ_mask("liver"), phantom.geometry,
                                LesionConfig(size_class="small", count=3, lesion_type="hypo", contrast=-45), 5)
    volume = output_volume(scene, result.image, phantom.geometry, "annotated CT")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "annotation")
    fill_segmentation(segmentation, [("liver", result.organ_mask > 0, (1, 0, 0)),
                                     ("tumour", result.lesion_labels > 0, (0, 1, 0))], phantom.geometry, volume)
    before = array_of(volume).copy()
    report = learn_preset_on_nodes(volume, segmentation, "liver", "tumour", tmp_path / "learnt.json")
    assert report["measured_lesions"] >= 2 and np.array_equal(array_of(volume), before)
    assert json.loads((tmp_path / "learnt.json").read_text())["preset"]["default_lesion_type"] == "hypo"
    # the learnt preset is usable like any preset name
    out = insert_lesions_on_nodes(volume, segmentation, "liver", LesionConfig(preset=str(tmp_path / "learnt.json")), 1)
    assert out.result.records[0].contrast_measured < -10
    with pytest.raises(MedSynthInputError, match="same"):
        learn_preset_on_nodes(volume, segmentation, "liver", "liver", tmp_path / "x.json")


def test_the_organ_segment_follows_an_organ_pushed_out_at_its_edge(scene, ct_phantom, ct_nodes):
    """A lesion at the organ's edge with the strongest mass effect pushes the organ into voxels
    outside it, and the block it changed reaches past the organ's box: the organ segment, cut from
    the hull of the two, is still the moved organ less the lesion, voxel for voxel."""
    from MedSynthCommonLib.geometry import bounding_slices

    volume, segmentation = ct_nodes
    liver = ct_phantom.organ_mask("liver")
    edge = np.argwhere(liver & ~np.roll(liver, 3, axis=2))
    centre = ct_phantom.geometry.kji_to_ras(edge[len(edge) // 2].astype(float))
    config = LesionConfig(size_class="medium", centres_ras=[list(centre)], mass_effect=100.0)
    out = insert_lesions_on_nodes(volume, segmentation, "liver", config, seed=1)
    result = out.result
    assert ((result.organ_mask > 0) & ~liver).any()  # the organ now reaches where it did not
    organ_box = bounding_slices(liver, np.zeros(3, int))
    assert any(c.start < b.start or c.stop > b.stop for c, b in zip(result.changed, organ_box))
    seg = out.segmentation.GetSegmentation()
    organ = segment_array(out.segmentation, seg.GetSegmentIdBySegmentName("liver"), out.volume)
    assert np.array_equal(organ > 0, (result.organ_mask > 0) & (result.lesion_labels == 0))
    lesion = segment_array(out.segmentation, seg.GetSegmentIdBySegmentName("Lesion 1"), out.volume)
    assert np.array_equal(lesion > 0, result.lesion_labels == 1)
