"""Every bad input a hostile tester tried gets a clear ``medsynth: error:`` naming the problem
and what to do (exit status 2, no traceback), and leaves nothing half-written."""

from __future__ import annotations

import json
import stat
import os

import numpy as np
import pytest
import SimpleITK as sitk

from MedSynthCommonLib.cli import main
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry
from MedSynthCommonLib.imageio import write_volume


@pytest.fixture(scope="module")
def case(small_ct_files):
    folder, _, _, phantom = small_ct_files
    huge = Geometry(phantom.geometry.origin, (1000.0, 1000.0, 1000.0))
    write_volume(folder / "huge.nii.gz", phantom.image, huge)
    write_volume(folder / "huge_organs.nii.gz", (phantom.organs == 1).astype(np.uint8), huge)
    coarse = Geometry(phantom.geometry.origin, (3.0, 3.0, 10.0))
    write_volume(folder / "coarse.nii.gz", phantom.image, coarse)
    write_volume(folder / "coarse_organs.nii.gz", (phantom.organs == 1).astype(np.uint8), coarse)
    rotated = Geometry(phantom.geometry.origin, phantom.geometry.spacing, [[0, -1, 0], [-1, 0, 0], [0, 0, 1]])
    write_volume(folder / "rotated_organs.nii.gz", phantom.organs, rotated)
    return folder


def _error(capsys, arguments) -> str:
    code = main([str(a) for a in arguments])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def _lesion(case, out, *extra, image="ct.nii.gz", organs="organs.nii.gz", label="1"):
    return ["lesion", "--image", case / image, "--organ-mask", case / organs, *(["--organ-label", label] if label else []),
            "--out-image", out / "img.nii.gz", "--out-label", out / "lab.nii.gz", *extra]


def _argparse_error(capsys, arguments) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in arguments])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("extra, words", [
    (["--seed", "-1"], "must be at least 0"),
    (["--contrast", "nan"], "finite number"),
    (["--contrast", "inf"], "finite number"),
    (["--vessel-threshold-sd", "nan"], "finite number"),
    (["--count", "0"], "must be at least 1"),
])
def test_bad_option_values(capsys, case, tmp_path, extra, words):
    assert words in _argparse_error(capsys, _lesion(case, tmp_path, *extra))


@pytest.mark.parametrize("name, words", [
    ("out.xyz", "no volume file extension"),
    ("out.png", "no volume file extension"),
    ("out.dcm", "no volume file extension"),
])
def test_unsupported_output_extensions(capsys, case, tmp_path, name, words):
    err = _error(capsys, ["lesion", "--image", case / "ct.nii.gz", "--organ-mask", case / "organs.nii.gz",
                          "--organ-label", "1", "--out-image", tmp_path / name, "--out-label", tmp_path / "l.nii.gz"])
    assert words in err and ".nii.gz" in err


def test_output_image_that_is_a_folder(capsys, case, tmp_path):
    (tmp_path / "folder.nii.gz").mkdir()
    err = _error(capsys, ["lesion", "--image", case / "ct.nii.gz", "--organ-mask", case / "organs.nii.gz",
                          "--organ-label", "1", "--out-image", tmp_path / "folder.nii.gz", "--out-label", tmp_path / "l.nii.gz"])
    assert "is a folder" in err


def test_read_only_output_folder(capsys, case, tmp_path):
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: use a read-only file system
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                          capture_output=True).returncode != 0:
            pytest.skip("root, and no read-only mount possible here")
    else:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        err = _error(capsys, _lesion(case, folder))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        folder.chmod(stat.S_IRWXU)
    assert "permission" in err or "read-only" in err


def test_huge_spacing(capsys, case, tmp_path):
    err = _error(capsys, _lesion(case, tmp_path, image="huge.nii.gz", organs="huge_organs.nii.gz", label=None))
    assert "cannot hold small lesions" in err and "1000 mm" in err


def test_coarse_grid_warns_that_tiny_lesions_are_below_two_voxels(capsys, case, tmp_path):
    code = main([str(a) for a in _lesion(case, tmp_path, "--size", "tiny", "--record", tmp_path / "r.json",
                                         image="coarse.nii.gz", organs="coarse_organs.nii.gz", label=None)])
    assert code == 0
    assert "less than two voxels across" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["warnings"]


def test_direction_mismatch_says_direction(capsys, case, tmp_path):
    assert "direction" in _error(capsys, _lesion(case, tmp_path, organs="rotated_organs.nii.gz"))


def test_multi_label_mask_needs_an_organ_label(capsys, case, tmp_path):
    err = _error(capsys, _lesion(case, tmp_path, label=None))
    assert "--organ-label" in err and "labels" in err


def test_ct_preset_on_an_mr_with_small_negative_values():
    from SynthLesionLib import LesionConfig, make_mr_phantom, synthesize_lesions

    mr = make_mr_phantom(shape=(40, 80, 64), spacing=(1.2, 1.2, 2.0), seed=4)
    image = mr.image.astype(np.int32) - 2  # an MR with noise just below zero (min around -47 in the real case)
    image[0, 0, :40] = -47
    with pytest.raises(MedSynthInputError, match="does not look like CT|expects a CT"):
        synthesize_lesions(image, mr.organ_mask("brain"), mr.geometry, LesionConfig(preset="ct-liver"), 0)


