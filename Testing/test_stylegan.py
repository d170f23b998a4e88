"""The style-based generator end to end: trained from a labelled folder with the CLI, sampled
into a labelled set, and its classes recognised by a classifier trained on the real classes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from MedSynthCommonLib.cli import main  # noqa: E402
from SynthEvaluateLib.recipes.data import Preprocessing, load_folder  # noqa: E402
from SynthEvaluateLib.studies.protocols import evaluate_classifier  # noqa: E402
from SynthEvaluateLib.recipes.training import ClassifierRecipe, train_classifier  # noqa: E402
from SynthTranslateLib.apply import sample_images  # noqa: E402
from SynthTranslateLib.model_dir import load_model  # noqa: E402
from conftest import write_two_classes  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("stylegan")
    write_two_classes(root / "real")
    assert main(["translate", "train", "--model", "stylegan", "--data", str(root / "real"), "--image-size", "32",
                 "--features", "8", "--batch-size", "16", "--iterations", "600", "--checkpoint-every", "300",
                 "--sample-every", "300", "--window", "0", "255", "--condition-column", "contrast",
                 "--out", str(root / "model")]) == 0
    return root


def test_generated_classes_are_recognised_by_a_classifier_trained_on_real_ones(trained, capsys):
    out = trained / "samples"
    assert main(["translate", "sample", "--model-dir", str(trained / "model"), "--count", "30", "--truncation", "0.8",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "labels.csv").open(encoding="utf-8")))
    assert len(rows) == 60 and {r["label"] for r in rows} == {"top", "bottom"}
    record = json.loads((out / "sampling.json").read_text(encoding="utf-8"))
    assert record["truncation"] == 0.8 and record["images"] == 60 and len(record["model_card_sha256"]) == 64
    preprocessing = Preprocessing(size=32, window=(0.0, 255.0))
    real = load_folder(trained / "real", preprocessing=preprocessing)
    synthetic = load_folder(out, preprocessing=preprocessing, source="synthetic", class_names=real.class_names)
    classifier = train_classifier(real, ClassifierRecipe(channels=(8, 16), epochs=4, batch_size=16), seed=0)
    assert evaluate_classifier(classifier, synthetic)["accuracy"]["value"] >= 0.9
    card = json.loads((trained / "model" / "card.json").read_text(encoding="utf-8"))
    assert card["config"]["domains"] == ["bottom", "top"] and card["iterations"] == 600
    assert card["config"]["attributes"] == ["contrast"] and 120 < card["config"]["attribute_stats"][0][0] < 140
    assert {"contrast"} <= set(rows[0]) and float(rows[0]["contrast"]) == pytest.approx(card["config"]["attribute_stats"][0][0])


def test_a_numeric_attribute_conditions_the_images(trained, tmp_path):
    model = load_model(trained / "model")
    faint = sample_images(model, 30, "top", 1.0, seed=3, attributes={"contrast": 70})
    strong = sample_images(model, 30, "top", 1.0, seed=3, attributes={"contrast": 190})
    peak = lambda images: np.percentile(images.reshape(len(images), -1), 97, axis=1).mean()  # the disc  # noqa: E731
    assert peak(strong) > peak(faint) + 30, (peak(faint), peak(strong))  # measured: 138 vs 196
    assert main(["translate", "sample", "--model-dir", str(trained / "model"), "--attribute", "dose=3",
                 "--out", str(tmp_path / "bad")]) == 2


def test_sampling_is_seeded_and_truncation_narrows_the_variety(trained):
    model = load_model(trained / "model")
    a, b = sample_images(model, 12, "top", 1.0, seed=4), sample_images(model, 12, "top", 1.0, seed=4)
    assert np.array_equal(a, b) and a.shape == (12, 32, 32) and a.dtype == np.float32
    assert not np.array_equal(a, sample_images(model, 12, "top", 1.0, seed=5))
    narrow = sample_images(model, 12, "top", 0.3, seed=4)
    assert narrow.std(axis=0).mean() < a.std(axis=0).mean()
    assert 0 <= a.min() and a.max() <= 255  # the training window's units


def test_sampling_refuses_what_it_cannot_do(trained, tmp_path, capsys):
    assert main(["translate", "sample", "--model-dir", str(trained / "model"), "--class", "left",
                 "--out", str(tmp_path / "s")]) == 2
    assert "Unknown class(es) ['left']" in capsys.readouterr().err
    assert not (tmp_path / "s" / "labels.csv").exists()
    assert main(["translate", "apply", "--model-dir", str(trained / "model"), "--image", str(trained / "real" / "000.png"),
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "translate sample" in capsys.readouterr().err


def test_samples_become_a_volume_node_with_their_record(trained, scene):
    from MedSynthCommonLib.mrml import array_of
    from SynthTranslateLib.logic import model_summary, sample_volume_node

    assert model_summary(trained / "model") == {"model": "stylegan", "domains": ["bottom", "top"], "conditioned": False,
                                                "samples": True, "quality": ""}  # no evaluate generator --record yet
    node = sample_volume_node(scene, trained / "model", "bottom", count=5, truncation=0.7, seed=2)
    assert array_of(node).shape == (5, 32, 32)
    record = json.loads(node.GetAttribute("MedSynth.samples"))
    assert record["class"] == "bottom" and record["count"] == 5 and len(record["model_card_sha256"]) == 64
    again = sample_volume_node(scene, trained / "model", "bottom", count=5, truncation=0.7, seed=2,
                               output_volume_node=node)
    assert again is node and scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 1
