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
from MedSynthCommonLib.distributed import Ranks, rank_seed
from .data import BatchSampler, Normalizer
from .config import TranslatorConfig
from .model_dir import (CHECKPOINT_INDEX, is_translator_folder, referenced_file, remove_unreferenced, save_addressed,
                        save_model)
from .models import Translator, build_translator

LOSSES = "losses.csv"


def save_checkpoint(out_dir: Path, translator: Translator, sampler: BatchSampler, step: int, seed: int) -> None:
    """The resumable state under its hash, then ``checkpoint.json`` naming it, then old states
    removed.  In a distributed run every rank calls this (their random streams are gathered);
    rank 0 alone writes."""
    from MedSynthCommonLib.storage import write_json_atomic

    ranks = translator.ranks
    streams = ranks.gather(_rank_state(translator))
    if not ranks.is_main:
        return
    state = {**_checkpoint_state(translator, sampler, step), "other_ranks": streams[1:]}
    name, digest = save_addressed(out_dir, "checkpoint", state)
    write_json_atomic(out_dir / CHECKPOINT_INDEX, {"file": name, "sha256": digest, "step": step, "seed": seed,
                                                   "world_size": ranks.world_size})
    remove_unreferenced(out_dir, "checkpoint", name)


def load_checkpoint(out_dir: Path) -> tuple[dict, dict] | None:
    """(index, state) of the last checkpoint in ``out_dir``, None when there is none; a damaged,
    changed or foreign checkpoint is refused with a clear message."""

    import torch

    from MedSynthCommonLib.storage import content_sha256

    index_path = out_dir / CHECKPOINT_INDEX
    if not index_path.exists():
        return None
    advice = "delete checkpoint.json and the checkpoint-*.pt files to start again, or train into another folder"
    from MedSynthCommonLib.options import parse_json

    try:
        index = parse_json(index_path.read_bytes(), str(index_path))
        path = referenced_file(out_dir, index, "file", "", str(index_path))
        expected = index["sha256"]
    except (OSError, KeyError, TypeError, AttributeError, MedSynthInputError):
        raise MedSynthInputError(f"{index_path} is damaged; {advice}.") from None
    if not path.exists() or content_sha256(path) != expected:
        raise MedSynthInputError(f"The checkpoint {path.name} is missing or does not match its SHA-256 in "
                                 f"{index_path.name} (damaged or changed); {advice}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise MedSynthInputError(f"{path} cannot be read ({str(error).splitlines()[0][:200]}); {advice}.") from None
    return index, state


def _rank_state(translator: Translator) -> dict:
    """What differs between ranks: their random streams and the translator's own state (image pools)."""
    import torch

    return {"extra": translator.extra_state(), "translator_rng": translator.random.get_state(),
            "torch_rng": torch.get_rng_state()}


def _checkpoint_state(translator: Translator, sampler: BatchSampler, step: int) -> dict:
    return {"step": step,
            "modules": {n: m.state_dict() for n, m in translator.modules.items()},
            "optimizers": {n: o.state_dict() for n, o in translator.optimizers.items()},
            "scalers": {n: s.state_dict() for n, s in translator.scalers.items()},
            "sampler": sampler.state_dict(), **_rank_state(translator)}


def _restore(translator: Translator, sampler: BatchSampler, state: dict, seed: int) -> int:
    """Load ``state`` (rank 0's, with the other ranks' streams) into this rank's translator.  A
    rank the saved run did not have (resumed on more processes) starts fresh streams derived from
    (seed, rank, step); its image pools start empty."""
    import torch

    step = int(state["step"])
    rank = translator.ranks.rank
    streams = [state, *state.get("other_ranks", [])]
    for name, module in translator.modules.items():
        module.load_state_dict(state["modules"][name])
    for name, optimizer in translator.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    for name, scaler in translator.scalers.items():
        saved = state.get("scalers", {}).get(name)
        if saved and scaler.is_enabled():  # a disabled scaler (fp32/bf16) saves {}
            scaler.load_state_dict(saved)
    sampler.load_state_dict(state["sampler"])
    if rank < len(streams):
        translator.load_extra_state(streams[rank]["extra"])
        translator.random.set_state(streams[rank]["translator_rng"])
        torch.set_rng_state(streams[rank]["torch_rng"])
    else:
        translator.random.manual_seed(rank_seed(seed + 1, rank, step))
        torch.manual_seed(rank_seed(seed, rank, step))
    return step


def train_translator(config: TranslatorConfig, sampler: BatchSampler, normalizer: Normalizer, iterations: int,
                     out_dir: Path, seed: int = 0, training_data: dict | None = None, sample_every: int = 100,
                     checkpoint_every: int = 100, resume: bool = True, sample_batch: dict | None = None,
                     progress: Callable[[dict], None] | None = None,
                     should_stop: Callable[[], bool] | None = None, accelerator: Accelerator | None = None,
                     ranks: Ranks | None = None, budget_s: float | None = None) -> dict:
    """Train ``iterations`` steps (in total, counting a resumed run's earlier steps) on
    ``accelerator`` (default CPU fp32; see ``resolve_accelerator``).

    Writes into ``out_dir``: ``checkpoint.json`` + ``checkpoint-<sha>.pt`` (resumable state),
    ``card.json`` + ``weights-<sha>.pt`` (the model folder, usable at every moment), ``losses.csv``
    and ``samples_<step>.png``.  ``progress`` gets ``{"step", "iterations", "losses", "eta_s"}``
    dicts and ``{"message"}`` dicts (e.g. that a run was resumed).
    Raises ``InterruptedError`` when ``should_stop`` says so, after saving a checkpoint.
    ``budget_s``: stop after this many seconds of training (checked every 10 steps) with the
    model, a checkpoint and a last sample grid written, as at the last step; the result says
    ``stopped_by_budget`` (the same command later goes on from there).

    ``ranks``: this process's place in a ``torchrun`` run (see ``MedSynthCommonLib.distributed``):
    every rank calls this with the same arguments; the sampler's batch size is the global batch,
    each rank trains on its share under ``DistributedDataParallel``; rank 0 alone reads and
    writes ``out_dir`` and reports progress (losses are the means over ranks).  A run resumes on
    any number of ranks.  ``should_stop`` is for single-process runs (a distributed run stops
    when ``torchrun`` is interrupted and resumes from its last checkpoint).
    """
    from MedSynthCommonLib.storage import FolderLock, claim_folder

    ranks = ranks or Ranks()
    if ranks.active and should_stop is not None:
        raise MedSynthInputError("should_stop is for single-process training; stop a torchrun run with Ctrl-C.")
    sampler.share = ranks.shard(sampler.batch_size)
    if not ranks.is_main:
        return _train(config, sampler, normalizer, iterations, Path(out_dir), seed, training_data, sample_every,
                      checkpoint_every, resume, sample_batch, None, None, accelerator, ranks, budget_s)
    out_dir = claim_folder(Path(out_dir), "model folder", is_translator_folder)
    with FolderLock(out_dir):
        return _train(config, sampler, normalizer, iterations, out_dir, seed, training_data, sample_every,
                      checkpoint_every, resume, sample_batch, progress, should_stop, accelerator, ranks, budget_s)


def _saved_run(out_dir: Path, resume: bool, ranks: Ranks) -> tuple[dict, dict] | None:
    """Rank 0 reads the last checkpoint and every rank gets it (or the same error)."""
    found, error = None, None
    if ranks.is_main and resume:
        try:
            found = load_checkpoint(out_dir)
        except MedSynthInputError as refused:
            error = str(refused)
    found, error = ranks.broadcast((found, error)) if ranks.active else (found, error)
    if error:
        raise MedSynthInputError(error)
    return found


def _train(config, sampler, normalizer, iterations, out_dir, seed, training_data, sample_every, checkpoint_every,
           resume, sample_batch, progress, should_stop, accelerator, ranks, budget_s=None) -> dict:
    import torch

    main = ranks.is_main
    say = (lambda message: progress({"message": message})) if progress is not None and main else (lambda message: None)
    step = 0
    saved = _saved_run(out_dir, resume, ranks)
    if saved is not None and saved[0].get("seed", seed) != seed:
        say(f"resuming with the run's seed {saved[0]['seed']} (seed {seed} was asked for; a seed is fixed when a "
            "run starts)")
        seed = int(saved[0]["seed"])
    translator = build_translator(config, seed, accelerator, ranks)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rank_seed(seed, ranks.rank))
        if saved is not None:
            try:
                step = _restore(translator, sampler, saved[1], seed)
            except Exception as error:  # from other options or another model
                raise MedSynthInputError(
                    f"The checkpoint in {out_dir} cannot be resumed with these options "
                    f"({str(error).splitlines()[0][:200]}); train into another folder, or delete checkpoint.json "
                    "to start again.") from None
            said = f"resuming {out_dir} at step {step} of {iterations}"
            saved_world = int(saved[0].get("world_size", 1))
            if saved_world < ranks.world_size:
                said += (f" on {ranks.world_size} processes (it ran on {saved_world}): the batches continue exactly; "
                         f"processes {saved_world} to {ranks.world_size - 1} start fresh random streams")
            elif saved_world > ranks.world_size:
                said += (f" on {ranks.world_size} process(es) (it ran on {saved_world}): the batches continue exactly; "
                         f"the random streams of processes {ranks.world_size} to {saved_world - 1} end here")
            say(said)
        if main:
            _truncate_losses(out_dir / LOSSES, step)
        if sample_batch is None and main:
            sample_batch = BatchSampler(sampler.kind, min(8, sampler.batch_size), seed + 7, **sampler.arrays).next() \
                if sampler.kind != "masks" else None
        started, losses = time.perf_counter(), {}
        first, last, out_of_time = step, iterations, False
        while step < last:
            if should_stop is not None and should_stop():
                save_checkpoint(out_dir, translator, sampler, step, seed)
                if step > first:  # the model folder holds everything trained so far
                    save_model(out_dir, translator, normalizer, seed, step, training_data or {}, losses)
                raise InterruptedError(f"Training stopped at step {step}; run again to resume.")
            step += 1
            losses = translator.fit_step(sampler.next(), step)
            if step % 10 == 0 and budget_s is not None:  # every rank decides as rank 0 does
                out_of_time = ranks.broadcast(time.perf_counter() - started >= budget_s)
                if out_of_time:
                    last = step  # this step is the last: model, checkpoint and samples as at the end
            if step % 10 == 0 or step == last:
                losses = ranks.mean(losses)  # every rank, at the same steps
                if main:
                    _append_losses(out_dir / LOSSES, step, losses)
                if progress is not None and main:
                    elapsed = time.perf_counter() - started
                    eta = (iterations - step) * elapsed / max(step - first, 1)
                    if budget_s is not None:
                        eta = min(eta, max(budget_s - elapsed, 0.0))
                    progress({"step": step, "iterations": iterations, "losses": losses, "eta_s": eta})
            if main and (step % sample_every == 0 or step == last):
                write_sample_grid(out_dir / f"samples_{step:06d}.png", translator, sampler.kind, sample_batch, step)
            if step % checkpoint_every == 0 or step == last:
                save_checkpoint(out_dir, translator, sampler, step, seed)
                if main:
                    save_model(out_dir, translator, normalizer, seed, step, training_data or {}, losses,
                               ranks.world_size)
    if out_of_time:
        say(f"stopped at step {step} of {iterations}: the budget of {budget_s / 60:g} minutes is used; the model folder "
            "holds this step's model; run the same command again to go on")
    return {"out_dir": str(out_dir), "iterations": step, "stopped_by_budget": out_of_time, "last_losses": losses,
            "seconds": round(time.perf_counter() - started, 2), **translator.accelerator.describe(),
            "processes": ranks.world_size}


