"""Training state on disk: checksummed checkpoints, a model folder usable at every moment,
consistent loss logs, the run's seed kept, and no user file loaded in a way that runs code."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from MedSynthCommonLib.errors import MedSynthInputError  # noqa: E402
from SynthTranslateLib.config import TranslatorConfig  # noqa: E402
from SynthTranslateLib.data import BatchSampler, Normalizer  # noqa: E402
from SynthTranslateLib.model_dir import load_model, read_card, weights_path  # noqa: E402
from SynthTranslateLib.training import load_checkpoint, train_translator  # noqa: E402


def _stargan(folder, iterations, seed=0, checkpoint_every=4, progress=None):
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (8, 16, 16)).astype(np.float32)
    config = TranslatorConfig(model="stargan", image_size=16, features=4, batch_size=4, domains=["a", "b"], n_critic=3)
    return train_translator(config, BatchSampler("domains", 4, 0, image=images, domain=np.arange(8) % 2),
                            Normalizer((0.0, 1.0)), iterations, folder, seed=seed, checkpoint_every=checkpoint_every,
                            sample_every=1000, progress=progress)


def _losses(folder):
    with (folder / "losses.csv").open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


def test_bit_flipped_checkpoint_is_refused(tmp_path):
    _stargan(tmp_path / "run", 4)
    index = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    path = tmp_path / "run" / index["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    path.write_bytes(bytes(data))
    with pytest.raises(MedSynthInputError, match="does not match its SHA-256"):
        _stargan(tmp_path / "run", 8)


def test_loss_log_columns_stay_aligned_and_no_row_is_repeated(tmp_path):
    folder = tmp_path / "run"
    _stargan(folder, 30, checkpoint_every=10)  # the generator is updated every 3rd step: logged at 30 only
    header, rows = _losses(folder)
    assert header == ["step", "d", "g", "gp"] and all(len(row) == len(header) for row in rows)
    by_step = {row[0]: dict(zip(header, row)) for row in rows}
    assert by_step["10"]["g"] == "" and by_step["30"]["g"] != "" and by_step["30"]["gp"] != ""  # no shifted values
    # a killed run logged rows after its last checkpoint (step 30): resuming drops them
    with (folder / "losses.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow(["40", "1.0", "1.0", "1.0"])
    _stargan(folder, 40, checkpoint_every=10)
    _, rows = _losses(folder)
    steps = [int(row[0]) for row in rows]
    assert steps == [10, 20, 30, 40]


def test_resume_keeps_the_runs_seed_and_says_so(tmp_path):
    messages = []
    _stargan(tmp_path / "run", 4, seed=3)
    _stargan(tmp_path / "run", 8, seed=9, progress=lambda e: messages.append(e.get("message")))
    assert any(m and "resuming" in m and "step 4" in m for m in messages)
    assert any(m and "seed 3" in m for m in messages)
    assert read_card(tmp_path / "run")["seed"] == 3
    straight = tmp_path / "straight"
    _stargan(straight, 8, seed=3)
    a, b = (torch.load(weights_path(f), weights_only=True) for f in (tmp_path / "run", straight))
    assert all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])


def test_model_folder_is_whole_at_every_moment(tmp_path):
    folder = tmp_path / "run"
    _stargan(folder, 8, checkpoint_every=4)
    weights = sorted(p.name for p in folder.glob("weights-*.pt"))
    checkpoints = sorted(p.name for p in folder.glob("checkpoint-*.pt"))
    assert len(weights) == 1 and len(checkpoints) == 1  # old files go once the new index is in place
    assert read_card(folder)["weights"] == weights[0]
    card_before = (folder / "card.json").read_bytes()
    # what a kill between "new weights written" and "card replaced" leaves: an extra weights file
    (folder / "weights-0123456789abcdef.pt").write_bytes(b"new weights, no card yet")
    assert (folder / "card.json").read_bytes() == card_before
    load_model(folder)  # still the complete old model
    assert load_checkpoint(folder)[0]["step"] == 8


def test_a_time_budget_stops_with_a_usable_model_and_the_run_goes_on(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (8, 16, 16)).astype(np.float32)
    config = TranslatorConfig(model="stargan", image_size=16, features=4, batch_size=4, domains=["a", "b"], n_critic=3)

    def train(iterations, budget_s):
        return train_translator(config, BatchSampler("domains", 4, 0, image=images, domain=np.arange(8) % 2),
                                Normalizer((0.0, 1.0)), iterations, tmp_path / "run", checkpoint_every=1000,
                                sample_every=1000, budget_s=budget_s)

    first = train(100_000, budget_s=0.5)
    step = first["iterations"]
    assert first["stopped_by_budget"] and 10 <= step < 100_000 and step % 10 == 0
    assert read_card(tmp_path / "run")["iterations"] == step and (tmp_path / "run" / f"samples_{step:06d}.png").is_file()
    load_model(tmp_path / "run")  # usable now
    again = train(step + 10, budget_s=None)  # the same command without a budget goes on from there
    assert again["iterations"] == step + 10 and not again["stopped_by_budget"]
