"""Results kept with what they read, handed out again while the inputs hold the same values there.

A memo whose hits are proven by values, not by the identity of arrays: a computation that reads
only some voxels (random samples of an organ, a coarse grid of it) gives a function of those
voxels' values, so when a later call's arrays hold the same values there, the kept result is
exactly what computing again would give, whatever else changed.  The caller keeps, with each
result, what it read (the "witness") and says how to check it against new inputs; this class
keeps the last few entries, under a lock (threads may share it).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Generic, Hashable, TypeVar

T = TypeVar("T")
_all: "weakref.WeakSet[KeptResults]" = weakref.WeakSet()


class KeptResults(Generic[T]):
    """The last ``size`` results kept, each under a key (what must match exactly: shapes, types,
    spacing) with its witness."""

    def __init__(self, size: int):
        self._size = size
        self._entries: list[tuple[Hashable, Any, T]] = []
        self._lock = threading.Lock()
        _all.add(self)

    def find(self, key: Hashable, holds: Callable[[Any], bool]) -> T | None:
        """The newest result kept under ``key`` whose witness ``holds`` (checked outside the
        lock), or None."""
        with self._lock:
            candidates = [(witness, value) for entry_key, witness, value in self._entries if entry_key == key]
        for witness, value in reversed(candidates):
            if holds(witness):
                return value
        return None

    def keep(self, key: Hashable, witness: Any, value: T) -> None:
        """Keep ``value`` (the oldest entry goes when more than ``size`` are kept)."""
        with self._lock:
            self._entries.append((key, witness, value))
            del self._entries[:-self._size]

    def witnesses(self) -> list:
        """The witnesses kept, oldest first (for tests and diagnostics)."""
        with self._lock:
            return [witness for _, witness, _ in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def forget_all() -> None:
    """Let go of every kept result (what a process's first call on an input meets)."""
    for kept in list(_all):
        kept.clear()
