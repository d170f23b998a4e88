"""Where independent tasks run: in this process, in a pool of worker processes on this machine,
or on a Dask cluster (``dask.distributed``: a ``LocalCluster``, or any scheduler address such
as one started by dask-jobqueue on SLURM/PBS, dask-kubernetes or Coiled).  No scheduler of our
own: the pool is ``concurrent.futures``, the cluster is Dask.

Every executor offers one call, ``run(function, items)``, yielding ``(item, result)`` as tasks
finish, in any order; the caller (one process) writes whatever must be written once, such as a
manifest.  A task whose worker dies is run again by Dask (bounded by its ``allowed-failures``)
and, after that, reported as a failure of that task only.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterable, Iterator

from .errors import MedSynthInputError

#: how long to wait for a Dask scheduler before saying it cannot be reached (seconds)
CONNECT_TIMEOUT_S = 10


class TaskLost(Exception):
    """A task whose worker died more often than the cluster allows."""


class SerialExecutor:
    name = "serial"

    def run(self, function: Callable, items: Iterable) -> Iterator[tuple[object, object]]:
        for item in items:
            yield item, function(item)

    def close(self) -> None:
        pass


class ProcessExecutor:
    """Worker processes on this machine (spawned, so safe inside Slicer; they end with the parent)."""

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from .processes import exit_with_parent

        self.name = f"processes:{workers}"
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=exit_with_parent)

    def run(self, function: Callable, items: Iterable):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pending = {self._pool.submit(function, item): item for item in items}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = pending.pop(future)
                    try:
                        yield item, future.result()
                    except BrokenProcessPool:
                        raise MedSynthInputError("A worker process died (out of memory?); run the same command again "
                                                 "to resume, with fewer workers if it happens again.") from None
        except BaseException:
            self._pool.shutdown(wait=True, cancel_futures=True)
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks on a Dask cluster: ``local[:N]`` starts a ``LocalCluster`` of N worker processes
    (one thread each); ``tcp://host:port`` (or any Dask address) joins a running scheduler."""

    def __init__(self, cluster: str, progress: Callable[[str], None] | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise MedSynthInputError("--cluster needs Dask: pip install 'dask[distributed]'.") from None
        self._cluster = None
        if cluster == "local" or cluster.startswith("local:"):
            workers = int(cluster.split(":", 1)[1]) if ":" in cluster else None
            if workers is not None and workers < 1:
                raise MedSynthInputError(f"--cluster {cluster}: the number of workers must be at least 1.")
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=":0", silence_logs=40)
            address = self._cluster
        else:
            address = cluster
        try:
            self._client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError) as error:
            if self._cluster is not None:
                self._cluster.close()
            raise MedSynthInputError(
                f"Could not reach the Dask scheduler at {cluster} within {CONNECT_TIMEOUT_S} s ({error}). Check the "
                "address (e.g. tcp://HOST:8786) and that the scheduler runs, or use --cluster local:N.") from None
        self.name = f"dask:{cluster}"
        self.dashboard = self._client.dashboard_link if self._client.dashboard_link else None
        if progress is not None and self.dashboard:
            progress(f"Dask dashboard: {self.dashboard}")

    def run(self, function: Callable, items: Iterable):
        import asyncio
        import concurrent.futures

        from distributed import as_completed
        from distributed.comm import CommClosedError
        from distributed.scheduler import KilledWorker

        items = list(items)
        futures = {self._client.submit(function, item, pure=False, retries=0): index for index, item in enumerate(items)}
        try:
            for future in as_completed(futures):
                item = items[futures[future]]
                try:
                    yield item, future.result()
                except KilledWorker as error:
                    yield item, TaskLost(f"its worker died repeatedly ({error})")
        except (asyncio.CancelledError, concurrent.futures.CancelledError, CommClosedError) as error:
            # Dask cancels every pending future when the client loses its scheduler
            for future in futures:
                future.cancel()
            raise MedSynthInputError(
                f"Lost the connection to the Dask scheduler ({self.name}): {str(error).splitlines()[0][:160]}. "
                "Finished outputs are kept; start the scheduler again and run the same command to resume.") from None
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


def make_executor(workers: int = 1, cluster: str | None = None, progress: Callable[[str], None] | None = None):
    """The executor for ``--workers N`` (this machine) or ``--cluster local[:N]|ADDRESS`` (Dask)."""
    if cluster:
        return DaskExecutor(cluster, progress)
    if workers <= 1:
        return SerialExecutor()
    return ProcessExecutor(workers)


@contextlib.contextmanager
def executor(workers: int = 1, cluster: str | None = None, progress: Callable[[str], None] | None = None):
    """``make_executor`` as a context manager (closed however the block ends)."""
    made = make_executor(workers, cluster, progress or (lambda line: print(line, file=sys.stderr, flush=True)))
    try:
        yield made
    finally:
        made.close()
