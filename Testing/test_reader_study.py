"""Reader study: blinding, shuffling, resumable answers, results with intervals."""

from __future__ import annotations

import pytest

from SynthEvaluateLib.studies.reader_study import ReaderStudy
from SynthLesionLib import MedSynthInputError


def test_study_is_shuffled_blinded_and_reproducible(tmp_path):
    real, synthetic = [f"r{i}.nii.gz" for i in range(10)], [f"s{i}.nii.gz" for i in range(10)]
    a = ReaderStudy.create(tmp_path / "a", real, synthetic, seed=4)
    b = ReaderStudy.create(tmp_path / "b", real, synthetic, seed=4)
    assert [c.reference for c in a.cases] == [c.reference for c in b.cases]
    sources = [c.source for c in a.cases]
    assert sources != sorted(sources) and sources.count("synthetic") == 10
    assert [c.number for c in a.cases] == list(range(1, 21))
    with pytest.raises(MedSynthInputError, match="already holds a study"):
        ReaderStudy.create(tmp_path / "a", real, synthetic)


def test_answers_resume_and_results(tmp_path):
    study = ReaderStudy.create(tmp_path / "s", [f"r{i}" for i in range(6)], [f"s{i}" for i in range(6)], seed=1)
    # reader A is always right, reader B always says "real"
    for case in study.cases[:6]:
        study.record("A", case.number, case.source, 4, 3.2)
    reopened = ReaderStudy.open(tmp_path / "s")
    assert reopened.next_case("A").number == study.cases[6].number  # resumes where A stopped
    for case in reopened.cases[6:]:
        reopened.record("A", case.number, case.source, 5)
    for case in reopened.cases:
        reopened.record("B", case.number, "real", 2)
    reopened.record("B", reopened.cases[0].number, "real", 3)  # a changed answer replaces the old one
    assert reopened.next_case("A") is None
    results = reopened.results()
    assert results["readers"]["A"]["accuracy"]["value"] == 1.0
    assert results["readers"]["B"]["accuracy"]["value"] == 0.5
    assert results["readers"]["B"]["sensitivity"]["value"] == 0.0 and results["readers"]["B"]["specificity"]["value"] == 1.0
    assert results["pooled"]["answered"] == 24
    low, high = results["readers"]["B"]["accuracy"]["ci"]
    assert low < 0.5 < high


def test_bad_answers(tmp_path):
    study = ReaderStudy.create(tmp_path / "s", ["r"], ["s"])
    with pytest.raises(MedSynthInputError, match="one of"):
        study.record("A", 1, "fake", 3)
    with pytest.raises(MedSynthInputError, match="Confidence"):
        study.record("A", 1, "real", 9)
    with pytest.raises(MedSynthInputError, match="no case 7"):
        study.record("A", 7, "real", 3)
    with pytest.raises(MedSynthInputError, match="No answers"):
        study.results()
    with pytest.raises(MedSynthInputError, match="both real and synthetic"):
        ReaderStudy.create(tmp_path / "t", [], ["s"])


def test_cases_are_shown_from_anonymised_copies(tmp_path):
    import numpy as np
    import SimpleITK as sitk

    names = []
    for n, source in enumerate(("real", "synthetic")):
        image = sitk.GetImageFromArray(np.full((4, 8, 8), n, np.int16))
        image.SetMetaData("PatientName", "DOE^JANE")
        path = tmp_path / f"DOE_JANE_{source}.nrrd"
        sitk.WriteImage(image, str(path))
        names.append(str(path))
    study = ReaderStudy.create(tmp_path / "study", [names[0]], [names[1]], seed=3)
    for case in study.cases:
        shown = study.shown_file(case)
        assert shown.name == f"case_{case.number:04d}.nrrd" and "DOE" not in shown.name
        assert b"DOE^JANE" not in shown.read_bytes()
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(shown))),
                              sitk.GetArrayFromImage(sitk.ReadImage(case.reference)))
