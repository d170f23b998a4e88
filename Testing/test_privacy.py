"""Privacy audit: planted copies of training images are flagged, fresh images are not; the
Inception Score on known probability tables."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import ndimage

from MedSynthCommonLib.cli import main
from MedSynthCommonLib.errors import MedSynthInputError
from SynthEvaluateLib.metrics.distances import inception_score
from SynthEvaluateLib.studies.privacy import privacy_audit


def _images(count: int, seed: int) -> np.ndarray:
    """Smooth random 'anatomy' in [0, 1]: each image a different blurred noise field."""
    rng = np.random.default_rng(seed)
    fields = ndimage.gaussian_filter(rng.normal(size=(count, 32, 32)), sigma=(0, 3, 3))
    fields -= fields.min(axis=(1, 2), keepdims=True)
    return (fields / fields.max(axis=(1, 2), keepdims=True)).astype(np.float32)


def _disguised_copies(images: np.ndarray, seed: int) -> np.ndarray:
    """What a memorising generator emits: training images with other brightness, contrast and noise."""
    rng = np.random.default_rng(seed)
    return np.clip(0.8 * images + 0.1 + rng.normal(0, 0.02, images.shape), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    train, holdout, fresh = _images(60, 1), _images(30, 2), _images(30, 3)
    return train, holdout, fresh, [f"t{n}" for n in range(60)]


def test_a_copying_generator_is_flagged(data):
    train, holdout, fresh, ids = data
    synthetic = np.concatenate([_disguised_copies(train[:12], 4), fresh[:18]])
    result = privacy_audit(train, synthetic, ids, [f"s{n}" for n in range(30)], holdout=holdout)
    flagged = {entry["synthetic"]: entry for entry in result["per_image"] if entry["near_copy"]}
    copies = {f"s{n}" for n in range(12)}
    assert set(flagged) == copies
    assert all(flagged[name]["nearest_training_image"] == f"t{name[1:]}" for name in copies)  # the right source
    pixels = result["summary"]["pixels"]
    assert pixels["chance_rate"] == pytest.approx(1 / 31) and pixels["p_value_more_than_chance"] < 1e-6
    assert result["verdict"].startswith("12 near-copies")
    assert [e["synthetic"] for e in result["closest"][:12]] and all(e["near_copy"] for e in result["closest"])


def test_a_generator_that_does_not_copy_is_not_flagged(data):
    train, holdout, fresh, ids = data
    for yardstick in (holdout, None):  # held-out real images, or training images leaving themselves out
        result = privacy_audit(train, fresh, ids, [f"s{n}" for n in range(30)], holdout=yardstick)
        assert result["summary"]["pixels"]["flagged"] == 0
        assert result["verdict"].startswith("no near-copy")
        assert 0.7 < result["summary"]["pixels"]["median_ratio"] < 1.4


def test_privacy_command_writes_the_report_with_pictures(tmp_path, data):
    from PIL import Image

    train, _, fresh, _ = data
    for folder, images in (("train", train[:20]), ("synthetic", np.concatenate([_disguised_copies(train[:3], 5),
                                                                                  fresh[:7]]))):
        (tmp_path / folder).mkdir()
        for n, image in enumerate(images):
            Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / folder / f"{folder}{n:02d}.png")
    out = tmp_path / "report"
    assert main(["evaluate", "privacy", "--train", str(tmp_path / "train"), "--synthetic", str(tmp_path / "synthetic"),
                 "--image-size", "32", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert "_pairs" not in results
    rows = list(csv.DictReader((out / "per_image.csv").open(encoding="utf-8")))
    flagged = {r["synthetic"] for r in rows if r["near_copy"] == "True"}
    assert flagged == {"synthetic00.png", "synthetic01.png", "synthetic02.png"}
    assert (out / "closest_pairs.png").stat().st_size > 1000
    assert "3 near-copies of training images found" in (out / "report.html").read_text(encoding="utf-8")


def test_bad_audit_input_is_refused(tmp_path, data):
    train, _, fresh, ids = data
    with pytest.raises(MedSynthInputError, match="one grid"):
        privacy_audit(train, fresh[:, :16, :16], ids, ["s"] * 30)
    with pytest.raises(MedSynthInputError, match="quantile"):
        privacy_audit(train, fresh, ids, ["s"] * 30, reference_quantile=0.7)
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "privacy", "--train", str(tmp_path / "empty"), "--synthetic", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r" / "results.json").exists()


def test_inception_score_on_known_tables():
    confident = np.eye(4)[np.arange(40) % 4]  # sure of each image, classes balanced: IS = number of classes
    assert inception_score(confident, splits=1)["is"] == pytest.approx(4.0)
    assert inception_score(np.tile([0.25, 0.25, 0.25, 0.25], (40, 1)))["is"] == pytest.approx(1.0)  # no information
    assert inception_score(np.eye(4)[np.zeros(40, int)])["is"] == pytest.approx(1.0)  # one class only
    with pytest.raises(MedSynthInputError, match="probabilities"):
        inception_score(np.full((10, 2), 0.7))
