"""How SynthLesion's liver lesions compare with real tumours (REALISM.md), measured with
``SynthLesionLib.features`` (the same definitions as the real-tumour figures).

    python Testing/validation/lesion_realism.py [--data ../shared/data] [--phase portal-venous]

Two settings: (1) a liver phantom on a typical clinical grid (0.8 x 0.8 x 2.5 mm) with
correlated CT noise (15 HU, ~1.5 mm grain), where partial volume is like the real-tumour scans;
(2) the real 3 mm CT in ``../shared/data/abdomen_ct`` (coarser: contrasts of small lesions are
more diluted there).  Prints the medians and 5-95 % ranges beside the real figures.
Research script: it reads the shared data by name, so it does not ship with the extension.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from MedSynthCommonLib.imageio import read_volume
from SynthLesionLib import LesionConfig, make_ct_phantom, synthesize_lesions
from SynthLesionLib.features import measure_lesions, summarise

#: real expert-segmented tumours (REALISM.md): median, 5 %, 95 %
REAL = {"contrast (hypo)": (-30.0, -45.0, -7.0), "contrast (hyper, arterial)": (22.0, 19.0, 26.0),
        "sd_ratio": (1.09, 0.74, 2.1), "sphericity": (0.61, 0.55, 0.66)}
#: the real figures for the edge were made with another gradient convention; theirs put the old
#: defaults 16 % sharper than real tumours (1.46 vs 1.26): the target here is the old defaults'
#: value on the same images x 1.26 / 1.46
EDGE_REAL_OVER_OLD = 1.26 / 1.46


def clinical_phantom(seed: int = 0):
    """Liver phantom at 0.8 x 0.8 x 2.5 mm with correlated noise (15 HU, ~1.5 mm grain)."""
    phantom = make_ct_phantom(shape=(60, 320, 320), spacing=(0.8, 0.8, 2.5), noise_sd=0.0, seed=seed)
    rng = np.random.default_rng(seed + 100)
    noise = ndimage.gaussian_filter(rng.standard_normal(phantom.image.shape), (0.25, 1.0, 1.0))
    noise *= 15.0 / noise.std()
    image = (phantom.image + noise).round().astype(np.int16)
    return image, phantom.organ_mask("liver"), phantom.geometry


def real_cases(data: Path):
    cases = []
    for stem in ("case01_ct3mm", "case01_ct3mm_upper"):
        image, geometry = read_volume(data / "abdomen_ct" / f"{stem}_image.nii.gz")
        liver, _ = read_volume(data / "abdomen_ct" / f"{stem}_liver.nii.gz")
        cases.append((image, liver > 0, geometry))
    return cases


def measure(cases, seeds: int, config: dict) -> dict:
    features, kept = [], []
    for image, organ, geometry in cases:
        for size in ("tiny", "small", "medium", "large"):
            for seed in range(seeds):
                try:
                    result = synthesize_lesions(image, organ, geometry, LesionConfig(size_class=size, **config), seed)
                except Exception:  # a large lesion that fits nowhere in a truncated liver
                    continue
                found = measure_lesions(result.image, result.lesion_labels, result.organ_mask > 0, geometry.spacing_kji)
                found = [f for f in found if 8.0 <= f.diameter_mm <= 55.0]  # the real tumours' range
                features += found
                kept += [abs(f.contrast) / abs(result.records[0].contrast_target)
                         for f in found if f.contrast is not None and result.records[0].contrast_target]
    summary = summarise(features)
    summary["measured_over_drawn_contrast"] = round(float(np.median(kept)), 3) if kept else None
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--seeds", type=int, default=6, help="lesions per size class and case")
    parser.add_argument("--phase", default=None, help="ct-liver phase (default: the preset's)")
    args = parser.parse_args()
    config = {"phase": args.phase} if args.phase else {}
    report = {"real_tumours": REAL, "phantom_0.8x0.8x2.5mm": measure([clinical_phantom(0), clinical_phantom(1)],
                                                                       args.seeds, config)}
    if (args.data / "abdomen_ct").exists():
        report["real_ct_3mm"] = measure(real_cases(args.data), args.seeds, config)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
