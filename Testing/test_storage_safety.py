"""Nothing lost: outputs whole or absent under file-size limits, full disks and kill -9;
damaged inputs refused; outputs that would collide or escape refused; one run per folder."""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from MedSynthCommonLib.errors import MedSynthInputError, MedSynthOutputError
from MedSynthCommonLib.imageio import read_volume, write_volume
from MedSynthCommonLib.integrity import check_image_file
from MedSynthCommonLib.storage import PARTIAL_PREFIX, FolderLock, OutputSet, bytes_writer
from MedSynthCommonLib.paths import check_distinct_paths
from SynthLesionLib import make_ct_phantom

CLI = [sys.executable, "-m", "MedSynthCommonLib.cli"]


@pytest.fixture(scope="module")
def small_case(small_ct_files):
    return small_ct_files[1], small_ct_files[2]


def _lesion_args(case, out: Path, *extra: str) -> list[str]:
    image, organs = case
    return ["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "1", "--size", "small",
            "--out-image", str(out / "img.nii.gz"), "--out-label", str(out / "lab.nii.gz"),
            "--record", str(out / "rec.json"), *extra]


def _run(arguments, limit_bytes: int | None = None, cwd=None, umask: int | None = None, timeout: float = 180):
    def limit():
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        if umask is not None:
            os.umask(umask)

    return subprocess.run([*CLI, *arguments], capture_output=True, text=True, preexec_fn=limit, cwd=cwd, timeout=timeout)


def _partials(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.name.startswith(PARTIAL_PREFIX)]


def _assert_clear_error(result, *words):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# --- writes that fail without the library raising -------------------------------------------

def test_file_size_limit_leaves_no_output_and_says_why(tmp_path, small_case):
    out = tmp_path / "out"
    result = _run(_lesion_args(small_case, out), limit_bytes=20_000)
    _assert_clear_error(result, "ulimit -f", "Nothing was written")
    assert not (out / "img.nii.gz").exists() and not (out / "lab.nii.gz").exists() and not (out / "rec.json").exists()
    assert not _partials(out)


