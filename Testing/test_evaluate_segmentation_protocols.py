"""Segmenter recipe and robustness benchmark on phantoms with SynthLesion lesions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from SynthEvaluateLib.studies.robustness import robustness_benchmark
from SynthEvaluateLib.metrics.segmentation import dice
from SynthLesionLib import LesionConfig, make_ct_phantom, synthesize_lesions


@pytest.fixture(scope="module")
def phantom():
    return make_ct_phantom(shape=(32, 96, 96), spacing=(2.5, 2.5, 4.0), seed=5)


def test_robustness_benchmark_sees_contrast(phantom):
    liver = phantom.organ_mask("liver")
    inner = ndimage.binary_erosion(liver, iterations=2)  # away from partial-volume edges

    def threshold_segmenter(image, geometry):
        smooth = ndimage.gaussian_filter(image.astype(np.float32), 1.0)
        return (smooth < 100 - 30) & inner  # the phantom liver is 100 HU

    result = robustness_benchmark(threshold_segmenter, [(phantom.image, liver, phantom.geometry)],
                                  size_classes=("medium",), contrasts=(-70.0, -15.0), per_stratum=5, seed=1)
    strong, faint = result["strata"]
    assert strong["detection"]["value"] >= 0.8 and faint["detection"]["value"] <= 0.2
    assert strong["dice"]["value"] > faint["dice"]["value"]
    assert len(strong["lesions"]) == 5 and "seed" in strong["lesions"][0]


def test_probabilistic_segmenter_gets_a_froc_and_one_voxel_is_not_a_detection(phantom):
    liver = phantom.organ_mask("liver")
    inner = ndimage.binary_erosion(liver, iterations=2)
    rng = np.random.default_rng(0)

    def probability_segmenter(image, geometry):
        smooth = ndimage.gaussian_filter(image.astype(np.float32), 1.0)
        probability = np.clip((100 - smooth) / 80.0, 0, 1) * inner  # darker than the liver: more likely a lesion
        noise = np.zeros(image.shape, np.float32)
        spots = rng.integers(0, np.array(image.shape), (3, 3))
        noise[tuple(spots.T)] = 0.35  # small confident-ish false positives
        return np.maximum(probability.astype(np.float32), noise)

    result = robustness_benchmark(probability_segmenter, [(phantom.image, liver, phantom.geometry)],
                                  size_classes=("medium",), contrasts=(-70.0,), per_stratum=5, seed=2)
    curve = result["froc"]["points"]
    assert [p["threshold"] for p in curve] == sorted(p["threshold"] for p in curve)
    fps = [p["false_positives_per_case"] for p in curve]
    assert fps[0] >= fps[-1]  # a stricter threshold never adds false positives here
    assert result["froc"]["sensitivity_at_fp_per_case"]["8.0"] is not None
    assert "Dice >= 0.1" in result["detection_criterion"]

    def one_voxel(image, geometry):  # touches every lesion with one voxel: not a detection
        out = np.zeros(image.shape, bool)
        out[tuple(np.argwhere(image < 60)[0])] = True
        return out

    faint = robustness_benchmark(one_voxel, [(phantom.image, liver, phantom.geometry)], size_classes=("medium",),
                                 contrasts=(-70.0,), per_stratum=5, seed=2)
    assert faint["strata"][0]["detection"]["value"] == 0.0


@pytest.mark.parametrize("context", [0, 1], ids=["2d", "2.5d"])
def test_unet_recipe_learns_synthetic_lesions(phantom, context):
    """2-D, and 2.5-D (one neighbouring slice on each side as channels): both learn the lesions."""
    pytest.importorskip("monai")
    from SynthEvaluateLib.recipes.segmenter import SegmenterRecipe, train_segmenter

    liver = phantom.organ_mask("liver")
    config = LesionConfig(size_class="medium", count=2, lesion_type="hypo", contrast=-50)
    train = [synthesize_lesions(phantom.image, liver, phantom.geometry, config, seed) for seed in range(4)]
    test = synthesize_lesions(phantom.image, liver, phantom.geometry, config, seed=99)
    recipe = SegmenterRecipe(channels=(8, 16, 32), patch_size=(32, 32), iterations=300, batch_size=8,
                             learning_rate=3e-3, context_slices=context)
    before = train_segmenter([r.image for r in train], [r.lesion_labels for r in train],
                             SegmenterRecipe(**{**recipe.to_dict(), "iterations": 1}), seed=0)
    after = train_segmenter([r.image for r in train], [r.lesion_labels for r in train], recipe, seed=0)
    truth = test.lesion_labels > 0
    dice_before, dice_after = dice(before.predict(test.image), truth), dice(after.predict(test.image), truth)
    assert dice_after > 0.35 and dice_after > dice_before + 0.3
    import torch

    first = next(m for m in after.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 2 * context + 1  # the neighbouring slices are input channels


def test_neighbouring_slices_become_channels_and_repeat_at_the_edges():
    pytest.importorskip("monai")
    from SynthEvaluateLib.recipes.segmenter import SegmenterRecipe, train_segmenter, with_neighbours
    from SynthLesionLib import MedSynthInputError

    volume = np.arange(4, dtype=np.float32)[None, :, None, None] * np.ones((1, 4, 2, 2), np.float32)
    stacked = with_neighbours(volume, 1)
    assert stacked.shape == (3, 4, 2, 2)
    assert stacked[:, :, 0, 0].tolist() == [[0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 3]]
    assert with_neighbours(volume, 0) is volume
    with pytest.raises(MedSynthInputError, match="2.5-D"):
        train_segmenter([np.zeros((8, 16, 16))], [np.zeros((8, 16, 16))],
                        SegmenterRecipe(spatial_dims=3, patch_size=(8, 16, 16), channels=(4, 8), context_slices=1))


def test_segmenter_recipe_bad_input():
    pytest.importorskip("monai")
    from SynthEvaluateLib.recipes.segmenter import SegmenterRecipe, train_segmenter
    from SynthLesionLib import MedSynthInputError

    volume = np.zeros((4, 16, 16))
    with pytest.raises(MedSynthInputError, match="divisible by 4"):
        train_segmenter([volume], [volume], SegmenterRecipe(channels=(8, 16, 32), patch_size=(30, 30)))
    with pytest.raises(MedSynthInputError, match="one label per volume"):
        train_segmenter([volume], [], SegmenterRecipe())
    with pytest.raises(MedSynthInputError, match="precision"):
        train_segmenter([volume], [volume], SegmenterRecipe(precision="int8"))


def test_bf16_recipe_trains_and_predicts_in_autocast_with_fp32_weights(phantom):
    """bf16 autocast (CPUs with AVX512-BF16/AMX, GPUs): the weights stay fp32, the loss is
    finite, the prediction is a mask; the recipe records the precision it ran with."""
    pytest.importorskip("monai")
    import torch

    from SynthEvaluateLib.recipes.segmenter import SegmenterRecipe, train_segmenter

    liver = phantom.organ_mask("liver")
    case = synthesize_lesions(phantom.image, liver, phantom.geometry, LesionConfig(size_class="medium"), seed=1)
    recipe = SegmenterRecipe(channels=(4, 8, 16), patch_size=(32, 32), iterations=10, batch_size=4, precision="bf16")
    model = train_segmenter([case.image], [case.lesion_labels], recipe, seed=0, organs=[liver],
                            spacings=[phantom.geometry.spacing_kji])
    assert all(p.dtype == torch.float32 for p in model.model.parameters())
    assert np.isfinite(model.history[-1]["loss"]) and model.recipe.to_dict()["precision"] == "bf16"
    prediction = model.predict(case.image, liver, phantom.geometry.spacing_kji)
    assert prediction.shape == case.image.shape and prediction.dtype == np.uint8


def test_3d_unet_recipe_runs_with_sliding_window(phantom):
    pytest.importorskip("monai")
    from SynthEvaluateLib.recipes.segmenter import SegmenterRecipe, train_segmenter

    liver = phantom.organ_mask("liver")
    case = synthesize_lesions(phantom.image, liver, phantom.geometry, LesionConfig(size_class="medium"), seed=1)
    recipe = SegmenterRecipe(spatial_dims=3, channels=(4, 8), patch_size=(16, 32, 32), iterations=10, batch_size=2)
    model = train_segmenter([case.image], [case.lesion_labels], recipe, seed=0)
    prediction = model.predict(case.image)
    assert prediction.shape == case.image.shape and prediction.dtype == np.uint8


def test_segment_study_with_given_synthetic_cases_and_mixed_arms(phantom, tmp_path):
    """Offline cases you made elsewhere (a database, a translator) as the synthetic arms; real +
    offline at a ratio; the real arms on a subset; every arm paired with real on the same cases.
    Started again after an interruption, the study trains only the runs not finished, and
    reports what one uninterrupted study does."""
    pytest.importorskip("monai")
    from MedSynthCommonLib.errors import MedSynthInputError
    from SynthEvaluateLib.studies.segment_study import AnnotatedCase, segment_study
    from SynthEvaluateLib.recipes.segmenter import SegmenterRecipe

    liver = phantom.organ_mask("liver")
    config = LesionConfig(size_class="medium", count=2, contrast=-50)

    def cases(seeds):
        made = [synthesize_lesions(phantom.image, liver, phantom.geometry, config, s) for s in seeds]
        return [AnnotatedCase(m.image, m.lesion_labels > 0, phantom.geometry, m.organ_mask > 0) for m in made]

    recipe = SegmenterRecipe(channels=(8, 16, 32), patch_size=(32, 32), iterations=150, batch_size=8, learning_rate=3e-3)
    study = dict(seeds=(0,), arms=("real", "offline", "real + offline"), synthetic=cases([3, 4, 5, 6]),
                 offline_ratio=1.0, real_count=2, runs_dir=tmp_path / "runs")
    real, test = cases([1, 2, 12]), cases([7, 8, 9, 10, 11])
    result = segment_study(real, [], test, recipe, **study)
    assert set(result["summary"]) == {"real", "offline", "real + offline"}
    mixed = result["runs"]["real + offline"][0]
    assert mixed["train_cases"] == 4 and len(mixed["per_case"]["dice"]) == 5 and result["real_train_cases"] == 2
    assert "ci" in mixed["versus_real"] and "wilcoxon_p" in mixed["versus_real"]
    assert result["offline_source"] == "given" and result["runs"]["offline"][0]["train_cases"] == 4
    kept = sorted(path.name for path in (tmp_path / "runs").iterdir())
    assert len(kept) == 3 and all(name.endswith(("-seed-0-real.json", "-seed-0-offline.json",
                                                 "-seed-0-real-offline.json")) for name in kept)
    next((tmp_path / "runs").glob("*-seed-0-offline.json")).unlink()  # as if killed while training 'offline'
    said = []
    again = segment_study(real, [], test, recipe, progress=said.append, **study)
    trained = {m.split(":")[0] for m in said if "iteration" in m}
    assert trained == {"seed 0, offline"}  # only the run not finished trained
    assert [m for m in said if "iteration" not in m] == [
        "seed 0, real: finished by an earlier run of this study, kept", "seed 0: training 'offline'",
        "seed 0, real + offline: finished by an earlier run of this study, kept"]
    assert again == result  # training is seeded: the offline arm trained again gives the same model
    other = segment_study(real, [], test, dataclasses.replace(recipe, iterations=2),
                          **{**study, "arms": ("real",)})  # other settings: nothing is reused
    assert other["runs"]["real"][0]["training"]["iterations"] == 2 and len(list((tmp_path / "runs").iterdir())) == 4
    with pytest.raises(MedSynthInputError, match="test case 1"):
        segment_study(cases([7]), [], cases([7, 8]), recipe, arms=("real",))  # a test scan is a training scan


def test_on_the_fly_cases_come_from_the_monai_transform_in_each_healthy_organ(phantom):
    """The study's synthetic cases are RandSynthLesion's (one mechanism with a MONAI pipeline):
    lesions inside the organ of the drawn healthy case, on that case's grid, the same for the
    same generator."""
    pytest.importorskip("monai")
    from SynthEvaluateLib.studies.segment_study import HealthyCase, SyntheticCases

    liver = phantom.organ_mask("liver")
    other = make_ct_phantom(shape=(40, 80, 80), spacing=(2.0, 2.0, 3.0), seed=9)
    healthy = [HealthyCase(phantom.image, liver, phantom.geometry),
               HealthyCase(other.image, other.organ_mask("liver"), other.geometry)]
    make = SyntheticCases(healthy, "ct-liver")
    made = [make(np.random.default_rng(seed)) for seed in range(6)]
    for image, lesions, organ, spacing in made:
        source = healthy[0] if image.shape == phantom.image.shape else healthy[1]
        assert lesions.any() and not np.any(lesions & ~source.organ)
        assert np.array_equal(spacing, source.geometry.spacing_kji) and organ is source.organ
        assert np.any(image != source.image) and np.all(image[~ndimage.binary_dilation(lesions, iterations=6)]
                                                        == source.image[~ndimage.binary_dilation(lesions, iterations=6)])
    assert {m[0].shape for m in made} == {phantom.image.shape, other.image.shape}
    again = make(np.random.default_rng(3))
    assert np.array_equal(again[0], made[3][0]) and np.array_equal(again[1], made[3][1])


def test_segment_study_compares_real_on_the_fly_and_offline(tmp_path, capsys):
    """The CLI end to end on CSVs of phantom cases (real annotated = SynthLesion lesions with a
    different seed stream; healthy = the phantom), at a tiny budget: every arm trains, is
    scored on the same test cases, and is paired against 'real'."""
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import write_volume

    pytest.importorskip("monai")
    rows = {"real": [], "test": [], "healthy": [], "validation": []}
    for n in range(10):
        phantom = make_ct_phantom(shape=(24, 64, 64), spacing=(2.5, 2.5, 4.0), seed=n)
        liver = phantom.organ_mask("liver")
        write_volume(tmp_path / f"h{n}.nii.gz", phantom.image, phantom.geometry)
        write_volume(tmp_path / f"o{n}.nii.gz", liver.astype(np.uint8), phantom.geometry)
        if n < 2:
            rows["healthy"].append(f"h{n}.nii.gz,o{n}.nii.gz,1")
            continue
        result = synthesize_lesions(phantom.image, liver, phantom.geometry,
                                    LesionConfig(size_class="small", count=2, lesion_type="hypo", contrast=-60), 100 + n)
        write_volume(tmp_path / f"a{n}.nii.gz", result.image, phantom.geometry)
        write_volume(tmp_path / f"l{n}.nii.gz", result.label_map(), phantom.geometry)
        rows["real" if n < 4 else "test" if n < 9 else "validation"].append(f"a{n}.nii.gz,l{n}.nii.gz")
    for name, header in (("real", "image,label"), ("test", "image,label"), ("healthy", "image,organ_mask,organ_label"),
                         ("validation", "image,label")):
        (tmp_path / f"{name}.csv").write_text(header + "\n" + "\n".join(rows[name]) + "\n")
    code = main(["evaluate", "segment-study", "--real-train", str(tmp_path / "real.csv"), "--healthy",
                 str(tmp_path / "healthy.csv"), "--test", str(tmp_path / "test.csv"), "--lesion-label", "2",
                 "--iterations", "4", "--offline-cases", "2", "--validation", str(tmp_path / "validation.csv"),
                 "--validate-every", "2", "--out", str(tmp_path / "report")])
    assert code == 0, capsys.readouterr().err
    import json

    result = json.loads((tmp_path / "report" / "results.json").read_text())
    assert set(result["summary"]) == {"real", "on-the-fly", "real + on-the-fly", "offline"}
    assert result["test_cases"] == 5 and result["runs"]["on-the-fly"][0]["on_the_fly"]
    assert "versus_real" in result["runs"]["offline"][0]
    assert [b["diameter_to_mm"] for b in result["runs"]["real"][0]["sensitivity_by_size"]][:4] == [10.0, 20.0, 40.0, 80.0]
    run = result["runs"]["offline"][0]
    assert run["region"] == "organ"  # the label maps hold the liver (1) around the lesions (2): looked inside it
    assert run["false_positives_per_case"] <= run["false_positives_per_case_in_region"]
    assert result["verdict"] and "vs real" in result["verdict"]
    pooled = result["pooled"]["offline"]  # one seed: the pooled comparison is that seed's
    assert pooled["seeds"] == 1 and pooled["margin"] == 0.05 and pooled["ci"] == run["versus_real"]["ci"]
    assert pooled["conclusion"] in result["verdict"]
    assert "ETA" in capsys.readouterr().err  # progress inside each arm
    assert result["validation_cases"] == 1
    for runs in result["runs"].values():  # each arm kept its best model on the validation case
        assert runs[0]["training"]["best_iteration"] in (2, 4) and runs[0]["training"]["validation_cases"] == 1
    # a validation case that is also a test case is refused before training
    (tmp_path / "overlap.csv").write_text("image,label\n" + rows["test"][0] + "\n")
    code = main(["evaluate", "segment-study", "--healthy", str(tmp_path / "healthy.csv"), "--test",
                 str(tmp_path / "test.csv"), "--lesion-label", "2", "--arms", "on-the-fly", "--validation",
                 str(tmp_path / "overlap.csv"), "--out", str(tmp_path / "report2")])
    assert code == 2 and "validation case 1" in capsys.readouterr().err


def test_segmenter_keeps_its_best_validated_model_and_stops_early_or_at_its_budget(phantom):
    """Validation every few iterations: the model returned is the best one seen; with nothing
    to learn (learning rate 0) patience ends training at the second validation; a budget ends
    it at the first check after the time is up."""
    from SynthEvaluateLib.metrics.segmentation import dice
    from SynthEvaluateLib.recipes.segmenter import SegmenterRecipe, train_segmenter

    pytest.importorskip("monai")
    liver = phantom.organ_mask("liver")
    made = [synthesize_lesions(phantom.image, liver, phantom.geometry,
                               LesionConfig(size_class="small", count=2, lesion_type="hypo", contrast=-80), s)
            for s in (1, 2, 3)]
    volumes, labels = [m.image for m in made[:2]], [m.lesion_labels > 0 for m in made[:2]]
    spacing = phantom.geometry.spacing_kji
    validation = [(made[2].image, made[2].lesion_labels > 0, liver | (made[2].lesion_labels > 0), spacing)]
    base = dict(channels=(8, 16, 32), patch_size=(32, 32), batch_size=4, validate_every=20)
    model = train_segmenter(volumes, labels, SegmenterRecipe(**base, iterations=80), seed=0,
                            organs=[liver, liver], spacings=[spacing, spacing], validation=validation)
    scores = [e["validation_dice"] for e in model.history if "validation_dice" in e]
    assert len(scores) == 4 and model.training["validation_dice"] == pytest.approx(max(scores))
    assert model.training["best_iteration"] == 20 * (int(np.argmax(scores)) + 1)
    kept = dice(model.predict(validation[0][0], validation[0][2], spacing).astype(bool), validation[0][1])
    assert kept == pytest.approx(max(scores))  # the returned weights are the best ones
    still = train_segmenter(volumes, labels, SegmenterRecipe(**{**base, "validate_every": 5}, iterations=200,
                                                             learning_rate=0.0, patience=1),
                            seed=0, validation=validation)
    assert still.training == {**still.training, "iterations": 10, "stopped_by": "early stopping", "best_iteration": 5}
    quick = train_segmenter(volumes, labels, SegmenterRecipe(**base, iterations=10_000, budget_minutes=1e-4), seed=0)
    assert quick.training["stopped_by"] == "budget" and quick.training["iterations"] == 10


def dark_segmenter(image, geometry):
    """A module-level (picklable) segmenter: voxels well below the phantom liver's 100 HU."""
    return ndimage.gaussian_filter(image.astype(np.float32), 1.0) < 70


