"""``medsynth evaluate``: end to end from files to reports, and results as Slicer nodes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from SynthLesionLib import MedSynthInputError
from MedSynthCommonLib.cli import main


def _png_folder(folder, n, seed, shuffle=False):
    """Toy two-class PNGs (dark or bright disc) with labels.csv, like the chest X-ray folders."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    y, x = np.mgrid[:32, :32]
    rows = []
    for i in range(n):
        label = ["dark", "bright"][i % 2]
        cy, cx = rng.uniform(10, 22, 2)
        disc = ((y - cy) ** 2 + (x - cx) ** 2) <= 36
        image = 128 + rng.normal(0, 15, (32, 32)) + (60 if label == "bright" else -60) * disc
        sitk.WriteImage(sitk.GetImageFromArray(np.clip(image, 0, 255).astype(np.uint8)), str(folder / "images" / f"{i}.png"))
        rows.append({"path": f"images/{i}.png", "label": label})
    if shuffle:
        labels = [r["label"] for r in rows]
        for r, l in zip(rows, rng.permutation(labels)):
            r["label"] = l
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_gan_train_test_command_writes_a_self_contained_report(tmp_path, capsys):
    pytest.importorskip("monai")
    real, synthetic = _png_folder(tmp_path / "real", 40, 0), _png_folder(tmp_path / "synthetic", 40, 1)
    code = main(["evaluate", "gan-train-test", "--real", str(real), "--synthetic", str(synthetic), "--image-size", "16",
                 "--epochs", "4", "--seeds", "0", "--out", str(tmp_path / "report")])
    assert code == 0
    paths = json.loads(capsys.readouterr().out)
    page = open(paths["html"]).read()
    assert "data:image/png;base64," in page and "gan_train" in page
    results = json.load(open(paths["json"]))
    assert set(results["summary"]) == {"baseline", "gan_train", "gan_test"}
    assert results["summary"]["baseline"]["accuracy"]["mean"] > 0.7
    rows = list(csv.DictReader(open(paths["csv"], encoding="utf-8")))
    assert {(row["arm"], row["metric"]) for row in rows} >= {("baseline", "accuracy"), ("gan_test", "AUC")}
    inception = {row["arm"]: float(row["mean"]) for row in rows if row["metric"].startswith("Inception Score")}
    assert set(inception) == {"synthetic test", "real test"} and all(1.0 <= v <= 2.0 for v in inception.values())
    assert "not Inception-v3" in results["inception_score"]["network"]
    assert any(p.endswith("accuracy_by_arm.png") for p in paths["plots"])
    # what the module shows in Slicer's layout when the background run ends
    import slicer

    from SynthEvaluateLib.logic import roc_chart_from_results

    chart = roc_chart_from_results(slicer.vtkMRMLScene(), paths["json"])
    assert chart.GetNumberOfPlotSeriesNodes() == 3  # baseline, GAN-train, GAN-test (binary: one curve each)


def test_images_and_reader_study_commands(tmp_path, capsys):
    rng = np.random.default_rng(2)
    files = []
    for name, offset in (("a", 0), ("b", 5)):
        for i in range(3):
            path = tmp_path / f"{name}{i}.nii.gz"
            sitk.WriteImage(sitk.GetImageFromArray((rng.normal(100, 20, (8, 32, 32)) + offset).astype(np.int16)), str(path))
            files.append(str(path))
    assert main(["evaluate", "images", "--real", *files[:3], "--synthetic", *files[3:], "--paired",
                 "--data-range", "400", "--out", str(tmp_path / "img")]) == 0
    metrics = json.load(open(json.loads(capsys.readouterr().out)["json"]))["metrics"]
    assert metrics["rmse_mean"] > 5 and 0 < metrics["ssim_mean"] < 1 and "frd" in metrics

    study = tmp_path / "study"
    assert main(["evaluate", "reader-study", "create", "--study", str(study), "--real", *files[:3],
                 "--synthetic", *files[3:], "--seed", "3"]) == 0
    capsys.readouterr()
    from SynthEvaluateLib.studies.reader_study import ReaderStudy

    opened = ReaderStudy.open(study)
    for case in opened.cases:
        opened.record("reader1", case.number, "synthetic", 3)
    assert main(["evaluate", "reader-study", "results", "--study", str(study), "--out", str(tmp_path / "rs")]) == 0
    rows = list(csv.DictReader(open(json.loads(capsys.readouterr().out)["csv"])))
    assert rows[0]["reader"] == "reader1" and rows[0]["accuracy"].startswith("0.500")


def test_robustness_command_with_a_user_segmenter(tmp_path, capsys, monkeypatch):
    from SynthLesionLib import make_ct_phantom
    from MedSynthCommonLib.imageio import write_volume

    phantom = make_ct_phantom(shape=(32, 96, 96), spacing=(2.5, 2.5, 4.0), seed=6)
    write_volume(tmp_path / "ct.nii.gz", phantom.image, phantom.geometry)
    write_volume(tmp_path / "organs.nii.gz", phantom.organs, phantom.geometry)
    (tmp_path / "cases.csv").write_text("image,organ_mask,organ_label\nct.nii.gz,organs.nii.gz,1\n")
    (tmp_path / "mysegmenter.py").write_text(
        "import numpy as np\nfrom scipy import ndimage\n"
        "def segment(image, geometry):\n"
        "    return ndimage.gaussian_filter(image.astype(np.float32), 1.0) < 60\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["evaluate", "robustness", "--cases", str(tmp_path / "cases.csv"), "--segmenter", "mysegmenter:segment",
                 "--sizes", "small", "medium", "--contrasts", "-70", "--per-stratum", "5",
                 "--out", str(tmp_path / "rob")]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(open(out["csv"])))
    assert [r["size_class"] for r in rows] == ["small", "medium"]
    assert any(p.endswith("detection_by_size_and_contrast.png") for p in out["plots"])


