"""Two lesion engines side by side on one 1 mm case: a persistent worker process per engine,
calls alternated per seed (a drift of the machine hits both), with the other cores idle and then
busy; one lesion a call per size class, and with ``--several`` also several a call.

    python Testing/validation/engine_speed_ab.py --base /path/to/other/checkout [--head .]
        [--data ../shared/data] [--seeds 15] [--several] [--no-load] [--busy N] [--one-blas-thread]

An engine is a MedSynth checkout: its SynthLesion, SynthTranslate and SynthEvaluate folders go on
its worker's path (``git worktree add /tmp/base <commit>`` gives an older one).  The case reaches
the workers as .npy files (read without pickle) and its grid as JSON.  A call is
``synthesize_lesions`` without ``organ_stats`` on the same image and liver each time, its result
dropped before the next, as a loop over seeds makes it.  Prints JSON: per load and size class,
each engine's median seconds (failed calls are counted, not timed), their ratio base/head (> 1:
head faster) and the median of the per-seed ratios (steadier where seeds differ a lot in cost, as
large lesions do, when both engines make the same lesions for a seed).

An engine's process can slow the other's: BLAS threads (OpenBLAS's) keep spinning on the other
cores for a while after a call that used them, so the next call, by the other engine, finds
them busy.  Against 5061215 (``tensordot`` on two BLAS threads), this engine's tiny lesion
took 16.7 ms idle instead of 11.0 (its output copy shares the cores with a helper thread).
``--one-blas-thread`` gives both workers one BLAS thread (``OPENBLAS_NUM_THREADS=1`` and the
like), which compares the engines alone; without it, the comparison includes that effect, as
a loop that alternates with any multi-threaded tool does.
Research script: it reads the shared data by name, so it does not ship with the extension.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from one_mm_cases import one_mm_case, phantom_case

SIZES = ("tiny", "small", "medium", "large")

_WORKER = r"""
import json, sys, time
import numpy as np
from MedSynthCommonLib.geometry import Geometry
from SynthLesionLib import LesionConfig, synthesize_lesions
folder = sys.argv[1]
image = np.load(folder + "/image.npy", allow_pickle=False)
organ = np.load(folder + "/organ.npy", allow_pickle=False)
with open(folder + "/geometry.json") as handle:
    geometry = Geometry.from_dict(json.load(handle))
synthesize_lesions(image, organ, geometry, LesionConfig(preset="ct-liver", size_class="small"), seed=10**6)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    size, count, seed = line.split()
    config = LesionConfig(preset="ct-liver", size_class=size, count=int(count), allow_fewer=True)
    start = time.perf_counter()
    try:
        result = synthesize_lesions(image, organ, geometry, config, seed=int(seed))
        seconds, ok = time.perf_counter() - start, True
        del result
    except Exception:
        seconds, ok = time.perf_counter() - start, False
    print(json.dumps({"seconds": seconds, "ok": ok}), flush=True)
"""


#: the variables that set the BLAS libraries' thread counts
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class _Engine:
    def __init__(self, checkout: Path, folder: str, one_blas_thread: bool = False):
        paths = [str(checkout / part) for part in ("SynthLesion", "SynthTranslate", "SynthEvaluate")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        if one_blas_thread:
            env.update({name: "1" for name in BLAS_THREAD_VARIABLES})
        self.process = subprocess.Popen([sys.executable, "-c", _WORKER, folder], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        if not json.loads(self.process.stdout.readline()).get("ready"):
            raise RuntimeError(f"The engine of {checkout} did not start.")

    def call(self, size: str, count: int, seed: int) -> dict:
        self.process.stdin.write(f"{size} {count} {seed}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _round(engines: dict, counts: dict, seeds: int) -> dict:
    times = {(name, size): [] for name in engines for size in counts}
    failed = {(name, size): 0 for name in engines for size in counts}
    paired = {size: [] for size in counts}  # base/head of one seed (the same lesions when both engines make them)
    for seed in range(seeds):
        for size, count in counts.items():
            answers = {}
            for name in (list(engines) if seed % 2 == 0 else list(engines)[::-1]):
                answers[name] = engines[name].call(size, count, seed)
                if answers[name]["ok"]:
                    times[(name, size)].append(answers[name]["seconds"])
                else:
                    failed[(name, size)] += 1
            if all(answer["ok"] for answer in answers.values()):
                paired[size].append(answers["base"]["seconds"] / answers["head"]["seconds"])
    out = {}
    for size, count in counts.items():
        medians = {name: float(np.median(times[(name, size)])) if times[(name, size)] else float("nan")
                   for name in engines}
        out[size] = {"lesions_asked": count, **{f"{name}_median_ms": round(1000 * m, 2) for name, m in medians.items()},
                     "base_over_head": round(medians["base"] / medians["head"], 3),
                     "base_over_head_paired_median": round(float(np.median(paired[size])), 3) if paired[size] else None,
                     "failed_calls": {name: failed[(name, size)] for name in engines}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the checkout to compare against")
    parser.add_argument("--head", type=Path, default=Path(__file__).resolve().parents[2], help="default: this checkout")
    parser.add_argument("--data", type=Path, help="the shared data folder (default: the 1 mm phantom)")
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--several", action="store_true", help="also several lesions a call (8/6/4/3)")
    parser.add_argument("--no-load", action="store_true", help="the other cores idle only")
    parser.add_argument("--busy", type=int, default=None,
                        help="busy-loop processes in the busy round (default: one per core but one; on 2 cores, "
                             "2 make a 1-minute load of about 3 with the engine that runs)")
    parser.add_argument("--one-blas-thread", action="store_true",
                        help="one BLAS thread in both workers (no spinning BLAS threads between calls)")
    args = parser.parse_args()

    from SynthLesionLib.benchmark import SEVERAL, busy_cores

    image, organ, geometry = one_mm_case(args.data) if args.data else phantom_case()
    report = {"input": f"{args.data / 'abdomen_ct' / 'case01_ct3mm_image.nii.gz'} at 1 mm" if args.data
              else "1 mm CT phantom", "shape_kji": list(image.shape), "seeds": args.seeds,
              "base": str(args.base.resolve()), "head": str(args.head.resolve()),
              "blas_threads": "one" if args.one_blas_thread else "the libraries' default"}
    modes = {"one": {size: 1 for size in SIZES}}
    if args.several:
        modes["several"] = {size: SEVERAL[size] for size in SIZES}
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "image.npy", image)
        np.save(Path(folder) / "organ.npy", organ)
        (Path(folder) / "geometry.json").write_text(json.dumps(geometry.to_dict()))
        engines = {name: _Engine(path.resolve(), folder, args.one_blas_thread)
                   for name, path in (("base", args.base), ("head", args.head))}
        try:
            for load in ("idle",) if args.no_load else ("idle", "busy"):
                with busy_cores(args.busy) if load == "busy" else contextlib.nullcontext() as count:
                    if count is not None:
                        report["busy_processes"] = count
                    report[load] = {mode: _round(engines, counts, args.seeds) for mode, counts in modes.items()}
        finally:
            for engine in engines.values():
                engine.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