# --- case lists ---------------------------------------------------------------------------------

@pytest.mark.parametrize("content, words", [
    ("case_id,image,organ_mask,organ_label\na,ct.nii.gz,organs.nii.gz\n", "Line 2"),
    ("case_id,image,organ_mask,organ_label\na,ct.nii.gz,organs.nii.gz,liver\n", "organ_label must be a whole number"),
    (b"\x00\x01\x02binary\xff\xfe", "not UTF-8 text"),
    ("image,organ_mask\n", "has a header but no rows"),
    ("image\nct.nii.gz\n", "lacks the column(s) organ_mask"),
])
def test_bad_case_lists(capsys, case, tmp_path, content, words):
    path = case / f"cases_{abs(hash(content))}.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    err = _error(capsys, ["build-db", "--cases", path, "--variants", "1", "--out", tmp_path / "db"])
    assert words in err and str(path) in err


def test_case_list_with_bom_and_blank_rows_keeps_every_id(case):
    from SynthLesionLib.database import read_cases

    path = case / "bom.csv"
    path.write_bytes("\ufeffcase_id,image,organ_mask,organ_label\r\n\r\nfirst,ct.nii.gz,organs.nii.gz,1\r\n"
                     ",,,\r\nsecond,ct.nii.gz,organs.nii.gz,1\r\n".encode("utf-8"))
    assert [c.case_id for c in read_cases(path)] == ["first", "second"]


def test_out_that_is_a_file(capsys, case, tmp_path):
    (tmp_path / "db").write_text("x")
    path = case / "one.csv"
    path.write_text("image,organ_mask,organ_label\nct.nii.gz,organs.nii.gz,1\n")
    assert "is a file" in _error(capsys, ["build-db", "--cases", path, "--variants", "1", "--out", tmp_path / "db"])


# --- SynthTranslate -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    pytest.importorskip("torch")
    from SynthTranslateLib.config import TranslatorConfig
    from SynthTranslateLib.data import BatchSampler, Normalizer
    from SynthTranslateLib.training import train_translator

    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (8, 16, 16)).astype(np.float32)
    config = TranslatorConfig(model="stargan", image_size=16, features=4, batch_size=4, domains=["a", "b"], n_critic=1)
    train_translator(config, BatchSampler("domains", 4, 0, image=images, domain=np.arange(8) % 2),
                     Normalizer((0.0, 255.0)), 1, folder)
    return folder


@pytest.mark.parametrize("card, words", [
    ([1, 2], "not a MedSynth translator card"),
    (None, "not a MedSynth translator card"),
    ({"format": "medsynth-translator/1"}, "lacks 'config'"),
])
def test_bad_model_cards(capsys, model, tmp_path, card, words):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(model, folder)
    (folder / "card.json").write_text(json.dumps(card))
    image = tmp_path / "x.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 20), np.uint8)), str(image))
    err = _error(capsys, ["translate", "apply", "--model-dir", folder, "--image", image, "--target-domain", "a",
                          "--out", tmp_path / "y.png", "--device", "cpu"])
    assert words in err


def test_translate_train_without_data(capsys, tmp_path):
    pytest.importorskip("torch")
    assert "give --data" in _error(capsys, ["translate", "train", "--model", "stargan", "--out", tmp_path / "m",
                                            "--device", "cpu"])


def test_translate_apply_refuses_nan_and_4d_and_overwriting_its_input(capsys, model, tmp_path):
    nan = np.zeros((10, 20, 20), np.float32)
    nan[5, 5, 5] = np.nan
    write_volume(tmp_path / "nan.nrrd", nan, Geometry())  # (ITK's NIfTI reader turns NaN into 0 itself)
    args = ["translate", "apply", "--model-dir", model, "--target-domain", "b", "--device", "cpu"]
    assert "NaN" in _error(capsys, [*args, "--image", tmp_path / "nan.nrrd", "--out", tmp_path / "o.nii.gz"])
    four = sitk.JoinSeries([sitk.GetImageFromArray(np.zeros((4, 8, 8), np.float32))] * 3)
    sitk.WriteImage(four, str(tmp_path / "four.nii.gz"))
    err = _error(capsys, [*args, "--image", tmp_path / "four.nii.gz", "--out", tmp_path / "o.nii.gz"])
    assert "4-D image" in err and "3-D scalar volume" in err
    write_volume(tmp_path / "ok.nii.gz", np.zeros((10, 20, 20), np.float32), Geometry())
    before = (tmp_path / "ok.nii.gz").read_bytes()
    err = _error(capsys, [*args, "--image", tmp_path / "ok.nii.gz", "--out", tmp_path / "." / "ok.nii.gz"])
    assert "same file as the input --image" in err and (tmp_path / "ok.nii.gz").read_bytes() == before


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_translate_apply_on_2d_pictures_keeps_format_and_size(capsys, model, tmp_path, channels):
    rng = np.random.default_rng(channels)
    shape = (37, 53) if channels == 1 else (37, 53, channels)
    picture = rng.integers(0, 255, shape).astype(np.uint8)
    if channels == 4:
        picture[..., 3] = 200
    sitk.WriteImage(sitk.GetImageFromArray(picture, isVector=channels > 1), str(tmp_path / "in.png"))
    assert main(["translate", "apply", "--model-dir", str(model), "--image", str(tmp_path / "in.png"),
                 "--target-domain", "b", "--out", str(tmp_path / "out.png"), "--device", "cpu"]) == 0
    out = sitk.ReadImage(str(tmp_path / "out.png"))
    assert out.GetSize() == (53, 37) and out.GetNumberOfComponentsPerPixel() == channels
    array = sitk.GetArrayFromImage(out)
    assert array.dtype == np.uint8
    if channels == 4:
        assert np.all(array[..., 3] == 200)  # alpha kept
    if channels == 3:
        assert np.array_equal(array[..., 0], array[..., 1])  # grey, as the model sees it