@pytest.fixture
def small_disk(tmp_path):
    """A 400 kB tmpfs (needs mount rights; skipped where the machine cannot mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip()[:80]})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_lesion_names_the_disk_and_writes_nothing(small_disk, small_case):
    (small_disk / "filler").write_bytes(b"\0" * 380_000)
    result = _run(_lesion_args(small_case, small_disk / "out"))
    _assert_clear_error(result, "full", "Nothing was written")
    assert not any(p.is_file() for p in (small_disk / "out").rglob("*")) if (small_disk / "out").exists() else True


def test_full_disk_build_db_lists_only_whole_outputs(small_disk, small_case, tmp_path):
    cases = _cases_csv(tmp_path, small_case, ["a", "b"])
    result = _run(["build-db", "--cases", str(cases), "--variants", "6", "--size", "tiny", "--quiet",
                   "--out", str(small_disk / "db")])
    _assert_clear_error(result, "full")
    rows = [json.loads(line) for line in (small_disk / "db" / "manifest.jsonl").read_text().splitlines()] \
        if (small_disk / "db" / "manifest.jsonl").exists() else []
    assert len(rows) < 12  # the disk filled up before the end
    for row in rows:  # every listed output is whole
        for key in ("image", "label"):
            check_image_file(small_disk / "db" / row[key])
            assert (small_disk / "db" / row[key]).stat().st_size == row["bytes"][key]
    assert not _partials(small_disk / "db")


# --- damaged inputs -----------------------------------------------------------------------------

def test_truncated_inputs_are_refused(tmp_path, small_case):
    image, organs = small_case
    data = image.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 2])
    raw = tmp_path / "raw.nii"
    raw.write_bytes(gzip.decompress(data)[:-5000])
    for damaged in (cut, raw):
        with pytest.raises(MedSynthInputError, match="damaged"):
            read_volume(damaged)
    result = _run(["lesion", "--image", str(cut), "--organ-mask", str(organs), "--organ-label", "1",
                   "--out-image", str(tmp_path / "o.nii.gz"), "--out-label", str(tmp_path / "l.nii.gz")])
    _assert_clear_error(result, "damaged", "cut short")
    truncated_mask = tmp_path / "mask.nii.gz"
    truncated_mask.write_bytes(organs.read_bytes()[:-200])
    result = _run(["lesion", "--image", str(image), "--organ-mask", str(truncated_mask), "--organ-label", "1",
                   "--out-image", str(tmp_path / "o.nii.gz"), "--out-label", str(tmp_path / "l.nii.gz")])
    _assert_clear_error(result, "damaged")  # not blamed on the preset


def test_one_nan_voxel_is_found(tmp_path):
    from SynthLesionLib import LesionConfig, synthesize_lesions

    phantom = make_ct_phantom(shape=(24, 72, 72), spacing=(3.0, 3.0, 4.0), seed=2)
    image = phantom.image.astype(np.float32)
    image[12, 36, 36] = np.nan  # one voxel, inside the organ
    with pytest.raises(MedSynthInputError, match="1 NaN or infinite"):
        synthesize_lesions(image, phantom.organs == 1, phantom.geometry, LesionConfig(), seed=0)


def test_the_finite_check_counts_exactly_whatever_the_sum_does():
    """The one-pass sum is only a shortcut: infinities that cancel (inf - inf), finite values whose
    sum overflows, and half-precision volumes are counted exactly."""
    from MedSynthCommonLib.geometry import count_nonfinite

    for dtype in (np.float16, np.float32, np.float64):
        values = np.full((4, 5, 6), np.finfo(dtype).max / 2, dtype)  # finite, but the sum overflows
        assert count_nonfinite(values) == 0
        values[0, 0, 0], values[1, 1, 1] = np.inf, -np.inf  # the sum is NaN, not 0
        assert count_nonfinite(values) == 2
        values[2, 2, 2] = np.nan
        assert count_nonfinite(values) == 3


# --- outputs that would overwrite each other or an input ----------------------------------------

def test_outputs_that_name_one_file_are_refused(tmp_path, small_case):
    image, organs = small_case
    base = ["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "1"]
    out = tmp_path / "o"
    out.mkdir()
    os.symlink(image, out / "link.nii.gz")
    os.link(organs, out / "hard.nii.gz")
    cases = [
        (["--out-image", str(out / "a.nii.gz"), "--out-label", str(out / "a.nii.gz")], "both name"),
        (["--out-image", str(out / "a.nii.gz"), "--out-label", str(out / "./sub/../a.nii.gz")], "both name"),
        (["--out-image", str(out / "link.nii.gz"), "--out-label", str(out / "b.nii.gz")], "same file as the input --image"),
        (["--out-image", str(out / "x.nii.gz"), "--out-label", str(out / "hard.nii.gz")], "same file as the input --organ-mask"),
        (["--out-image", str(out / "r.nii.gz"), "--out-label", str(out / "b.nii.gz"), "--record", str(out / "r.nii.gz")],
         ".json"),
    ]
    for extra, words in cases:
        result = _run(base + extra)
        _assert_clear_error(result, words)
    assert image.read_bytes() and read_volume(image)[0].any()  # inputs intact


def test_check_distinct_paths_directly(tmp_path):
    a = tmp_path / "a.json"
    a.write_text("{}")
    with pytest.raises(MedSynthInputError, match="--record and --out-image both name"):
        check_distinct_paths({"--out-image": a, "--record": tmp_path / "x" / ".." / "a.json"})
    check_distinct_paths({"--out-image": tmp_path / "a.nii.gz", "--out-label": tmp_path / "b.nii.gz"},
                         {"--image": a})


# --- build-db: escaping names, locks, interrupted runs ------------------------------------------

def _cases_csv(folder: Path, case, ids: list[str], extra_rows: str = "") -> Path:
    image, organs = case
    path = folder / "cases.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "image", "organ_mask", "organ_label"])
        for case_id in ids:
            writer.writerow([case_id, str(image), str(organs), "1"])
    if extra_rows:
        with path.open("a") as handle:
            handle.write(extra_rows)
    return path


@pytest.mark.parametrize("case_id", ["../../../escaped", "/tmp/absolute", "a/b", ".hidden", "x..y/.."])
def test_case_ids_cannot_leave_the_output_folder(tmp_path, small_case, case_id):
    cases = _cases_csv(tmp_path, small_case, [case_id])
    result = _run(["build-db", "--cases", str(cases), "--variants", "1", "--out", str(tmp_path / "db")])
    _assert_clear_error(result, "cannot be used as a file name")
    assert not list(tmp_path.parent.rglob("escaped*")) and not Path("/tmp/absolute_v0000.nii.gz").exists()


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path, small_case):
    cases = _cases_csv(tmp_path, small_case, ["a"])
    with FolderLock(tmp_path / "db"):
        result = _run(["build-db", "--cases", str(cases), "--variants", "1", "--out", str(tmp_path / "db")])
    _assert_clear_error(result, "Another MedSynth run")
    assert not (tmp_path / "db" / "manifest.jsonl").exists()


def test_other_settings_into_one_folder_are_refused_unless_forced(tmp_path, small_case):
    cases = _cases_csv(tmp_path, small_case, ["a"])
    db = ["build-db", "--cases", str(cases), "--variants", "2", "--size", "tiny", "--quiet", "--out", str(tmp_path / "db")]
    assert _run(db + ["--seed", "1"]).returncode == 0
    first = (tmp_path / "db" / "images" / "a_v0000.nii.gz").read_bytes()
    _assert_clear_error(_run(db + ["--seed", "2"]), "other settings", "--force")
    assert (tmp_path / "db" / "images" / "a_v0000.nii.gz").read_bytes() == first  # untouched
    assert _run(db + ["--seed", "2", "--force"]).returncode == 0
    rows = [json.loads(line) for line in (tmp_path / "db" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len({r["settings"] for r in rows}) == 1
    assert (tmp_path / "db" / "images" / "a_v0000.nii.gz").read_bytes() != first
    assert _run(db + ["--seed", "2", "--variants", "3"]).returncode == 0  # more variants of the same run: fine


def test_outputs_of_another_engine_are_refused_unless_forced(tmp_path, small_case):
    """A data set is one engine's: after an update that changed the cases a seed makes (the
    version number may not say), a resumed build does not add to the old outputs."""
    from SynthLesionLib.records import engine_fingerprint

    cases = _cases_csv(tmp_path, small_case, ["a"])
    db = ["build-db", "--cases", str(cases), "--variants", "2", "--size", "tiny", "--quiet", "--out", str(tmp_path / "db")]
    assert _run(db).returncode == 0
    manifest = tmp_path / "db" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert {row["engine"] for row in rows} == {engine_fingerprint()}  # the same in every process
    first = (tmp_path / "db" / "images" / "a_v0000.nii.gz").read_bytes()
    manifest.write_text("".join(json.dumps({**row, "engine": "0123456789abcdef"}) + "\n" for row in rows))
    _assert_clear_error(_run(db + ["--variants", "3"]), "made by an engine that makes other cases", "--force")
    assert (tmp_path / "db" / "images" / "a_v0000.nii.gz").read_bytes() == first  # untouched
    legacy = [{key: value for key, value in row.items() if key != "engine"} for row in rows]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in legacy))  # before engines were recorded
    resumed = _run(db + ["--variants", "3"])
    assert resumed.returncode == 0, resumed.stderr[-300:]
    assert [json.loads(line)["name"] for line in manifest.read_text().splitlines()] == ["a_v0000", "a_v0001", "a_v0002"]
    manifest.write_text("".join(json.dumps({**row, "engine": "0123456789abcdef"}) + "\n" for row in rows))
    assert _run(db + ["--force"]).returncode == 0
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert {row["engine"] for row in rows} == {engine_fingerprint()}
    assert (tmp_path / "db" / "images" / "a_v0000.nii.gz").read_bytes() == first  # the same engine: the same bytes


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is dead
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    return True


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc to find worker processes")
def test_kill_9_mid_run_then_resume_gives_the_clean_result(tmp_path, small_case):
    ids = ["a", "b"]
    cases = _cases_csv(tmp_path, small_case, ids)
    db = tmp_path / "db"
    command = [*CLI, "build-db", "--cases", str(cases), "--variants", "5", "--size", "small", "--workers", "2",
               "--quiet", "--out", str(db)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    manifest = db / "manifest.jsonl"
    while time.time() < deadline and not (manifest.exists() and manifest.read_text().count("\n") >= 2):
        time.sleep(0.05)
    workers = _children(process.pid)
    assert workers, "the pool had started workers"
    process.send_signal(signal.SIGKILL)
    process.wait()
    # a torn last line, as a kill during a manifest append leaves
    with manifest.open("a") as handle:
        handle.write('{"name": "a_v00')
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "workers outlived their killed parent"
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    lines = manifest.read_text().splitlines()
    names = [json.loads(line)["name"] for line in lines]
    assert sorted(names) == sorted(f"{c}_v{v:04d}" for c in ids for v in range(5))  # each once, none torn
    assert not _partials(db)
    assert len(list((db / "images").glob("*.nii.gz"))) == 10  # partial files are not globbed as images
    clean = subprocess.run([*CLI, "build-db", "--cases", str(cases), "--variants", "5", "--size", "small", "--quiet",
                            "--out", str(tmp_path / "clean")], capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    for image in (db / "images").glob("*.nii.gz"):
        assert image.read_bytes() == (tmp_path / "clean" / "images" / image.name).read_bytes()


def test_stale_partial_files_are_swept(tmp_path, small_case):
    cases = _cases_csv(tmp_path, small_case, ["a"])
    stale = tmp_path / "db" / "images" / f"{PARTIAL_PREFIX}999999-0badcafe-a_v0000.nii.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    assert _run(["build-db", "--cases", str(cases), "--variants", "1", "--size", "tiny", "--quiet",
                 "--out", str(tmp_path / "db")]).returncode == 0
    assert not stale.exists()


# --- a case's files appear together ---------------------------------------------------------------

def test_record_describes_the_files_beside_it(tmp_path, small_case):
    out = tmp_path / "out"
    assert _run(_lesion_args(small_case, out, "--seed", "1")).returncode == 0
    from MedSynthCommonLib.storage import content_sha256

    record = json.loads((out / "rec.json").read_text())
    assert record["outputs"]["image"]["sha256"] == content_sha256(out / "img.nii.gz")
    assert record["outputs"]["label"]["sha256"] == content_sha256(out / "lab.nii.gz")
    # a re-run that fails while writing (the label's folder is not writable) replaces nothing
    old = {name: (out / name).read_bytes() for name in ("img.nii.gz", "lab.nii.gz", "rec.json")}
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        image, organs = small_case
        result = _run(["lesion", "--image", str(image), "--organ-mask", str(organs), "--organ-label", "1",
                       "--seed", "2", "--out-image", str(out / "img.nii.gz"), "--out-label", str(locked / "lab.nii.gz"),
                       "--record", str(out / "rec.json")])
    finally:
        locked.chmod(stat.S_IRWXU)
    if os.geteuid() != 0:  # root may write anywhere: the folder is then not read-only to it
        _assert_clear_error(result, "permission")
        assert {name: (out / name).read_bytes() for name in old} == old


def test_output_set_commit_removes_the_old_record_first(tmp_path):
    (tmp_path / "rec.json").write_text("old")
    with OutputSet() as outputs:
        outputs.add(tmp_path / "img.bin", *bytes_writer(b"image"))
        outputs.add(tmp_path / "rec.json", *bytes_writer(b"new"))
        assert (tmp_path / "rec.json").read_text() == "old" and not (tmp_path / "img.bin").exists()
        outputs.commit()
    assert (tmp_path / "rec.json").read_text() == "new" and (tmp_path / "img.bin").read_bytes() == b"image"
    with OutputSet() as outputs:  # failing before the commit leaves nothing behind
        outputs.add(tmp_path / "other.bin", *bytes_writer(b"x"))
    assert not (tmp_path / "other.bin").exists() and not _partials(tmp_path)


# --- privacy and permissions ----------------------------------------------------------------------

def test_records_hold_file_names_and_hashes_not_paths(tmp_path, small_case):
    out = tmp_path / "out"
    assert _run(_lesion_args(small_case, out)).returncode == 0
    text = (out / "rec.json").read_text()
    assert str(small_case[0].parent) not in text
    inputs = json.loads(text)["inputs"]
    assert inputs["image"]["file"] == "ct.nii.gz" and len(inputs["image"]["sha256"]) == 64
    assert _run(_lesion_args(small_case, out, "--record-full-paths")).returncode == 0
    assert json.loads((out / "rec.json").read_text())["inputs"]["image"]["path"] == str(small_case[0].resolve())


def test_dicom_tags_are_not_copied(tmp_path):
    import SimpleITK as sitk

    phantom = make_ct_phantom(shape=(24, 72, 72), spacing=(3.0, 3.0, 4.0), seed=2)
    series = tmp_path / "dicom"
    series.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    volume = sitk.GetImageFromArray(phantom.image)
    volume.SetSpacing((3.0, 3.0, 4.0))
    for k in range(volume.GetDepth()):
        slice_ = volume[:, :, k]
        for tag, value in (("0010|0010", "DOE^JANE"), ("0010|0020", "PATIENT-4711"), ("0020|000e", "1.2.3.4"),
                           ("0020|0032", f"0\\0\\{4.0 * k}"), ("0020|0013", str(k)), ("0008|0060", "CT")):
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(series / f"{k:03d}.dcm"))
        writer.Execute(slice_)
    image, geometry = read_volume(series)
    organs = write_volume(tmp_path / "organs.nrrd", phantom.organs[:, :, :], geometry)
    out = tmp_path / "out"
    result = _run(["lesion", "--image", str(series), "--organ-mask", str(organs), "--organ-label", "1",
                   "--out-image", str(out / "img.nrrd"), "--out-label", str(out / "lab.nrrd"), "--record", str(out / "r.json")])
    assert result.returncode == 0, result.stderr
    for path in out.iterdir():
        data = path.read_bytes()
        assert b"DOE^JANE" not in data and b"PATIENT-4711" not in data, path.name


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask(tmp_path, small_case, umask, mode):
    out = tmp_path / "out"
    assert _run(_lesion_args(small_case, out), umask=umask).returncode == 0
    for name in ("img.nii.gz", "lab.nii.gz", "rec.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == mode, name


def test_write_failures_are_output_errors(tmp_path):
    from MedSynthCommonLib.storage import write_text_atomic

    (tmp_path / "file").write_text("x")
    with pytest.raises(MedSynthInputError, match="is a file"):
        write_text_atomic(tmp_path / "file" / "inner.txt", "text")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.geteuid() != 0:
            with pytest.raises(MedSynthOutputError, match="permission|read-only"):
                write_text_atomic(read_only / "a.txt", "text")
    finally:
        read_only.chmod(stat.S_IRWXU)