def _read_losses(path: Path) -> tuple[list[str], list[dict]]:
    if not path.exists():
        return [], []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row.get("step", "").isdigit()]
        return list(reader.fieldnames or []), rows


def _write_losses(path: Path, columns: list[str], rows: list[dict]) -> None:
    import io

    from MedSynthCommonLib.storage import write_text_atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _truncate_losses(path: Path, step: int) -> None:
    """Keep only the rows up to the step training resumes from (rows logged after the last
    checkpoint by a killed run would otherwise appear twice)."""
    columns, rows = _read_losses(path)
    kept = [row for row in rows if int(row["step"]) <= step]
    if len(kept) != len(rows) or (rows and step == 0):
        _write_losses(path, columns, kept)


def _append_losses(path: Path, step: int, losses: dict) -> None:
    """One row per logged step; a loss seen for the first time (e.g. generator losses at steps
    where the generator is updated) adds a column, earlier rows leave it blank."""
    columns, rows = _read_losses(path)
    new_columns = ["step", *sorted(set(columns[1:]) | set(losses))]
    row = {"step": step, **{k: round(v, 6) for k, v in losses.items()}}
    if new_columns != columns:
        _write_losses(path, new_columns, [*rows, row])
        return
    with path.open("a", newline="", encoding="utf-8") as handle:
        csv.DictWriter(handle, columns, restval="", lineterminator="\n").writerow(row)


