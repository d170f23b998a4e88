"""Long jobs in a separate process, so Slicer stays responsive: start, poll output, cancel.

Qt-free on purpose: the widget polls ``poll()`` from a timer and shows the lines; the same
class runs under pytest.  The job is any command line, normally ``medsynth ...`` run with this
Python (inside Slicer, ``sys.executable`` is PythonSlicer, a launcher that starts a child).
Cancel ends the whole process tree (its own process group/session), not only the launcher.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path


def package_folders(*packages: str) -> list[str]:
    """Folders that hold the named packages (so that a child process can import them)."""
    folders = []
    for name in ("MedSynthCommonLib", *packages):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            folder = str(Path(spec.origin).resolve().parent.parent)
            if folder not in folders:
                folders.append(folder)
    return folders


class BackgroundJob:
    def __init__(self, arguments: list[str], cwd: str | None = None, environment: dict[str, str] | None = None):
        self.arguments = arguments
        self.cwd = cwd
        self.environment = environment or {}
        self._process: subprocess.Popen | None = None
        self._lines: queue.Queue = queue.Queue()
        self._reader: threading.Thread | None = None
        self.cancelled = False

    @classmethod
    def medsynth(cls, *arguments: str, commands: tuple[str, ...] = (), **kwargs) -> "BackgroundJob":
        """A job that runs ``medsynth ARGUMENTS`` with this Python.  ``commands`` names the
        modules' ``register`` functions (``package.module:function``) for a Python where the
        packages are not installed (Slicer): their folders go on the child's PYTHONPATH."""
        packages = [spec.split(".")[0] for spec in commands]
        path = os.pathsep.join([*package_folders(*packages), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
        environment = {"PYTHONPATH": path}
        if commands:
            environment["MEDSYNTH_COMMANDS"] = ",".join(commands)
        return cls([sys.executable, "-u", "-m", "MedSynthCommonLib.cli", *arguments], environment=environment, **kwargs)

    def start(self) -> "BackgroundJob":
        environment = {**os.environ, **self.environment, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        options = {"start_new_session": True} if os.name == "posix" else \
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        self._process = subprocess.Popen(self.arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         encoding="utf-8", errors="replace", cwd=self.cwd, env=environment, bufsize=1, **options)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
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

    def last_output(self, timeout: float = 2.0) -> list[str]:
        """After the process has ended: the lines it wrote that ``poll`` has not returned yet
        (waits up to ``timeout`` s for them to be read from the pipe)."""
        if self._reader is not None:
            self._reader.join(timeout)
        return self.poll()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def _signal_tree(self, kill: bool) -> None:
        if os.name == "posix":
            try:
                os.killpg(self._process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            except ProcessLookupError:
                pass
        elif kill:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._process.pid)], capture_output=True)
        else:
            self._process.send_signal(signal.CTRL_BREAK_EVENT)

    def cancel(self, timeout: float = 10.0) -> None:
        """Stop the job and everything it started (terminate, then kill after ``timeout`` s).
        Finished outputs of a resumable job (build-db, training) are kept."""
        if self._process is None:
            return
        self.cancelled = True
        if self.running:
            self._signal_tree(kill=False)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._signal_tree(kill=True)  # whatever of the tree is left (a launcher's child)
        self._process.wait()

    def wait(self, timeout: float | None = None) -> int:
        return self._process.wait(timeout)