def test_evaluate_errors_are_clear(tmp_path, capsys):
    assert main(["evaluate", "images", "--real", str(tmp_path / "none.nii.gz"), "--synthetic", str(tmp_path / "x.nii.gz"),
                 "--out", str(tmp_path / "o")]) != 0
    (tmp_path / "empty").mkdir()
    code = main(["evaluate", "gan-train-test", "--real", str(tmp_path / "empty"), "--synthetic", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "No label table" in capsys.readouterr().err


def test_results_as_slicer_nodes(scene):
    from SynthEvaluateLib.mrml import results_table, roc_chart

    result = {"protocol": "robustness", "strata": [
        {"size_class": "small", "contrast": -30.0, "cases": 5, "detection": {"value": 0.8, "ci": [0.4, 0.96]},
         "dice": {"value": 0.7, "ci": [0.6, 0.8]}}]}
    table = results_table(scene, result, "robustness")
    assert table.GetNumberOfRows() == 1 and table.GetTable().GetColumnByName("detection").GetValue(0) == 0.8
    chart = roc_chart(scene, {"viral": {"fpr": [0, 0.2, 1], "tpr": [0, 0.7, 1]}}, "ROC")
    assert chart.GetNumberOfPlotSeriesNodes() == 1
    series = chart.GetNthPlotSeriesNode(0)
    assert series.GetXColumnName() == "fpr" and series.GetTableNode().GetNumberOfRows() == 3


def test_line_chart_for_training_curves(scene):
    from SynthEvaluateLib.mrml import line_chart

    chart = line_chart(scene, [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.5}], "epoch", ["loss"], "training")
    assert chart.GetNumberOfPlotSeriesNodes() == 1
    assert chart.GetNthPlotSeriesNode(0).GetTableNode().GetNumberOfRows() == 2


def test_classifier_device_is_resolved_like_the_translators():
    import argparse

    pytest.importorskip("torch")
    import torch

    from SynthEvaluateLib.cli.image_set_cli import classifier_recipe

    args = argparse.Namespace(network="small", epochs=1, batch_size=4, pretrained_weights=None, device="auto",
                              loader_workers=0)
    assert classifier_recipe(args).device == ("cuda:0" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        args.device = "cuda"
        with pytest.raises(MedSynthInputError, match="sees no CUDA GPU"):
            classifier_recipe(args)


def test_segmentation_command_on_two_folders(tmp_path, capsys):
    from scipy import ndimage

    from MedSynthCommonLib.imageio import write_volume
    from SynthLesionLib import LesionConfig, make_ct_phantom, synthesize_lesions

    phantom = make_ct_phantom(shape=(30, 80, 80), spacing=(2.0, 2.0, 3.0), seed=8)
    for folder in ("ref", "pred"):
        (tmp_path / folder).mkdir()
    for seed in range(5):
        result = synthesize_lesions(phantom.image, phantom.organ_mask("liver"), phantom.geometry,
                                    LesionConfig(size_class="small", count=2), seed)
        reference = result.label_map()
        predicted = reference.copy()
        predicted[ndimage.binary_erosion(reference == 2)] = 2
        predicted[(reference == 2) & ~ndimage.binary_erosion(reference == 2)] = 1  # boundary missed
        if seed == 0:
            predicted[predicted == 2] = 1  # lesions missed altogether
        write_volume(tmp_path / "ref" / f"case{seed}.nii.gz", reference, phantom.geometry)
        write_volume(tmp_path / "pred" / f"case{seed}.nii.gz", predicted, phantom.geometry)
    code = main(["evaluate", "segmentation", "--reference", str(tmp_path / "ref"), "--prediction", str(tmp_path / "pred"),
                 "--labels", "1", "2", "--out", str(tmp_path / "report")])
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    lesion = results["aggregated"]["label 2"]
    assert results["cases"] == 5 and len(results["per_case"]) == 10
    assert 0.0 < lesion["dice"]["value"] < 1.0 and lesion["dice"]["ci"] is not None
    rows = [r for r in results["per_case"] if r["label"] == "label 2"]
    assert rows[0]["lesions_detected"] == 0 and all(r["lesions_detected"] == r["lesions"] for r in rows[1:])
    found, total = sum(r["lesions_detected"] for r in rows), sum(r["lesions"] for r in rows)
    assert lesion["lesion_sensitivity"] == pytest.approx(found / total) and found < total
    assert lesion["hd95_mm"]["non_finite_cases"] == 1  # empty prediction in case0: HD95 inf, not averaged
    assert (tmp_path / "report" / "report.html").exists() and (tmp_path / "report" / "summary.csv").exists()
    (tmp_path / "pred" / "case3.nii.gz").unlink()
    assert main(["evaluate", "segmentation", "--reference", str(tmp_path / "ref"), "--prediction",
                 str(tmp_path / "pred"), "--out", str(tmp_path / "r2")]) == 2
    assert "case3.nii.gz" in capsys.readouterr().err
