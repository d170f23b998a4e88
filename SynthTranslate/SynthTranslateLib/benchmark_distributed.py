"""``medsynth bench translate --distributed``: training samples per second on 1 and 2
processes launched by ``torchrun`` (DistributedDataParallel, gloo on CPUs, NCCL on GPUs), with
the same global batch, against one plain process, in the same run.

Each launch trains one translator for ``iterations`` steps through ``train_translator``; rank 0
times the steady state (steps 10 to the last, from the progress callback) and writes it to a
JSON file.  Each torchrun process gets one intra-op thread (OMP_NUM_THREADS=1), as a rank gets
one GPU: 2 processes against 1 is DDP's scaling efficiency, which is what carries over to GPUs.
The plain process keeps torch's default (every core): on a CPU, the baseline to beat.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARM_UP = 10


def _worker(out: Path, model: str, iterations: int, batch: int, device: str) -> None:
    from MedSynthCommonLib.devices import resolve_accelerator
    from MedSynthCommonLib.distributed import finish, join

    from .benchmark import _setup
    from .data import BatchSampler, Normalizer
    from .training import train_translator

    accelerator, ranks = join(resolve_accelerator(device, "fp32"))
    config, kind, arrays = _setup(model, 64, batch)
    stamps = {}
    try:
        train_translator(config, BatchSampler(kind, batch, 0, **arrays), Normalizer((-1, 1)), iterations,
                         out / "model", sample_every=10 ** 9, checkpoint_every=10 ** 9, accelerator=accelerator,
                         progress=lambda entry: stamps.__setitem__(entry.get("step"), time.perf_counter()),
                         ranks=ranks)
    finally:
        finish(ranks)
    if ranks.is_main:
        seconds = stamps[iterations] - stamps[WARM_UP]
        (out / "result.json").write_text(json.dumps({"samples_per_s": (iterations - WARM_UP) * batch / seconds}),
                                         encoding="utf-8")


def _launch(processes: int | None, model: str, iterations: int, batch: int, device: str) -> dict:
    """Samples/s of one launch: ``processes`` ranks under torchrun, or None for a plain process."""
    with tempfile.TemporaryDirectory() as folder:
        worker = ["-m", __name__, "--worker", folder, model, str(iterations), str(batch), device]
        if processes is None:
            command = [sys.executable, *worker]
        else:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={processes}", *worker]
        threads = {} if processes is None else {"OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              env={**os.environ, "PYTHONIOENCODING": "utf-8", **threads})
        result = Path(folder) / "result.json"
        if done.returncode != 0 or not result.exists():
            return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        return {"samples_per_s": round(json.loads(result.read_text(encoding="utf-8"))["samples_per_s"], 2)}


def bench_distributed(model: str = "pix2pix", iterations: int = 40, batch: int = 16, device: str = "auto") -> dict:
    """Samples/s for a plain process and for 1 and 2 torchrun processes (same global batch)."""
    if iterations <= WARM_UP:
        from MedSynthCommonLib.errors import MedSynthInputError

        raise MedSynthInputError(f"--iterations must be more than {WARM_UP} (the warm-up steps).")
    runs = {"plain process (all cores)": None, "torchrun 1 process (1 thread)": 1,
            "torchrun 2 processes (1 thread each)": 2}
    result = {"model": model, "image_size": 64, "global_batch": batch, "iterations": iterations, "device": device}
    for name, processes in runs.items():
        print(f"bench translate --distributed: {name}", file=sys.stderr, flush=True)
        result[name] = _launch(processes, model, iterations, batch, device)
    base = result["torchrun 1 process (1 thread)"].get("samples_per_s")
    plain = result["plain process (all cores)"].get("samples_per_s")
    two = result["torchrun 2 processes (1 thread each)"].get("samples_per_s")
    if base and two:
        result["speed_up_2_vs_1_process"] = round(two / base, 2)
    if plain and two:
        result["speed_up_2_processes_vs_plain"] = round(two / plain, 2)
    return result


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--worker":
        _worker(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit("usage: python -m SynthTranslateLib.benchmark_distributed --worker OUT MODEL ITERATIONS BATCH DEVICE")
