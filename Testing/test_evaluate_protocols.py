"""Protocols with real (tiny) training runs: they must tell good synthetic data from bad."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from SynthEvaluateLib.recipes.data import ImageSet, Preprocessing, split  # noqa: E402
from SynthEvaluateLib.studies.protocols import augmentation_study, evaluate_classifier, gan_train_test  # noqa: E402
from SynthEvaluateLib.recipes.training import ClassifierRecipe, train_classifier  # noqa: E402
from SynthLesionLib import MedSynthInputError  # noqa: E402

TINY = ClassifierRecipe(channels=(8, 16), epochs=6, batch_size=8, learning_rate=3e-3)


def _toy_set(n: int, seed: int, source: str = "real", shuffle_labels: bool = False) -> ImageSet:
    """Class 0: a dark disc on noise; class 1: a bright disc.  Learnable in a few epochs.
    ``shuffle_labels``: labels that tell nothing about the images (exactly half of each class
    shows each disc), the model of useless synthetic data."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:16, :16]
    images, labels = [], []
    for i in range(n):
        label = i % 2
        bright = (i // 2) % 2 if shuffle_labels else label
        cy, cx = rng.uniform(5, 11, 2)
        disc = ((y - cy) ** 2 + (x - cx) ** 2) <= 9
        image = 0.5 + rng.normal(0, 0.08, (16, 16)) + (0.3 if bright else -0.3) * disc
        images.append(np.clip(image, 0, 1))
        labels.append(label)
    labels = np.array(labels)
    return ImageSet(np.array(images), labels, ["dark", "bright"], [f"{source}{seed}_{i}" for i in range(n)],
                    source, Preprocessing(size=16))


def test_training_is_seeded_and_leaves_global_rng_alone():
    data = _toy_set(24, 0)
    state = torch.get_rng_state()
    a = train_classifier(data, TINY, seed=3).predict_proba(data.images)
    b = train_classifier(data, TINY, seed=3).predict_proba(data.images)
    assert np.array_equal(a, b)
    assert torch.equal(state, torch.get_rng_state())


def test_the_classifier_reads_its_images_through_a_monai_dataset_and_dataloader_workers():
    """Items of a ``monai.data.Dataset``, augmented by MONAI transforms (whole-pixel shifts of up to
    6 % of the size, intensity +-5 %, clipped to [0, 1]); batches from a MONAI ``DataLoader`` whose
    worker processes (here 2, real ones) draw the same augmentation on every run of a seed."""
    from SynthEvaluateLib.recipes.training import image_dataset

    data = _toy_set(24, 0)
    dataset = image_dataset(data, augment=True)
    dataset.transform.set_random_state(seed=0)
    shifted = 0
    for n in range(len(data.labels)):
        item = dataset[n]
        image = np.asarray(item["image"])[0]
        assert image.shape == (16, 16) and item["label"] == data.labels[n] and 0.0 <= image.min() <= image.max() <= 1.0
        # the original moved by whole pixels (up to 1 here: 6 % of 16 px) and scaled by 0.95-1.05
        padded = np.pad(data.images[n], 1, mode="edge")
        fitting = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                moved = padded[1 + dy:17 + dy, 1 + dx:17 + dx]
                scale = float(np.median(image[moved > 0.05] / moved[moved > 0.05]))
                if 0.95 <= scale <= 1.05 and np.abs(image - np.clip(moved * scale, 0, 1)).max() < 1e-5:
                    fitting.append((dy, dx))
        assert fitting, n
        shifted += (0, 0) not in fitting
    assert shifted >= 10  # most items moved (8 of 9 shifts do)
    assert image_dataset(data, augment=False)[0]["image"].shape == (1, 16, 16)
    with_workers = dataclasses.replace(TINY, epochs=2, workers=2)
    a = train_classifier(data, with_workers, seed=5).predict_proba(data.images)
    b = train_classifier(data, with_workers, seed=5).predict_proba(data.images)
    assert np.array_equal(a, b)


def test_classifier_learns_and_is_evaluated_with_intervals():
    train, test = _toy_set(64, 1), _toy_set(40, 2)
    metrics = evaluate_classifier(train_classifier(train, TINY, seed=0), test)
    assert metrics["accuracy"]["value"] > 0.85
    low, high = metrics["accuracy"]["ci"]
    assert low < metrics["accuracy"]["value"] <= high and low < 1.0  # 40 cases cannot prove perfection
    assert metrics["auc"]["auc"] > 0.9 and set(metrics["per_class"]) == {"dark", "bright"}


def test_gan_train_test_tells_good_from_useless_synthetic_data(tmp_path):
    """... and, interrupted after its first seed and run again, trains only the second seed."""
    real_train, real_test = _toy_set(48, 3), _toy_set(40, 4)
    good, useless = _toy_set(48, 5, "synthetic"), _toy_set(48, 6, "synthetic", shuffle_labels=True)
    sets = (real_train, real_test, good, _toy_set(30, 7, "synthetic"))
    good_run = gan_train_test(*sets, TINY, seeds=(0, 1), runs_dir=tmp_path)
    next(tmp_path.glob("*-seed-1.json")).unlink()  # as if killed while training seed 1
    said = []
    assert gan_train_test(*sets, TINY, seeds=(0, 1), progress=said.append, runs_dir=tmp_path) == good_run
    assert said == ["seed 0: finished by an earlier run of this study, kept", "seed 1: training on real",
                    "seed 1: training on synthetic"]
    bad_run = gan_train_test(real_train, real_test, useless, _toy_set(30, 8, "synthetic"), TINY, seeds=(0,))
    assert good_run["summary"]["baseline"]["accuracy"]["mean"] > 0.85
    assert good_run["summary"]["gan_train"]["accuracy"]["mean"] > 0.8
    assert bad_run["summary"]["gan_train"]["accuracy"]["mean"] < 0.7
    assert len(good_run["summary"]["gan_test"]["accuracy"]["per_seed"]) == 2


def test_augmentation_study_arms_and_paired_comparisons(tmp_path):
    real_train, test, synthetic = _toy_set(40, 9), _toy_set(30, 10), _toy_set(60, 11, "synthetic")
    study = dict(seeds=(0,), synthetic_ratios=(1.0,), real_counts=(None, 6), runs_dir=tmp_path)
    result = augmentation_study(real_train, synthetic, test, TINY, **study)
    # interrupted before its last two arms and run again: only those train, and the arms drawn
    # after a kept one draw what they drew before (the same result)
    for name in ("real6-synthetic-x1", "synthetic-only"):
        next(tmp_path.glob(f"*-seed-0-{name}.json")).unlink()
    said = []
    assert augmentation_study(real_train, synthetic, test, TINY, progress=said.append, **study) == result
    assert [m.endswith("kept") for m in said] == [True, True, True, False, False]
    names = set(result["summary"])
    assert names == {"real only", "real+synthetic x1", "real6 only", "real6+synthetic x1", "synthetic only"}
    run = result["runs"]["real6+synthetic x1"][0]
    assert run["train"]["images"] == 12  # 6 real + 6 synthetic
    comparison = run["versus_real6_only"]
    assert {"mcnemar", "accuracy_difference", "delong"} <= set(comparison)
    assert "versus_real_only" in result["runs"]["synthetic only"][0]
    pooled = result["pooled"]["real6+synthetic x1"]
    assert pooled["versus"] == "real6 only" and pooled["seeds"] == 1 and pooled["n"] == len(test)
    assert pooled["mean_difference"] == pytest.approx(comparison["accuracy_difference"]["value"])
    assert pooled["conclusion"] in result["verdict"] and "synthetic only vs real only" in result["verdict"]


def test_augmentation_pooled_over_seeds_averages_each_image_over_the_seeds():
    real_train, test, synthetic = _toy_set(40, 9), _toy_set(30, 10), _toy_set(60, 11, "synthetic")
    result = augmentation_study(real_train, synthetic, test, TINY, seeds=(0, 1, 2), synthetic_ratios=(1.0,),
                                synthetic_only=False, margin=0.2)
    pooled = result["pooled"]["real+synthetic x1"]
    per_seed = [run["versus_real_only"]["accuracy_difference"]["value"] for run in result["runs"]["real+synthetic x1"]]
    assert pooled["seeds"] == 3 and pooled["n"] == len(test) and pooled["margin"] == 0.2
    assert pooled["mean_difference"] == pytest.approx(np.mean(per_seed))  # the mean of the seeds' differences


def test_overlapping_test_set_is_refused():
    real = _toy_set(30, 12)
    train, test = split(real, 0.3, seed=0)
    leaky = test.concat(train.subset([0]), "real")
    with pytest.raises(MedSynthInputError, match="also appear in the training set"):
        gan_train_test(train, leaky, _toy_set(20, 13, "synthetic"), _toy_set(10, 14, "synthetic"), TINY, seeds=(0,))


def test_label_sets_that_differ_are_refused():
    model = train_classifier(_toy_set(24, 29), TINY, seed=0)
    other = _toy_set(10, 30)
    other.class_names = ["bright", "dark"]  # same images, classes in another order
    with pytest.raises(MedSynthInputError, match="differ from the model"):
        evaluate_classifier(model, other)


def test_bad_image_sets():
    with pytest.raises(MedSynthInputError, match="one class only"):
        train_classifier(_toy_set(10, 15).subset(np.arange(0, 10, 2)), TINY)
    with pytest.raises(MedSynthInputError, match="Labels must be"):
        ImageSet(np.zeros((2, 8, 8)), np.array([0, 2]), ["a", "b"], ["x", "y"])


def test_transfer_learning_from_a_state_dict_and_bad_checkpoints(tmp_path):
    data = _toy_set(32, 16)
    trained = train_classifier(data, TINY, seed=0)
    weights = tmp_path / "weights.pt"
    torch.save(trained.model.state_dict(), weights)
    start = ClassifierRecipe(**{**TINY.to_dict(), "epochs": 0, "pretrained_weights": str(weights)})
    restored = train_classifier(data, start, seed=5)  # no training: the loaded weights alone
    assert np.allclose(restored.predict_proba(data.images), trained.predict_proba(data.images), atol=1e-5)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(MedSynthInputError, match="Could not load pretrained weights"):
        train_classifier(data, ClassifierRecipe(**{**TINY.to_dict(), "pretrained_weights": str(corrupt)}))
    foreign = tmp_path / "foreign.pt"
    torch.save({"some.other.layer": torch.zeros(3)}, foreign)
    with pytest.raises(MedSynthInputError, match="another architecture"):
        train_classifier(data, ClassifierRecipe(**{**TINY.to_dict(), "pretrained_weights": str(foreign)}))


def _multilabel_set(n: int, seed: int):
    """Findings: 'upper spot' (bright disc in the upper third) and 'lower spot' (lower third),
    independently present."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:32, :32]
    images, findings = [], []
    for _ in range(n):
        image = 0.4 + rng.normal(0, 0.05, (32, 32))
        present = rng.random(2) < 0.5
        for k, (row, on) in enumerate(zip((6, 25), present)):
            if on:
                image += 0.4 * (((y - row) ** 2 + (x - rng.uniform(8, 24)) ** 2) <= 12)
        images.append(np.clip(image, 0, 1))
        findings.append(present.astype(int))
    return ImageSet.multilabel(np.array(images), np.array(findings), ["upper spot", "lower spot"],
                               [f"m{seed}_{i}" for i in range(n)])


def test_multilabel_findings_with_auc_and_locations():
    """2-D images train the findings model that reads CT volumes (spatial_dims 2): per-finding
    AUC, thresholds from its validation images, locations from its evidence maps."""
    from SynthEvaluateLib.findings.multilabel_2d import evaluate_multilabel, image_findings_recipe, train_image_findings

    train = _multilabel_set(96, 20)
    recipe = image_findings_recipe(train, epochs=12, batch_size=8, learning_rate=3e-3, augment=False)
    model = train_image_findings(train, recipe, seed=0)
    assert model.recipe.spatial_dims == 2 and model.training["validation"] == 24
    result = evaluate_multilabel(model, _multilabel_set(24, 21))
    assert all(result["per_finding"][name]["auc"]["value"] > 0.85 for name in ("upper spot", "lower spot"))
    rows = result["per_image"]
    upper = [r["region"] for r in rows if r["finding"] == "upper spot" and r["present_in_reference"]]
    lower = [r["region"] for r in rows if r["finding"] == "lower spot" and r["present_in_reference"]]
    assert upper and np.mean([r.startswith("upper") for r in upper]) >= 0.7
    assert lower and np.mean([r.startswith("lower") for r in lower]) >= 0.7


def test_fid_on_features_of_a_project_network_records_the_source():
    from SynthEvaluateLib.metrics.distances import frechet_distance, network_features

    model = train_classifier(_toy_set(48, 22), TINY, seed=0)
    real = network_features(model, _toy_set(40, 23).images)
    same = network_features(model, _toy_set(40, 24).images)
    shifted = network_features(model, np.clip(_toy_set(40, 25).images * 0.3, 0, 1))
    assert real["source"]["network"] == "small" and real["source"]["trained_on"]["images"] == 48
    assert frechet_distance(real["features"], same["features"]) < frechet_distance(real["features"], shifted["features"])


def test_translator_outputs_as_the_synthetic_set(tmp_path):
    from SynthEvaluateLib.studies.synthetic_sets import translated
    from SynthTranslateLib.config import TranslatorConfig
    from SynthTranslateLib.data import BatchSampler, Normalizer
    from SynthTranslateLib.training import train_translator

    data = _toy_set(12, 31)
    normalizer = Normalizer((0.0, 255.0))
    config = TranslatorConfig(model="stargan", image_size=16, features=4, batch_size=4, domains=data.class_names, n_critic=1)
    train_translator(config, BatchSampler("domains", 4, 0, image=normalizer.forward(data.images * 255), domain=data.labels),
                     normalizer, 2, tmp_path / "star")
    synthetic = translated(data, tmp_path / "star", seed=0)
    assert synthetic.images.shape == data.images.shape and 0 <= synthetic.images.min() <= synthetic.images.max() <= 1
    assert np.all(synthetic.labels != data.labels)  # every image moved to another domain, labelled so
    assert synthetic.source.startswith("stargan translations") and synthetic.ids[0].startswith("stargan:")


def test_multilabel_findings_are_judged_and_reported_as_ct_findings_are(tmp_path):
    """One per-finding judgement (``per_finding_metrics``) for 2-D images and 3-D scans: the
    same fields, a report table row per finding and metric, the called findings in per_image.csv."""
    import csv

    from sklearn.metrics import roc_auc_score

    from SynthEvaluateLib.findings.multilabel_2d import evaluate_multilabel, image_findings_recipe, train_image_findings
    from SynthEvaluateLib.report import write_report

    train = _multilabel_set(32, 40)
    model = train_image_findings(train, image_findings_recipe(train, channels=(8, 16), strides=(2, 2), epochs=3,
                                                              batch_size=8, augment=False), seed=0)
    test = _multilabel_set(24, 41)
    result = evaluate_multilabel(model, test, locate_findings=False)
    probabilities = model.predict_proba(list(test.images))
    for f, (name, finding) in enumerate(result["per_finding"].items()):
        truth = test.findings[:, f]
        assert set(finding) == {"auc", "roc", "sensitivity", "specificity", "threshold", "positives", "negatives"}
        assert finding["auc"]["value"] == pytest.approx(roc_auc_score(truth, probabilities[:, f]))
        assert finding["positives"] == truth.sum() and finding["positives"] + finding["negatives"] == len(truth)
        called = probabilities[:, f] >= model.thresholds[f]
        assert finding["sensitivity"]["n"] == truth.sum()
        assert finding["sensitivity"]["value"] == pytest.approx(called[truth == 1].mean())
    write_report(result, tmp_path / "report", "Findings")
    with open(tmp_path / "report" / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["finding"], r["metric"]) for r in rows] == [(n, m) for n in test.class_names
                                                          for m in ("auc", "sensitivity", "specificity", "threshold")]
    with open(tmp_path / "report" / "per_image.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(result["per_image"]) > 0
    assert (tmp_path / "report" / "roc_per_finding.png").exists()

    # the one findings model folder holds image models too; it refuses what it does not read
    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe, load_findings_model, save_findings_model

    loaded = load_findings_model(save_findings_model(tmp_path / "model", model))
    assert loaded.recipe.spatial_dims == 2 and loaded.thresholds == model.thresholds
    assert np.allclose(loaded.predict_proba(list(test.images)), probabilities, atol=1e-6)
    with pytest.raises(MedSynthInputError, match=r"reads a 2-D image \[y, x\]; got shape \(4, 32, 32\)"):
        loaded.predict_proba([np.zeros((4, 32, 32))])
    with pytest.raises(MedSynthInputError, match="judge it with `medsynth evaluate ct-findings`"):
        evaluate_multilabel(dataclasses.replace(loaded, recipe=FindingsRecipe()), test)
    with pytest.raises(MedSynthInputError, match="train the findings model on it"):
        train_classifier(train, TINY)
    with pytest.raises(MedSynthInputError, match="are for 3-D CT volumes"):
        image_findings_recipe(train, scanner_augment=True)
    with pytest.raises(MedSynthInputError, match=r"must be \[k, j, i\] \(volumes\) or \[y, x\]"):
        FindingsRecipe(input_shape=(8,))


def test_image_findings_command_trains_judges_locates_and_keeps_the_model(tmp_path, capsys):
    """``medsynth evaluate image-findings`` on a folder of PNGs with a findings CSV: per-finding AUC
    on held-out images, each call located, the model kept in OUT/model; a finding column that
    holds something other than 0/1 is refused naming its line."""
    import csv
    import json

    from PIL import Image

    from MedSynthCommonLib.cli import main
    from SynthEvaluateLib.recipes.findings_model import load_findings_model

    made = _multilabel_set(120, 30)
    folder = tmp_path / "images"
    folder.mkdir()
    rows = ["path,upper spot,lower spot"]
    for n, (image, found) in enumerate(zip(made.images, made.findings.astype(int))):
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"m{n}.png")
        rows.append(f"m{n}.png,{found[0]},{found[1]}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    command = ["evaluate", "image-findings", "--real", str(folder), "--findings", "upper spot", "lower spot",
               "--image-size", "32", "--window", "0", "255", "--epochs", "12", "--batch-size", "8", "--device", "cpu"]
    assert main([*command, "--out", str(tmp_path / "report")]) == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "report" / "results.json").read_text())
    assert result["cases"] == 36 and all(f["auc"]["value"] > 0.8 for f in result["per_finding"].values())
    with open(tmp_path / "report" / "per_image.csv") as handle:
        located = [r for r in csv.DictReader(handle) if r["present_in_reference"] == "True"]
    for finding, third in (("upper spot", "upper"), ("lower spot", "lower")):  # chance: 1 in 3
        regions = [r["region"] for r in located if r["finding"] == finding]
        assert regions and np.mean([r.startswith(third) for r in regions]) > 0.5  # (the library test: >= 0.7)
    model = load_findings_model(tmp_path / "report" / "model")
    assert model.findings == ["upper spot", "lower spot"] and model.recipe.input_shape == (32, 32)
    assert "ETA" in capsys.readouterr().err
    assert main([*command, "--out", str(tmp_path / "report")]) == 2  # its model is never overwritten
    assert "already holds a model" in capsys.readouterr().err
    (folder / "labels.csv").write_text("path,upper spot,lower spot\nm0.png,yes,0\n")
    assert main([*command, "--out", str(tmp_path / "report2")]) == 2
    assert "Line 2 of" in capsys.readouterr().err and not (tmp_path / "report2" / "results.json").exists()
    assert main([*command, "--out", str(folder / "report")]) == 2  # a report among the inputs: refused first
    assert "is inside --real" in capsys.readouterr().err and not (folder / "report").exists()
