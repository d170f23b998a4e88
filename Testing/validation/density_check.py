"""Validation on real data (not a test): does the density check tell lesions from the organ
around them?  On the real CT of ``abdomen_ct`` (3 mm):

Bright side (hyperdense calls against the organ's vessels):
- lesion-free regions: ``--regions`` balls of 24 mm in the liver (centres 9 mm or more inside it,
  seed 0), as evidence regions of a false hyperdense call;
- hyperdense lesions: ``--lesions`` SynthLesion lesions (small, medium, large in turn, seeds
  0, 1, ...), each region its mask grown by 2 voxels;
each measured as the check measures (``findings.density.region_density``: brightest tenth after
the opening) and on the raw image.

Dark side (hypodense calls against the organ's edges): lesion-free balls of 24 mm centred anywhere
in the liver and in the spleen (an evidence region can lie at an organ's edge, where voxels
share the fat beyond it), and hypodense SynthLesion lesions, each measured as the check measures
(darkest tenth, without the organ's surface voxels in the region).

A proxy: synthetic lesions in one patient's CT.

    python Testing/validation/density_check.py --data ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from MedSynthCommonLib.imageio import read_volume
from SynthEvaluateLib.findings.density import TAIL_PERCENT, region_density
from SynthLesionLib import LesionConfig, synthesize_lesions


def raw_brighter(image: np.ndarray, region: np.ndarray, organ: np.ndarray) -> float:
    """The bright side without the opening (HU)."""
    region = region & organ
    high = 100.0 - TAIL_PERCENT
    return float(np.percentile(image[region], high) - np.percentile(image[organ & ~region], high))


def summary(values: list[float]) -> str:
    values = np.asarray(values)
    return (f"median {np.median(values):.0f} HU, {values.min():.0f} to {values.max():.0f}; "
            f">= 10 HU: {int(np.sum(values >= 10))} of {len(values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (holds abdomen_ct/)")
    parser.add_argument("--regions", type=int, default=60)
    parser.add_argument("--lesions", type=int, default=20)
    args = parser.parse_args()
    folder = args.data / "abdomen_ct"
    image, geometry = read_volume(folder / "case01_ct3mm_image.nii.gz")
    liver = read_volume(folder / "case01_ct3mm_liver.nii.gz")[0] != 0
    spacing = geometry.spacing_kji
    values = image.astype(np.float32)
    rng = np.random.default_rng(0)
    centres = np.argwhere(ndimage.binary_erosion(liver, iterations=3))
    k, j, i = np.indices(liver.shape)
    free_raw, free_checked = [], []
    for _ in range(args.regions):
        c = centres[rng.integers(len(centres))]
        ball = ((k - c[0]) * spacing[0]) ** 2 + ((j - c[1]) * spacing[1]) ** 2 + ((i - c[2]) * spacing[2]) ** 2 <= 144
        free_raw.append(raw_brighter(values, ball, liver))
        free_checked.append(region_density(image, ball, liver, spacing)["brighter_hu"])
    lesion_raw, lesion_checked, sizes = [], [], []
    for seed in range(args.lesions):
        size_class = ("small", "medium", "large")[seed % 3]
        result = synthesize_lesions(image, liver, geometry, LesionConfig(preset="ct-liver", size_class=size_class,
                                                                         lesion_type="hyper"), seed=seed)
        region = ndimage.binary_dilation(result.lesion_labels > 0, iterations=2)
        lesion_raw.append(raw_brighter(result.image.astype(np.float32), region, liver))
        lesion_checked.append(region_density(result.image, region, liver, spacing)["brighter_hu"])
        sizes.append(result.records[0].equivalent_diameter_mm)
    print(f"lesion-free 24 mm regions, raw:         {summary(free_raw)}")
    print(f"lesion-free 24 mm regions, as checked:  {summary(free_checked)}")
    print(f"hyperdense lesions ({min(sizes):.0f}-{max(sizes):.0f} mm), raw:        {summary(lesion_raw)}")
    print(f"hyperdense lesions, as checked:         {summary(lesion_checked)}")
    print("lesions under 20 mm (size mm, raw HU, checked HU):",
          [(round(s), round(r), c) for s, r, c in zip(sizes, lesion_raw, lesion_checked) if s < 20])
    dark_side(image, geometry, read_volume(folder / "case01_ct3mm_organs.nii.gz")[0], args.regions, args.lesions)


def dark_side(image: np.ndarray, geometry, organs: np.ndarray, regions: int, lesions: int) -> None:
    """The darker side of lesion-free regions anywhere in the liver and spleen, and of hypodense
    lesions in the liver, as the check measures them."""
    spacing = geometry.spacing_kji
    names = {"liver": 5, "spleen": 1}  # TotalSegmentator's labels (metadata.json, class_map_total)
    k, j, i = np.indices(image.shape)
    rng = np.random.default_rng(0)
    for name, label in names.items():
        organ = organs == label
        centres = np.argwhere(organ)
        darker = []
        for _ in range(regions):
            c = centres[rng.integers(len(centres))]
            ball = ((k - c[0]) * spacing[0]) ** 2 + ((j - c[1]) * spacing[1]) ** 2 + ((i - c[2]) * spacing[2]) ** 2 <= 144
            darker.append(region_density(image, ball, organ, spacing)["darker_hu"])
        print(f"lesion-free 24 mm regions anywhere in the {name}, darker side: {summary(darker)}")
    liver = organs == names["liver"]
    darker, sizes = [], []
    for seed in range(lesions):
        size_class = ("small", "medium", "large")[seed % 3]
        result = synthesize_lesions(image, liver, geometry, LesionConfig(preset="ct-liver", size_class=size_class,
                                                                         lesion_type="hypo"), seed=seed)
        region = ndimage.binary_dilation(result.lesion_labels > 0, iterations=2)
        darker.append(region_density(result.image, region, liver, spacing)["darker_hu"])
        sizes.append(result.records[0].equivalent_diameter_mm)
    print(f"hypodense lesions ({min(sizes):.0f}-{max(sizes):.0f} mm), darker side: {summary(darker)}")

if __name__ == "__main__":
    main()
