"""Output volumes handed out again once nothing refers to them any more.

A new volume costs more than its copy: the kernel maps and zeroes every fresh page first (a
74 MB volume at 1 mm: 14-24 ms copied into new memory, 6-10 ms into memory used before).  Large
arrays come straight from the kernel and go straight back (glibc keeps freed blocks only up to
32 MB), so a loop that makes one synthetic case after another pays that every call.  Here the
last ``SLOTS`` volumes handed out stay allocated, and one is given again, whole, to a later call
of the same shape and type once its caller has let go of it: no array, view or tensor made from
it is left (told by its reference count against that of an array nothing else refers to).  Two
slots serve the usual loop ``result = make(...)``, which holds the last result while the next
is made.

The price: up to ``SLOTS`` volumes (of 16-256 MB each; others are not kept) stay allocated while
the process lives; ``release()`` frees them, and ``MEDSYNTH_RECYCLE=0`` in the environment turns
recycling off.  Memory is reused only when nothing refers to it: code that keeps a raw pointer
without a reference (``SimpleITK.GetImageViewFromArray``, which says to keep the array alive)
must keep the array, as it must anyway.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

#: volumes kept for reuse
SLOTS = 2
#: volumes of this size range are recycled: smaller ones cost little to allocate, and larger ones
#: would keep too much memory taken between calls
RECYCLE_FROM_BYTES = 16 * 2**20
RECYCLE_UP_TO_BYTES = 256 * 2**20

_slots: list[np.ndarray] = []
_lock = threading.Lock()


def _references(index: int) -> int:
    """References to slot ``index``, as counted from here (the list's, the call's own, and every
    array, view or buffer made from it)."""
    return sys.getrefcount(_slots[index])


def _baseline() -> int:
    """What ``_references`` counts for an array nothing else refers to: measured through the
    same code, so that it holds for any Python version's way of counting."""
    _slots.append(np.empty(0))
    try:
        return _references(len(_slots) - 1)
    finally:
        _slots.pop()


_BASELINE = _baseline()


def new_volume(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-order array of ``shape`` and ``dtype``: a recycled one when a slot of
    that shape and type is free, else a new one (kept in a slot for later calls)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    size = int(np.prod(shape)) * dtype.itemsize
    if not RECYCLE_FROM_BYTES <= size <= RECYCLE_UP_TO_BYTES or os.environ.get("MEDSYNTH_RECYCLE") == "0":
        return np.empty(shape, dtype)
    with _lock:  # a slot is found free and handed out (a view refers to it) under one lock
        for index in range(len(_slots)):
            if _slots[index].shape == shape and _slots[index].dtype == dtype and _references(index) == _BASELINE:
                return _slots[index].view()
        volume = np.empty(shape, dtype)
        _slots.append(volume)
        del _slots[:-SLOTS]  # the oldest slot is dropped: freed once its caller lets go of it
        return volume.view()


def release() -> None:
    """Free the volumes kept for reuse (those still in use stay with their users)."""
    with _lock:
        _slots.clear()


def kept_bytes() -> int:
    """Bytes held by the volumes kept for reuse."""
    with _lock:
        return sum(volume.nbytes for volume in _slots)
