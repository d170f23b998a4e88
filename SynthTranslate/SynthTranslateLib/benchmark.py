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
from .apply import sample_images, translate_volume
from .config import MINIMUM_IMAGE_SIZE, TranslatorConfig
from .data import BatchSampler, Normalizer
from .model_dir import load_model
from .models import build_translator
from .training import train_translator


def _setup(model: str, size: int, batch: int):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (64, size, size)).astype(np.float32)
    if model in ("stargan", "migan", "stylegan", "fastgan"):
        config = TranslatorConfig(model=model, image_size=size, batch_size=batch, domains=["a", "b", "c"],
                                  key_domain="c" if model == "migan" else None)
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


_MEMORY_PROBE = """
import gc, json, sys, numpy as np
from SynthTranslateLib.apply import translate_volume
from SynthTranslateLib.model_dir import load_model
from MedSynthCommonLib.devices import resolve_accelerator
import torch

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024  # kB -> MB

model = load_model(sys.argv[1], resolve_accelerator(sys.argv[2], sys.argv[3]))
target = model.config.domains[-1] if model.config.kind.target_domain else None
volume = np.random.default_rng(1).normal(0, 0.5, (4, 512, 512)).astype(np.float32)
condition = (volume > 0).astype(int) if model.config.kind.input == "label map" else None
gc.collect()
open("/proc/self/clear_refs", "w").write("5")  # resets the peak resident set (VmHWM) to the current one
base = status("VmRSS:")
cuda = model.translator.device.startswith("cuda")
if cuda:
    torch.cuda.reset_peak_memory_stats()
translate_volume(model, volume, target, condition, batch_size=4)
print(json.dumps({"cpu_mb": status("VmHWM:") - base, "gpu_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None}))
"""


def inference_memory_mb(model_folder: str, accelerator: Accelerator) -> dict | None:
    """Memory a fresh process needs, beyond the loaded model and the input, to translate four
    512 x 512 slices in one batch: its peak resident set above the resident
    set before (MB, Linux's VmHWM after resetting it), and on CUDA the allocator's peak.  A fresh
    process, because a process that trained keeps its memory pools.  None off Linux."""
    import json
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        return None
    done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, model_folder, accelerator.device, accelerator.precision],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return None
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: round(v, 1) for k, v in found.items() if v is not None}


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
        if config.kind.new_images:
            loaded = load_model(folder + "/run", accelerator)
            sample_images(loaded, 4, "a", 0.7)  # warm-up (and the class-mean style)
            start = time.perf_counter()
            sample_images(loaded, 16, "a", 0.7, seed=1)
            result[f"sampling_ms_per_{size}_image"] = round((time.perf_counter() - start) / 16 * 1000, 1)
        elif model != "maskgan":
            loaded = load_model(folder + "/run", accelerator)
            volume = np.random.default_rng(1).normal(0, 0.5, (4, 512, 512)).astype(np.float32)
            target = config.domains[-1] if config.kind.target_domain else None
            condition = (volume > 0).astype(int) if config.kind.input == "label map" else None
            translate_volume(loaded, volume[:1], target, None if condition is None else condition[:1])
            start = time.perf_counter()
            translate_volume(loaded, volume, target, condition, batch_size=4)
            result["inference_ms_per_512_slice"] = round((time.perf_counter() - start) / 4 * 1000, 1)
            result["inference_memory_mb_4_slices_of_512"] = inference_memory_mb(folder + "/run",
                                                                                loaded.translator.accelerator)
            if model == "pix2pixhd":  # its purpose: translation at full resolution, measured on a 512 px model
                result["native_512"] = _native_512(config, folder, accelerator, volume, condition)
    return result


def _native_512(config: TranslatorConfig, folder: str, accelerator: Accelerator | None, volume, condition) -> dict:
    """Speed and memory of a model built at image_size 512 (untrained weights: the cost does not
    depend on them), so slices are translated without resizing."""
    import dataclasses

    from .model_dir import save_model

    native = build_translator(dataclasses.replace(config, image_size=512), seed=0, accelerator=accelerator)
    save_model(folder + "/native512", native, Normalizer((-1, 1)), 0, 0, {})
    loaded = load_model(folder + "/native512", accelerator)
    translate_volume(loaded, volume[:1], None, condition[:1])
    start = time.perf_counter()
    translate_volume(loaded, volume, None, condition, batch_size=4)
    return {"inference_ms_per_512_slice": round((time.perf_counter() - start) / 4 * 1000, 1),
            "inference_memory_mb_4_slices_of_512": inference_memory_mb(folder + "/native512", loaded.translator.accelerator)}


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
        models[model] = bench_model(model, iterations, size=max(64, MINIMUM_IMAGE_SIZE.get(model, 16)),
                                    accelerator=accelerator)
        print(f"bench translate: {model}: ratio {models[model]['ratio']}", file=sys.stderr, flush=True)
    return {"image_size": "64 (pix2pixhd: 128, its smallest)", "batch": 16, "iterations": iterations,
            **accelerator.describe(), "models": models}
