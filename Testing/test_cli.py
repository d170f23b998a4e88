"""``medsynth`` on NIfTI/NRRD files: outputs, exact geometry, records, errors, demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SynthLesionLib import ORGAN_LABELS, LesionConfig, regenerate
from MedSynthCommonLib.cli import main
from MedSynthCommonLib.imageio import read_volume, write_volume


@pytest.fixture
def files(tmp_path, ct_phantom):
    image = write_volume(tmp_path / "ct.nii.gz", ct_phantom.image, ct_phantom.geometry)
    organs = write_volume(tmp_path / "organs.nii.gz", ct_phantom.organs, ct_phantom.geometry)
    return image, organs


def _geometry_tuple(path):
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader.GetOrigin(), reader.GetSpacing(), reader.GetDirection(), reader.GetSize()


def test_lesion_command_writes_image_label_record_preview(tmp_path, files, ct_phantom, capsys):
    image, organs = files
    out_image, out_label = tmp_path / "out" / "img.nii.gz", tmp_path / "out" / "lab.nii.gz"
    record, preview = tmp_path / "out" / "rec.json", tmp_path / "out" / "prev.png"
    code = main(["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", str(ORGAN_LABELS["liver"]),
                 "--size", "small", "--count", "2", "--seed", "9", "--out-image", str(out_image),
                 "--out-label", str(out_label), "--record", str(record), "--preview", str(preview)])
    assert code == 0
    assert "synthetic hypodense lesions in the liver" in capsys.readouterr().out
    for out in (out_image, out_label):  # geometry is the input's, exactly
        assert _geometry_tuple(out) == _geometry_tuple(image)
    label, _ = read_volume(out_label)
    assert set(np.unique(label)) == {0, 1, 2}
    case = json.loads(record.read_text())
    assert case["seed"] == 9 and len(case["lesions"]) == 2
    # the record regenerates the written image exactly
    written, _ = read_volume(out_image)
    again = regenerate(ct_phantom.image, ct_phantom.organs, ct_phantom.geometry, case)
    assert np.array_equal(written, again.image)
    png = sitk.ReadImage(str(preview))
    assert png.GetNumberOfComponentsPerPixel() in (3, 4) and png.GetSize()[0] > 600  # whole slice + zoomed before/after
    assert not list(tmp_path.glob("out/.*"))  # no temporary files left behind


def test_nrrd_output_keeps_geometry_to_float_precision(tmp_path, ct_phantom):
    # NRRD stores direction x spacing as text, so ITK's round trip can move the last bit
    image = write_volume(tmp_path / "ct.nrrd", ct_phantom.image, ct_phantom.geometry)
    organs = write_volume(tmp_path / "organs.nrrd", ct_phantom.organs, ct_phantom.geometry)
    out = tmp_path / "out.nrrd"
    assert main(["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "1",
                 "--out-image", str(out), "--out-label", str(tmp_path / "label.nrrd")]) == 0
    for a, b in zip(_geometry_tuple(out), _geometry_tuple(image)):
        assert np.allclose(a, b, rtol=0, atol=1e-12)


def test_lesion_command_errors_are_clear_and_keep_inputs(tmp_path, files, capsys):
    image, organs = files
    before = image.read_bytes()
    code = main(["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "42",
                 "--out-image", str(tmp_path / "a.nii.gz"), "--out-label", str(tmp_path / "b.nii.gz")])
    assert code == 2
    assert "organ mask is empty" in capsys.readouterr().err
    code = main(["lesion", "--image", str(image), "--organ-mask", str(organs), "--out-image", str(image),
                 "--out-label", str(tmp_path / "b.nii.gz")])
    assert code == 2 and "is the same file as the input --image" in capsys.readouterr().err
    assert image.read_bytes() == before
    code = main(["lesion", "--image", str(tmp_path / "missing.nii.gz"), "--organ-mask", str(organs),
                 "--out-image", str(tmp_path / "a.nii.gz"), "--out-label", str(tmp_path / "b.nii.gz")])
    assert code == 2 and "File not found" in capsys.readouterr().err


def test_four_d_file_is_refused(tmp_path, capsys):
    four_d = sitk.GetImageFromArray(np.zeros((2, 4, 8, 8), np.int16), isVector=False)
    path = tmp_path / "4d.nii.gz"
    sitk.WriteImage(four_d, str(path))
    code = main(["lesion", "--image", str(path), "--organ-mask", str(path),
                 "--out-image", str(tmp_path / "a.nii.gz"), "--out-label", str(tmp_path / "b.nii.gz")])
    assert code == 2 and "4-D image" in capsys.readouterr().err


def test_config_round_trips_through_json():
    config = LesionConfig(size_class="mix", count=3, centres_ras=[[1.0, 2.0, 3.0]])
    assert LesionConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_demo_runs_on_the_builtin_phantom(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "Demo outputs in" in out
    assert len(list((tmp_path / "demo" / "lesions").glob("*_preview.png"))) == 4
    assert len((tmp_path / "demo" / "database" / "manifest.jsonl").read_text().splitlines()) == 4


def test_repeated_cases_are_read_once_and_reread_when_changed(tmp_path, files, ct_phantom):
    from SynthLesionLib.files import _read_version, synthesize_files

    image, organs = files
    _read_version.cache_clear()
    for seed in range(3):  # what build-db does for the variants of one case
        synthesize_files(image, organs, tmp_path / f"o{seed}.nii.gz", tmp_path / f"l{seed}.nii.gz",
                         LesionConfig(size_class="tiny"), seed, organ_label=1)
    info = _read_version.cache_info()
    assert (info.misses, info.hits) == (2, 4)
    write_volume(image, ct_phantom.image + 1, ct_phantom.geometry)  # the file changes: read again
    synthesize_files(image, organs, tmp_path / "o.nii.gz", tmp_path / "l.nii.gz", LesionConfig(size_class="tiny"), 0,
                     organ_label=1)
    assert _read_version.cache_info().misses == 3


def test_records_with_unknown_options_are_refused():
    from SynthLesionLib import MedSynthInputError

    with pytest.raises(MedSynthInputError, match="Unknown lesion options: colour"):
        LesionConfig.from_dict({"size_class": "small", "colour": "red"})
