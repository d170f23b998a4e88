"""Translator training on torch.distributed: real ``torchrun`` launches of 2 CPU processes with
gloo (no mocks) against one process with the same global batch; rank 0 alone writes; a killed
rank leaves a checkpoint that resumes, on another number of processes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this torch has no torch.distributed", allow_module_level=True)

from SynthTranslateLib.model_dir import load_model, read_card  # noqa: E402
from SynthTranslateLib.training import load_checkpoint  # noqa: E402

WORKER = Path(__file__).with_name("distributed_worker.py")
MODELS = ["pix2pix", "spade", "cyclegan", "stargan", "migan", "maskgan", "stylegan", "pix2pixhd"]


def _torchrun(processes: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            str(WORKER), *args]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _last_losses(folder: Path) -> dict[str, float]:
    with (folder / "losses.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {name: float(value) for name, value in rows[-1].items() if value}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every translator trained 4 steps (global batch 4) on 2 gloo processes; pix2pix and SPADE
    also in one process."""
    root = tmp_path_factory.mktemp("ddp")
    _run(_torchrun(2, str(root / "two"), ",".join(MODELS), "4", "4"))
    _run([sys.executable, str(WORKER), str(root / "one"), "pix2pix,spade", "4", "4"])
    return root


def test_every_translator_trains_on_two_processes_and_only_rank_0_writes(runs):
    for model in MODELS:
        card = read_card(runs / "two" / model)
        assert card["trained_on"]["world_size"] == 2 and card["iterations"] == 4
        assert load_checkpoint(runs / "two" / model)[0]["world_size"] == 2
        steps = [row["step"] for row in csv.DictReader((runs / "two" / model / "losses.csv").open())]
        assert steps == ["4"]  # one writer: no row twice
    assert read_card(runs / "one" / "pix2pix")["trained_on"]["world_size"] == 1
    assert (runs / "two" / "pids" / "rank1").exists()  # rank 1 ran, with its audit hook
    assert not (runs / "writes-rank1.txt").exists(), (runs / "writes-rank1.txt").read_text()


@pytest.mark.parametrize("model", ["pix2pix", "spade"])
def test_two_processes_take_the_steps_of_one_process_with_the_same_global_batch(runs, model):
    one, two = load_checkpoint(runs / "one" / model)[1], load_checkpoint(runs / "two" / model)[1]
    close = total = 0
    for name, weights in one["modules"].items():
        for key, value in weights.items():
            if value.is_floating_point():
                total += value.numel()
                close += int(((value - two["modules"][name][key]).abs() <= 1e-5).sum())
    # Adam moves every weight by about lr per step whatever the size of its gradient, so a weight
    # whose gradient is float noise (a bias just before a normalisation) can step either way;
    # all others agree to float tolerance
    assert close / total > 0.995
    for name, value in _last_losses(runs / "one" / model).items():
        assert _last_losses(runs / "two" / model)[name] == pytest.approx(value, abs=1e-4), name
    if model == "pix2pix":  # the function the generator computes is the same
        x = torch.as_tensor(np.random.default_rng(5).uniform(-1, 1, (2, 1, 32, 32)).astype(np.float32))
        with torch.no_grad():
            a = load_model(runs / "one" / model).translator.infer(x)
            b = load_model(runs / "two" / model).translator.infer(x)
        assert (a - b).abs().max() < 1e-4


def _weights(path: Path) -> dict:
    return {k: v for k, v in torch.load(path, weights_only=True).items() if v.is_floating_point()}


def test_segmenter_and_classifier_recipes_train_under_ddp(tmp_path):
    """The SynthEvaluate recipes under torchrun: the ranks hold one model; the segmenter (no
    dropout) takes the steps of one process with the same global batch."""
    _run(_torchrun(2, str(tmp_path / "two" / "out"), "segmenter,classifier", "4", "4"))
    _run([sys.executable, str(WORKER), str(tmp_path / "one" / "out"), "segmenter", "4", "4"])
    for name in ("segmenter", "classifier"):
        rank0, rank1 = _weights(tmp_path / "two" / f"{name}-rank0.pt"), _weights(tmp_path / "two" / f"{name}-rank1.pt")
        assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    one = _weights(tmp_path / "one" / "segmenter-rank0.pt")
    rank0 = _weights(tmp_path / "two" / "segmenter-rank0.pt")
    close = sum(int(((one[k] - rank0[k]).abs() <= 1e-5).sum()) for k in one)
    assert close / sum(v.numel() for v in one.values()) > 0.95  # Adam on float-noise gradients: see above


def test_a_killed_rank_leaves_a_checkpoint_that_resumes_on_another_world_size(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(_torchrun(2, str(out), "stargan", "10000", "4", "2"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    index, pid_file = out / "stargan" / "checkpoint.json", out / "pids" / "rank1"
    deadline = time.time() + 120
    while time.time() < deadline and not (index.exists() and pid_file.exists()
                                          and json.loads(index.read_text())["step"] >= 4):
        time.sleep(0.05)
    assert index.exists(), "a checkpoint was written"
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0  # torchrun stops the other rank and reports the failure
    saved = json.loads(index.read_text())
    assert saved["world_size"] == 2 and 4 <= saved["step"] < 10000
    target = saved["step"] + 4
    _run([sys.executable, str(WORKER), str(out), "stargan", str(target), "4", "2"])  # one process now
    card = read_card(out / "stargan")
    assert card["iterations"] == target and card["trained_on"]["world_size"] == 1
    steps = [int(row["step"]) for row in csv.DictReader((out / "stargan" / "losses.csv").open())]
    assert steps == sorted(set(steps)) and steps[-1] == target
    assert len(list((out / "stargan").glob("checkpoint-*.pt"))) == 1
