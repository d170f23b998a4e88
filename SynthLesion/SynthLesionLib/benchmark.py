"""``medsynth bench lesion``: time and memory of lesion insertion against a plain copy.

Prints one JSON object.  Ratios are to a plain ``ndarray.copy()`` of the same volume measured
in the same run (with the same load), so the figures are comparable across machines.  Each size
class is timed per call of one lesion:

- ``cold``: the call as a one-off user makes it (the organ measured in the call: nothing kept
  from an earlier call, ``MedSynthCommonLib.kept``);
- ``repeated``: calls in a loop on one case without ``organ_stats``: the organ's measurement and
  distance map are found kept from an earlier call (checked against the values they read);
- ``warm``: the organ measured once beforehand (``prepare_organ``), as build-db's variants of one
  case do;
- ``in_place``: as warm, written into the image itself (``out=image``: no new volume, no copy);
- ``several``: one call asking for several lesions (``SEVERAL``), the organ measured in the call
  (as cold): later lesions must find room beside the earlier ones;

each with the other cores idle and with them busy (busy-loop processes of this benchmark's own),
so that a slowdown under load (a kernel that waits for a preempted helper thread) shows.  The
repeated calls recycle the new image's memory once the last result is let go
(``MedSynthCommonLib.recycling``), as any loop over calls does, while each baseline copy takes
new memory; ``kept_between_calls_mb`` is what recycling keeps, and the peak memory is measured
with nothing kept (a call's new image counted, as a first call's is).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np

from MedSynthCommonLib import recycling
from MedSynthCommonLib.kept import forget_all

from .config import LesionConfig
from .errors import PlacementError
from .phantom import make_ct_phantom
from .sizes import SIZE_CLASSES
from .synthesizer import prepare_organ, synthesize_lesions


def _median_seconds(function, repeats: int, setup=None) -> float:
    """Median time of ``function()`` over ``repeats`` calls (``setup()`` before each, untimed)."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        if function() is not False:  # False: the call failed and is not timed
            times.append(time.perf_counter() - start)
    return float(np.median(times)) if times else float("nan")


def _peak_extra_bytes(function) -> int:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - base


def _spin(started) -> None:
    started.release()
    while True:
        pass


@contextlib.contextmanager
def busy_cores(count: int | None = None):
    """``count`` busy-loop processes (default: one per core but one) for the duration, each
    spinning before the first timing (a spawned process imports this package first, which on a
    loaded machine takes longer than any fixed wait; timing during those imports made the first
    size class look several times slower under load)."""
    count = max((os.cpu_count() or 2) - 1, 1) if count is None else count
    context = multiprocessing.get_context("spawn")
    started = context.Semaphore(0)
    spinners = [context.Process(target=_spin, args=(started,), daemon=True) for _ in range(count)]
    for spinner in spinners:
        spinner.start()
    for _ in spinners:
        if not started.acquire(timeout=60):
            raise RuntimeError("The busy-loop processes of the benchmark did not start within 60 s.")
    time.sleep(0.2)
    try:
        yield count
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.join()


#: lesions asked per call in the ``several`` mode (a case with several tumours; those that fit
#: nowhere beside the others are left out and counted, as ``allow_fewer`` does)
SEVERAL = {"tiny": 8, "small": 6, "medium": 4, "large": 3}


def _time_classes(image, organ, geometry, preset, repeats, size_classes, stats) -> tuple[float, dict]:
    copy_s = _median_seconds(image.copy, max(repeats, 7))
    result = {}
    for size_class in size_classes:
        entry = {}
        modes = (("cold", None, 1, False), ("repeated", None, 1, False), ("warm", stats, 1, False),
                 ("in_place", stats, 1, True), ("several", None, SEVERAL.get(size_class, 1), False))
        for mode, organ_stats, count, in_place in modes:
            config = LesionConfig(preset=preset, size_class=size_class, count=count, allow_fewer=count > 1)
            seeds = iter(range(10_000))
            failures, placed = [], []
            work = image.copy() if in_place else None  # in place: a fresh copy of the input before each call

            def insert():
                target = work if in_place else image
                try:
                    made = synthesize_lesions(target, organ, geometry, config, seed=next(seeds), organ_stats=organ_stats,
                                              out=work)
                except PlacementError as error:  # an organ too small for the class: count, don't time
                    failures.append(str(error))
                    return False
                placed.append(len(made.records))

            restore = (lambda: np.copyto(work, image)) if in_place else forget_all if mode in ("cold", "several") \
                else None
            insert()  # warm-up: imports, first-call allocations
            placed.clear()
            seconds = _median_seconds(insert, repeats, restore)
            entry[mode] = {"insert_median_s": round(seconds, 5), "ratio_to_copy": round(seconds / copy_s, 2),
                           "placement_failures": len(failures)}
            if count > 1:
                entry[mode].update(lesions_asked=count, lesions_placed_median=float(np.median(placed)) if placed else 0.0)
        result[size_class] = entry
    return copy_s, result


