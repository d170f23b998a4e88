"""``medsynth build-db``: parallel workers, manifest, resume without duplicates, determinism."""

from __future__ import annotations

import csv
import json

import pytest

from SynthLesionLib import LesionConfig, make_ct_phantom
from MedSynthCommonLib.cli import main
from SynthLesionLib.database import build_database, read_cases
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.imageio import write_volume


@pytest.fixture
def cases_csv(tmp_path):
    rows = [["case_id", "image", "organ_mask", "organ_label"]]
    for n in range(2):
        phantom = make_ct_phantom(shape=(32, 96, 96), spacing=(2.5, 2.5, 4.0), seed=n)
        write_volume(tmp_path / f"ct{n}.nii.gz", phantom.image, phantom.geometry)
        write_volume(tmp_path / f"organs{n}.nii.gz", phantom.organs, phantom.geometry)
        rows.append([f"p{n}", f"ct{n}.nii.gz", f"organs{n}.nii.gz", "1"])
    path = tmp_path / "cases.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_build_resume_and_determinism(tmp_path, cases_csv):
    out = tmp_path / "db"
    config = LesionConfig(size_class="small", count=1)
    summary = build_database(read_cases(cases_csv), out, 3, config, seed=1, workers=2, progress=False)
    assert summary["made"] == 6 and not summary["failed"]
    rows = _manifest(out)
    assert sorted(r["name"] for r in rows) == sorted(f"p{c}_v{v:04d}" for c in range(2) for v in range(3))
    reference = (out / "images" / "p1_v0002.nii.gz").read_bytes()

    # nothing to do on a second run
    again = build_database(read_cases(cases_csv), out, 3, config, seed=1, workers=2, progress=False)
    assert again["made"] == 0 and again["already_done"] == 6

    # interrupted run: one output missing, a torn manifest line; resume makes exactly that one
    (out / "images" / "p1_v0002.nii.gz").unlink()
    with (out / "manifest.jsonl").open("a") as handle:
        handle.write('{"name": "p0_v00')
    resumed = build_database(read_cases(cases_csv), out, 3, config, seed=1, workers=1, progress=False)
    assert resumed["made"] == 1
    assert (out / "images" / "p1_v0002.nii.gz").read_bytes() == reference
    # the manifest was rewritten on start: no torn line, one line per output
    names = [r["name"] for r in _manifest(out)]
    assert sorted(names) == sorted(set(names)) and len(names) == 6


def test_build_db_command(tmp_path, cases_csv, capsys):
    code = main(["build-db", "--cases", str(cases_csv), "--variants", "1", "--out", str(tmp_path / "db"),
                 "--size", "tiny", "--quiet"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["made"] == 2


def test_bad_case_list(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image\nx.nii.gz\n")
    with pytest.raises(MedSynthInputError, match="lacks the column.*organ_mask"):
        read_cases(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("image,organ_mask\nnope.nii.gz,nope2.nii.gz\n")
    with pytest.raises(MedSynthInputError, match="file not found"):
        read_cases(missing)
