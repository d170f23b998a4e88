"""The second hostile round: file names that are not UTF-8, decompression bombs, NaN hidden in
NIfTI files, MetaImage files cut short.  Each case failed before its fix (exit 134, a kernel
kill at 22 GB, a silent 0, "No such file")."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.imageio import read_image_array, read_volume, write_volume
from MedSynthCommonLib.integrity import DamagedFileError, NonFiniteError
from MedSynthCommonLib.storage import PARTIAL_PREFIX

sys.path.insert(0, str(Path(__file__).parent))
from cli_fuzz import png_bomb  # noqa: E402

CLI = [sys.executable, "-m", "MedSynthCommonLib.cli"]
BAD = os.fsdecode(b"\xff")  # a byte that is not UTF-8, as Python hands it over from argv or a folder listing


def _run(arguments, cwd=None, timeout=180):
    return subprocess.run([*CLI, *arguments], capture_output=True, cwd=cwd, timeout=timeout)


def _partials(folder: Path) -> list[str]:
    return [name for name in os.listdir(os.fsencode(folder)) if name.startswith(PARTIAL_PREFIX.encode())]


# --- file names that are not UTF-8: refused with a message, never SIGABRT inside ITK ---

def test_non_utf8_names_are_refused_not_aborted(small_ct_files, tmp_path):
    _, image, organs, _ = small_ct_files
    bad_image = tmp_path / f"in{BAD}.nii.gz"
    os.link(image, os.fsencode(bad_image))
    base = ["lesion", "--organ-label", "1", "--size", "small"]
    cases = {
        "input": ["--image", str(bad_image), "--organ-mask", str(organs), "--out-image", str(tmp_path / "o.nii.gz"),
                  "--out-label", str(tmp_path / "l.nii.gz")],
        "output": ["--image", str(image), "--organ-mask", str(organs), "--out-image", str(tmp_path / f"o{BAD}.nii.gz"),
                   "--out-label", str(tmp_path / "l.nii.gz")],
        "output folder": ["--image", str(image), "--organ-mask", str(organs),
                          "--out-image", str(tmp_path / f"d{BAD}" / "o.nii.gz"), "--out-label", str(tmp_path / "l.nii.gz")],
    }
    for role, arguments in cases.items():
        result = _run([*base, *[os.fsencode(a) for a in arguments]])
        assert result.returncode == 2, (role, result.returncode, result.stderr[-400:])
        assert b"not valid UTF-8" in result.stderr and b"Traceback" not in result.stderr, role
    assert not _partials(tmp_path) and sorted(os.listdir(os.fsencode(tmp_path))) == [os.fsencode(bad_image.name)]


def test_non_utf8_names_through_the_library(tmp_path):
    """Names that reach the library from a folder listing (not the command line) are refused too."""
    from MedSynthCommonLib.geometry import Geometry

    geometry = Geometry(np.zeros(3), np.ones(3), np.eye(3))
    with pytest.raises(MedSynthInputError, match="not valid UTF-8"):
        write_volume(tmp_path / f"x{BAD}.nii.gz", np.zeros((2, 2, 2), np.int16), geometry)
    with pytest.raises(MedSynthInputError, match="not valid UTF-8"):
        read_volume(tmp_path / f"x{BAD}.nii.gz")
    assert not _partials(tmp_path)


# --- decompression bombs and headers that declare huge grids ---

def test_png_bomb_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    png_bomb(bomb, 20000, 20000)  # 400 megapixels in 0.4 MB
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(MedSynthInputError, match="decompression bomb"):
        read_image_array(bomb)


def test_translate_apply_and_privacy_refuse_a_bomb_in_their_folders(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    png_bomb(folder / "bomb.png", 20000, 20000)
    result = _run(["evaluate", "privacy", "--train", str(folder), "--synthetic", str(folder), "--out", str(tmp_path / "r")])
    assert result.returncode == 2 and b"decompression bomb" in result.stderr, result.stderr[-500:]


def _patched(tmp_path: Path, name: str, old: bytes, new: bytes) -> Path:
    import SimpleITK as sitk

    source = tmp_path / f"small_{name}"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 2, 2), np.int16)), str(source), False)
    data = source.read_bytes()
    assert old in data
    target = tmp_path / name
    target.write_bytes(data.replace(old, new, 1))
    return target


def test_headers_declaring_huge_grids_are_refused(tmp_path):
    mha = _patched(tmp_path, "huge.mha", b"DimSize = 2 2 2", b"DimSize = 100000 100000 1000")
    with pytest.raises(MedSynthInputError, match="declares a 100000 x 100000 x 1000 grid"):
        read_volume(mha)
    nifti = _patched(tmp_path, "huge.nii", struct.pack("<4h", 3, 2, 2, 2), struct.pack("<4h", 3, 30000, 30000, 30000))
    with pytest.raises(MedSynthInputError, match="declares a 30000 x 30000 x 30000 grid"):
        read_volume(nifti)


def test_truncated_metaimage_is_called_damaged(tmp_path):
    import SimpleITK as sitk

    whole = tmp_path / "whole.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(64, dtype=np.int16).reshape(4, 4, 4)), str(whole), False)
    cut = tmp_path / "cut.mha"
    cut.write_bytes(whole.read_bytes()[:-20])
    with pytest.raises(DamagedFileError, match="holds 108 of the 128 data bytes"):
        read_volume(cut)
    compressed = tmp_path / "z.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(4096, dtype=np.int16).reshape(16, 16, 16)), str(compressed), True)
    cut.write_bytes(compressed.read_bytes()[:-30])
    with pytest.raises(DamagedFileError, match="damaged"):
        read_volume(cut)
    assert read_volume(compressed)[0].shape == (16, 16, 16)


# --- NaN and infinity: refused in every format (ITK's NIfTI reader turns them into 0) ---

@pytest.mark.parametrize("extension", [".nii", ".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_refused_in_every_format(tmp_path, extension, dtype):
    import SimpleITK as sitk

    values = np.ones((5, 6, 7), dtype)
    values[1, 2, 3], values[4, 5, 6] = np.nan, -np.inf
    path = tmp_path / f"nan{extension}"
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    with pytest.raises(NonFiniteError, match="2 NaN or infinite"):
        read_volume(path)
    values[1, 2, 3] = values[4, 5, 6] = np.finfo(dtype).max  # finite extremes are not NaN
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    assert np.isfinite(read_volume(path)[0]).all()


def test_nan_in_nifti_refused_by_commands(small_ct_files, tmp_path):
    import SimpleITK as sitk

    _, image, organs, _ = small_ct_files
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(image))).astype(np.float32)
    values[10, 30, 30] = np.nan
    bad = sitk.GetImageFromArray(values)
    bad.CopyInformation(sitk.ReadImage(str(image)))
    sitk.WriteImage(bad, str(tmp_path / "nan.nii.gz"))
    result = _run(["lesion", "--image", str(tmp_path / "nan.nii.gz"), "--organ-mask", str(organs), "--organ-label", "1",
                   "--out-image", str(tmp_path / "o.nii.gz"), "--out-label", str(tmp_path / "l.nii.gz")])
    assert result.returncode == 2 and b"1 NaN or infinite" in result.stderr, result.stderr[-300:]
    assert not (tmp_path / "o.nii.gz").exists()


# --- output folders: someone else's files are never touched; outputs never among the inputs ---

def _stargan_folder(tmp_path: Path) -> Path:
    """A folder of 2-D images in two domains (labels.csv), as translate train --data reads it."""
    import SimpleITK as sitk

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = ["path,label"]
    for n in range(8):
        pixels = (rng.uniform(0, 200, (24, 24)) + 40 * (n % 2)).astype(np.uint8)
        sitk.WriteImage(sitk.GetImageFromArray(pixels), str(data / f"i{n}.png"))
        rows.append(f"i{n}.png,{'ab'[n % 2]}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    return data


def _train(data: Path, out: Path, iterations: int = 2) -> subprocess.CompletedProcess:
    return _run(["translate", "train", "--model", "stargan", "--data", str(data), "--image-size", "16", "--features", "4",
                 "--batch-size", "2", "--iterations", str(iterations), "--checkpoint-every", "1", "--device", "cpu",
                 "--out", str(out)])


def test_translate_train_never_touches_a_folder_that_is_not_its_model(tmp_path):
    pytest.importorskip("torch")
    data = _stargan_folder(tmp_path)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    files = {"weights-final.pt": b"my weights", "checkpoint-1.pt": b"my state", "losses.csv": b"step,loss\n1,0.5\n",
             "samples_000100.png": b"not really a png"}
    for name, content in files.items():
        (foreign / name).write_bytes(content)
    result = _train(data, foreign)
    assert result.returncode == 2 and b"not a MedSynth model folder" in result.stderr, result.stderr[-400:]
    assert {p.name: p.read_bytes() for p in foreign.iterdir()} == files
    inside = _train(data, data / "model")
    assert inside.returncode == 2 and b"inside --data" in inside.stderr and not (data / "model").exists()


def test_only_files_the_model_wrote_are_removed(tmp_path):
    pytest.importorskip("torch")
    data = _stargan_folder(tmp_path)
    model = tmp_path / "model"
    assert _train(data, model, 2).returncode == 0
    keep = {"weights-final.pt": b"a user's copy", "weights-0123456789abcdef.pt": b"named like ours, not ours"}
    for name, content in keep.items():
        (model / name).write_bytes(content)
    assert _train(data, model, 4).returncode == 0  # resumes; old weights and checkpoints are replaced
    assert all((model / name).read_bytes() == content for name, content in keep.items())
    ours = [p.name for p in model.glob("weights-*.pt") if p.name not in keep]
    assert len(ours) == 1 and len(list(model.glob("checkpoint-*.pt"))) == 1


def test_demo_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = _run(["demo", "--out", str(tmp_path)])
    assert result.returncode == 2 and b"notes.txt" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_replaced_private_output_stays_private(tmp_path):
    from MedSynthCommonLib.storage import write_text_atomic

    path = tmp_path / "record.json"
    path.write_text("{}")
    path.chmod(0o600)
    write_text_atomic(path, '{"new": 1}')
    assert (path.stat().st_mode & 0o777) == 0o600 and path.read_text() == '{"new": 1}'


# --- processes: workers never outlive a killed parent; SIGTERM ends a run as Ctrl-C does ---

@pytest.fixture(scope="module")
def db_cases(tmp_path_factory, small_ct_files):
    _, image, organs, _ = small_ct_files
    path = tmp_path_factory.mktemp("cases") / "cases.csv"
    path.write_text(f"case_id,image,organ_mask,organ_label\na,{image},{organs},1\nb,{image},{organs},1\n")
    return path


@pytest.mark.skipif(not Path("/proc").exists(), reason="pgrep over a process group")
def test_workers_end_when_the_parent_is_killed_while_they_start(tmp_path, db_cases):
    """The parent killed 0.3-0.5 s after start, while its spawned workers are still starting
    (before the old code armed the death signal: 4 of 9 such kills left workers for ever)."""
    import signal
    import time

    for n, delay in enumerate((0.3, 0.38, 0.45, 0.55)):
        process = subprocess.Popen([*CLI, "build-db", "--cases", str(db_cases), "--out", str(tmp_path / f"db{n}"),
                                    "--variants", "6", "--workers", "2", "--quiet"], start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline, left = time.time() + 8, ["?"]
        while left and time.time() < deadline:
            time.sleep(0.25)
            left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
        if left:
            subprocess.run(["kill", "-9", *left])
        assert not left, f"workers outlived a parent killed after {delay} s"


def test_sigterm_ends_build_db_like_ctrl_c(tmp_path, db_cases):
    import json
    import signal
    import time

    out = tmp_path / "db"
    command = [*CLI, "build-db", "--cases", str(db_cases), "--out", str(out), "--variants", "8", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (manifest.exists() and manifest.read_bytes().count(b"\n") >= 1):
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    done = manifest.read_bytes().count(b"\n")
    if done < 16:  # the signal came before the end
        assert process.returncode == 143 and b"terminated; finished outputs are kept" in stderr, stderr[-300:]
    said = f"exit {process.returncode}, {done} done; stderr: {stderr[-600:]!r}"  # what a rare failure needs to be read
    assert not [p for p in out.rglob("*") if p.name.startswith(PARTIAL_PREFIX)], said
    assert all((out / json.loads(line)["image"]).is_file() for line in manifest.read_text().splitlines()), said
    resumed = subprocess.run(command, capture_output=True, timeout=300)
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["already_done"] == done, \
        f"{said}; resumed: exit {resumed.returncode}, {resumed.stdout[-300:]!r} {resumed.stderr[-600:]!r}"


# --- build-db: outputs changed after they were made, and files in the way, are kept ---

def test_build_db_keeps_a_hand_corrected_label_and_foreign_files(tmp_path, db_cases):
    import json

    import SimpleITK as sitk

    out = tmp_path / "db"
    base = ["build-db", "--cases", str(db_cases), "--out", str(out), "--size", "tiny", "--quiet"]
    assert _run([*base, "--variants", "2"]).returncode == 0
    label = out / "labels" / "a_v0000.nii.gz"
    corrected = sitk.ReadImage(str(label))
    values = sitk.GetArrayFromImage(corrected)
    values[values == 2] = 1  # the reader erased a lesion it did not believe
    edited = sitk.GetImageFromArray(values)
    edited.CopyInformation(corrected)
    sitk.WriteImage(edited, str(label))
    mine = label.read_bytes()
    # someone else's file where a new output would go, behind a symlinked images/ folder
    elsewhere = tmp_path / "elsewhere"
    (out / "images").rename(elsewhere)
    (out / "images").symlink_to(elsewhere)
    (elsewhere / "b_v0002.nii.gz").write_bytes(b"someone else's scan")
    result = _run([*base, "--variants", "3"])
    summary = json.loads(result.stdout)
    assert label.read_bytes() == mine  # kept, not regenerated
    assert summary["changed_kept"] == [{"name": "a_v0000", "file": "labels/a_v0000.nii.gz"}]
    assert (elsewhere / "b_v0002.nii.gz").read_bytes() == b"someone else's scan"
    assert [f["name"] for f in summary["failed"]] == ["b_v0002"] and "in the way" in summary["failed"][0]["error"]
    assert summary["made"] == 1 and result.returncode == 1  # a_v0002 made; b_v0002 refused
    assert b"changed since they were made" in _run([*base[:-1], "--variants", "3"]).stderr
    forced = _run([*base, "--variants", "3", "--seed", "5", "--force"])  # other settings: old outputs discarded...
    assert label.read_bytes() == mine  # ...but never a changed one
    assert [k["name"] for k in json.loads(forced.stdout)["changed_kept"]] == ["a_v0000"]


def test_a_command_whose_packages_are_missing_says_what_to_install(tmp_path):
    """A Python without torch (a fresh Slicer, a plain pip install): the deep-learning commands end
    with a plain message naming the package and how to install it (exit 2), not an "internal
    error"; nothing is written.  The child cannot import torch: a finder first on Python's import
    path answers every ``torch`` import with ModuleNotFoundError, as a Python without it does."""
    data = _stargan_folder(tmp_path)
    out = tmp_path / "model"
    code = ("import sys\n"
            "class NoTorch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from MedSynthCommonLib.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", code, "translate", "train", "--model", "stargan", "--data",
                             str(data), "--image-size", "16", "--iterations", "2", "--out", str(out)],
                            capture_output=True, timeout=180)
    assert result.returncode == 2, result.stderr
    message = result.stderr.decode()
    assert "needs the Python package 'torch'" in message and 'pip install "medsynth[deep]"' in message
    assert "PyTorch extension" in message and "internal error" not in message and "Traceback" not in message
    assert not out.exists() or not any(out.iterdir())
