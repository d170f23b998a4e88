"""Validation on real anatomy (not a test), and a PROXY for real tumours: does a liver-lesion
segmenter trained only on SynthLesion's on-the-fly lesions find lesions it was not trained on?

    python Testing/validation/segment_study_liver.py --data ../shared/data --out segment_study_validation

The shared data holds one real CT patient without tumours (``abdomen_ct/case01``, 3 mm, liver
mask from TotalSegmentator), so real tumours cannot be the test set.  The proxy test set: the
same liver with lesions made by a preset the training never used, set to the real tumours'
figures of ``../shared/REALISM.md`` (venous contrast -41 ... -7 HU, median -24; sizes 12-55 mm;
sphericity and texture from ``ct-generic``), labelled LiTS-style (liver 1, lesion 2).  The
training arm is ``on-the-fly`` (``ct-liver`` defaults, healthy = the same CT: the same patient,
so this measures lesion generalisation, not patient generalisation).  We judge on real tumours
we do not have; read these figures as a proxy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from MedSynthCommonLib.cli import main as medsynth
from MedSynthCommonLib.imageio import read_volume, write_volume
from SynthLesionLib import LesionConfig, synthesize_lesions


def proxy_test_cases(image, liver, geometry, folder: Path, count: int, seed: int) -> Path:
    """``count`` CTs with 1-3 lesions each from a preset the training never saw (contrast and size
    set to the real tumours' ranges), as image/label files and a CSV."""
    rng = np.random.default_rng(seed)
    rows = ["image,label"]
    for n in range(count):
        contrast = float(rng.triangular(-41.0, -24.0, -7.0))
        config = LesionConfig(preset="ct-generic", size_class=str(rng.choice(["small", "medium"])),
                              count=int(rng.integers(1, 4)), contrast=contrast, mass_effect=0.0)
        result = synthesize_lesions(image, liver, geometry, config, int(rng.integers(2**31)))
        write_volume(folder / f"test{n}.nii.gz", result.image, geometry)
        write_volume(folder / f"test{n}_label.nii.gz", result.label_map(), geometry)
        rows.append(f"test{n}.nii.gz,test{n}_label.nii.gz")
    (folder / "test.csv").write_text("\n".join(rows) + "\n")
    return folder / "test.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("segment_study_validation"))
    parser.add_argument("--iterations", type=int, default=800)
    parser.add_argument("--test-cases", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--min-lesion-mm", type=float, default=8.0, help="predicted lesions below this are dropped")
    args = parser.parse_args()
    ct = args.data / "abdomen_ct"
    image, geometry = read_volume(ct / "case01_ct3mm_image.nii.gz")
    liver = read_volume(ct / "case01_ct3mm_liver.nii.gz")[0] > 0
    inputs = args.out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    write_volume(inputs / "healthy.nii.gz", image, geometry)
    write_volume(inputs / "liver.nii.gz", liver.astype(np.uint8), geometry)
    (inputs / "healthy.csv").write_text("image,organ_mask\nhealthy.nii.gz,liver.nii.gz\n")
    test = proxy_test_cases(image, liver, geometry, inputs, args.test_cases, seed=1234)
    started = time.perf_counter()
    code = medsynth(["evaluate", "segment-study", "--healthy", str(inputs / "healthy.csv"), "--test", str(test),
                     "--lesion-label", "2", "--arms", "on-the-fly", "--iterations", str(args.iterations),
                     "--min-lesion-mm", str(args.min_lesion_mm),
                     "--seeds", *map(str, args.seeds), "--out", str(args.out / "report")])
    if code != 0:
        return code
    result = json.loads((args.out / "report" / "results.json").read_text())
    for run in result["runs"]["on-the-fly"]:
        print(json.dumps({"seed": run["seed"], "dice": run["dice"], "nsd": run["nsd"],
                          "lesion_sensitivity": run["lesion_sensitivity"],
                          "false_positives_per_case_in_liver": run["false_positives_per_case"],
                          "false_positives_per_case_in_region": run["false_positives_per_case_in_region"],
                          "by_size": run["sensitivity_by_size"], "seconds": round(time.perf_counter() - started)},
                         indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
