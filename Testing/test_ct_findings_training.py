"""The 3-D findings classifier's training: GPU-sized networks, resuming a cancelled run, the
findings as a MONAI dataset, the scanner augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from MedSynthCommonLib.errors import MedSynthInputError
from findings_scans import ORGANS, phantom_scans as _scans


def test_gpu_sized_networks_give_grad_cam_evidence_on_the_volume_grid():
    """resnet18 (spatial_dims=3) trains a step and its Grad-CAM (monai.visualize) comes back on
    the volume's own grid; labels only (no masks: no map loss for these networks)."""
    pytest.importorskip("torch")
    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe, train_findings_model

    rng = np.random.default_rng(0)
    volumes = [rng.normal(0, 50, (20, 40, 36)).astype(np.float32) for _ in range(8)]
    findings = np.array([[n % 2, (n // 2) % 2] for n in range(8)])
    classifier = train_findings_model(volumes, findings, ["a", "b"], FindingsRecipe(
        network="resnet18", input_shape=(16, 32, 32), epochs=1), seed=0, masks=[None] * 8)
    assert classifier.training["map_loss"] is False
    evidence = classifier.evidence(volumes[0], 1)
    assert evidence.shape == volumes[0].shape and np.isfinite(evidence).all() and evidence.max() <= 1.0
    assert classifier.predict_proba(volumes).shape == (8, 2)


def test_cancelled_training_resumes_bit_for_bit_and_refuses_other_settings(tmp_path):
    pytest.importorskip("torch")
    import dataclasses

    import torch

    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe, save_findings_model, train_findings_model

    rng = np.random.default_rng(1)
    volumes = [rng.normal(0, 60, (16, 24, 24)).astype(np.float32) for _ in range(8)]
    findings = np.array([[n % 2, (n // 2) % 2] for n in range(8)])
    masks = [{f: np.pad(np.ones((4, 6, 6), bool), ((6, 6), (9, 9), (9, 9))) for f in np.flatnonzero(row)}
             for row in findings]
    recipe = FindingsRecipe(input_shape=(16, 24, 24), epochs=5, batch_size=2, scanner_augment=True)
    whole = train_findings_model(volumes, findings, ["a", "b"], recipe, seed=4, masks=masks)
    steps = []

    def stop_in_epoch_three():
        steps.append(1)
        return len(steps) > 2 * 3 + 1  # 3 steps per epoch: cancelled in epoch 3

    folder = tmp_path / "model"
    with pytest.raises(InterruptedError):
        train_findings_model(volumes, findings, ["a", "b"], recipe, seed=4, masks=masks,
                                should_stop=stop_in_epoch_three, checkpoint_dir=folder)
    assert json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))["epoch"] == 2
    with pytest.raises(MedSynthInputError, match="other data or settings"):
        train_findings_model(volumes, findings, ["a", "b"], dataclasses.replace(recipe, learning_rate=1e-2),
                                seed=4, masks=masks, checkpoint_dir=folder)
    events = []
    resumed = train_findings_model(volumes, findings, ["a", "b"], recipe, seed=4, masks=masks,
                                      checkpoint_dir=folder, progress=events.append)
    assert events[0] == {"resumed_at_epoch": 2, "epochs": 5} and [e["epoch"] for e in events[1:]] == [3, 4, 5]
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert resumed.thresholds == whole.thresholds
    save_findings_model(folder, resumed)
    assert not (folder / "checkpoint.json").exists() and not list(folder.glob("checkpoint-*.pt"))


def test_the_findings_model_reads_its_scans_through_a_monai_dataloader_the_same_with_workers():
    """Each scan's shifts, scaling and scanner transforms are drawn per item, seeded by (seed,
    epoch, scan): two spawned DataLoader workers give the weights and losses of none."""
    pytest.importorskip("monai")
    import dataclasses

    import torch

    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe, train_findings_model

    rng = np.random.default_rng(2)
    volumes = [rng.normal(0, 60, (16, 24, 24)).astype(np.float32) for _ in range(8)]
    findings = np.array([[n % 2, (n // 2) % 2] for n in range(8)])
    recipe = FindingsRecipe(input_shape=(16, 24, 24), epochs=2, batch_size=3, scanner_augment=True)
    alone, with_workers, plain = (train_findings_model(volumes, findings, ["a", "b"], r, seed=5, masks=None) for r in
                                  (recipe, dataclasses.replace(recipe, workers=2),
                                   dataclasses.replace(recipe, augment=False, scanner_augment=False)))
    assert [e["loss"] for e in alone.history] == [e["loss"] for e in with_workers.history]
    for name, value in alone.model.state_dict().items():
        assert torch.equal(value, with_workers.model.state_dict()[name]), name
    assert alone.history[0]["loss"] != plain.history[0]["loss"]  # the scans were augmented
    from MedSynthCommonLib.threads import usable_cores

    with pytest.raises(MedSynthInputError, match="--loader-workers"):  # each worker holds a copy of the scans
        train_findings_model(volumes, findings, ["a", "b"], dataclasses.replace(recipe, workers=usable_cores() + 1),
                             seed=5, masks=None)


def test_findings_dataset_in_a_monai_pipeline():
    """The same scans as the protocol's, made on demand in DataLoader workers, in MONAI's
    (1, x, y, z) layout with an affine that puts each lesion where its record says."""
    pytest.importorskip("monai")
    import torch
    from monai.data import DataLoader
    from monai.transforms import Compose, Resized, ScaleIntensityRanged

    from SynthEvaluateLib.findings.findings_dataset import SynthFindingsDataset
    from SynthEvaluateLib.findings.synthetic import synthetic_findings_set

    scans = _scans([0, 1])
    made = synthetic_findings_set(scans, 4, ORGANS, seed=8)
    dataset = SynthFindingsDataset(scans, 4, ORGANS, seed=8, with_masks=True)
    assert dataset.finding_names == made.names and len(dataset) == 4
    for n in range(4):
        item = dataset[n]
        assert np.array_equal(item["image"][0].numpy().transpose(2, 1, 0), made.volumes[n].astype(np.float32))
        assert item["findings"].tolist() == made.findings[n].tolist()
        record = json.loads(item["record"])
        for reference in record["references"]:  # the lesion's voxels, through the affine, lie at its centre
            mask = item["finding_masks"][made.names.index(reference["finding"])].numpy()
            ijk = np.argwhere(mask).mean(axis=0)
            ras = (item["image"].affine.numpy() @ np.append(ijk, 1.0))[:3]
            assert np.linalg.norm(ras - np.array(reference["centre_ras"])) < 10.0, (ras, reference)
    pipeline = Compose([ScaleIntensityRanged("image", -150, 250, 0.0, 1.0, clip=True),
                        Resized("image", (32, 64, 64))])
    loader = DataLoader(SynthFindingsDataset(scans, 4, ORGANS, seed=8, transform=pipeline), batch_size=2,
                        num_workers=2)
    batches = list(loader)
    assert [tuple(b["image"].shape) for b in batches] == [(2, 1, 32, 64, 64)] * 2
    assert torch.equal(torch.cat([b["findings"] for b in batches]), torch.as_tensor(made.findings, dtype=torch.float32))
    again = list(loader)
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(batches, again))


def test_scanner_augmentation_keeps_the_lesion_sign_and_place():
    pytest.importorskip("monai")
    from monai.transforms import Compose

    from SynthEvaluateLib.recipes.augment import scanner_augmentation
    from SynthEvaluateLib.recipes.findings_data import EpochSeededDataset
    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe

    organ = np.zeros((1, 24, 32, 32), np.float32)
    organ[:, 4:20, 6:26, 6:26] = 0.55  # liver at ~70 HU in the (-150, 250) window
    organ[:, 10:14, 12:18, 12:18] = 0.45  # a hypodense lesion 40 HU below it
    items = [{"image": organ, "findings": np.ones(1, np.float32)} for _ in range(6)]
    dataset = EpochSeededDataset(items, Compose(scanner_augmentation(spatial=False)), seed=3)
    first = np.stack([np.asarray(dataset[n]["image"]) for n in range(6)])
    again = np.stack([np.asarray(dataset[n]["image"]) for n in reversed(range(6))])[::-1]
    assert np.array_equal(first, again)  # seeded by (seed, epoch, item), not by the order items are made
    assert not np.array_equal(first, np.asarray(dataset[6]["image"]))  # the next epoch draws anew
    assert not np.array_equal(first[0], organ) and first.min() >= 0.0 and first.max() <= 1.0
    assert np.array_equal(items[0]["image"], organ)  # the stored scan is left as it is
    lesion = np.zeros(organ.shape[1:], bool)
    lesion[10:14, 12:18, 12:18] = True
    around = (organ[0] > 0.5) & ~lesion
    for scan in first[:, 0]:
        assert scan[lesion].mean() < scan[around].mean()  # still hypodense, and still where it was
    assert FindingsRecipe.from_dict({**FindingsRecipe().to_dict(), "scanner_augment": True}).scanner_augment
    assert not FindingsRecipe().scanner_augment  # measured: no help from phantoms to a real CT (README)
    old_card = {k: v for k, v in FindingsRecipe().to_dict().items() if k != "scanner_augment"}
    assert FindingsRecipe.from_dict(old_card).scanner_augment is False  # what the old model was trained with


def test_the_scanner_zoom_moves_the_score_map_targets_with_the_scan():
    """With the score-map loss, --scanner-augment's zoom (field of view, body size) is applied
    to the item's targets too: the lesion's cells stay where its voxels went."""
    pytest.importorskip("monai")
    from monai.transforms import RandZoomd

    from SynthEvaluateLib.recipes.augment import scanner_augmentation
    from SynthEvaluateLib.recipes.findings_data import ZoomWithMapsd

    zoom = ZoomWithMapsd(next(s for s in scanner_augmentation() if isinstance(s, RandZoomd)), (4, 4, 4))
    zoom.zoom.prob = 1.0
    image = np.zeros((1, 32, 48, 48), np.float32)
    image[:, 4:12, 8:20, 28:40] = 1.0  # a lesion away from the centre, so that a zoom moves it
    cells = np.zeros((1, 8, 12, 12), np.float32)  # the score map: the input grid / 4
    cells[:, 1:3, 2:5, 7:10] = 1.0
    moved = 0
    for seed in range(12):
        zoom.set_random_state(seed=seed)
        out = zoom({"image": image, "cells": cells})
        lesion, target = np.asarray(out["image"])[0] > 0.5, np.asarray(out["cells"])[0] > 0.5
        assert target.any() and out["cells"].shape == cells.shape and out["image"].shape == image.shape
        voxels, cell_voxels = np.argwhere(lesion).mean(axis=0), np.argwhere(target).mean(axis=0) * 4 + 1.5
        assert np.abs(voxels - cell_voxels).max() <= 2.0, (seed, voxels, cell_voxels)  # within half a cell
        moved += bool(np.abs(voxels - np.array([7.5, 13.5, 33.5])).max() > 1.0)
    assert moved >= 4  # the zooms did move the lesion
    zoom.set_random_state(seed=3)
    unknown = zoom({"image": image, "cells": np.full_like(cells, -1.0)})
    assert (np.asarray(unknown["cells"]) == -1).all()  # a scan without masks: its targets say nothing
    zoom.set_random_state(seed=3)
    assert np.array_equal(np.asarray(unknown["image"]), np.asarray(zoom({"image": image, "cells": cells})["image"]))


def test_whole_scan_option_makes_a_model_that_reads_whole_scans():
    pytest.importorskip("torch")
    from MedSynthCommonLib.cli import build_parser
    from SynthEvaluateLib.cli.ct_findings_commands import _recipe

    parser = build_parser()
    base = ["evaluate", "ct-findings", "--healthy", "h.csv", "--organ-names", "1=liver", "--out", "r"]
    assert _recipe(parser.parse_args(base)).organ_margin_mm == 15.0
    assert _recipe(parser.parse_args(base + ["--whole-scan"])).organ_margin_mm is None


def test_a_box_reading_model_refuses_a_scan_without_its_organs(ct_phantom):
    """A model that reads the box around its organs is not given the whole scan instead (it
    would read it as another body): a scan without an organ map, or whose map lacks those
    organs, is refused with what to do; a whole-scan model reads it as it is."""
    from types import SimpleNamespace

    from SynthEvaluateLib.findings.scans import HealthyScan, model_view
    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe
    from SynthLesionLib.phantom import ORGAN_LABELS

    names = {value: name for name, value in ORGAN_LABELS.items()}
    box_model = SimpleNamespace(organs=["liver", "spleen"], recipe=FindingsRecipe(), view_mm=None)
    with_map = HealthyScan(ct_phantom.image, ct_phantom.organs, names, ct_phantom.geometry)
    view = model_view(box_model, with_map)
    assert view.image.size < with_map.image.size and (view.organs == ORGAN_LABELS["liver"]).sum() == \
        (with_map.organs == ORGAN_LABELS["liver"]).sum()  # the whole liver, less of the scan
    lacking = np.where(np.isin(ct_phantom.organs, [ORGAN_LABELS["liver"], ORGAN_LABELS["spleen"]]), 0,
                       ct_phantom.organs)
    for scan, problem in ((HealthyScan(ct_phantom.image, None, {}, ct_phantom.geometry), "has no organ map"),
                          (HealthyScan(ct_phantom.image, lacking, names, ct_phantom.geometry), "holds none of them")):
        with pytest.raises(MedSynthInputError, match=f"{problem}.*organ_mask.*--whole-scan"):
            model_view(box_model, scan)
        whole_model = SimpleNamespace(organs=["liver"], recipe=FindingsRecipe(organ_margin_mm=None), view_mm=None)
        assert model_view(whole_model, scan) is scan


def test_a_card_written_before_the_organ_box_reads_whole_scans():
    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe

    card = FindingsRecipe().to_dict()
    assert card["organ_margin_mm"] == 15.0
    del card["organ_margin_mm"], card["scanner_augment"]
    old = FindingsRecipe.from_dict(card)
    assert old.organ_margin_mm is None and old.scanner_augment is False  # as those models were trained


def test_a_study_names_the_scan_that_lacks_the_organs(ct_phantom):
    from SynthEvaluateLib.findings.findings_study import findings_study
    from SynthEvaluateLib.findings.scans import HealthyScan
    from SynthLesionLib.phantom import ORGAN_LABELS

    names = {value: name for name, value in ORGAN_LABELS.items()}
    scan = HealthyScan(ct_phantom.image, ct_phantom.organs, names, ct_phantom.geometry)
    no_liver = HealthyScan(ct_phantom.image, np.where(ct_phantom.organs == ORGAN_LABELS["liver"], 0, ct_phantom.organs),
                           names, ct_phantom.geometry)
    with pytest.raises(MedSynthInputError, match="Test scan 2: .*holds none of them"):
        findings_study([scan], [scan, no_liver], ["liver"], train_count=2, test_count=2)


def test_every_scan_is_shown_in_one_view_of_fixed_size_in_mm():
    """A box model reads a box of one size in mm (the largest training box), centred on its
    organs: a scan cut short just above the organs, the same scan framed longer and wider, and a
    scan of other spacing all give the network the same anatomy at the same scale.  Past a scan's
    end the view goes on as the scan's edge voxels, with no organ there; the evidence comes back
    onto the scan's own grid."""
    from types import SimpleNamespace

    from findings_scans import framed
    from MedSynthCommonLib.geometry import Geometry
    from SynthEvaluateLib.findings.scans import HealthyScan, box_coverage, evidence_on_scan, organ_bounds, organ_box, organ_region, view_extent_mm
    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe

    scan = _scans([7])[0]
    organs = ["liver", "spleen"]
    view_mm = view_extent_mm([scan], [organ_bounds(scan, organs, 15.0)])
    tight = organ_box(scan, organs, 0.0)
    assert np.allclose(view_mm, [(s.stop - s.start) * d + 2 * np.ceil(15.0 / d) * d
                                 for s, d in zip(tight, scan.geometry.spacing_kji)])
    top = tight[0].stop  # the scan cut one slice above the organs: its own box is clipped there
    short = scan.cut((slice(0, top + 1), slice(0, scan.image.shape[1]), slice(0, scan.image.shape[2])))
    assert organ_box(short, organs, 15.0)[0].stop == top + 1
    views = [organ_region(s, organs, 15.0, view_mm) for s in (scan, short, framed(scan, 6, 10))]
    for view in views:
        assert np.allclose(np.array(view.image.shape) * view.geometry.spacing_kji, view_mm, atol=1e-6)
        assert view.geometry.is_close(views[0].geometry) and np.array_equal(view.organs, views[0].organs)
    assert np.array_equal(views[2].image, views[0].image)  # the longer, wider scan: the same voxels
    box = organ_box(short, organs, 15.0, view_mm)
    past = box[0].stop - short.image.shape[0]  # slices of the view past the short scan's top
    assert past > 0 and box[0].stop - box[0].start == views[0].image.shape[0]
    assert np.array_equal(views[1].image[:-past], views[0].image[:-past])
    assert np.array_equal(views[1].image[-past:], np.repeat(views[1].image[-past - 1:-past], past, axis=0))
    assert not views[1].organs[-past:].any()
    # organs larger than the view keep their own box, whole (shown smaller), rather than being cut
    small_view = tuple(v / 2 for v in view_mm)
    assert organ_box(scan, organs, 15.0, small_view) == organ_box(scan, organs, 15.0, view_mm)
    # finer slices: the same mm, more voxels
    g = scan.geometry
    fine = HealthyScan(np.repeat(scan.image, 2, axis=0), np.repeat(scan.organs, 2, axis=0), scan.organ_names,
                       Geometry(g.kji_to_ras(np.array([-0.25, 0, 0])), g.spacing * [1, 1, 0.5], g.direction))
    fine_view = organ_region(fine, organs, 15.0, view_mm)
    assert np.allclose(np.array(fine_view.image.shape) * fine_view.geometry.spacing_kji, view_mm, atol=g.spacing[2])
    # the evidence of the view, back on the scan's grid: zero where the view did not reach
    model = SimpleNamespace(organs=organs, recipe=FindingsRecipe(), view_mm=view_mm,
                            evidence=lambda image, finding: np.ones(image.shape, np.float32))
    evidence, _ = evidence_on_scan(model, short, 0)
    box = organ_box(short, organs, 15.0, view_mm)
    assert evidence.shape == short.image.shape
    assert evidence.sum() == np.prod([min(s.stop, n) - max(s.start, 0) for s, n in zip(box, short.image.shape)])
    # the share of the box the scan holds, as a triage row reports it
    assert box_coverage(box, short.image.shape) == evidence.sum() / np.prod([s.stop - s.start for s in box]) < 1.0
    longer = framed(scan, 6, 10)
    assert box_coverage(organ_box(longer, organs, 15.0, view_mm), longer.image.shape) == 1.0
    assert box_coverage(None, short.image.shape) == 1.0  # a whole-scan model


def test_scans_cut_short_in_training_keep_their_lesions():
    """The scan-end augmentation cuts a scan short only where no lesion lies (at least one
    score-map cell away), repeats the last slice kept past the cut, and leaves scans whose
    lesions are unknown as they are."""
    pytest.importorskip("torch")
    import torch

    from SynthEvaluateLib.recipes.findings_data import ScanEndsd
    from SynthEvaluateLib.recipes.findings_model import lesion_free_ends

    targets = np.zeros((4, 2, 8, 4, 4), np.float32)  # score maps of 8 rows for 32 input slices
    targets[1, 0, 3:5, 1, 1] = 1  # a lesion in rows 3-4: slices 12-19
    targets[2, 1, 0, 2, 2] = 1  # a lesion in the bottom row: nothing free below it
    targets[3] = -1  # a scan without masks
    free = lesion_free_ends(targets, 32)
    assert free.tolist() == [[32, 32], [8, 8], [0, 24], [0, 0]]
    scans = torch.rand(4, 1, 32, 6, 6, generator=torch.Generator().manual_seed(0))
    cut = ScanEndsd(prob=1.0)
    cut_seen = set()
    for seed in range(40):
        for item in range(4):
            cut.set_random_state(seed=seed * 4 + item)
            out = cut({"image": scans[item], "free": free[item]})["image"]
            changed = np.flatnonzero((out[0] != scans[item, 0]).flatten(1).any(dim=1).numpy())
            if changed.size == 0:
                continue
            bottom = changed[0] == 0
            cut_seen.add((item, bool(bottom)))
            depth = changed.size
            assert depth <= min(free[item][0 if bottom else 1], 16)
            kept = depth if bottom else 31 - depth
            assert torch.equal(out[:, changed], out[:, [kept] * depth])  # the last slice kept, repeated
            assert list(changed) == (list(range(depth)) if bottom else list(range(32 - depth, 32)))
    assert {(0, True), (0, False), (1, True), (1, False), (2, False)} <= cut_seen
    assert not {(2, True), (3, True), (3, False)} & cut_seen
