"""``medsynth bench build-db``: cases per second on each executor against the serial loop,
measured in the same run, and the Dask scheduler's overhead per task.

The cases are CT phantoms written once (so every engine reads files as build-db does); each
output is a small lesion in a 256x256x96 volume.  Start-up (worker processes, the cluster) is
timed apart from throughput: outputs/s counts the outputs finished after the first task (a task
returns up to four outputs of one case at once) over the time from that task to the last.
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path


#: outputs committed closer together than this came back from one task (seconds)
BURST_S = 0.05


def _cases(folder: Path, count: int) -> Path:
    from MedSynthCommonLib.imageio import write_volume

    from .phantom import make_ct_phantom

    path = folder / "cases.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "image", "organ_mask", "organ_label"])
        for n in range(count):
            phantom = make_ct_phantom(shape=(96, 256, 256), spacing=(1.5, 1.5, 3.0), seed=n)
            write_volume(folder / f"ct{n}.nii.gz", phantom.image, phantom.geometry)
            write_volume(folder / f"organs{n}.nii.gz", phantom.organs, phantom.geometry)
            writer.writerow([f"c{n}", f"ct{n}.nii.gz", f"organs{n}.nii.gz", 1])
    return path


def _throughput(cases_csv: Path, out: Path, variants: int, workers: int, cluster: str | None) -> dict:
    from .config import LesionConfig
    from .database import build_database, read_cases

    stamps = []
    started = time.perf_counter()
    summary = build_database(read_cases(cases_csv), out, variants, LesionConfig(size_class="small"), seed=0,
                             workers=workers, progress=False, cluster=cluster,
                             on_output=lambda row: stamps.append(time.perf_counter()))
    seconds = time.perf_counter() - started
    first_task = sum(stamp - stamps[0] < BURST_S for stamp in stamps) if stamps else 0
    span = stamps[-1] - stamps[0] if stamps else 0.0
    steady = (len(stamps) - first_task) / span if span > BURST_S else float("nan")
    return {"outputs": summary["made"], "seconds_in_all": round(seconds, 2),
            "start_up_s": round(stamps[0] - started, 2) if stamps else None,
            "outputs_per_s": round(steady, 3)}


def _dask_overhead_ms(tasks: int = 300) -> float | None:
    """Milliseconds per no-op task through a 2-worker LocalCluster (submit -> result)."""
    try:
        from distributed import Client, LocalCluster, wait
    except ImportError:
        return None
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        client.gather(client.map(abs, range(20), pure=False))  # warm up
        start = time.perf_counter()
        futures = client.map(abs, range(tasks), pure=False)
        wait(futures)
        return round((time.perf_counter() - start) / tasks * 1000, 3)


def bench_build(cases: int = 4, variants: int = 8) -> dict:
    """Outputs/s serially, with 2 worker processes, and on a 2-worker Dask LocalCluster."""
    result = {"cases": cases, "variants": variants, "volume": "CT phantom 256x256x96, 1.5x1.5x3 mm, small lesions"}
    with tempfile.TemporaryDirectory() as folder:
        cases_csv = _cases(Path(folder), cases)
        runs = {"serial": (1, None), "processes:2": (2, None), "dask local:2": (2, "local:2")}
        for name, (workers, cluster) in runs.items():
            try:
                result[name] = _throughput(cases_csv, Path(folder) / name.replace(" ", "_").replace(":", "_"),
                                           variants, workers, cluster)
            except Exception as error:  # e.g. Dask not installed
                result[name] = {"error": str(error)}
        serial = result["serial"]["outputs_per_s"]
        for name in ("processes:2", "dask local:2"):
            if "outputs_per_s" in result[name]:
                result[name]["speed_up_vs_serial"] = round(result[name]["outputs_per_s"] / serial, 2)
    result["dask_overhead_ms_per_task"] = _dask_overhead_ms()
    return result