def test_robustness_cases_run_on_worker_processes_with_the_same_result(phantom):
    liver = phantom.organ_mask("liver")
    options = dict(size_classes=("small",), contrasts=(-70.0,), per_stratum=4, seed=3)
    serial = robustness_benchmark(dark_segmenter, [(phantom.image, liver, phantom.geometry)], **options)
    parallel = robustness_benchmark(dark_segmenter, [(phantom.image, liver, phantom.geometry)], workers=2, **options)
    assert serial["strata"] == parallel["strata"]


def test_segment_study_refuses_bad_healthy_and_test_cases_before_training(tmp_path, capsys):
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import write_volume

    phantom = make_ct_phantom(shape=(24, 64, 64), spacing=(2.5, 2.5, 4.0), seed=1)
    write_volume(tmp_path / "h.nii.gz", phantom.image, phantom.geometry)
    tiny = np.zeros(phantom.image.shape, np.uint8)
    tiny[12, 30:32, 30:32] = 1  # an organ of 4 voxels: no lesion fits
    write_volume(tmp_path / "tiny.nii.gz", tiny, phantom.geometry)
    write_volume(tmp_path / "other_grid.nii.gz", tiny[:, :60], phantom.geometry)
    label = phantom.organ_mask("liver").astype(np.uint8)
    write_volume(tmp_path / "l.nii.gz", label, phantom.geometry)  # liver only: no lesion value 2 anywhere
    (tmp_path / "test.csv").write_text("image,label\nh.nii.gz,l.nii.gz\n")
    for mask, words in (("tiny.nii.gz", "Healthy case small: "), ("other_grid.nii.gz", "organ mask of healthy case small")):
        (tmp_path / "healthy.csv").write_text(f"case_id,image,organ_mask\nsmall,h.nii.gz,{mask}\n")
        (tmp_path / "test_ok.csv").write_text("image,label\nh.nii.gz,h_label.nii.gz\n")
        lesion = label.copy()
        lesion[10:13, 30:33, 30:33] = 2
        write_volume(tmp_path / "h_label.nii.gz", lesion, phantom.geometry)
        code = main(["evaluate", "segment-study", "--healthy", str(tmp_path / "healthy.csv"), "--test",
                     str(tmp_path / "test_ok.csv"), "--lesion-label", "2", "--arms", "on-the-fly", "--iterations", "2",
                     "--out", str(tmp_path / "r")])
        assert code == 2 and words in capsys.readouterr().err
    code = main(["evaluate", "segment-study", "--healthy", str(tmp_path / "healthy.csv"), "--test",
                 str(tmp_path / "test.csv"), "--lesion-label", "2", "--arms", "on-the-fly", "--out", str(tmp_path / "r")])
    assert code == 2 and "holds the lesion label 2" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_a_common_spacing_lets_a_model_read_scans_of_another_resolution(phantom):
    """Trained on the phantom's grid with spacing_mm set to it, the recipe reads a scan of
    twice the in-plane resolution by resampling it to that spacing and its mask back: the
    mask has the scan's shape and finds what the model finds on its own grid."""
    from scipy import ndimage

    from SynthEvaluateLib.recipes.segmenter import (SegmenterRecipe, prepare_case, resampling_factors,
                                                      train_segmenter)
    from SynthLesionLib import MedSynthInputError

    pytest.importorskip("monai")
    liver = phantom.organ_mask("liver")
    spacing = np.asarray(phantom.geometry.spacing_kji, float)
    config = LesionConfig(size_class="medium", count=2, lesion_type="hypo", contrast=-50)
    train = [synthesize_lesions(phantom.image, liver, phantom.geometry, config, seed) for seed in range(4)]
    test = synthesize_lesions(phantom.image, liver, phantom.geometry, config, seed=99)
    recipe = SegmenterRecipe(channels=(8, 16, 32), patch_size=(32, 32), iterations=300, batch_size=8,
                             learning_rate=3e-3, spacing_mm=(0.0, float(spacing[1]), float(spacing[2])))
    fine = np.array([1.0, 2.0, 2.0])
    assert np.allclose(resampling_factors(recipe, spacing / fine), 1 / fine)  # 0 keeps the slice axis
    assert resampling_factors(recipe, spacing) is None
    with pytest.raises(MedSynthInputError, match="spacing"):
        resampling_factors(recipe, None)
    # the phantom's grid called twice as fine: prepared at the recipe's spacing, a quarter of the voxels
    prepared = prepare_case(test.image, test.lesion_labels, liver, recipe, spacing / fine)
    assert 0.15 < prepared["label"].sum() / (test.lesion_labels > 0).sum() < 0.35
    model = train_segmenter([r.image for r in train], [r.lesion_labels for r in train], recipe, seed=0,
                            spacings=[spacing] * len(train))
    image = ndimage.zoom(test.image.astype(np.float32), fine, order=1)
    truth = ndimage.zoom((test.lesion_labels > 0).astype(np.uint8), fine, order=0) > 0
    predicted = model.predict(image, spacing_kji=spacing / fine)
    assert predicted.shape == image.shape
    # the fine scan is read as well as the model reads its own grid: the same lesions found
    native = model.predict(test.image.astype(np.float32), spacing_kji=spacing)
    assert dice(native, test.lesion_labels > 0) > 0.3
    assert dice(predicted, truth) > dice(native, test.lesion_labels > 0) - 0.1
    fine_labels = ndimage.zoom(test.lesion_labels, fine, order=0)
    for n in (1, 2):
        assert abs(predicted[fine_labels == n].mean() - native[test.lesion_labels == n].mean()) < 0.15
    assert max(predicted[fine_labels == n].mean() for n in (1, 2)) > 0.5