def bench_volume(image: np.ndarray, organ: np.ndarray, geometry, preset: str = "ct-liver",
                 repeats: int = 15, size_classes=tuple(SIZE_CLASSES), under_load: bool = True) -> dict:
    """Median time of a one-lesion call per size class, cold, repeated, warm and in place, and of a
    several-lesion call, against the median copy time, with the other cores idle and (``under_load``) busy; and
    peak extra memory."""
    stats = prepare_organ(image, organ, geometry)
    result = {"volume_shape_kji": list(image.shape), "spacing_mm_ijk": [round(float(s), 4) for s in geometry.spacing],
              "volume_mb": round(image.nbytes / 2**20, 2), "repeats": repeats}
    copy_s, result["idle"] = _time_classes(image, organ, geometry, preset, repeats, size_classes, stats)
    result["copy_median_s"] = round(copy_s, 5)
    if under_load:
        with busy_cores() as count:
            copy_busy, result["busy"] = _time_classes(image, organ, geometry, preset, repeats, size_classes, stats)
        result["busy_processes"], result["copy_median_s_busy"] = count, round(copy_busy, 5)
    # what the timed calls left kept for reuse: memory the process holds between calls
    result["kept_between_calls_mb"] = round(recycling.kept_bytes() / 2**20, 2)
    result["peak_extra_mb"] = {}
    for size_class in size_classes:
        config = LesionConfig(preset=preset, size_class=size_class)
        recycling.release()  # a call's peak counts its new image, as a first call's does
        forget_all()
        with contextlib.suppress(PlacementError):
            peak = _peak_extra_bytes(lambda: synthesize_lesions(image, organ, geometry, config, seed=0))
            result["peak_extra_mb"][size_class] = round(peak / 2**20, 2)
    result["peak_extra_ratio_to_volume"] = {k: round(v * 2**20 / image.nbytes, 2) for k, v in result["peak_extra_mb"].items()}
    return result


#: grids benchmarked: a clinical abdominal CT, and the 1 mm isotropic grid the seed paper's code
#: resamples to (lesions hold ~3x more voxels there)
GRIDS = {"clinical": ((150, 512, 512), (0.8, 0.8, 2.5)), "isotropic_1mm": ((300, 400, 400), (1.0, 1.0, 1.0))}


def bench_phantom(repeats: int = 15, grid: str = "clinical", under_load: bool = True) -> dict:
    """Insertion on a CT phantom (liver) on one of ``GRIDS``."""
    shape, spacing = GRIDS[grid]
    phantom = make_ct_phantom(shape=shape, spacing=spacing, seed=0)
    result = bench_volume(phantom.image, phantom.organ_mask("liver"), phantom.geometry, repeats=repeats,
                          under_load=under_load)
    result["input"] = f"CT phantom {shape[2]}x{shape[1]}x{shape[0]}, {'x'.join(f'{s:g}' for s in spacing)} mm, liver"
    return result


def bench_files(image_path: Path, mask_path: Path, label: int | None, preset: str, repeats: int = 7,
                under_load: bool = True) -> dict:
    """The same benchmark on a real image and organ mask."""
    from MedSynthCommonLib.imageio import read_volume

    image, geometry = read_volume(image_path)
    mask, _ = read_volume(mask_path)
    organ = mask == label if label is not None else mask != 0
    result = bench_volume(image, organ, geometry, preset=preset, repeats=repeats, under_load=under_load)
    result["input"] = str(image_path)
    return result
