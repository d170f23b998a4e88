"""The loop every study of arms shares (the classifier augmentation study, the segmentation
study): per seed, each arm's training data drawn from the seed's stream, the arm trained and
scored (or its record found, kept by an earlier run of the study), then each arm compared with
its reference on the same test cases."""

from __future__ import annotations

from typing import Callable

import numpy as np

from MedSynthCommonLib.finished_work import FinishedWork


def kept_message(progress: Callable[[str], None] | None, what: str) -> None:
    """Say that ``what`` was finished by an earlier run of the study and is kept."""
    if progress:
        progress(f"{what}: finished by an earlier run of this study, kept")


def run_arms(arms: list[dict], seeds, draw: Callable, fit_and_score: Callable, compare: Callable,
             finished: FinishedWork, progress: Callable[[str], None] | None = None, *,
             per_case_keys: tuple[str, ...], reference: Callable,
             per_seed: Callable | None = None) -> tuple[dict, dict]:
    """For each seed, fit and score every arm (``arms``: dicts with a ``name``), then compare
    each arm with its reference on the same test cases.

    ``per_seed(rng)`` (optional) draws what a seed's arms share (a subset of the real cases,
    cases made once) from the seed's stream, first; ``draw(arm, rng, shared)`` then draws an
    arm's training data (for every arm, even one ``finished`` kept from an earlier run, so the
    next arms draw what they drew then; every run's record goes through ``finished``, kept in a
    folder or not);
    ``fit_and_score(arm, seed, data)`` returns (entry for the report, per-case results: at least
    ``per_case_keys``);
    ``reference(arm, arms)`` names the arm it is compared with (None: none), and
    ``compare(per_case_arm, per_case_reference, seed)`` returns the paired comparison (or None),
    stored in the arm's entry as ``versus_<reference>``.  Returns (arm name -> one entry per
    seed, arm name -> its per-case results per seed, for comparisons over all seeds).
    """
    results = {arm["name"]: [] for arm in arms}
    history = {arm["name"]: [] for arm in arms}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        shared = per_seed(rng) if per_seed is not None else None
        per_case = {}
        for arm in arms:
            data = draw(arm, rng, shared)
            part = f"seed {seed} {arm['name']}"
            kept = finished.get(part)
            if kept is not None:
                kept_message(progress, f"seed {seed}, {arm['name']}")
            else:
                if progress:
                    progress(f"seed {seed}: training '{arm['name']}'")
                entry, cases = fit_and_score(arm, seed, data)
                kept = finished.keep(part, {"entry": entry, **{k: cases[k] for k in per_case_keys}})
            results[arm["name"]].append(kept["entry"])
            per_case[arm["name"]] = {k: np.asarray(kept[k]) for k in per_case_keys}
            history[arm["name"]].append(per_case[arm["name"]])
        for arm in arms:
            against = reference(arm, arms)
            if against is not None and against != arm["name"]:
                comparison = compare(per_case[arm["name"]], per_case[against], seed)
                if comparison is not None:
                    results[arm["name"]][-1]["versus_" + against.replace(" ", "_")] = comparison
    return results, history
