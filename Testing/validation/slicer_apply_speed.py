"""What an Apply of the SynthLesion module costs beyond the engine: ``insert_lesions_on_nodes``
on real MRML nodes (slicer-core) against ``synthesize_lesions`` on the same arrays, alternated.

    python Testing/validation/slicer_apply_speed.py [--data ../shared/data] [--repeats 7]

Default: the 1 mm CT phantom of ``medsynth bench lesion``.  With ``--data``: the real CT of
``abdomen_ct`` (case01, 3 mm) resampled to 1 mm (linear; the liver nearest-neighbour).  Prints
JSON: per size class the median seconds of an Apply into reused output nodes and of the engine
call, their ratio, and, for a first Apply, the most memory the process held above what it held
before (sampled every 0.5 ms), in MB and in volumes.
Research script: it reads the shared data by name, so it does not ship with the extension.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from one_mm_cases import one_mm_case, phantom_case


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_above_start(function) -> int:
    """The most resident memory (bytes) the process held while ``function`` ran, above what it held before."""
    gc.collect()
    start, peak, done = _resident_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _resident_bytes())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        function()
    finally:
        done.set()
        sampler.join()
    return max(peak[0] - start, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="the shared data folder (default: the 1 mm phantom)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "medium", "large"])
    args = parser.parse_args()

    import slicer

    from MedSynthCommonLib.mrml import (fill_segmentation, output_volume, register_segmentation_converters,
                                        segment_array)
    from SynthLesionLib import LesionConfig, synthesize_lesions
    from SynthLesionLib.logic import insert_lesions_on_nodes

    register_segmentation_converters()
    image, organ, geometry = one_mm_case(args.data) if args.data else phantom_case()
    scene = slicer.vtkMRMLScene()
    volume = output_volume(scene, image, geometry, "CT")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "organs")
    fill_segmentation(segmentation, [("liver", organ, (0.8, 0.4, 0.3))], geometry, volume)
    del image, organ
    liver = segmentation.GetSegmentation().GetNthSegmentID(0)
    array = slicer.util.arrayFromVolume(volume)
    mask = segment_array(segmentation, liver, volume)  # what the engine gets from an Apply
    report = {"input": str(args.data / "abdomen_ct" / "case01_ct3mm_image.nii.gz") + " at 1 mm" if args.data
              else "1 mm CT phantom", "shape_kji": list(array.shape), "volume_mb": round(array.nbytes / 2**20, 1),
              "repeats": args.repeats, "sizes": {}}
    first = {}
    first["peak"] = _peak_above_start(lambda: first.update(
        outputs=insert_lesions_on_nodes(volume, segmentation, liver, LesionConfig(preset="ct-liver", size_class="tiny"),
                                        seed=0)))
    report["first_apply_peak_above_start_mb"] = round(first["peak"] / 2**20, 1)
    report["first_apply_peak_in_volumes"] = round(first["peak"] / array.nbytes, 2)
    outputs = first["outputs"]
    for size in args.sizes:
        config = LesionConfig(preset="ct-liver", size_class=size)
        apply_s, engine_s = [], []
        for seed in range(args.repeats):
            for which in (("apply", "engine") if seed % 2 == 0 else ("engine", "apply")):
                start = time.perf_counter()
                if which == "apply":
                    insert_lesions_on_nodes(volume, segmentation, liver, config, seed=seed,
                                            output_volume_node=outputs.volume, output_segmentation=outputs.segmentation,
                                            output_table=outputs.table, output_text=outputs.finding_text)
                    apply_s.append(time.perf_counter() - start)
                else:
                    synthesize_lesions(array, mask, geometry, config, seed)
                    engine_s.append(time.perf_counter() - start)
        apply, engine = float(np.median(apply_s)), float(np.median(engine_s))
        report["sizes"][size] = {"apply_s": round(apply, 4), "engine_s": round(engine, 4),
                                 "apply_over_engine": round(apply / engine, 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
