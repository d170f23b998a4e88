"""The second hostile round, inputs and outputs of single commands: lesion contrast and type,
overlapping lesions and centres, hostile preset and JSON files, CSV columns and formulas, reader
study answers, long and upper-case names, FIFOs, a full standard output, labels on other grids,
pixel types kept, sampling in batches.  Each case failed before its fix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.imageio import read_volume

sys.path.insert(0, str(Path(__file__).parent))
from test_hostile_round2 import CLI, _run, _stargan_folder, _train  # noqa: E402


# --- lesion contrast and type; lesions never overlap; centres ---

def _lesion_call(small_ct_files, tmp_path, *extra):
    _, image, organs, _ = small_ct_files
    return _run(["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "1", "--size", "small",
                 "--out-image", str(tmp_path / "o.nii.gz"), "--out-label", str(tmp_path / "l.nii.gz"),
                 "--record", str(tmp_path / "r.json"), *extra])


def test_a_fixed_contrast_decides_the_type(small_ct_files, tmp_path):
    import json

    made = _lesion_call(small_ct_files, tmp_path, "--contrast", "50")
    assert made.returncode == 0, made.stderr[-300:]
    lesion = json.loads((tmp_path / "r.json").read_text())["lesions"][0]
    assert lesion["lesion_type"] == "hyper" and lesion["contrast_measured"] > 20 and b"hyperdense" in made.stdout
    for extra, words in ((["--contrast", "50", "--lesion-type", "hypo"], b"makes it brighter"),
                         (["--contrast", "-500", "--lesion-type", "hyper"], b"makes it darker"),
                         (["--contrast", "1e30"], b"out of range"), (["--contrast", "-40", "--lesion-type", "mixed"],
                                                                      b"leave one of them out")):
        refused = _lesion_call(small_ct_files, tmp_path, *extra)
        assert refused.returncode == 2 and words in refused.stderr, (extra, refused.stderr[-300:])


def test_the_type_follows_the_measured_sign_and_clipping_is_reported():
    from SynthLesionLib import LesionConfig, make_mr_phantom, synthesize_lesions
    from SynthLesionLib.synthesizer import measured_type

    assert measured_type("hypo", 12.0) == "hyper" and measured_type("hyper", -3.0) == "hypo"
    assert measured_type("hypo", -3.0) == "hypo" and measured_type("iso", 9.0) == "iso"
    phantom = make_mr_phantom(shape=(40, 64, 64), spacing=(2.0, 2.0, 3.0), seed=4)
    brain = phantom.organs == 6
    scale = 200 / np.median(phantom.image[brain])
    narrow = np.clip(phantom.image * scale, 0, 255).astype(np.uint8)  # a type too narrow for a bright lesion
    result = synthesize_lesions(narrow, brain, phantom.geometry,
                                LesionConfig(preset="mr-brain", size_class="medium", contrast=15.0), seed=1)
    assert result.records[0].clipped_voxels > 0
    assert any("clipped" in w for w in result.case_record["warnings"])


def test_random_lesions_never_overlap():
    from SynthLesionLib import LesionConfig, make_ct_phantom, synthesize_lesions

    phantom = make_ct_phantom(shape=(40, 128, 128), spacing=(2.0, 2.0, 3.0), seed=1)
    for seed in range(12):  # before: 22 % of 6-lesion cases overlapped (the later lesion overwrote the earlier's label)
        result = synthesize_lesions(phantom.image, phantom.organs == 1, phantom.geometry,
                                    LesionConfig(size_class="medium", count=6, lesion_type="mixed"), seed)
        volumes = np.bincount(result.lesion_labels.ravel())[1:]
        recorded = [round(r.volume_ml * 1000 / phantom.geometry.voxel_volume_mm3) for r in result.records]
        assert volumes.tolist() == recorded  # every lesion's voxels are all still its own


def test_centres_given_twice_or_with_count_are_refused(small_ct_files, tmp_path):
    twice = _lesion_call(small_ct_files, tmp_path, "--centre", "0", "0", "0", "--centre", "0.2", "0", "0")
    assert twice.returncode == 2 and b"given twice" in twice.stderr
    counted = _lesion_call(small_ct_files, tmp_path, "--centre", "0", "0", "0", "--count", "3")
    assert counted.returncode == 2 and b"each point makes one lesion" in counted.stderr


# --- files: presets, JSON, records, tables ---

@pytest.mark.parametrize("change, words", [
    ({"edge_blur_mm": [1.5, 0.6]}, "low <= high"), ({"texture_sd_factor": "big"}, "texture_sd_factor must be"),
    ({"capsule_probability": 1.5}, "from 0 to 1"), ({"edge_blur_mm": [-1, 0.5]}, "within [0, 50]"),
    ({"texture_grain_mm": [0, 0]}, "within (0, 100]"), ({"contrast": {"hypo": [-10, -5]}}, "lesion types"),
    ({"phases": {"arterial": {"capsule_probability": 7}}, "default_phase": "arterial"}, "phase arterial"),
    ({"units": None}, "units must be")])
def test_bad_preset_files_name_the_field(tmp_path, change, words):
    import json

    from SynthLesionLib.presets import PRESETS, load_preset_file

    data = {**PRESETS["ct-liver"].to_dict(), **change}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(MedSynthInputError, match=re.escape(words)):
        load_preset_file(path)


def test_hostile_json_is_refused_plainly(tmp_path):
    from MedSynthCommonLib.options import read_json

    cases = {"deep.json": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
             "digits.json": (b'{"seed": ' + b"9" * 5000 + b"}", "thousands of digits"),
             "nan.json": (b'{"seed": NaN}', "NaN is not a JSON number"), "bad.json": (b"\xff\xfe", "not UTF-8")}
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MedSynthInputError, match=words):
            read_json(tmp_path / name, "record")
    with pytest.raises(MedSynthInputError, match="not a regular file"):
        read_json("/dev/zero", "record")  # before: read for ever, until the memory ran out


def test_from_record_needs_input_hashes_and_the_same_engine(small_ct_files, tmp_path):
    import json

    assert _lesion_call(small_ct_files, tmp_path).returncode == 0
    record = json.loads((tmp_path / "r.json").read_text())
    for change, words in (({"inputs": None}, b"names no SHA-256"), ({"version": "0.1"}, b"makes other cases for the same seed")):
        (tmp_path / "edited.json").write_text(json.dumps({**record, **change}))
        again = _lesion_call(small_ct_files, tmp_path / "again", "--from-record", str(tmp_path / "edited.json"))
        assert again.returncode == 2 and words in again.stderr, again.stderr[-300:]


def test_a_record_regenerates_only_the_case_it_describes(small_ct_files, tmp_path):
    """The version is not enough: an engine whose draws changed may carry the same one.  A case
    made again must hold the record's lesions and, voxel for voxel, its changed block; else
    nothing is written."""
    import json

    assert _lesion_call(small_ct_files, tmp_path).returncode == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert set(record["changed_block"]) == {"kji_slices", "blake2b"}
    again = _lesion_call(small_ct_files, tmp_path / "again", "--from-record", str(tmp_path / "r.json"))
    assert again.returncode == 0, again.stderr[-300:]
    assert (tmp_path / "again" / "o.nii.gz").read_bytes() == (tmp_path / "o.nii.gz").read_bytes()
    other_engine = [  # what a record of an engine that drew or computed otherwise holds
        ({"lesions": [{**record["lesions"][0], "centre_ijk": [1, 2, 3]}]}, b"lesion 1's centre_ijk is"),
        ({"lesions": [{**record["lesions"][0], "mean_intensity": 12.5}]}, b"lesion 1's mean_intensity is"),
        ({"lesions": record["lesions"] * 2}, b"1 lesion(s) placed, the record has 2"),
        ({"changed_block": {**record["changed_block"], "blake2b": "0" * 40}}, b"the voxels written differ")]
    for number, (change, words) in enumerate(other_engine):
        (tmp_path / "edited.json").write_text(json.dumps({**record, **change}))
        out = tmp_path / f"refused{number}"
        refused = _lesion_call(small_ct_files, out, "--from-record", str(tmp_path / "edited.json"))
        assert refused.returncode == 2 and words in refused.stderr and b"Traceback" not in refused.stderr, \
            refused.stderr[-400:]
        assert not out.exists() or not any(out.iterdir())  # nothing written


def test_regenerate_refuses_a_record_of_other_draws():
    from SynthLesionLib import LesionConfig, make_ct_phantom, regenerate, synthesize_lesions

    phantom = make_ct_phantom(shape=(40, 96, 96), spacing=(2.0, 2.0, 3.0), seed=1)
    organ = phantom.organ_mask("liver")
    record = synthesize_lesions(phantom.image, organ, phantom.geometry, LesionConfig(size_class="small"), 3).case_record
    assert regenerate(phantom.image, organ, phantom.geometry, record).case_record["lesions"] == record["lesions"]
    drawn_elsewhere = {**record, "lesions": [{**record["lesions"][0], "target_diameter_mm": 11.0}]}
    with pytest.raises(MedSynthInputError, match="lesion 1's target_diameter_mm is .* the record says 11.0"):
        regenerate(phantom.image, organ, phantom.geometry, drawn_elsewhere)
    with pytest.raises(MedSynthInputError, match="not the one it describes"):  # other inputs, the same record
        regenerate(phantom.image + 1, organ, phantom.geometry, record)
    with pytest.raises(MedSynthInputError, match="the record lists no lesions"):
        regenerate(phantom.image, organ, phantom.geometry, {**record, "lesions": "none"})
    bare = {"config": record["config"], "seed": record["seed"]}  # nothing to check against: made as asked
    assert regenerate(phantom.image, organ, phantom.geometry, bare).case_record["lesions"] == record["lesions"]


def test_a_repeated_csv_column_is_refused(tmp_path):
    from MedSynthCommonLib.tables import read_table

    (tmp_path / "cases.csv").write_text("image,image,organ_mask\na.nii.gz,b.nii.gz,m.nii.gz\n")
    with pytest.raises(MedSynthInputError, match="names the column.s. image more than once"):
        read_table(tmp_path / "cases.csv", ("image", "organ_mask"))


def test_csv_outputs_cannot_carry_spreadsheet_formulas():
    from MedSynthCommonLib.tables import csv_text

    text = csv_text([{"reader": "=HYPERLINK(\"http://x\")", "value": "-1.5", "note": "@SUM(A1)"}],
                    ["reader", "value", "note"])
    assert "'=HYPERLINK" in text and ",-1.5," in text and "'@SUM" in text


def test_bad_reader_study_answers_name_the_line(tmp_path):
    from SynthEvaluateLib.studies.reader_study import ReaderStudy

    study = ReaderStudy.create(tmp_path / "study", ["r1.nii.gz", "r2.nii.gz"], ["s1.nii.gz"], seed=0)
    rows = {"confidence NaN": "r1,1,real,NaN,1", "maybe": "r1,1,maybe,3,1", "unknown case": "r1,9,real,3,1",
            "negative seconds": "r1,1,real,3,-4"}
    for problem, row in rows.items():
        (study.folder / "answers.csv").write_text(f"reader,case,answer,confidence,seconds\n{row}\n")
        with pytest.raises(MedSynthInputError, match="Line 2 of"):
            study.results()
    with pytest.raises(MedSynthInputError, match="spreadsheets"):
        study.record("=HYPERLINK(1)", 1, "real", 3)


def test_reader_study_copies_differ_only_in_their_pixels(tmp_path):
    import SimpleITK as sitk

    real = sitk.GetImageFromArray(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    real.SetOrigin((12.345678, -3.3, 7.0))
    real.SetSpacing((0.70000001, 0.7, 2.5))
    sitk.WriteImage(real, str(tmp_path / "real.nii.gz"))
    synthetic = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 255, (4, 5)).astype(np.uint8))
    sitk.WriteImage(synthetic, str(tmp_path / "synthetic.png"))
    from SynthEvaluateLib.studies.reader_study import ReaderStudy

    study = ReaderStudy.create(tmp_path / "study", [str(tmp_path / "real.nii.gz")], [str(tmp_path / "synthetic.png")])
    shown = [sitk.ReadImage(str(study.shown_file(case))) for case in study.cases]
    for image in shown:
        assert image.GetDimension() == 3 and image.GetPixelIDTypeAsString() == "32-bit float"
        assert image.GetOrigin() == (0.0, 0.0, 0.0) and image.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
        assert all(round(v, 2) == v for v in image.GetSpacing())


# --- names, devices, standard output ---

def test_upper_case_extensions_and_long_names(small_ct_files, tmp_path):
    _, image, organs, _ = small_ct_files
    upper = _run(["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "1",
                  "--out-image", str(tmp_path / "OUT.NII.GZ"), "--out-label", str(tmp_path / "LAB.NII.GZ")])
    assert upper.returncode == 0, upper.stderr[-300:]  # before: "Bad Nifti file name", blamed on the disk
    assert read_volume(tmp_path / "OUT.NII.GZ")[0].shape == (24, 72, 72)
    near = "n" * 245 + ".nii.gz"  # fits the file system, but not with the partial-file prefix
    made = _run(["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "1",
                 "--out-image", str(tmp_path / near), "--out-label", str(tmp_path / "l.nii.gz")])
    assert made.returncode == 0 and (tmp_path / near).is_file(), made.stderr[-300:]
    too_long = _run(["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "1",
                     "--out-image", str(tmp_path / ("x" * 300 + ".nii.gz")), "--out-label", str(tmp_path / "l2.nii.gz")])
    assert too_long.returncode == 2 and b"file systems take at most 255" in too_long.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs")
def test_a_fifo_is_not_called_empty(tmp_path):
    os.mkfifo(tmp_path / "pipe.nii.gz")
    with pytest.raises(MedSynthInputError, match="not a regular file"):
        read_volume(tmp_path / "pipe.nii.gz")  # before: "the file is empty" (and a plain read waits for ever)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full")
def test_standard_output_on_a_full_device(small_ct_files, tmp_path):
    _, image, organs, _ = small_ct_files
    with open("/dev/full", "w") as full:
        done = subprocess.run([*CLI, "lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "1",
                               "--out-image", str(tmp_path / "o.nii.gz"), "--out-label", str(tmp_path / "l.nii.gz")],
                              stdout=full, stderr=subprocess.PIPE, timeout=120)
    assert done.returncode == 2 and b"Could not write the results to standard output" in done.stderr
    assert b"Traceback" not in done.stderr and (tmp_path / "o.nii.gz").is_file()


def test_organ_label_equal_to_lesion_label_is_named(small_ct_files, tmp_path):
    _, image, organs, _ = small_ct_files
    done = _run(["lesion-fit", "--image", str(image), "--label", str(organs), "--organ-label", "1", "--lesion-label",
                 "1", "--out", str(tmp_path / "p.json")])
    assert done.returncode == 2 and b"both 1" in done.stderr  # before: "no lesion large enough"


# --- MONAI transform and translate apply ---

def test_rand_synth_lesiond_refuses_labels_on_another_grid():
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    from monai.data import MetaTensor

    from SynthLesionLib import make_ct_phantom
    from SynthLesionLib.transforms import RandSynthLesiond

    phantom = make_ct_phantom(shape=(24, 64, 64), spacing=(3.0, 3.0, 4.0), seed=2)
    affine = torch.as_tensor(phantom.geometry.ijk_to_ras_matrix())
    image = MetaTensor(torch.as_tensor(np.ascontiguousarray(phantom.image.T)[None].astype(np.float32)), affine=affine)
    shifted = affine.clone()
    shifted[0, 3] += 10.0
    label = MetaTensor(torch.as_tensor(np.ascontiguousarray((phantom.organs == 1).T)[None].astype(np.uint8)),
                       affine=shifted)
    transform = RandSynthLesiond(("image", "label"), organ_label=1, prob=1.0)
    transform.set_random_state(0)
    with pytest.raises(MedSynthInputError, match="different grids"):
        transform({"image": image, "label": label})


def test_translate_apply_keeps_an_int16_ct_int16(tmp_path):
    pytest.importorskip("torch")
    import SimpleITK as sitk

    data = _stargan_folder(tmp_path)
    assert _train(data, tmp_path / "model", 2).returncode == 0
    volume = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 200, (3, 24, 24)).astype(np.int16))
    sitk.WriteImage(volume, str(tmp_path / "ct.nii.gz"))
    done = _run(["translate", "apply", "--model-dir", str(tmp_path / "model"), "--image", str(tmp_path / "ct.nii.gz"),
                 "--target-domain", "b", "--device", "cpu", "--out", str(tmp_path / "out.nii.gz")])
    assert done.returncode == 0, done.stderr[-300:]
    assert sitk.ReadImage(str(tmp_path / "out.nii.gz")).GetPixelIDTypeAsString() == "16-bit signed integer"


def test_sampling_many_images_goes_in_batches(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from SynthTranslateLib import apply
    from SynthTranslateLib.apply import sample_image_batches, sample_images
    from SynthTranslateLib.model_dir import load_model

    data = _stargan_folder(tmp_path)
    made = _run(["translate", "train", "--model", "stylegan", "--data", str(data), "--image-size", "16", "--features",
                 "4", "--batch-size", "2", "--iterations", "1", "--device", "cpu", "--out", str(tmp_path / "style")])
    assert made.returncode == 0, made.stderr[-300:]
    import torch

    model = load_model(tmp_path / "style")
    whole = sample_images(model, 5, "a", seed=3)
    z = torch.randn(5, model.config.latent, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # as sampling was before batches: up to a batch, the same images for a seed
        before = model.normalizer.inverse(model.translator.sample(z, 0, 1.0, noise_seed=3)[:, 0].numpy())
    assert np.array_equal(whole, before)
    monkeypatch.setattr(apply, "SAMPLE_BATCH", 2)
    batches = list(sample_image_batches(model, 5, "a", seed=3))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(np.array_equal(a, b) for a, b in zip(batches, sample_image_batches(model, 5, "a", seed=3)))
