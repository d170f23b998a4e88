"""Lesions on the real data in ``../shared/data``: PNG previews and their measured figures.

    python Testing/validation/lesion_previews.py --data ../shared/data --out previews/

Writes lesions of every size class on the real CT (and medium ones on the real MR), and real
stroke-lesion shapes (a shape bank) in the MNI T1 template; prints the lesions' figures as JSON.
Research script: it knows the shared data's file names, so it does not ship with the extension.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from SynthLesionLib import LesionConfig
from SynthLesionLib.sizes import SIZE_CLASSES


def real_data_previews(data_dir: Path, out_dir: Path, seed: int = 1) -> dict:
    """Lesions of every size class on the real CT (and medium ones on the real MR), as PNGs.

    Returns, per image, the lesions' measured figures so that plausibility can be judged.
    """
    from SynthLesionLib.files import synthesize_files

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    report = {}
    inputs = [("ct", "case01_ct3mm", "ct-liver", [*SIZE_CLASSES]), ("mr", "case03_mr3mm", "mr-liver", ["small", "medium"])]
    for tag, stem, preset, classes in inputs:
        image, mask = data_dir / f"{stem}_image.nii.gz", data_dir / f"{stem}_liver.nii.gz"
        if not image.exists():
            continue
        for size_class in classes:
            name = f"{tag}_{size_class}"
            result, _ = synthesize_files(image, mask, out_dir / f"{name}_image.nii.gz", out_dir / f"{name}_label.nii.gz",
                                         LesionConfig(preset=preset, size_class=size_class, count=2 if size_class != "large" else 1),
                                         seed, record_path=out_dir / f"{name}_record.json",
                                         preview_path=out_dir / f"{name}_preview.png")
            report[name] = [{"diameter_mm": r.equivalent_diameter_mm, "volume_ml": r.volume_ml,
                             "contrast": r.contrast_measured, "organ_median": r.organ_median,
                             "location": r.location, "attempts": r.placement_attempts} for r in result.records]
    return report


def brain_shape_bank_preview(data_root: Path, out_dir: Path, bank_size: int = 12, seed: int = 3) -> dict | None:
    """Real stroke-lesion shapes (a shape bank) inserted into the real MNI T1 template.

    Brain = arterial-territory atlas > 0; preset mr-brain, hypointense (T1 infarct-like).
    Returns the lesions' figures, or None when the data folder is not there.
    """
    from SynthLesionLib.files import synthesize_files
    from MedSynthCommonLib.imageio import read_volume
    stroke = Path(data_root) / "stroke_lesions_mni"
    if not (stroke / "lesion_volumes.csv").exists():
        return None
    import csv

    with (stroke / "lesion_volumes.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if 3000 <= int(r["lesion_voxels_1mm3"]) <= 40000]
    paths = [stroke / r["file"] for r in rows[:bank_size]]
    out_dir = Path(out_dir)
    atlas, geometry = read_volume(stroke / "ArterialAtlas136.nii.gz")
    from MedSynthCommonLib.imageio import write_volume

    brain = write_volume(out_dir / "brain_mask.nii.gz", (atlas > 0).astype("uint8"), geometry)
    result, _ = synthesize_files(stroke / "template_mni152_2009a_T1_on_lesion_grid.nii.gz", brain,
                                 out_dir / "brain_image.nii.gz", out_dir / "brain_label.nii.gz",
                                 LesionConfig(preset="mr-brain", size_class="medium", count=2, lesion_type="hypo"),
                                 seed, record_path=out_dir / "brain_record.json",
                                 preview_path=out_dir / "brain_preview.png", shape_masks=paths)
    return {"bank": [p.name for p in paths],
            "lesions": [{"template": r.shape_template, "diameter_mm": r.equivalent_diameter_mm,
                         "volume_ml": r.volume_ml, "contrast": r.contrast_measured, "organ_median": r.organ_median}
                        for r in result.records]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs, volumes and records")
    args = parser.parse_args()
    print(json.dumps({"lesions": real_data_previews(args.data / "abdomen_ct", args.out),
                      "brain_shape_bank": brain_shape_bank_preview(args.data, args.out)}, indent=2))


if __name__ == "__main__":
    main()
