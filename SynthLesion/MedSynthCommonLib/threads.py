"""How many threads: small numerical kernels on one thread, and torch's intra-op threads for a while.

A lesion's box is a few hundred thousand voxels: NumPy's BLAS (``tensordot`` in the separable
resampling) splits such products over every core, and under load the calling thread then waits
for a preempted helper (measured: a medium lesion 0.054 s quiet, 0.120 s with the other core
busy; one thread is as fast on a quiet machine and uses 18-31 % less CPU).  Parallelism belongs
one level up: lesions, cases, DataLoader workers, Dask.  ``threadpoolctl`` (a dependency of
scikit-learn; SynthLesion offers it in Slicer, which does not ship it) sets the BLAS thread
count; without it the kernels run as they are (measured: medium and large lesions 1.1-1.4x
slower with the other cores busy, now that the lesion's filters are matrix products too).
"""

from __future__ import annotations

import collections
import contextlib
import threading

import numpy as np

from .recycling import new_volume

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


#: volumes smaller than this (bytes) are copied on the calling thread: starting a thread costs
#: about as much as copying a few megabytes
BACKGROUND_COPY_FROM_BYTES = 16 * 2**20
#: the copy is made in slabs of about this many bytes (along the first axis)
SLAB_BYTES = 8 * 2**20


class BackgroundCopy:
    """A copy of ``source`` (a volume) made on a helper thread while the caller works from
    ``source`` itself, which holds the same values until the copy is first written to.

    The copy is the call's only whole-volume work (a 74 MB volume at 1 mm: 6-10 ms into recycled
    memory, 14-24 ms into new memory); NumPy's copy releases the GIL, so that time overlaps with
    the lesion work.  The copy is cut into slabs: the helper takes them from the front, and when
    the caller needs the copy it takes the rest from the back itself.  So the caller never sits
    idle while a helper the scheduler has preempted still holds work (it waits at most for the
    one slab the helper is copying), and on an idle core the two finish the copy together.
    No thread pool: one helper, joined once.  On one usable core, or for a small volume, the copy
    is made at once on the calling thread.
    """

    def __init__(self, source: np.ndarray, target: np.ndarray | None = None):
        """``target``: the array to copy into (same shape and dtype; default a C-order one, as
        ``ndarray.copy()`` gives, recycled when one is free: ``recycling.new_volume``), or
        ``source`` itself, which then needs no copy."""
        self._source = source
        self.array = new_volume(source.shape, source.dtype) if target is None else target
        self._thread = None
        self._error: BaseException | None = None
        if self.array is source:
            return
        if source.nbytes < BACKGROUND_COPY_FROM_BYTES or usable_cores() < 2 or source.ndim == 0:
            np.copyto(self.array, source)
            return
        rows = max(1, SLAB_BYTES // max(source.nbytes // source.shape[0], 1))
        # a deque's pops from either end are thread-safe (documented): no lock is needed
        self._slabs = collections.deque(slice(a, a + rows) for a in range(0, source.shape[0], rows))
        self._thread = threading.Thread(target=self._copy_slabs, args=(True,), name="medsynth-copy", daemon=True)
        self._thread.start()

    def _copy_slabs(self, from_front: bool) -> None:
        try:
            while True:
                try:
                    slab = self._slabs.popleft() if from_front else self._slabs.pop()
                except IndexError:  # none left
                    return
                np.copyto(self.array[slab], self._source[slab])
        except BaseException as error:  # raised by wait(), on the caller's thread
            self._error = error
            self._slabs.clear()

    def readable(self) -> np.ndarray:
        """The volume to read from: the source until the copy has been waited for, then the copy."""
        return self._source if self._thread is not None else self.array

    def wait(self) -> np.ndarray:
        """The whole copy (the first time, the caller copies the slabs left, then joins the
        helper), ready to write to."""
        if self._thread is not None:
            self._copy_slabs(from_front=False)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None  # not kept: its traceback would hold this object (a cycle)
            raise error
        return self.array
