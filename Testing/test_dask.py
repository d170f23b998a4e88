"""build-db on Dask (dask.distributed): a real LocalCluster with 2 worker processes."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from MedSynthCommonLib.cli import main  # noqa: E402
from MedSynthCommonLib.errors import MedSynthInputError  # noqa: E402
from MedSynthCommonLib.executors import DaskExecutor  # noqa: E402

CLI = [sys.executable, "-m", "MedSynthCommonLib.cli"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory, small_ct_files):
    folder, image, organs, _ = small_ct_files
    path = tmp_path_factory.mktemp("dask") / "cases.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "image", "organ_mask", "organ_label"])
        for case_id in ("a", "b", "c"):
            writer.writerow([case_id, str(image), str(organs), "1"])
    return path


def _images(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "images").glob("*.nii.gz"))}


def test_local_cluster_gives_the_serial_outputs(tmp_path, cases, capsys):
    common = ["build-db", "--cases", str(cases), "--variants", "2", "--size", "tiny", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "serial")]) == 0
    assert main([*common, "--out", str(tmp_path / "dask"), "--cluster", "local:2"]) == 0
    assert "Dask dashboard: http" in capsys.readouterr().err
    serial, dask = _images(tmp_path / "serial"), _images(tmp_path / "dask")
    assert len(serial) == 6 and serial == dask  # byte-identical, whatever ran where
    lines = (tmp_path / "dask" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(line)["name"] for line in lines}) == 6  # one writer, no duplicates


def test_unreachable_scheduler_is_a_clear_error(tmp_path, cases, capsys):
    start = time.time()
    assert main(["build-db", "--cases", str(cases), "--variants", "1", "--out", str(tmp_path / "x"),
                 "--cluster", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "Could not reach the Dask scheduler at tcp://127.0.0.1:1" in err and "Traceback" not in err
    assert time.time() - start < 60
    with pytest.raises(MedSynthInputError, match=">= 1"):
        DaskExecutor("local:0")


@pytest.mark.parametrize("spec", ["local:abc", "local:0", "bogus://x:1", "tcp://", "host", "tcp://h:99999"])
def test_bad_cluster_strings_are_refused_by_the_parser(tmp_path, cases, capsys, spec):
    with pytest.raises(SystemExit) as stop:
        main(["build-db", "--cases", str(cases), "--out", str(tmp_path / "x"), "--cluster", spec])
    assert stop.value.code == 2 and "argument --cluster" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["build-db", "--cases", str(cases), "--out", str(tmp_path / "x"), "--cluster", "local:1", "--workers", "2"])
    assert "not allowed with argument --cluster" in capsys.readouterr().err


def test_a_scheduler_that_accepts_but_never_answers_is_given_up(tmp_path, cases, capsys, monkeypatch):
    import socket
    import threading

    from MedSynthCommonLib import executors

    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 3)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()) for _ in range(8)], daemon=True).start()
    start = time.time()
    try:
        code = main(["build-db", "--cases", str(cases), "--variants", "1", "--out", str(tmp_path / "x"), "--quiet",
                     "--cluster", f"tcp://127.0.0.1:{listener.getsockname()[1]}"])
    finally:
        listener.close()
    assert code == 2 and time.time() - start < 30 and accepted
    assert "Could not reach the Dask scheduler" in capsys.readouterr().err


def test_a_scheduler_that_stops_answering_mid_run_is_given_up(monkeypatch):
    from MedSynthCommonLib import executors

    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 3)
    monkeypatch.setattr(executors, "LIVENESS_INTERVAL_S", 1)
    port = _free_port()
    cluster = _start_cluster(port)
    try:
        runner = None
        deadline = time.time() + 60
        while runner is None:
            try:
                runner = DaskExecutor(f"tcp://127.0.0.1:{port}")
            except MedSynthInputError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        results = runner.run(time.sleep, [0.1, 60, 60])  # importable on the workers
        # one task finished (normally the short one; on a loaded machine a worker that starts late
        # can leave it behind a long one), at least one still running
        assert next(results)[1] is None
        os.killpg(cluster[0].pid, signal.SIGSTOP)  # the scheduler freezes: its socket stays open
        start = time.time()
        with pytest.raises(MedSynthInputError, match="stopped answering"):
            list(results)
        assert time.time() - start < 20
        runner.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cluster[0].pid, signal.SIGCONT)
        _stop(cluster)


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                if int(fields[1]) == parent:
                    found.append(int(entry.name))
                    frontier.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc to find the worker processes")
def test_a_killed_worker_loses_only_its_task_and_the_run_resumes(tmp_path, cases):
    out = tmp_path / "db"
    command = [*CLI, "build-db", "--cases", str(cases), "--variants", "4", "--size", "small", "--quiet",
               "--out", str(out), "--cluster", "local:2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (manifest.exists() and manifest.read_text().count("\n") >= 1):
        time.sleep(0.05)
    workers = _descendants(process.pid)
    leaves = [pid for pid in workers if not _descendants(pid)]  # worker processes (under their nannies)
    assert leaves, "the cluster's workers were found"
    os.kill(leaves[-1], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode in (0, 1), stderr
    summary = json.loads(stdout)
    assert summary["made"] + len(summary["failed"]) == 12 - summary["already_done"]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    names = [json.loads(line)["name"] for line in manifest.read_text().splitlines()]
    assert sorted(names) == sorted(f"{c}_v{v:04d}" for c in "abc" for v in range(4))
    serial = tmp_path / "serial"
    assert main(["build-db", "--cases", str(cases), "--variants", "4", "--size", "small", "--quiet",
                 "--out", str(serial)]) == 0
    assert _images(out) == _images(serial)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_cluster(port: int) -> list[subprocess.Popen]:
    """A real scheduler and two single-threaded workers, as separate processes (as on a cluster)."""
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                "--nworkers", "2", "--no-dashboard"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return [scheduler, workers]


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def test_a_killed_scheduler_is_a_clear_error_and_the_run_resumes(tmp_path, cases):
    port = _free_port()
    out = tmp_path / "db"
    command = [*CLI, "build-db", "--cases", str(cases), "--variants", "6", "--size", "small", "--quiet",
               "--out", str(out), "--cluster", f"tcp://127.0.0.1:{port}"]
    cluster = _start_cluster(port)
    try:
        client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        manifest = out / "manifest.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and not (manifest.exists() and manifest.read_text().count("\n") >= 1):
            time.sleep(0.05)
        os.killpg(cluster[0].pid, signal.SIGKILL)  # the scheduler
        _, stderr = client.communicate(timeout=180)
    finally:
        _stop(cluster)
    done_before = manifest.read_text().count("\n")
    if done_before < 18:  # the kill came before the end
        assert client.returncode == 2, stderr
        assert "Lost the connection to the Dask scheduler" in stderr and "internal error" not in stderr
    cluster = _start_cluster(port)
    try:
        resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        _stop(cluster)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["already_done"] == done_before
    names = [json.loads(line)["name"] for line in manifest.read_text().splitlines()]
    assert sorted(names) == sorted(f"{c}_v{v:04d}" for c in "abc" for v in range(6))
