"""Feature networks a user supplies: a MONAI architecture named in a card plus weights read as
weights only; programs (.pt2, TorchScript) are refused before torch opens them, whatever site
of the archive carries a payload."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from MedSynthCommonLib.errors import MedSynthInputError  # noqa: E402
from SynthEvaluateLib.metrics.feature_networks import CARD_FORMAT, FeatureNetwork, feature_network_features  # noqa: E402


def _card(folder, network="resnet18", weights="weights.pt", **extra):
    card = {"format": CARD_FORMAT, "network": network, "weights": weights, "in_channels": 3, "out_channels": 5,
            "input_size": 32, **extra}
    path = folder / "card.json"
    path.write_text(json.dumps(card))
    return path


def _resnet18_weights(path, seed=0):
    from monai.networks import nets

    torch.manual_seed(seed)
    torch.save(nets.resnet18(spatial_dims=2, n_input_channels=3, num_classes=5).state_dict(), path)


def test_card_network_gives_pooled_features(tmp_path):
    from SynthEvaluateLib.metrics.distances import frechet_distance

    _resnet18_weights(tmp_path / "weights.pt")
    card = _card(tmp_path, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    rng = np.random.default_rng(0)
    a = feature_network_features(card, rng.uniform(0, 1, (20, 24, 24)), batch_size=8)  # batches 8, 8, 4
    b = feature_network_features(card, rng.uniform(0, 1, (20, 24, 24)) * 0.3)
    assert a["features"].shape == (20, 512) and a["source"]["network"] == "resnet18"
    assert np.all(np.isfinite(a["features"])) and frechet_distance(a["features"], b["features"]) > 0
    again = FeatureNetwork(tmp_path).features(rng.uniform(0, 1, (3, 24, 24)))  # the folder holding card.json
    assert again.shape == (3, 512)


def test_bad_cards_are_refused_clearly(tmp_path):
    _resnet18_weights(tmp_path / "weights.pt")
    cases = [({"network": "inception"}, "unknown network"), ({"weights": "../weights.pt"}, "beside the card"),
             ({"weights": "none.pt"}, "not beside it"), ({"in_channels": 0}, "whole number"),
             ({"out_channels": 7}, "do not fit"), ({"mean": [0.5]}, "3 finite numbers"),
             ({"weights_sha256": "0" * 64}, "SHA-256"), ({"extra": 1}, "unknown extra")]
    for change, message in cases:
        _card(tmp_path, **change)
        with pytest.raises(MedSynthInputError, match=message):
            FeatureNetwork(tmp_path / "card.json")
    (tmp_path / "card.json").write_text("[" * 100_000)
    with pytest.raises(MedSynthInputError, match="nested too deeply"):
        FeatureNetwork(tmp_path / "card.json")


# --- crafted programs: every payload site of a .pt2, TorchScript, pickles named as weights ---

def _exported(path):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.linear(x) + torch.tensor([1.0, 2.0])  # a lifted tensor constant

    torch.export.save(torch.export.export(Net(), (torch.randn(2, 3),)), str(path))


class _Payload:
    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload(marker, torch_save=True) -> bytes:
    payload = _Payload()
    payload.marker = str(marker)
    if not torch_save:
        return pickle.dumps(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _rewrite(source, target, change):
    """Copy the zip ``source`` to ``target``; ``change(name, data) -> data | None`` edits members
    and ``change(None, None)`` may return extra (name, data) members to add."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as out:
        for info in original.infolist():
            out.writestr(info, change(info.filename, original.read(info.filename)))
        for name, data in change(None, None) or []:
            out.writestr(name, data)


def _crafted_pt2s(tmp_path, marker):
    good = tmp_path / "good.pt2"
    _exported(good)
    prefix = zipfile.ZipFile(good).namelist()[0].split("/")[0]
    made = {}

    def pickled_config(kind):
        def change(name, data):
            if name is None:
                return None
            if name.endswith(f"model_{kind}_config.json"):
                config = json.loads(data)
                entry = next(iter(config["config"].values()))
                entry["use_pickle"] = True
                return json.dumps(config).encode()
            folder = "weights/weight_0" if kind == "weights" else "constants/tensor_0"
            return _payload(marker) if name.endswith(folder) else data
        return change

    def sample_inputs(name, data):
        if name is None:
            return None
        return _payload(marker) if "sample_inputs" in name else data

    def opaque(name, data):
        if name is None:
            return [(f"{prefix}/data/constants/opaque_obj_0", _payload(marker, torch_save=False))]
        if name.endswith("model_constants_config.json"):
            config = json.loads(data)
            config["config"]["evil"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                        "tensor_meta": None}
            return json.dumps(config).encode()
        return data

    for site, change in (("pickled weight", pickled_config("weights")), ("tensor constant", pickled_config("constants")),
                         ("sample_inputs", sample_inputs), ("opaque object", opaque)):
        path = tmp_path / f"{site.replace(' ', '_')}.pt2"
        _rewrite(good, path, change)
        made[site] = path
    return made


def test_crafted_programs_never_run(tmp_path):
    marker = tmp_path / "ran"
    crafted = _crafted_pt2s(tmp_path, marker)
    # the payloads are live: torch's own loader runs each of them (in a child process)
    for site, path in crafted.items():
        code = f"import torch\ntry:\n    torch.export.load({str(path)!r})\nexcept Exception:\n    pass"
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
        assert marker.exists(), f"the .pt2 crafted at its {site} should run its payload under torch.export.load"
        marker.unlink()

    script = torch.jit.script(torch.nn.Linear(3, 2))
    torch.jit.save(script, str(tmp_path / "script.pt"))
    (tmp_path / "pickle.pt").write_bytes(_payload(marker))
    for site, path in crafted.items():
        renamed = tmp_path / f"{path.stem}.pt"  # the same archive, named as weights
        renamed.write_bytes(path.read_bytes())
        for given in (path, renamed):
            with pytest.raises(MedSynthInputError, match="does not load|not a plain weights file|program"):
                if given.suffix == ".pt2":
                    FeatureNetwork(given)
                else:
                    FeatureNetwork(_card(tmp_path, weights=given.name))
    with pytest.raises(MedSynthInputError, match="not a plain weights file"):
        FeatureNetwork(_card(tmp_path, weights="script.pt"))
    with pytest.raises(MedSynthInputError, match="not plain weights|not a torch.save"):
        FeatureNetwork(_card(tmp_path, weights="pickle.pt"))
    assert not marker.exists()


def test_privacy_command_refuses_a_pt2_before_reading_images(tmp_path, capsys):
    from MedSynthCommonLib.cli import main

    marker = tmp_path / "ran"
    evil = _crafted_pt2s(tmp_path, marker)["opaque object"]
    code = main(["evaluate", "privacy", "--train", str(tmp_path / "none"), "--synthetic", str(tmp_path / "none"),
                 "--feature-extractor", str(evil), "--out", str(tmp_path / "report")])
    assert code == 2 and "does not load such files" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "report").exists()
