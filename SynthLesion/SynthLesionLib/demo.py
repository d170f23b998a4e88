"""``make demo``: the whole lesion pipeline on a built-in CT phantom, no data needed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .config import LesionConfig
from .database import build_database, read_cases
from .files import synthesize_files
from MedSynthCommonLib.imageio import write_volume
from MedSynthCommonLib.storage import claim_folder, write_text_atomic
from .phantom import ORGAN_LABELS, make_ct_phantom


#: what a demo folder holds (a folder holding anything else is someone else's)
DEMO_ENTRIES = {"inputs", "lesions", "database", "cases.csv", ".medsynth.lock"}


def run_demo(out: Path) -> dict:
    """Write a phantom, lesions of every size class with labels, records and previews into
    ``out`` (new, empty, or an earlier demo's folder: other folders are refused untouched)."""
    out = claim_folder(out, "demo folder", owned=lambda folder: {e.name for e in folder.iterdir()} <= DEMO_ENTRIES)
    inputs = out / "inputs"
    # anisotropic, oblique-free but LPS-stored axial CT, like most scanners write
    phantom = make_ct_phantom(shape=(64, 224, 224), spacing=(1.25, 1.25, 3.0), seed=0)
    image_path = write_volume(inputs / "ct_phantom.nii.gz", phantom.image, phantom.geometry)
    organs_path = write_volume(inputs / "ct_phantom_organs.nii.gz", phantom.organs, phantom.geometry)
    made = {}
    for size in ("tiny", "small", "medium", "mix"):
        count = 3 if size == "mix" else 2
        stem = out / "lesions" / f"liver_{size}"
        result, files = synthesize_files(
            image_path, organs_path, stem.with_name(stem.name + "_image.nii.gz"),
            stem.with_name(stem.name + "_label.nii.gz"), LesionConfig(size_class=size, count=count), seed=42,
            organ_label=ORGAN_LABELS["liver"], record_path=stem.with_name(stem.name + "_record.json"),
            preview_path=stem.with_name(stem.name + "_preview.png"))
        made[size] = files
        print(f"[{size}] {result.finding}")
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["case_id", "image", "organ_mask", "organ_label"])
    writer.writerow(["phantom", "inputs/ct_phantom.nii.gz", "inputs/ct_phantom_organs.nii.gz", ORGAN_LABELS["liver"]])
    cases = write_text_atomic(out / "cases.csv", table.getvalue())
    summary = build_database(read_cases(cases), out / "database", variants=4,
                             base_config=LesionConfig(size_class="mix", count=2), seed=7, workers=2, progress=False)
    print(f"\nDemo outputs in {out.resolve()}:")
    print(f"  inputs:    {inputs}")
    for size, files in made.items():
        print(f"  {size:6s}     {files.image.name}, {files.label.name}, {files.record.name}, {files.preview.name}")
    print(f"  database:  {summary['made']} new outputs, manifest {summary['manifest']}")
    print(f"  previews:  {out / 'lesions'}/*_preview.png (organ green, lesions red)")
    return summary