def write_sample_grid(path: Path, translator: Translator, kind: str, batch: dict | None, step: int = 0) -> None:
    """PNG grid with labelled rows: the inputs, then each output (one row per target domain for
    multi-domain models; for label-to-image models the label map, the output and the target);
    one column per sample; the training step in the title."""
    import torch

    with torch.no_grad():
        for module in translator.modules.values():
            module.eval()
        config = translator.config
        if config.kind.new_images:  # new images: one row per class, the same latents in every row
            z = torch.randn(8, config.latent, generator=torch.Generator().manual_seed(0))
            rows = [(f"class {name}", translator.infer(z, d)) for d, name in enumerate(config.domains)]
        elif kind == "masks":
            rows = [("samples", translator.infer(torch.randn(8, config.latent, generator=torch.Generator().manual_seed(0))))]
            if config.spatial_dims == 3:
                rows = [(name, r[:, :, r.shape[2] // 2]) for name, r in rows]
        elif kind == "domains":
            image = batch["image"]
            rows = [("input", image)] + [(f"to {name}", translator.infer(image, d)) for d, name in enumerate(config.domains)]
        elif kind == "unpaired":
            rows = [(f"input ({config.domains[0] if config.domains else 'A'})", batch["a"]),
                    (f"to {config.domains[1] if len(config.domains) > 1 else 'B'}", translator.infer(batch["a"]))]
        else:
            source = batch["source"]
            shown = source if source.shape[1] == 1 else source.argmax(1, keepdim=True).float() / (source.shape[1] - 1) * 2 - 1
            rows = [("condition", shown), ("generated", translator.infer(source)), ("target", batch["target"])]
        for module in translator.modules.values():
            module.train()
    _write_labelled_grid(path, [(name, ((r[:, 0].cpu().float().numpy() + 1.0) / 2.0).clip(0, 1)) for name, r in rows],
                         f"{config.model}, step {step}")


def _write_labelled_grid(path: Path, rows: list[tuple[str, np.ndarray]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from MedSynthCommonLib.integrity import check_image_file
    from MedSynthCommonLib.storage import atomic_write

    columns = max(len(images) for _, images in rows)
    figure = Figure(figsize=(1.1 * columns + 1.2, 1.1 * len(rows) + 0.4), dpi=100)
    for row, (name, images) in enumerate(rows):
        for column in range(columns):
            axes = figure.add_subplot(len(rows), columns, row * columns + column + 1)
            if column < len(images):
                axes.imshow(images[column], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(name, fontsize=7)
            if row == 0:
                axes.set_title(f"sample {column + 1}", fontsize=6)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda partial: figure.savefig(partial, format="png"), check_image_file)
