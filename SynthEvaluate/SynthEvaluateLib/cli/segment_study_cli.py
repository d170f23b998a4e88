"""``medsynth evaluate segment-study`` from the command line: its options, the annotated and
healthy cases read from the user's CSVs, and the study run from them."""

from __future__ import annotations

import argparse
from pathlib import Path

from MedSynthCommonLib.cli import MAX_ITEMS, MAX_STEPS, finite_number, positive_number, seed_number, whole_number
from MedSynthCommonLib.errors import MedSynthInputError

from .image_set_cli import progress_line


def spacing_value(text: str) -> float:
    """argparse type of ``--spacing-mm``: 0 (keep the axis) or a spacing from 0.05 to 50 mm."""
    value = finite_number(text)
    if value != 0 and not 0.05 <= value <= 50:
        raise argparse.ArgumentTypeError(f"must be 0 (keep the axis) or a spacing from 0.05 to 50 mm, got {text}")
    return value


def annotated_cases(path: Path, lesion_label: int | None):
    """Annotated cases from a CSV ``image,label[,organ_mask[,organ_label]]``.  Where the segmenter
    looks: the organ_mask column's organ (``organ_label``'s value in it, or any non-zero), else
    the label map's other labels when it also holds the organ (LiTS: liver 1, tumour 2), else
    the whole scan."""
    import numpy as np

    from MedSynthCommonLib.geometry import check_same_grid
    from MedSynthCommonLib.imageio import read_volume
    from MedSynthCommonLib.tables import parse_int, read_table, table_file

    from ..studies.segment_study import AnnotatedCase

    cases, values = [], set()
    for number, row in read_table(path, ("image", "label"), "case list"):
        image, geometry = read_volume(table_file(path, row, "image", number))
        labels, label_geometry = read_volume(table_file(path, row, "label", number))
        check_same_grid(image, geometry, labels, label_geometry, f"label map on line {number} of {path}")
        lesions = labels == lesion_label if lesion_label is not None else labels > 0
        organ_file = table_file(path, row, "organ_mask", number, required=False)
        if organ_file is not None:
            mask, mask_geometry = read_volume(organ_file)
            check_same_grid(image, geometry, mask, mask_geometry, f"organ mask on line {number} of {path}")
            organ_label = parse_int((row.get("organ_label") or "").strip(), "organ_label", number, path)
            organ = (mask == organ_label) if organ_label is not None else mask != 0
            if not organ.any():
                raise MedSynthInputError(f"Line {number} of {path}: the organ mask holds no "
                                         f"{'voxel of value ' + str(organ_label) if organ_label is not None else 'organ'}"
                                         "; give the organ's value in the organ_label column.")
            organ |= lesions  # a lesion belongs to its organ even where the organ mask left it out
        elif lesion_label is not None and np.any((labels > 0) & ~lesions):
            organ = labels > 0  # a label map that also holds the organ says where to look
        else:
            organ = None
        cases.append(AnnotatedCase(image, lesions, geometry, organ))
        values.update(np.unique(labels).tolist())
    if lesion_label is not None and not any(case.lesions.any() for case in cases):
        raise MedSynthInputError(f"No label map of {path} holds the lesion label {lesion_label} (their values: "
                                 f"{sorted(values)[:10]}); give the lesions' value with --lesion-label.")
    return cases


def segment_study_command(args) -> dict:
    """``medsynth evaluate segment-study``: the cases read, the recipe from the options, the study run."""
    from MedSynthCommonLib.imageio import read_volume
    from SynthLesionLib.database import read_cases

    from ..studies.segment_study import HealthyCase, segment_study
    from ..recipes.segmenter import SegmenterRecipe

    real = annotated_cases(args.real_train, args.lesion_label) if args.real_train else []
    test = annotated_cases(args.test, args.lesion_label)
    healthy = []
    for case in read_cases(args.healthy) if args.healthy else []:
        from MedSynthCommonLib.geometry import check_same_grid

        image, geometry = read_volume(case.image)
        mask, mask_geometry = read_volume(case.organ_mask)
        check_same_grid(image, geometry, mask, mask_geometry, f"organ mask of healthy case {case.case_id}")
        healthy.append(HealthyCase(image, mask == case.organ_label if case.organ_label is not None else mask > 0, geometry))
        healthy[-1].check_holds_a_lesion(args.preset, case.case_id)
    validation = annotated_cases(args.validation, args.lesion_label) if args.validation else None
    recipe = SegmenterRecipe(spatial_dims=args.spatial_dims, iterations=args.iterations, min_lesion_mm=args.min_lesion_mm,
                             validate_every=args.validate_every, patience=args.patience if validation else 0,
                             budget_minutes=args.budget_minutes, context_slices=args.context_slices,
                             spacing_mm=tuple(args.spacing_mm) if args.spacing_mm else None, precision=args.precision,
                             prefetch_batches=args.prefetch_batches,
                             patch_size=(64, 64) if args.spatial_dims == 2 else (48, 48, 48),
                             channels=(16, 32, 64, 128) if args.spatial_dims == 2 else (8, 16, 32, 64))
    synthetic = annotated_cases(args.synthetic, args.lesion_label) if args.synthetic else None
    return segment_study(real, healthy, test, recipe, tuple(args.seeds), tuple(args.arms), args.offline_cases,
                         args.preset, args.tolerance_mm, progress_line, synthetic, args.offline_ratio, args.real_count,
                         validation, args.margin, runs_dir=args.runs_dir)


