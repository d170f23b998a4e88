"""How many threads: small numerical kernels on one thread, and torch's intra-op threads for a while.

A lesion's box is a few hundred thousand voxels: NumPy's BLAS (``tensordot`` in the separable
resampling) splits such products over every core, and under load the calling thread then waits
for a preempted helper (measured: a medium lesion 0.054 s quiet, 0.120 s with the other core
busy; one thread is as fast on a quiet machine and uses 18-31 % less CPU).  Parallelism belongs
one level up: lesions, cases, DataLoader workers, Dask.  ``threadpoolctl`` (shipped with
scikit-learn) sets the BLAS thread count; without it the kernels run as they are.
"""

from __future__ import annotations

import contextlib

_CONTROLLER = None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system says, e.g. a cluster
    job's share; else every core)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def one_blas_thread():
    """A context in which BLAS uses one thread (no-op where ``threadpoolctl`` is missing)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _CONTROLLER = False
        else:
            _CONTROLLER = ThreadpoolController()  # made once: it inspects the loaded libraries
    if _CONTROLLER is False:
        return contextlib.nullcontext()
    return _CONTROLLER.limit(limits=1, user_api="blas")


@contextlib.contextmanager
def torch_threads(count: int):
    """A context in which torch uses ``count`` intra-op threads (at least 1); the count it had is
    restored after (also when the block raises)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prefetched(items, depth: int = 1):
    """``items`` (an iterable) made up to ``depth`` ahead in a background thread (MONAI's
    ``ThreadBuffer``, as its ``ThreadDataLoader`` does for cached data), yielded here in their
    order, so that making the next one overlaps with using this one.  ``ThreadBuffer`` ends
    quietly when its source raises; here the exception is raised where its item was due."""
    if depth <= 0:
        yield from items
        return
    from monai.data import ThreadBuffer

    def outcomes():
        try:
            for item in items:
                yield True, item
        except BaseException as error:  # handed to the consumer, which raises it
            yield False, error

    for made, value in ThreadBuffer(outcomes(), buffer_size=depth):
        if not made:
            raise value
        yield value
