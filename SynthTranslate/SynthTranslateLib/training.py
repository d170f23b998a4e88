"""One training loop for every translator: seeded, resumable, cancellable, with sample grids,
loss curves and checkpoints written atomically.

Resuming restores weights, optimiser moments, loss scalers, the sampler's and the translator's
random states and torch's RNG state, so an interrupted run continues exactly as it would have
(bit for bit on the CPU; on a GPU as far as its kernels are deterministic).  A checkpoint
written on one device resumes on another.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from MedSynthCommonLib.devices import Accelerator
from .data import BatchSampler, Normalizer
from .model_dir import atomic_torch_save, save_model
from .models import Translator, build_translator
from .config import TranslatorConfig

CHECKPOINT = "checkpoint.pt"


def _checkpoint_state(translator: Translator, sampler: BatchSampler, step: int) -> dict:
    import torch

    return {"step": step,
            "modules": {n: m.state_dict() for n, m in translator.modules.items()},
            "optimizers": {n: o.state_dict() for n, o in translator.optimizers.items()},
            "scalers": {n: s.state_dict() for n, s in translator.scalers.items()},
            "extra": translator.extra_state(), "sampler": sampler.state_dict(),
            "translator_rng": translator.random.get_state(), "torch_rng": torch.get_rng_state()}


def _restore(translator: Translator, sampler: BatchSampler, state: dict) -> int:
    import torch

    for name, module in translator.modules.items():
        module.load_state_dict(state["modules"][name])
    for name, optimizer in translator.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    for name, scaler in translator.scalers.items():
        saved = state.get("scalers", {}).get(name)
        if saved and scaler.is_enabled():  # a disabled scaler (fp32/bf16) saves {}
            scaler.load_state_dict(saved)
    translator.load_extra_state(state["extra"])
    sampler.load_state_dict(state["sampler"])
    translator.random.set_state(state["translator_rng"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


def train_translator(config: TranslatorConfig, sampler: BatchSampler, normalizer: Normalizer, iterations: int,
                     out_dir: Path, seed: int = 0, training_data: dict | None = None, sample_every: int = 100,
                     checkpoint_every: int = 100, resume: bool = True, sample_batch: dict | None = None,
                     progress: Callable[[dict], None] | None = None,
                     should_stop: Callable[[], bool] | None = None, accelerator: Accelerator | None = None) -> dict:
    """Train ``iterations`` steps (in total, counting a resumed run's earlier steps) on
    ``accelerator`` (default CPU fp32; see ``resolve_accelerator``).

    Writes into ``out_dir``: ``checkpoint.pt`` (resumable state), ``card.json`` + ``weights.pt``
    (the model folder, usable at every checkpoint), ``losses.csv`` and ``samples_<step>.png``.
    Raises ``InterruptedError`` when ``should_stop`` says so, after saving a checkpoint.
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    translator = build_translator(config, seed, accelerator)
    step = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        checkpoint = out_dir / CHECKPOINT
        if resume and checkpoint.exists():
            try:
                state = torch.load(checkpoint, map_location="cpu", weights_only=True)
                step = _restore(translator, sampler, state)
            except Exception as error:  # truncated, foreign, or from other options
                raise MedSynthInputError(
                    f"{checkpoint} cannot be resumed ({str(error).splitlines()[0][:200]}); delete it to start "
                    "again, or train into another folder.") from None
        if sample_batch is None:
            sample_batch = BatchSampler(sampler.kind, min(8, sampler.batch_size), seed + 7, **sampler.arrays).next() \
                if sampler.kind != "masks" else None
        started, losses = time.perf_counter(), {}
        first = step
        while step < iterations:
            if should_stop is not None and should_stop():
                atomic_torch_save(_checkpoint_state(translator, sampler, step), checkpoint)
                if step > first:  # the model folder holds everything trained so far
                    save_model(out_dir, translator, normalizer, seed, step, training_data or {}, losses)
                raise InterruptedError(f"Training stopped at step {step}; run again to resume.")
            step += 1
            losses = translator.fit_step(sampler.next(), step)
            if step % 10 == 0 or step == iterations:
                _append_losses(out_dir / "losses.csv", step, losses)
                if progress is not None:
                    rate = (step - first) / max(time.perf_counter() - started, 1e-9)
                    progress({"step": step, "iterations": iterations, "losses": losses,
                              "eta_s": (iterations - step) / max(rate, 1e-9)})
            if step % sample_every == 0 or step == iterations:
                write_sample_grid(out_dir / f"samples_{step:06d}.png", translator, sampler.kind, sample_batch)
            if step % checkpoint_every == 0 or step == iterations:
                atomic_torch_save(_checkpoint_state(translator, sampler, step), checkpoint)
                save_model(out_dir, translator, normalizer, seed, step, training_data or {}, losses)
    return {"out_dir": str(out_dir), "iterations": step, "last_losses": losses,
            "seconds": round(time.perf_counter() - started, 2), **translator.accelerator.describe()}


def _append_losses(path: Path, step: int, losses: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["step", *sorted(losses)])
        writer.writerow([step, *(round(losses[k], 6) for k in sorted(losses))])


def write_sample_grid(path: Path, translator: Translator, kind: str, batch: dict | None) -> None:
    """PNG grid: inputs on the first row, outputs below (one row per domain for multi-domain)."""
    import torch

    from MedSynthCommonLib.imageio import write_png

    with torch.no_grad():
        for module in translator.modules.values():
            module.eval()
        if kind == "masks":
            rows = [translator.infer(torch.randn(8, translator.config.latent, generator=torch.Generator().manual_seed(0)))]
            if translator.config.spatial_dims == 3:
                rows = [r[:, :, r.shape[2] // 2] for r in rows]
        elif kind == "domains":
            image = batch["image"]
            rows = [image] + [translator.infer(image, d) for d in range(len(translator.config.domains))]
        elif kind == "unpaired":
            rows = [batch["a"], translator.infer(batch["a"])]
        else:
            source = batch["source"]
            shown = source if source.shape[1] == 1 else source.argmax(1, keepdim=True).float() / (source.shape[1] - 1) * 2 - 1
            rows = [shown, translator.infer(source), batch["target"]]
        for module in translator.modules.values():
            module.train()
    grid = torch.cat([torch.cat(list(row[:, 0]), dim=1) for row in rows], dim=0).numpy()
    grey = np.clip((grid + 1.0) * 127.5, 0, 255).astype(np.uint8)
    write_png(path, np.repeat(grey[..., None], 3, axis=2))

