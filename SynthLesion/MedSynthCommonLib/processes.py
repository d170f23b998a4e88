"""Worker processes that end with the process that started them.

A pool's workers outlive a parent killed with ``kill -9`` (each holds hundreds of MB); calling
``exit_with_parent(parent_pid)`` first thing in a worker (a pool ``initializer`` with the
parent's pid as its argument) ends it as soon as its parent is gone: at once on Linux
(``PR_SET_PDEATHSIG``), within a second elsewhere, and at once when the parent died while the
worker was still starting (before the death signal was armed).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def exit_with_parent(parent: int | None = None, poll_s: float = 1.0) -> None:
    """End this worker when ``parent`` (the pid of the process that started it, passed from that
    process: read here it could already be init's, if the parent died while this worker was
    still starting) is gone."""
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(poll_s)

    if os.getppid() != parent:  # the parent ended before the watch started
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
