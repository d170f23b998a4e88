"""A pool of training cases made on the fly, refreshed in the background while training goes on.

MONAI's ``SmartCacheDataset`` holds ``size`` cases; at each ``refresh`` the oldest leaves and one
made meanwhile by its replacement thread comes in, so the training loop waits for a new case only
when making one takes longer than the steps between two refreshes.  Case ``n`` is made from its
own generator, seeded by (seed, n): the pool's content is the same whatever the timing, in every
process of a distributed run.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class FreshCasePool:
    """``size`` cases made by ``make(generator)`` and passed through ``prepare(*made)``; at most
    ``refreshes`` replacements over the pool's life.  Use as a context manager (the background
    thread ends with it)."""

    def __init__(self, make: Callable[[np.random.Generator], tuple], prepare: Callable[..., dict], size: int,
                 refreshes: int, seed: int):
        from monai.data import SmartCacheDataset
        from monai.transforms import Transform

        class MadeCase(Transform):  # deterministic for MONAI: cached, made in the replacement thread
            def __call__(self, item: dict) -> dict:
                try:
                    made = make(np.random.default_rng([seed, item["number"]]))
                    return {"case": prepare(*made), "voxels": int(np.size(made[0]))}
                except Exception as error:  # noqa: BLE001  (raised again in the training loop, not lost in a thread)
                    return {"error": error}

        self.size = size
        items = [{"number": n} for n in range(size + max(int(refreshes), 1))]
        self._dataset = SmartCacheDataset(items, MadeCase(), replace_rate=1.0 / size, cache_num=size,
                                          num_init_workers=1, num_replace_workers=1, progress=False, shuffle=False,
                                          copy_cache=False, as_contiguous=False)
        self._check()
        #: voxels of the volume a case is made in (the first ``size``), which sets what a case costs
        self.voxels_per_case = float(np.mean([self._dataset[n]["voxels"] for n in range(size)]))

    def __enter__(self) -> "FreshCasePool":
        self._dataset.start()
        return self

    def __exit__(self, *exc) -> None:
        self._dataset.shutdown()

    def refresh(self) -> None:
        """The oldest case out, the one made in the background in (waits for it if not ready)."""
        self._dataset.update_cache()
        self._check()

    def __getitem__(self, index: int) -> dict:
        return self._dataset[index]["case"]

    def _check(self) -> None:
        for n in range(self.size):
            error = self._dataset[n].get("error")
            if error is not None:
                raise error
