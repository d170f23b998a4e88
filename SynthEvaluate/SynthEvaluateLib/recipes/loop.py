"""The epoch loop of the recipes that train by epochs (the 2-D classifier of ``training`` and the
3-D findings classifier of ``volume_classifier``): one place for the step, cancellation, the
epoch's mean loss, the history and progress.  What differs between them (how batches are drawn,
what a batch's loss is, what happens after an epoch: shuffling, a checkpoint, averaging over
ranks) comes in as functions.  The segmenter counts iterations, not epochs, over a pool of cases
and validates as it goes; it keeps its own loop (``segmenter``)."""

from __future__ import annotations

import time
from typing import Callable, Iterable


def train_epochs(model, optimiser, epochs: int, batches: Callable[[int], Iterable], batch_loss: Callable,
                 *, first_epoch: int = 0, history: list[dict] | None = None,
                 should_stop: Callable[[], bool] | None = None, progress: Callable[[dict], None] | None = None,
                 epoch_loss: Callable[[float], float] | None = None,
                 after_epoch: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Train ``model`` from ``first_epoch`` to ``epochs``; returns the history (``history`` extended).

    Per epoch: the model in training mode; for every batch of ``batches(epoch)`` (index arrays),
    ``batch_loss(index)`` (a scalar tensor), one optimiser step; then the mean loss per item
    (``epoch_loss`` may combine it over ranks), an entry ``{"epoch", "loss", "seconds"}`` in the
    history, ``after_epoch(epoch, entry)`` (shuffle, checkpoint), and ``progress({**entry,
    "epochs": epochs})``.  ``should_stop`` is asked before every step; True raises
    ``InterruptedError`` (the last finished epoch's state is whatever ``after_epoch`` kept)."""
    history = [] if history is None else history
    started = time.perf_counter()
    for epoch in range(first_epoch, epochs):
        model.train()
        total, items = 0.0, 0
        for index in batches(epoch):
            if should_stop is not None and should_stop():
                raise InterruptedError("Training was cancelled.")
            loss = batch_loss(index)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
            items += len(index)
        mean = total / max(items, 1)
        entry = {"epoch": epoch + 1, "loss": epoch_loss(mean) if epoch_loss is not None else mean,
                 "seconds": round(time.perf_counter() - started, 2)}
        history.append(entry)
        if after_epoch is not None:
            after_epoch(epoch, entry)
        if progress is not None:
            progress({**entry, "epochs": epochs})
    return history