# --- SynthEvaluate ----------------------------------------------------------------------------------

def test_unpaired_one_against_one(capsys, case, tmp_path):
    err = _error(capsys, ["evaluate", "images", "--real", case / "ct.nii.gz", "--synthetic", case / "ct.nii.gz",
                          "--out", tmp_path / "r"])
    assert "at least 2 real and 2 synthetic" in err
    assert not (tmp_path / "r" / "results.json").exists()


def test_paired_ordinary_ct_does_not_crash_on_ms_ssim(capsys, case, tmp_path):
    pytest.importorskip("monai")
    assert main(["evaluate", "images", "--paired", "--real", str(case / "ct.nii.gz"), "--synthetic",
                 str(case / "coarse.nii.gz"), "--out", str(tmp_path / "r")]) == 0
    metrics = json.loads((tmp_path / "r" / "results.json").read_text())["metrics"]
    assert "ssim_mean" in metrics and "ms_ssim_mean" in metrics


@pytest.mark.parametrize("value", ["0", "1.5", "nan"])
def test_test_fraction_out_of_range(capsys, tmp_path, value):
    err = _argparse_error(capsys, ["evaluate", "gan-train-test", "--real", tmp_path, "--synthetic", tmp_path,
                                   "--test-fraction", value, "--out", tmp_path / "r"])
    assert "--test-fraction" in err


@pytest.mark.parametrize("arguments", [["translate", "train", "--model", "stargan", "--out", "m", "--image-size", "0"],
                                       ["evaluate", "gan-train-test", "--real", "r", "--synthetic", "s",
                                        "--image-size", "0", "--out", "o"]])
def test_image_size_zero(capsys, arguments):
    assert "must be at least 8" in _argparse_error(capsys, arguments)


def test_reader_study_with_a_missing_image(capsys, case, tmp_path):
    err = _error(capsys, ["evaluate", "reader-study", "create", "--study", tmp_path / "s", "--real", case / "ct.nii.gz",
                          "--synthetic", tmp_path / "missing.nii.gz"])
    assert "do not exist" in err and "missing.nii.gz" in err and not (tmp_path / "s").exists()


def test_metric_functions_refuse_nonsense():
    from SynthEvaluateLib.metrics.classification import auc, delong_auc, delong_paired_test, per_class_auc
    from SynthEvaluateLib.metrics.segmentation import hausdorff_95, normalized_surface_dice

    with pytest.raises(MedSynthInputError, match="NaN"):
        auc([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.9])
    with pytest.raises(MedSynthInputError, match="NaN"):
        delong_paired_test([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.9], [0.2, np.nan, 0.1, 0.5])
    two = delong_auc([0, 1], [0.2, 0.7])
    assert two["auc"] == 1.0 and two["ci"] is None and "2 cases of each class" in two["note"]
    with pytest.raises(MedSynthInputError, match="2 class names for 3 score columns"):
        per_class_auc([0, 1, 2, 1], np.eye(3)[[0, 1, 2, 1]], ["a", "b"])
    mask = np.zeros((5, 5, 5), bool)
    mask[2, 2, 2] = True
    with pytest.raises(MedSynthInputError, match="positive, finite"):
        hausdorff_95(mask, mask, (0.0, 1.0, 1.0))
    with pytest.raises(MedSynthInputError, match="positive, finite"):
        normalized_surface_dice(mask, mask, (1.0, -1.0, 1.0))


def test_two_dimensional_shape_masks_are_refused(capsys, case, tmp_path):
    flat = np.zeros((1, 20, 20), np.uint8)
    flat[0, 5:15, 5:15] = 1
    write_volume(tmp_path / "flat.nii.gz", flat, Geometry())
    err = _error(capsys, _lesion(case, tmp_path, "--shape-mask", tmp_path / "flat.nii.gz"))
    assert "single slice" in err and "thin sheet" in err
