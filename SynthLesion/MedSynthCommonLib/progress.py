"""Progress bars for long work: tqdm when it is installed, else a plain counter line.

Every long command shows one (reading data, training, building a database), with an ETA.
"""

from __future__ import annotations

import sys
import time


class _PlainProgress:
    """Fallback when tqdm is not installed (e.g. inside Slicer): ``N/TOTAL unit, ETA s`` on stderr."""

    def __init__(self, total: int, description: str, unit: str, initial: int, enabled: bool):
        self.total, self.count, self.enabled = total, initial, enabled
        self.description, self.unit, self._start, self._first = description, unit, time.monotonic(), initial

    @property
    def n(self) -> int:
        """Items done so far (tqdm's name)."""
        return self.count

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.enabled:
            done = self.count - self._first
            rate = done / max(time.monotonic() - self._start, 1e-9)
            eta = (self.total - self.count) / rate if rate > 0 else float("nan")
            print(f"\r{self.description}: {self.count}/{self.total} {self.unit}s, ETA {eta:.0f} s   ",
                  end="", file=sys.stderr, flush=True)

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, description: str, unit: str = "item", initial: int = 0, enabled: bool = True):
    """A progress bar (use as a context manager, call ``update(n)``)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total, description, unit, initial, enabled)
    return tqdm(total=total, initial=initial, disable=not enabled, unit=unit, desc=description, file=sys.stderr,
                dynamic_ncols=True)
