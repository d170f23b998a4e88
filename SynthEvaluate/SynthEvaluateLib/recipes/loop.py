"""The training loop of every recipe: one place for the optimiser step, its precision (a loss
scaler), cancellation and the model's training mode (``optimisation_steps``), and around it the
epoch bookkeeping of the recipes that train by epochs (``train_epochs``: the 2-D classifier of
``training`` and the findings model of ``findings_model``).  The segmenter counts iterations
over a pool of cases, validates as it goes and may stop early; it runs the same steps and keeps
its own bookkeeping.  What differs between recipes (how batches are drawn, what a batch's loss
is, what happens after an epoch or between steps) comes in as functions; the epoch recipes'
batches come from a MONAI ``DataLoader`` (``data_loader``)."""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.threads import usable_cores


def optimisation_steps(model, optimiser, batches: Iterable, batch_loss: Callable, *,
                       should_stop: Callable[[], bool] | None = None, scaler=None) -> Iterator[tuple[object, object]]:
    """One optimiser step per batch of ``batches``: ``batch_loss(batch)`` (a scalar tensor),
    backward (through ``scaler``, a ``torch.amp.GradScaler``, when given), step; yields
    ``(batch, loss)`` with the loss detached, after its step.  The model is in training mode at
    every step (a caller may validate between steps).  ``should_stop`` is asked before every
    step; True raises ``InterruptedError``."""
    for batch in batches:
        if should_stop is not None and should_stop():
            raise InterruptedError("Training was cancelled.")
        model.train()
        loss = batch_loss(batch)
        optimiser.zero_grad()
        if scaler is None:
            loss.backward()
            optimiser.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
        yield batch, loss.detach()


def train_epochs(model, optimiser, epochs: int, batches: Callable[[int], Iterable], batch_loss: Callable,
                 *, first_epoch: int = 0, history: list[dict] | None = None,
                 should_stop: Callable[[], bool] | None = None, progress: Callable[[dict], None] | None = None,
                 epoch_loss: Callable[[float], float] | None = None,
                 after_epoch: Callable[[int, dict], None] | None = None,
                 items_in: Callable[[object], int] = len) -> list[dict]:
    """Train ``model`` from ``first_epoch`` to ``epochs``; returns the history (``history`` extended).

    Per epoch: ``optimisation_steps`` over ``batches(epoch)`` (index arrays, or what a DataLoader
    gives: ``items_in(batch)`` counts a batch's items); then the mean loss per item (``epoch_loss``
    may combine it over ranks), an entry ``{"epoch", "loss", "seconds"}``
    in the history, ``after_epoch(epoch, entry)`` (shuffle, checkpoint), and ``progress`` with the
    entry, ``epochs`` and ``eta_s`` (``epoch_line`` says it).  A cancelled run's state is whatever
    ``after_epoch`` last kept."""
    history = [] if history is None else history
    started = time.perf_counter()
    for epoch in range(first_epoch, epochs):
        total, items = 0.0, 0
        for batch, loss in optimisation_steps(model, optimiser, batches(epoch), batch_loss, should_stop=should_stop):
            total += float(loss) * items_in(batch)
            items += items_in(batch)
        mean = total / max(items, 1)
        entry = {"epoch": epoch + 1, "loss": epoch_loss(mean) if epoch_loss is not None else mean,
                 "seconds": round(time.perf_counter() - started, 2)}
        history.append(entry)
        if after_epoch is not None:
            after_epoch(epoch, entry)
        if progress is not None:  # the time left, from this run's epochs (a resumed run's first is first_epoch)
            eta = entry["seconds"] / (epoch + 1 - first_epoch) * (epochs - epoch - 1)
            progress({**entry, "epochs": epochs, "eta_s": eta})
    return history


def epoch_line(entry: dict) -> str:
    """A progress line for a ``train_epochs`` progress entry (or a resumed run's
    ``{"resumed_at_epoch"}``)."""
    if "resumed_at_epoch" in entry:
        return f"resuming the interrupted training after epoch {entry['resumed_at_epoch']}"
    return f"epoch {entry['epoch']}/{entry['epochs']} loss {entry['loss']:.3f}, ETA {entry['eta_s']:.0f} s"


def data_loader(dataset, sampler, batch_size: int, workers: int, seed: int):
    """A MONAI ``DataLoader`` over ``dataset`` in ``sampler``'s order, its augmentation drawn from
    ``seed`` (the same seed and ``workers`` give the same batches).  Workers are spawned, not
    forked, and kept for every epoch: a fork copies the parent's threads' locks as they are (with
    forked workers, later process pools of the same test process ended in internal errors and a
    Dask client hung on the logging module's lock), and a Slicer or notebook process must not be
    forked; spawning costs a few seconds once.  More workers than the CPU cores this process may
    use are refused (each holds a copy of the data)."""
    import torch
    from monai.data import DataLoader

    cores = usable_cores()
    if workers > cores:  # each worker holds a copy of the data: dozens of them can exhaust the memory
        raise MedSynthInputError(f"{workers} DataLoader workers were asked for, but this process may use {cores} CPU "
                                 f"core(s), and each worker holds its own copy of the training data; give "
                                 f"--loader-workers {cores} or fewer.")
    generator = torch.Generator().manual_seed(seed)
    if workers == 0:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, generator=generator)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, generator=generator,
                      multiprocessing_context="spawn", persistent_workers=True)
