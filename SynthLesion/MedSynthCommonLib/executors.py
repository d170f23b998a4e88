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

import argparse
import asyncio
import contextlib
import os
import re
import sys
from typing import Callable, Iterable, Iterator

from .cli import whole_number
from .errors import MedSynthInputError

#: how long a Dask scheduler may take to answer (the connect, and every later check that it
#: still answers) before MedSynth says it cannot be reached (seconds)
CONNECT_TIMEOUT_S = 10
#: while tasks run, the scheduler is asked whether it still answers after this long without a result
LIVENESS_INTERVAL_S = 30
_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")
_ADDRESS = re.compile(r"^(?:(?P<protocol>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")


def cluster_spec(text: str) -> str:
    """argparse type of ``--cluster``: ``local``, ``local:N`` (N >= 1) or a scheduler address
    ``[PROTOCOL://]HOST:PORT``."""
    if text == "local":
        return text
    if text.startswith("local:"):
        count = text.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: the number of local workers must be a whole number >= 1 "
                                             "(e.g. local:4)")
        return f"local:{int(count)}"
    match = _ADDRESS.match(text)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Dask scheduler address; give local, local:N or "
                                         "tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786)")
    if match["protocol"] and match["protocol"] not in _PROTOCOLS:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown protocol {match['protocol']!r}; Dask speaks "
                                         f"{', '.join(_PROTOCOLS)}")
    return text


def add_executor_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--workers N`` (processes here) or ``--cluster local[:N]|ADDRESS`` (Dask), not both."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--workers", type=whole_number(1, 1024), default=1, help=f"worker processes on this machine {what}")
    group.add_argument("--cluster", metavar="local[:N] | ADDRESS", type=cluster_spec,
                       help="run on Dask instead: 'local:N' starts N worker processes here, 'tcp://HOST:8786' joins a "
                            "running scheduler (dask-jobqueue, dask-kubernetes, Coiled...); outputs must be on storage "
                            "every worker sees")


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
                                         initializer=exit_with_parent, initargs=(os.getpid(),))

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
        try:
            cluster = cluster_spec(cluster)
        except argparse.ArgumentTypeError as error:
            raise MedSynthInputError(f"--cluster {error}.") from None
        if cluster == "local" or cluster.startswith("local:"):
            workers = int(cluster.split(":", 1)[1]) if ":" in cluster else None
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=":0", silence_logs=40)
            address = self._cluster
        else:
            address = cluster
            _probe(cluster)
        try:
            self._client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as error:
            if self._cluster is not None:
                self._cluster.close()
            raise _unreachable(cluster, error) from None
        self.name = f"dask:{cluster}"
        self.dashboard = self._client.dashboard_link if self._client.dashboard_link else None
        if progress is not None and self.dashboard:
            progress(f"Dask dashboard: {self.dashboard}")

    def run(self, function: Callable, items: Iterable):
        import asyncio
        import concurrent.futures

        from distributed.comm import CommClosedError
        from distributed.scheduler import KilledWorker

        items = list(items)
        futures = {self._client.submit(function, item, pure=False, retries=0): index for index, item in enumerate(items)}
        try:
            for future in self._as_completed(futures):
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

    def _as_completed(self, futures):
        """Futures as they finish; whenever none has finished for ``LIVENESS_INTERVAL_S``, the
        scheduler must answer within ``CONNECT_TIMEOUT_S`` (a peer that accepts but never answers
        would otherwise be waited on for ever)."""
        from distributed import wait
        from distributed.utils import TimeoutError as DaskTimeout

        pending = set(futures)
        while pending:
            try:
                done, pending = wait(pending, timeout=LIVENESS_INTERVAL_S, return_when="FIRST_COMPLETED")
            except (TimeoutError, DaskTimeout):
                try:
                    self._client.sync(self._client.scheduler.identity, callback_timeout=CONNECT_TIMEOUT_S)
                except (OSError, TimeoutError, DaskTimeout, asyncio.TimeoutError) as error:
                    raise MedSynthInputError(
                        f"The Dask scheduler ({self.name}) stopped answering (no reply within {CONNECT_TIMEOUT_S} s: "
                        f"{type(error).__name__}). Finished outputs are kept; check the scheduler and run the same "
                        "command again to resume.") from None
                continue
            yield from done

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close(timeout=CONNECT_TIMEOUT_S)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


def _unreachable(cluster: str, error: BaseException | str) -> MedSynthInputError:
    detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
    return MedSynthInputError(
        f"Could not reach the Dask scheduler at {cluster} within {CONNECT_TIMEOUT_S} s ({detail}). Check the address "
        "(e.g. tcp://HOST:8786) and that the scheduler runs, or use --cluster local:N.")


def _probe(address: str) -> None:
    """Ask the scheduler at ``address`` who it is, with a deadline on the connect, the handshake
    and the answer (Dask's own connect timeout does not cover a peer that accepts the connection
    and then says nothing)."""
    from distributed.core import rpc

    async def identity():
        scheduler = rpc(address, timeout=CONNECT_TIMEOUT_S)
        try:
            return await scheduler.identity()
        finally:
            await scheduler.close_rpc()

    try:
        answer = asyncio.run(asyncio.wait_for(identity(), CONNECT_TIMEOUT_S))
    except (TimeoutError, asyncio.TimeoutError):
        raise _unreachable(address, "no answer: something there accepts connections but does not reply") from None
    except Exception as error:  # refused, unknown host, or a peer that answers but not as a Dask scheduler
        raise _unreachable(address, error) from None
    if not isinstance(answer, dict) or "Scheduler" not in str(answer.get("type", "")):
        raise MedSynthInputError(f"{address} answered, but not as a Dask scheduler; check the address and port.")


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
