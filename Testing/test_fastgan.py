"""The CPU generator (fastgan) and the generator report end to end: trained from a labelled
folder with the CLI, judged by ``evaluate generator`` (a classifier trained on the real
classes), its figures recorded in the model folder, and sampled on the fly by GAN-train/GAN-test."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from MedSynthCommonLib.cli import main  # noqa: E402
from SynthEvaluateLib.studies.synthetic_sets import sampled  # noqa: E402
from SynthEvaluateLib.recipes.data import Preprocessing  # noqa: E402
from SynthTranslateLib.apply import sample_images  # noqa: E402
from SynthTranslateLib.config import TranslatorConfig  # noqa: E402
from SynthTranslateLib.fastgan import diff_augment  # noqa: E402
from SynthTranslateLib.logic import model_summary  # noqa: E402
from SynthTranslateLib.model_dir import QUALITY, load_model, read_quality  # noqa: E402
from SynthTranslateLib.models import build_translator  # noqa: E402
from conftest import write_two_classes  # noqa: E402

JUDGE = ["--epochs", "4", "--batch-size", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastgan")
    write_two_classes(root / "real", count=120)
    assert main(["translate", "train", "--model", "fastgan", "--data", str(root / "real"), "--image-size", "32",
                 "--features", "8", "--batch-size", "16", "--iterations", "300", "--checkpoint-every", "150",
                 "--sample-every", "150", "--window", "0", "255", "--out", str(root / "model")]) == 0
    return root


def test_the_generator_report_judges_the_classes_and_records_its_figures(trained, capsys):
    model_dir = trained / "model"
    card_before = (model_dir / "card.json").read_bytes()
    capsys.readouterr()
    assert main(["evaluate", "generator", "--model-dir", str(model_dir), "--real", str(trained / "real"),
                 "--image-size", "32", "--window", "0", "255", "--samples-per-class", "40", *JUDGE,
                 "--record", "--out", str(trained / "report")]) == 0
    result = json.loads((trained / "report" / "results.json").read_text(encoding="utf-8"))
    # the disc's half is the class: 300 steps are enough for the judge to recognise the samples
    assert result["real_test_recognised"]["value"] >= 0.9
    assert result["recognised"]["value"] >= 0.8, result["per_class"]
    for name in ("top", "bottom"):
        entry = result["per_class"][name]
        assert entry["samples"] == 40 and 0.2 < entry["diversity_ratio"] < 3.0
    frechet = result["distances"]["frechet"]
    assert frechet["samples"] >= 0 and frechet["real_held_out"] >= 0 and result["distances"]["images_each"] == 36
    assert result["near_copies"] == 0
    for picture in ("recognised_by_class.png", "samples_and_nearest_real.png"):
        assert (trained / "report" / picture).stat().st_size > 1000
    # recorded beside the card (the card itself untouched), for the weights it was measured on
    assert (model_dir / "card.json").read_bytes() == card_before
    recorded = read_quality(model_dir)
    assert recorded["recognised"] == pytest.approx(result["recognised"]["value"])
    assert set(recorded["per_class"]) == {"top", "bottom"}
    shown = model_summary(model_dir)["quality"]  # the line the Slicer Sample panel shows
    assert shown.startswith("Measured at step 300: ") and "recognised as their class" in shown


def test_without_record_the_model_folder_is_untouched_and_stale_figures_are_not_shown(trained, tmp_path):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(trained / "model", model_dir)
    (model_dir / QUALITY).unlink(missing_ok=True)
    before = sorted(p.name for p in model_dir.iterdir())
    assert main(["evaluate", "generator", "--model-dir", str(model_dir), "--real", str(trained / "real"),
                 "--image-size", "32", "--window", "0", "255", "--samples-per-class", "10", *JUDGE, 
                 "--out", str(tmp_path / "report")]) == 0
    assert sorted(p.name for p in model_dir.iterdir()) == before
    # figures measured on other weights are not the model's figures
    # --record where quality.json cannot be written: refused before any work
    (model_dir / QUALITY).mkdir()
    assert main(["evaluate", "generator", "--model-dir", str(model_dir), "--real", str(trained / "real"),
                 "--record", "--out", str(tmp_path / "report2")]) == 2
    assert not (tmp_path / "report2").exists()
    (model_dir / QUALITY).rmdir()
    record = json.loads((trained / "model" / QUALITY).read_text(encoding="utf-8"))
    (model_dir / QUALITY).write_text(json.dumps({**record, "weights_sha256": "0" * 64}), encoding="utf-8")
    assert read_quality(model_dir) is None


def test_gan_train_test_samples_a_model_folder_on_the_fly(trained, capsys):
    capsys.readouterr()
    assert main(["evaluate", "gan-train-test", "--real", str(trained / "real"), "--synthetic", str(trained / "model"),
                 "--image-size", "32", "--window", "0", "255", "--seeds", "0", *JUDGE, "--sample-seed", "5",
                 "--out", str(trained / "gtt")]) == 0
    result = json.loads((trained / "gtt" / "results.json").read_text(encoding="utf-8"))
    assert result["summary"]["gan_train"]["accuracy"]["mean"] >= 0.8, result["summary"]
    # the same seed gives the same images as the sampler of translate sample
    preprocessing = Preprocessing(size=32, window=(0.0, 255.0))
    one = sampled(trained / "model", ["top"], [4], 5, preprocessing)
    two = sampled(trained / "model", ["top"], [4], 5, preprocessing)
    assert np.array_equal(one.images, two.images) and one.class_names == ["top"]
    assert main(["evaluate", "gan-train-test", "--real", str(trained / "real"), "--synthetic", str(trained / "model"),
                 "--synthetic-labels", str(trained / "real" / "labels.csv"), "--out", str(trained / "bad")]) == 2


def test_fastgan_is_seeded_samples_its_classes_and_refuses_translation(trained, capsys):
    model = load_model(trained / "model")
    first = sample_images(model, 6, "top", 1.0, seed=2)
    assert np.array_equal(first, sample_images(model, 6, "top", 1.0, seed=2))
    assert not np.array_equal(first, sample_images(model, 6, "top", 1.0, seed=3))
    typical = sample_images(model, 40, "top", 0.3, seed=2)
    varied = sample_images(model, 40, "top", 1.0, seed=2)
    assert typical.std(axis=0).mean() < varied.std(axis=0).mean()  # truncation narrows the variety
    assert main(["translate", "apply", "--model-dir", str(trained / "model"), "--image", str(trained / "real" / "000.png"),
                 "--out", str(trained / "applied.png")]) == 2
    assert "use medsynth translate sample" in capsys.readouterr().err


def test_diff_augment_is_seeded_differentiable_and_keeps_the_shape():
    images = torch.rand(4, 1, 32, 32, requires_grad=True)
    one = diff_augment(images, torch.Generator().manual_seed(0))
    assert one.shape == images.shape
    assert torch.equal(one, diff_augment(images, torch.Generator().manual_seed(0)))
    one.sum().backward()
    assert images.grad is not None and float(images.grad.abs().sum()) > 0
    blank = (one == 0).flatten(1).float().mean(dim=1)  # cutout (15 x 15 px) + translation's padding (<= 4 px)
    assert 0.2 < float(blank.min()) and float(blank.max()) <= (15 * 15 + 2 * 4 * 32) / 32 ** 2


def test_the_class_steers_the_generator_from_the_first_step():
    config = TranslatorConfig(model="fastgan", image_size=16, domains=["a", "b"], features=8)
    translator = build_translator(config, 0)
    generator = translator.modules["generator"]
    z = torch.randn(4, config.latent, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        same = generator(z, torch.zeros(4, dtype=torch.long))
        other = generator(z, torch.ones(4, dtype=torch.long))
    assert same.shape == (4, 1, 16, 16) and float((same - other).abs().mean()) > 1e-3


def test_fastgan_trains_with_its_own_measured_defaults(trained, tmp_path):
    """Without --features and --batch-size, each model gets its own (fastgan: 16 and 32, the
    settings measured to learn in an hour on 2 CPU cores); the others keep 32 and 16."""
    for model, features, batch in (("fastgan", 16, 32), ("stargan", 32, 16)):
        out = tmp_path / model
        assert main(["translate", "train", "--model", model, "--data", str(trained / "real"), "--image-size", "32",
                     "--iterations", "1", "--device", "cpu", "--out", str(out)]) == 0
        config = json.loads((out / "card.json").read_text(encoding="utf-8"))["config"]
        assert (config["features"], config["batch_size"]) == (features, batch)