def test_an_organ_mask_column_says_where_to_look_when_the_label_map_holds_only_lesions(tmp_path, capsys):
    """Case lists may name each case's organ mask (e.g. TotalSegmentator's, several organs, with
    organ_label): the segment study then looks and counts inside that organ; a mask without the
    organ is refused by line before anything trains."""
    pytest.importorskip("monai")
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import write_volume
    from SynthEvaluateLib.cli.segment_study_cli import annotated_cases

    phantom = make_ct_phantom(shape=(24, 64, 64), spacing=(2.5, 2.5, 4.0), seed=3)
    liver = phantom.organ_mask("liver")
    result = synthesize_lesions(phantom.image, liver, phantom.geometry,
                                LesionConfig(size_class="small", count=1, contrast=-60), 7)
    write_volume(tmp_path / "ct.nii.gz", result.image, phantom.geometry)
    write_volume(tmp_path / "tumour.nii.gz", (result.lesion_labels > 0).astype(np.uint8), phantom.geometry)
    write_volume(tmp_path / "organs.nii.gz", phantom.organs.astype(np.uint8), phantom.geometry)  # liver = 1, others
    (tmp_path / "cases.csv").write_text("image,label,organ_mask,organ_label\nct.nii.gz,tumour.nii.gz,organs.nii.gz,1\n")
    (case,) = annotated_cases(tmp_path / "cases.csv", None)
    assert np.array_equal(case.organ, liver | (result.lesion_labels > 0)) and np.array_equal(case.lesions,
                                                                                          result.lesion_labels > 0)
    (tmp_path / "plain.csv").write_text("image,label\nct.nii.gz,tumour.nii.gz\n")
    assert annotated_cases(tmp_path / "plain.csv", None)[0].organ is None  # nothing says where: the whole scan
    (tmp_path / "wrong.csv").write_text("image,label,organ_mask,organ_label\nct.nii.gz,tumour.nii.gz,organs.nii.gz,9\n")
    code = main(["evaluate", "segment-study", "--healthy", str(tmp_path / "wrong.csv"), "--test",
                 str(tmp_path / "wrong.csv"), "--arms", "on-the-fly", "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 2 and "Line 2" in err and "organ_label" in err and "Traceback" not in err
    assert not (tmp_path / "report").exists()


def test_fresh_cases_are_made_in_the_background_the_same_whatever_the_timing():
    """The on-the-fly pool (MONAI SmartCacheDataset): case n comes from its own seeded generator,
    so slow or fast making gives the same cases in the same order; a case that cannot be made
    stops training with its own error instead of hanging in the thread."""
    pytest.importorskip("monai")
    import time

    from MedSynthCommonLib.errors import MedSynthInputError
    from SynthEvaluateLib.recipes.fresh_cases import FreshCasePool

    def contents(delays):
        delay = iter(delays)

        def make(generator):
            time.sleep(next(delay, 0.0))
            return (float(generator.random()),)

        with FreshCasePool(make, lambda value: {"value": value}, size=3, refreshes=4, seed=7) as pool:
            seen = [[pool[i]["value"] for i in range(3)]]
            for _ in range(4):
                pool.refresh()
                seen.append([pool[i]["value"] for i in range(3)])
        return seen

    fast, slow = contents([0.0] * 10), contents([0.0, 0.0, 0.0, 0.2, 0.0, 0.3, 0.1])
    assert fast == slow
    assert fast[1] == fast[0][1:] + [fast[1][2]] and len({v for row in fast for v in row}) == 7  # oldest out, new in

    def failing(generator):
        raise MedSynthInputError("No lesion fits the healthy organs given; check the organ masks.")

    with pytest.raises(MedSynthInputError, match="No lesion fits"):
        with FreshCasePool(failing, lambda *made: {}, size=2, refreshes=2, seed=0):
            pass
    calls = iter(range(100))

    def fails_later(generator):
        if next(calls) >= 2:
            raise MedSynthInputError("No lesion fits the healthy organs given; check the organ masks.")
        return (0.0,)

    started = time.perf_counter()
    with pytest.raises(MedSynthInputError, match="No lesion fits"):
        with FreshCasePool(fails_later, lambda value: {"value": value}, size=2, refreshes=3, seed=0) as pool:
            pool.refresh()
    assert time.perf_counter() - started < 30


def test_on_the_fly_training_shares_the_cores_by_the_cases_size_and_gives_them_back(phantom):
    pytest.importorskip("monai")
    import torch

    from SynthEvaluateLib.recipes.segmenter import (LEAVE_A_CORE_FROM_VOXELS, SegmenterRecipe,
                                                    _threads_beside_case_making, train_segmenter)

    liver = phantom.organ_mask("liver")
    made = synthesize_lesions(phantom.image, liver, phantom.geometry, LesionConfig(size_class="medium"), seed=2)
    before = torch.get_num_threads()
    model = train_segmenter([], [], SegmenterRecipe(channels=(4, 8), patch_size=(32, 32), iterations=6, batch_size=2),
                            seed=0, fresh_cases=lambda generator: (made.image, made.lesion_labels > 0, liver,
                                                                   phantom.geometry.spacing_kji), pool_size=2)
    assert torch.get_num_threads() == before  # given back
    assert model.training["torch_threads_beside_case_making"] == before  # a small scan: no core set aside
    if before > 1:
        assert _threads_beside_case_making(LEAVE_A_CORE_FROM_VOXELS) == before - 1
        assert _threads_beside_case_making(LEAVE_A_CORE_FROM_VOXELS - 1) == before
    # cancelling stops training and the pool's thread at once, and gives the cores back
    import threading
    import time

    def replacement_threads() -> set:
        return {t for t in threading.enumerate() if "replacement" in repr(getattr(t, "_target", ""))}

    # only this run's threads count: an earlier test in this process (the CLI fuzz, whose alarm
    # interrupts a command anywhere, shutdown included) may have left one behind
    earlier = replacement_threads()
    asked = iter(range(100))
    started = time.perf_counter()
    with pytest.raises(InterruptedError):
        train_segmenter([], [], SegmenterRecipe(channels=(4, 8), patch_size=(32, 32), iterations=500, batch_size=2),
                        seed=0, fresh_cases=lambda generator: (made.image, made.lesion_labels > 0, liver,
                                                               phantom.geometry.spacing_kji), pool_size=2,
                        should_stop=lambda: next(asked) >= 5)
    assert time.perf_counter() - started < 30 and torch.get_num_threads() == before
    time.sleep(0.5)
    assert not replacement_threads() - earlier


def test_a_segment_study_killed_mid_run_resumes_where_it_stopped(tmp_path):
    """kill -9 during the second run (seed 1) of a study: the first run's record is whole in the
    report folder's runs/; the same command again keeps it, trains only seed 1, writes the
    report and removes runs/."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from MedSynthCommonLib.imageio import write_volume

    pytest.importorskip("monai")
    rows = {"real": [], "test": []}
    for n in range(5):
        phantom = make_ct_phantom(shape=(24, 64, 64), spacing=(2.5, 2.5, 4.0), seed=n)
        result = synthesize_lesions(phantom.image, phantom.organ_mask("liver"), phantom.geometry,
                                    LesionConfig(size_class="small", count=2, lesion_type="hypo", contrast=-60), 100 + n)
        write_volume(tmp_path / f"a{n}.nii.gz", result.image, phantom.geometry)
        write_volume(tmp_path / f"l{n}.nii.gz", result.label_map(), phantom.geometry)
        rows["real" if n < 2 else "test"].append(f"a{n}.nii.gz,l{n}.nii.gz")
    for name in rows:
        (tmp_path / f"{name}.csv").write_text("image,label\n" + "\n".join(rows[name]) + "\n")
    command = [sys.executable, "-m", "MedSynthCommonLib.cli", "evaluate", "segment-study", "--real-train",
               str(tmp_path / "real.csv"), "--test", str(tmp_path / "test.csv"), "--lesion-label", "2", "--arms", "real",
               "--seeds", "0", "1", "--iterations", "150", "--out", str(tmp_path / "report")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "report" / "runs"
    deadline = time.time() + 240
    while not list(runs.glob("*-seed-0-real.json")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert [p.name.split("-", 1)[1] for p in runs.iterdir()] == ["seed-0-real.json"]  # seed 1 was still training
    assert not (tmp_path / "report" / "results.json").exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "seed 0, real: finished by an earlier run of this study, kept" in again.stderr
    assert "seed 0, real: iteration" not in again.stderr and "seed 1, real: iteration 150/150" in again.stderr
    result = json.loads((tmp_path / "report" / "results.json").read_text())
    assert [run["seed"] for run in result["runs"]["real"]] == [0, 1] and not runs.exists()


def test_a_case_stored_in_another_order_is_the_same_case(phantom):
    """Every case of a study is kept in one storage order (as the CT findings scans are): a
    scan stored mirrored (right-to-left, bottom-to-top) gives the arrays and grid of the scan
    stored the usual way, so the segmenter trains and is scored on one anatomy."""
    from MedSynthCommonLib.geometry import Geometry
    from SynthEvaluateLib.studies.segment_study import AnnotatedCase, HealthyCase

    liver = phantom.organ_mask("liver")
    made = synthesize_lesions(phantom.image, liver, phantom.geometry, LesionConfig(size_class="small", count=2), 4)
    g, (depth, _, width) = phantom.geometry, phantom.image.shape
    mirrored = Geometry(g.kji_to_ras(np.array([depth - 1, 0, width - 1], float)), g.spacing,
                        g.direction @ np.diag([-1.0, 1.0, -1.0]))
    flip = (slice(None, None, -1), slice(None), slice(None, None, -1))
    usual = AnnotatedCase(made.image, made.lesion_labels > 0, g, liver)
    other = AnnotatedCase(made.image[flip], (made.lesion_labels > 0)[flip], mirrored, liver[flip])
    for a, b in ((usual.image, other.image), (usual.lesions, other.lesions), (usual.organ, other.organ)):
        assert np.array_equal(a, b) and b.flags.c_contiguous
    assert np.allclose(other.geometry.origin, usual.geometry.origin)
    assert np.allclose(other.geometry.direction, usual.geometry.direction)
    healthy = HealthyCase(phantom.image[flip], liver[flip], mirrored)
    assert np.array_equal(healthy.image, phantom.image) and np.array_equal(healthy.organ, liver)


def test_batches_made_ahead_in_a_thread_train_the_same_model(phantom):
    """``prefetch_batches``: the patches are made in a background thread while the network trains;
    the same batches in the same order give the same weights, with a pool of on-the-fly cases too;
    a case that cannot be made stops training with its error (not a quietly shorter run)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    from MedSynthCommonLib.errors import MedSynthInputError
    from SynthEvaluateLib.recipes.segmenter import SegmenterRecipe, train_segmenter

    liver = phantom.organ_mask("liver")
    made = synthesize_lesions(phantom.image, liver, phantom.geometry, LesionConfig(size_class="small", count=2), 1)
    spacing = phantom.geometry.spacing_kji

    def fresh(rng):
        result = synthesize_lesions(phantom.image, liver, phantom.geometry, LesionConfig(size_class="small"),
                                    int(rng.integers(1000)))
        return result.image, result.lesion_labels > 0, liver, spacing

    def weights(prefetch: int, fresh_cases=fresh):
        recipe = SegmenterRecipe(channels=(4, 8), patch_size=(32, 32), iterations=12, batch_size=4,
                                 prefetch_batches=prefetch)
        model = train_segmenter([made.image], [made.lesion_labels > 0], recipe, seed=0, fresh_cases=fresh_cases,
                                pool_size=2, refresh_probability=0.25, organs=[liver], spacings=[spacing])
        return [v.clone() for v in model.model.state_dict().values()]

    assert all(torch.equal(a, b) for a, b in zip(weights(0), weights(2)))

    calls = []

    def failing(rng):  # the pool's first two cases are made; the one made while training fails
        calls.append(1)
        if len(calls) > 2:
            raise MedSynthInputError("no lesion fits")
        return fresh(rng)

    with pytest.raises(MedSynthInputError, match="no lesion fits"):
        weights(2, failing)
    assert len(calls) >= 3


def test_prefetched_items_keep_their_order_and_their_errors():
    pytest.importorskip("monai")
    from MedSynthCommonLib.threads import prefetched

    def items():
        yield from range(5)
        raise ValueError("item 5 could not be made")

    got = []
    with pytest.raises(ValueError, match="item 5"):
        for item in prefetched(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4] and list(prefetched(iter(range(3)), depth=0)) == [0, 1, 2]
