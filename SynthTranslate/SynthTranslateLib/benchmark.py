"""``medsynth bench translate``: framework overhead and inference speed of the translators.

For each model: steady-state iterations per second through ``train_translator`` (batch
sampling, RNG handling, loss logging) against a plain PyTorch loop that calls the same networks
and losses on a pre-built batch, run before and after it (ratio to their mean); the end-of-run save, and inference
milliseconds per 512 x 512 slice.  Both loops run on the same device and precision
(``--device``, ``--precision``: mixed precision and channels-last on a GPU).  Prints one JSON object.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from MedSynthCommonLib.devices import Accelerator, resolve_accelerator
from .apply import translate_volume
from .config import TranslatorConfig
from .data import BatchSampler, Normalizer
from .model_dir import load_model
from .models import build_translator
from .training import train_translator


def _setup(model: str, size: int, batch: int):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (64, size, size)).astype(np.float32)
    if model in ("stargan", "migan"):
        config = TranslatorConfig(model=model, image_size=size, batch_size=batch, domains=["a", "b", "c"], key_domain="c")
        return config, "domains", {"image": images, "domain": np.arange(64) % 3}
    if model == "cyclegan":
        return TranslatorConfig(model=model, image_size=size, batch_size=batch, domains=["a", "b"]), "unpaired", {"a": images, "b": -images}
    if model == "maskgan":
        return TranslatorConfig(model=model, image_size=32, batch_size=batch), "masks", {"mask": (images[:, :32, :32] > 0).astype(np.float32)}
    if model in ("spade", "pix2pixhd"):
        labels = (images > 0).astype(int)
        onehot = np.stack([labels == 0, labels == 1], 1).astype(np.float32) * 2 - 1
        return TranslatorConfig(model=model, image_size=size, batch_size=batch, labels=[0, 1]), "paired", {"source": onehot, "target": images}
    return TranslatorConfig(model=model, image_size=size, batch_size=batch), "paired", {"source": images, "target": -images}


def bench_model(model: str, iterations: int = 30, size: int = 64, batch: int = 16,
                accelerator: Accelerator | None = None) -> dict:
    """Steady-state loop throughput (steps 10 to ``iterations``, timed by the progress
    callback, which fires before the end-of-run save) against the plain loop over the same
    number of steps; the end-of-run save (checkpoint, weights, card, samples) is timed apart."""
    config, kind, arrays = _setup(model, size, batch)
    steady = iterations - 10
    # plain loop: the same networks and losses, one pre-built batch, nothing else
    def plain_loop() -> float:
        translator = build_translator(config, seed=0, accelerator=accelerator)
        fixed = {name: translator.accelerator.tensor(value)
                 for name, value in BatchSampler(kind, batch, 0, **arrays).next().items()}
        for step in range(1, 11):
            translator.fit_step(fixed, step)  # the same warm-up as the timed loop's first 10 steps
        start = time.perf_counter()
        for step in range(11, iterations + 1):
            translator.fit_step(fixed, step)  # losses are read as floats each step: the device is synchronised
        return steady / (time.perf_counter() - start)

    # plain, MedSynth, plain again: the ratio is to the mean of the two plain runs, so a machine
    # that gets slower or faster during the measurement does not bias it
    plain_before = plain_loop()
    stamps = {}

    def progress(entry):
        stamps[entry["step"]] = time.perf_counter()

    with tempfile.TemporaryDirectory() as folder:
        train_translator(config, BatchSampler(kind, batch, 0, **arrays), Normalizer((-1, 1)), iterations, folder + "/run",
                         sample_every=10 ** 9, checkpoint_every=10 ** 9, progress=progress, accelerator=accelerator)
        finished = time.perf_counter()
        ours = steady / (stamps[iterations] - stamps[10])
        plain_after = plain_loop()
        plain = (plain_before + plain_after) / 2
        result = {"plain_it_per_s": [round(plain_before, 3), round(plain_after, 3)], "medsynth_it_per_s": round(ours, 3),
                  "ratio": round(ours / plain, 3), "end_of_run_save_s": round(finished - stamps[iterations], 3)}
        if model != "maskgan":
            loaded = load_model(folder + "/run", accelerator)
            volume = np.random.default_rng(1).normal(0, 0.5, (4, 512, 512)).astype(np.float32)
            target = config.domains[-1] if config.kind.target_domain else None
            condition = (volume > 0).astype(int) if config.kind.input == "label map" else None
            translate_volume(loaded, volume[:1], target, None if condition is None else condition[:1])
            start = time.perf_counter()
            translate_volume(loaded, volume, target, condition, batch_size=4)
            result["inference_ms_per_512_slice"] = round((time.perf_counter() - start) / 4 * 1000, 1)
    return result


def bench_translate(iterations: int = 30, device: str = "auto", precision: str = "auto") -> dict:
    """Every model in turn; one progress line per model on stderr (the run takes minutes on a CPU)."""
    import sys

    from .config import MODELS

    accelerator = resolve_accelerator(device, precision)
    models = {}
    started = time.perf_counter()
    for number, model in enumerate(MODELS, start=1):
        print(f"bench translate: {model} ({number}/{len(MODELS)}), {time.perf_counter() - started:.0f} s so far",
              file=sys.stderr, flush=True)
        models[model] = bench_model(model, iterations, accelerator=accelerator)
        print(f"bench translate: {model}: ratio {models[model]['ratio']}", file=sys.stderr, flush=True)
    return {"image_size": 64, "batch": 16, "iterations": iterations, **accelerator.describe(), "models": models}
