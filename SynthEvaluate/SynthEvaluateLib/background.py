"""Long jobs in a separate process, so Slicer stays responsive: start, poll output, cancel.

Qt-free on purpose: the widget polls ``poll()`` from a timer and shows the lines; the same
class runs under pytest.  The job is any command line, normally ``[sys.executable, "-m",
"SynthLesionLib.cli", "evaluate", ...]`` (inside Slicer, ``sys.executable`` is PythonSlicer).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading


class BackgroundJob:
    def __init__(self, arguments: list[str], cwd: str | None = None):
        self.arguments = arguments
        self.cwd = cwd
        self._process: subprocess.Popen | None = None
        self._lines: queue.Queue = queue.Queue()
        self.cancelled = False

    @classmethod
    def medsynth(cls, *arguments: str, **kwargs) -> "BackgroundJob":
        """A job that runs ``medsynth ARGUMENTS`` with this Python."""
        return cls([sys.executable, "-u", "-m", "SynthLesionLib.cli", *arguments], **kwargs)

    def start(self) -> "BackgroundJob":
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(self.arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         cwd=self.cwd, env=environment, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._process.stdout.close()

    def poll(self) -> list[str]:
        """Output lines produced since the last call."""
        lines = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                return lines

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def cancel(self, timeout: float = 10.0) -> None:
        """Stop the job (terminate, then kill if it does not stop in ``timeout`` seconds).
        Finished outputs of a resumable job (build-db) are kept."""
        if self.running:
            self.cancelled = True
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def wait(self, timeout: float | None = None) -> int:
        return self._process.wait(timeout)
