"""``medsynth bench lesion``: time and memory of one lesion insertion against a plain copy.

Prints one JSON object.  Ratios are to a plain ``ndarray.copy()`` of the same volume measured
in the same run, so the figures are comparable across machines.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from pathlib import Path

import numpy as np

from .config import LesionConfig
from .errors import PlacementError
from .phantom import make_ct_phantom
from .sizes import SIZE_CLASSES
from .synthesizer import synthesize_lesions


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
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


def bench_volume(image: np.ndarray, organ: np.ndarray, geometry, preset: str = "ct-liver",
                 repeats: int = 15, size_classes=tuple(SIZE_CLASSES)) -> dict:
    """Median insertion time per size class vs. the median copy time, and peak memory."""
    copy_s = _median_seconds(image.copy, max(repeats, 7))
    result = {
        "volume_shape_kji": list(image.shape),
        "spacing_mm_ijk": [round(float(s), 4) for s in geometry.spacing],
        "volume_mb": round(image.nbytes / 2**20, 2),
        "copy_median_s": round(copy_s, 5),
        "repeats": repeats,
        "size_classes": {},
    }
    for size_class in size_classes:
        seeds = iter(range(1000))
        config = LesionConfig(preset=preset, size_class=size_class)
        failures = []

        def insert():
            try:
                synthesize_lesions(image, organ, geometry, config, seed=next(seeds))
            except PlacementError as error:  # an organ too small for the class: count, don't time
                failures.append(str(error))
                return False

        insert()  # warm-up: imports, first-call allocations
        seconds = _median_seconds(insert, repeats)
        peak = _peak_extra_bytes(insert)
        result["size_classes"][size_class] = {
            "insert_median_s": round(seconds, 5),
            "ratio_to_copy": round(seconds / copy_s, 2),
            "peak_extra_mb": round(peak / 2**20, 2),
            "peak_extra_ratio_to_volume": round(peak / image.nbytes, 2),
            "placement_failures": len(failures),
        }
    return result


#: grids benchmarked: a clinical abdominal CT, and the 1 mm isotropic grid the seed paper's code
#: resamples to (lesions hold ~3x more voxels there)
GRIDS = {"clinical": ((150, 512, 512), (0.8, 0.8, 2.5)), "isotropic_1mm": ((300, 400, 400), (1.0, 1.0, 1.0))}


def bench_phantom(repeats: int = 15, grid: str = "clinical") -> dict:
    """Insertion on a CT phantom (liver) on one of ``GRIDS``."""
    shape, spacing = GRIDS[grid]
    phantom = make_ct_phantom(shape=shape, spacing=spacing, seed=0)
    result = bench_volume(phantom.image, phantom.organ_mask("liver"), phantom.geometry, repeats=repeats)
    result["input"] = f"CT phantom {shape[2]}x{shape[1]}x{shape[0]}, {'x'.join(f'{s:g}' for s in spacing)} mm, liver"
    return result


def bench_files(image_path: Path, mask_path: Path, label: int | None, preset: str, repeats: int = 7) -> dict:
    """The same benchmark on a real image and organ mask."""
    from MedSynthCommonLib.imageio import read_volume

    image, geometry = read_volume(image_path)
    mask, _ = read_volume(mask_path)
    organ = mask == label if label is not None else mask != 0
    result = bench_volume(image, organ, geometry, preset=preset, repeats=repeats)
    result["input"] = str(image_path)
    return result