def add_segment_study_options(parser) -> None:
    """The study's options (its ``--margin`` and ``--out`` are the other studies')."""
    parser.add_argument("--real-train", type=Path, help="CSV image,label[,organ_mask[,organ_label]] of real annotated "
                                                           "training cases (the organ: where the segmenter looks)")
    parser.add_argument("--healthy", type=Path, help="CSV image,organ_mask[,organ_label] of healthy cases (as build-db)")
    parser.add_argument("--test", type=Path, required=True,
                       help="CSV image,label[,organ_mask[,organ_label]] of real annotated test cases: lesions are "
                            "sought inside the organ (organ_mask, or the label map's other labels, as LiTS's liver 1)")
    parser.add_argument("--lesion-label", type=whole_number(1, 2**31 - 1), help="lesion value in the label maps (default: any non-zero)")
    parser.add_argument("--arms", nargs="+", default=["real", "on-the-fly", "real + on-the-fly", "offline"],
                       choices=["real", "on-the-fly", "real + on-the-fly", "offline", "real + offline"],
                       help="training arms to compare")
    parser.add_argument("--synthetic", type=Path,
                       help="CSV image,label of ready synthetic cases (a build-db database, a translator's outputs) for "
                            "the offline arms (default: SynthLesion makes them in the healthy cases)")
    parser.add_argument("--offline-cases", type=whole_number(1, MAX_ITEMS), help="synthetic cases made before training for 'offline' "
                                                                    "(default: as many as real training cases, at least 4)")
    parser.add_argument("--offline-ratio", type=positive_number, default=1.0,
                       help="'real + offline': offline cases per real training case")
    parser.add_argument("--real-count", type=whole_number(1, MAX_ITEMS),
                       help="the real arms train on this many of the real cases (drawn per seed; default: all)")
    parser.add_argument("--preset", default="ct-liver", help="SynthLesion preset (or preset file) of the synthetic lesions")
    parser.add_argument("--spatial-dims", type=int, choices=[2, 3], default=2, help="UNet on slices (2) or volumes (3)")
    parser.add_argument("--spacing-mm", type=spacing_value, nargs=3, metavar=("K", "J", "I"),
                       help="resample every case to this spacing (mm; 0 keeps an axis), e.g. 0 0.8 0.8: a patch then "
                            "covers the same anatomy in every scan")
    parser.add_argument("--context-slices", type=whole_number(0, 8), default=0,
                       help="2-D UNet: this many neighbouring slices on each side as extra channels (2.5-D)")
    parser.add_argument("--iterations", type=whole_number(1, MAX_STEPS), default=500, help="training iterations per arm and seed")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"], default="fp32",
                       help="the UNet's forward passes in this precision (autocast; the loss and weights stay fp32): "
                            "bf16 on CPUs with AVX512-BF16/AMX and on GPUs; auto = bf16/fp16 on a GPU, fp32 on a CPU")
    parser.add_argument("--validation", type=Path,
                       help="CSV image,label of annotated cases of other patients (not in training or test): each arm "
                            "keeps its model with the best validation Dice")
    parser.add_argument("--validate-every", type=whole_number(1, MAX_STEPS), default=100,
                       help="with --validation: iterations between validations")
    parser.add_argument("--patience", type=whole_number(0, 1000), default=3,
                       help="with --validation: stop an arm after this many validations without a better Dice (0: never)")
    parser.add_argument("--budget-minutes", type=positive_number,
                       help="stop each arm and seed after this many minutes of training (its best or last model is scored)")
    parser.add_argument("--min-lesion-mm", type=finite_number, default=0.0,
                       help="drop predicted lesions smaller than this equivalent diameter (mm)")
    parser.add_argument("--seeds", type=seed_number, nargs="+", default=[0], help="one training run per arm and seed")
    parser.add_argument("--tolerance-mm", type=finite_number, default=2.0, help="NSD tolerance in mm")
    parser.add_argument("--prefetch-batches", type=whole_number(0, 16), default=0,
                        help="make this many batches of patches ahead in a background thread while the UNet trains "
                             "(the same batches, the same model); measured slower on a 2-core CPU (README), meant "
                             "for a GPU, where the patches would otherwise wait for the step")
