"""``medsynth evaluate ...``: the evaluation protocols from the command line.

Each command writes a self-contained ``report.html``, ``results.json`` (every figure),
``summary.csv`` and PNG plots into ``--out``.
"""

from __future__ import annotations

import argparse

import importlib
import json
import os
import sys
from pathlib import Path

from MedSynthCommonLib.cli import MAX_IMAGE_SIZE, MAX_ITEMS, MAX_STEPS, finite_number, fraction, positive_number, seed_number, whole_number
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.executors import add_executor_options

from .image_set_cli import add_classifier_options, add_image_set_options, add_real_options, classifier_recipe, image_sets, real_set
from ..studies.protocols import AUGMENTATION_MARGIN
from ..studies.segment_study import DICE_MARGIN


def _print(message: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone reports
        print(message, file=sys.stderr, flush=True)


def _cmd_generator(args) -> dict:
    from ..studies.generator_quality import generator_quality, record_quality
    from ..studies.synthetic_sets import is_generator_folder

    if not is_generator_folder(args.model_dir):
        raise MedSynthInputError(f"{args.model_dir} is not the folder of a model that makes new images (stylegan, "
                                 "fastgan); train one with medsynth translate train.")
    from SynthTranslateLib.model_dir import QUALITY

    target = args.model_dir / QUALITY
    if args.record and (not os.access(args.model_dir, os.W_OK) or (target.exists() and not target.is_file())):
        # said before minutes of work, not after
        raise MedSynthInputError(f"--record writes {target}, which cannot be written there (a read-only folder, or "
                                 "something else by that name); fix that or leave out --record (the report has every "
                                 "figure).")
    result = generator_quality(args.model_dir, real_set(args), classifier_recipe(args), args.seed, args.samples_per_class,
                               args.test_fraction, args.split_seed, args.truncation, _print)
    if args.record:
        result["recorded_in"] = str(record_quality(args.model_dir, result))
    return result


def _cmd_images(args) -> dict:
    from MedSynthCommonLib.imageio import read_image_array

    from ..metrics.image import evaluate_images

    real = [read_image_array(Path(p)) for p in args.real]
    synthetic = [read_image_array(Path(p)) for p in args.synthetic]
    return evaluate_images(real, synthetic, args.paired, args.data_range)


def _cmd_gan_train_test(args) -> dict:
    from ..studies.protocols import gan_train_test

    real_train, real_test, synthetic, split = image_sets(args)
    synthetic_train, synthetic_test = split(synthetic, args.test_fraction, args.split_seed)
    return gan_train_test(real_train, real_test, synthetic_train, synthetic_test, classifier_recipe(args), tuple(args.seeds),
                          _print, runs_dir=args.runs_dir)


def _cmd_augment(args) -> dict:
    from ..studies.protocols import augmentation_study

    real_train, real_test, synthetic, _ = image_sets(args)
    counts = tuple(None if c == 0 else c for c in args.real_counts)
    return augmentation_study(real_train, synthetic, real_test, classifier_recipe(args), tuple(args.seeds), tuple(args.ratios),
                              counts, progress=_print, margin=args.margin, runs_dir=args.runs_dir)


def _load_callable(spec: str):
    module_name, _, function = spec.partition(":")
    if not function:
        raise MedSynthInputError(f"--segmenter must look like package.module:function, got {spec!r}.")
    return getattr(importlib.import_module(module_name), function)


def _cmd_robustness(args) -> dict:
    from SynthLesionLib.database import read_cases
    from MedSynthCommonLib.imageio import read_volume

    from ..studies.robustness import robustness_benchmark

    cases = []
    for case in read_cases(args.cases):
        image, geometry = read_volume(case.image)
        mask, _ = read_volume(case.organ_mask)
        cases.append((image, (mask == case.organ_label) if case.organ_label is not None else mask != 0, geometry))
    if args.segmenter:
        segment = _load_callable(args.segmenter)
    else:
        segment = _train_unet_on_synthetic(cases, args)
        if os.environ.get("RANK", "0") != "0":  # torchrun: every rank trained; rank 0 scores
            return None
    return robustness_benchmark(segment, cases, tuple(args.sizes), tuple(args.contrasts), args.per_stratum,
                                args.preset, args.seed, _print, args.workers, args.cluster)


def _train_unet_on_synthetic(cases, args):
    """The recipe's UNet trained on SynthLesion lesions in the same healthy cases (mixed sizes)."""
    from SynthLesionLib import LesionConfig, synthesize_lesions

    from ..recipes.segmenter import SegmenterRecipe, train_segmenter

    volumes, labels = [], []
    for n in range(args.train_cases):
        image, organ, geometry = cases[n % len(cases)]
        result = synthesize_lesions(image, organ, geometry, LesionConfig(preset=args.preset, size_class="mix", count=2,
                                                                         lesion_type="mixed"), 10_000 + n)
        volumes.append(result.image)
        labels.append(result.lesion_labels)
    _print(f"training the UNet recipe on {len(volumes)} synthetic cases for {args.train_unet} iterations")
    model = train_segmenter(volumes, labels, SegmenterRecipe(iterations=args.train_unet), seed=args.seed,
                            progress=lambda e: _print(f"iteration {e['iteration']}/{e['iterations']} loss {e['loss']:.3f}"))
    return lambda image, geometry: model.predict(image)


def spacing_value(text: str) -> float:
    """argparse type of ``--spacing-mm``: 0 (keep the axis) or a spacing from 0.05 to 50 mm."""
    value = finite_number(text)
    if value != 0 and not 0.05 <= value <= 50:
        raise argparse.ArgumentTypeError(f"must be 0 (keep the axis) or a spacing from 0.05 to 50 mm, got {text}")
    return value


def ratio(text: str) -> float:
    """argparse type of ``--ratios``: synthetic images per real image, above 0 and at most 100."""
    value = positive_number(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be at most 100 synthetic images per real one, got {text}")
    return value


def _cmd_privacy(args) -> dict:
    from ..recipes.data import Preprocessing, load_images
    from ..studies.privacy import privacy_audit

    network = None
    if args.feature_extractor:  # checked before any image is read
        from ..metrics.feature_networks import FeatureNetwork

        network = FeatureNetwork(args.feature_extractor)
    preprocessing = Preprocessing(size=args.image_size)
    train, train_ids = load_images(args.train, preprocessing, progress=True)
    synthetic, synthetic_ids = load_images(args.synthetic, preprocessing, progress=True)
    holdout = load_images(args.holdout, preprocessing, progress=True)[0] if args.holdout else None
    features = {}
    if network is not None:
        extracted = [network.features(images) if images is not None else None for images in (train, synthetic, holdout)]
        features[f"network ({Path(args.feature_extractor).name})"] = tuple(extracted)
    _print(f"auditing {len(synthetic)} synthetic images against {len(train)} training images")
    return privacy_audit(train, synthetic, train_ids, synthetic_ids, holdout, features, args.quantile,
                         args.copy_fraction, radiomics=not args.no_radiomics)


def _cmd_segmentation(args) -> dict:
    from ..studies.segmentation_files import evaluate_segmentations

    return evaluate_segmentations(args.reference, args.prediction, args.labels, args.tolerance_mm, args.seed, _print)


def _annotated(path: Path, lesion_label: int | None):
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


def _cmd_segment_study(args) -> dict:
    from MedSynthCommonLib.imageio import read_volume
    from SynthLesionLib.database import read_cases

    from ..studies.segment_study import HealthyCase, segment_study
    from ..recipes.segmenter import SegmenterRecipe

    real = _annotated(args.real_train, args.lesion_label) if args.real_train else []
    test = _annotated(args.test, args.lesion_label)
    healthy = []
    for case in read_cases(args.healthy) if args.healthy else []:
        from MedSynthCommonLib.geometry import check_same_grid

        image, geometry = read_volume(case.image)
        mask, mask_geometry = read_volume(case.organ_mask)
        check_same_grid(image, geometry, mask, mask_geometry, f"organ mask of healthy case {case.case_id}")
        healthy.append(HealthyCase(image, mask == case.organ_label if case.organ_label is not None else mask > 0, geometry))
        healthy[-1].check_holds_a_lesion(args.preset, case.case_id)
    validation = _annotated(args.validation, args.lesion_label) if args.validation else None
    recipe = SegmenterRecipe(spatial_dims=args.spatial_dims, iterations=args.iterations, min_lesion_mm=args.min_lesion_mm,
                             validate_every=args.validate_every, patience=args.patience if validation else 0,
                             budget_minutes=args.budget_minutes, context_slices=args.context_slices,
                             spacing_mm=tuple(args.spacing_mm) if args.spacing_mm else None, precision=args.precision,
                             patch_size=(64, 64) if args.spatial_dims == 2 else (48, 48, 48),
                             channels=(16, 32, 64, 128) if args.spatial_dims == 2 else (8, 16, 32, 64))
    synthetic = _annotated(args.synthetic, args.lesion_label) if args.synthetic else None
    return segment_study(real, healthy, test, recipe, tuple(args.seeds), tuple(args.arms), args.offline_cases,
                         args.preset, args.tolerance_mm, _print, synthetic, args.offline_ratio, args.real_count,
                         validation, args.margin, runs_dir=args.runs_dir)


def _cmd_reader_study(args) -> dict | None:
    from ..studies.reader_study import ReaderStudy

    if args.action == "create":
        missing = [str(p) for p in [*args.real, *args.synthetic] if not Path(p).exists()]
        if missing:
            raise MedSynthInputError(f"{len(missing)} image(s) of the study do not exist: {', '.join(missing[:5])}"
                                     f"{', ...' if len(missing) > 5 else ''}. Nothing was created.")
        study = ReaderStudy.create(args.study, [str(p) for p in args.real], [str(p) for p in args.synthetic], args.seed)
        print(json.dumps({"study": str(args.study), "cases": len(study.cases)}))
        return None
    return ReaderStudy.open(args.study).results()


def _out_option(parser) -> None:
    parser.add_argument("--out", type=Path, required=True,
                        help="report folder: report.html, results.json, summary.csv and PNG plots")


def _study_outputs(parser, margin: float, measure: str, run, title: str) -> None:
    """``--margin`` and ``--out`` of a study whose arms are judged against real over all seeds."""
    parser.add_argument("--margin", type=positive_number, default=margin,
                        help=f"{measure} an arm may lose against real and still be called not worse, judged over all "
                             "seeds (default %(default)s)")
    _out_option(parser)
    parser.set_defaults(protocol_run=run, title=title, trains=True)


def _cmd_bench_segment_study(args) -> int:
    from .benchmark_segment_study import bench_segment_study

    print(json.dumps(bench_segment_study(args.iterations, args.study), indent=2))
    return 0


def _cmd_bench(args) -> int:
    from .benchmark import bench_evaluate

    print(json.dumps(bench_evaluate(), indent=2))
    return 0


def register(cli) -> None:
    """Add ``evaluate ...`` and ``bench evaluate`` to the ``medsynth`` command."""
    from MedSynthCommonLib.distributed import LAUNCH_HINT

    evaluate = cli.add_command("evaluate", "judge synthetic data (reports in HTML, JSON, CSV); protocols that train "
                                           f"classifiers or segmenters run on {LAUNCH_HINT}")
    commands = cli.add_actions(evaluate, "protocol")

    images = commands.add_parser("images", help="PSNR/SSIM/MS-SSIM/RMSE/MAE (paired) and FRD between image sets")
    images.add_argument("--real", nargs="+", required=True, help="real images or volumes (files or DICOM series folders)")
    images.add_argument("--synthetic", nargs="+", required=True, help="synthetic images or volumes")
    images.add_argument("--paired", action="store_true", help="synthetic[i] renders real[i]: paired metrics too")
    images.add_argument("--data-range", type=finite_number, help="intensity range for PSNR/SSIM (default: each reference's)")
    _out_option(images)
    images.set_defaults(protocol_run=_cmd_images, title="Image fidelity")

    segmentation = commands.add_parser(
        "segmentation", help="Dice, NSD, HD95 and lesion-wise detection of predicted label maps against references")
    segmentation.add_argument("--reference", type=Path, required=True,
                              help="reference label map, or a folder of them (NIfTI/NRRD)")
    segmentation.add_argument("--prediction", type=Path, required=True,
                              help="predicted label map, or a folder with files of the same names as --reference")
    segmentation.add_argument("--labels", type=whole_number(1, 2**31 - 1), nargs="+",
                              help="label values to score one by one (default: any non-zero voxel)")
    segmentation.add_argument("--tolerance-mm", type=finite_number, default=2.0, help="NSD tolerance in mm")
    segmentation.add_argument("--seed", type=seed_number, default=0, help="seed of the bootstrap intervals")
    _out_option(segmentation)
    segmentation.set_defaults(protocol_run=_cmd_segmentation, title="Segmentation metrics")

    study = commands.add_parser(
        "segment-study", help="does synthesis help a segmenter? real, on-the-fly, real + on-the-fly, offline and real + "
                              "offline training of one UNet recipe, tested on real annotated cases")
    study.add_argument("--real-train", type=Path, help="CSV image,label[,organ_mask[,organ_label]] of real annotated "
                                                           "training cases (the organ: where the segmenter looks)")
    study.add_argument("--healthy", type=Path, help="CSV image,organ_mask[,organ_label] of healthy cases (as build-db)")
    study.add_argument("--test", type=Path, required=True,
                       help="CSV image,label[,organ_mask[,organ_label]] of real annotated test cases: lesions are "
                            "sought inside the organ (organ_mask, or the label map's other labels, as LiTS's liver 1)")
    study.add_argument("--lesion-label", type=whole_number(1, 2**31 - 1), help="lesion value in the label maps (default: any non-zero)")
    study.add_argument("--arms", nargs="+", default=["real", "on-the-fly", "real + on-the-fly", "offline"],
                       choices=["real", "on-the-fly", "real + on-the-fly", "offline", "real + offline"],
                       help="training arms to compare")
    study.add_argument("--synthetic", type=Path,
                       help="CSV image,label of ready synthetic cases (a build-db database, a translator's outputs) for "
                            "the offline arms (default: SynthLesion makes them in the healthy cases)")
    study.add_argument("--offline-cases", type=whole_number(1, MAX_ITEMS), help="synthetic cases made before training for 'offline' "
                                                                    "(default: as many as real training cases, at least 4)")
    study.add_argument("--offline-ratio", type=positive_number, default=1.0,
                       help="'real + offline': offline cases per real training case")
    study.add_argument("--real-count", type=whole_number(1, MAX_ITEMS),
                       help="the real arms train on this many of the real cases (drawn per seed; default: all)")
    study.add_argument("--preset", default="ct-liver", help="SynthLesion preset (or preset file) of the synthetic lesions")
    study.add_argument("--spatial-dims", type=int, choices=[2, 3], default=2, help="UNet on slices (2) or volumes (3)")
    study.add_argument("--spacing-mm", type=spacing_value, nargs=3, metavar=("K", "J", "I"),
                       help="resample every case to this spacing (mm; 0 keeps an axis), e.g. 0 0.8 0.8: a patch then "
                            "covers the same anatomy in every scan")
    study.add_argument("--context-slices", type=whole_number(0, 8), default=0,
                       help="2-D UNet: this many neighbouring slices on each side as extra channels (2.5-D)")
    study.add_argument("--iterations", type=whole_number(1, MAX_STEPS), default=500, help="training iterations per arm and seed")
    study.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"], default="fp32",
                       help="the UNet's forward passes in this precision (autocast; the loss and weights stay fp32): "
                            "bf16 on CPUs with AVX512-BF16/AMX and on GPUs; auto = bf16/fp16 on a GPU, fp32 on a CPU")
    study.add_argument("--validation", type=Path,
                       help="CSV image,label of annotated cases of other patients (not in training or test): each arm "
                            "keeps its model with the best validation Dice")
    study.add_argument("--validate-every", type=whole_number(1, MAX_STEPS), default=100,
                       help="with --validation: iterations between validations")
    study.add_argument("--patience", type=whole_number(0, 1000), default=3,
                       help="with --validation: stop an arm after this many validations without a better Dice (0: never)")
    study.add_argument("--budget-minutes", type=positive_number,
                       help="stop each arm and seed after this many minutes of training (its best or last model is scored)")
    study.add_argument("--min-lesion-mm", type=finite_number, default=0.0,
                       help="drop predicted lesions smaller than this equivalent diameter (mm)")
    study.add_argument("--seeds", type=seed_number, nargs="+", default=[0], help="one training run per arm and seed")
    study.add_argument("--tolerance-mm", type=finite_number, default=2.0, help="NSD tolerance in mm")
    _study_outputs(study, DICE_MARGIN, "Dice", _cmd_segment_study, "Segmentation study: real vs synthetic training")

    privacy = commands.add_parser(
        "privacy", help="privacy audit: near-copies of training images among the synthetic ones (distance to the "
                        "closest training image in pixels and features, against real-to-real distances)")
    privacy.add_argument("--train", type=Path, required=True,
                         help="folder of the generator's training images (2-D; listed by labels.csv if present)")
    privacy.add_argument("--synthetic", type=Path, required=True, help="folder of the synthetic images")
    privacy.add_argument("--holdout", type=Path,
                         help="folder of real images NOT used in training: the better yardstick (default: training "
                              "images against each other)")
    privacy.add_argument("--image-size", type=whole_number(8, MAX_IMAGE_SIZE), default=64,
                         help="images are compared on an IMAGE_SIZE x IMAGE_SIZE grid")
    privacy.add_argument("--quantile", type=fraction, default=0.01,
                         help="'closer than real': closer to a training image than this share of real images are")
    privacy.add_argument("--copy-fraction", type=fraction, default=0.5,
                         help="near-copy: closer than real and at most this fraction of the median real distance")
    privacy.add_argument("--feature-extractor", type=Path,
                         help="also compare in the feature space of this network: a feature-network card (JSON naming a "
                              "MONAI architecture and a weights file; .pt2/TorchScript files are refused, since "
                              "loading them can run code)")
    privacy.add_argument("--no-radiomics", action="store_true", help="leave out the radiomic feature space")
    _out_option(privacy)
    privacy.set_defaults(protocol_run=_cmd_privacy, title="Privacy audit: near-copies of training images")

    gtt = commands.add_parser("gan-train-test", help="baseline, GAN-train and GAN-test accuracy over seeds")
    add_image_set_options(gtt)
    _out_option(gtt)
    gtt.set_defaults(protocol_run=_cmd_gan_train_test, title="GAN-train / GAN-test", trains=True)

    augment = commands.add_parser("augment", help="real, synthetic and mixed training, paired against real only")
    add_image_set_options(augment)
    augment.add_argument("--ratios", type=ratio, nargs="+", default=[0.5, 1.0], help="synthetic images per real image")
    augment.add_argument("--real-counts", type=whole_number(0, MAX_ITEMS), nargs="+", default=[0], help="real training images kept (0 = all)")
    _study_outputs(augment, AUGMENTATION_MARGIN, "accuracy", _cmd_augment, "Augmentation study")

    generator = commands.add_parser(
        "generator", help="how good a generator of new images is: its samples recognised as their class by a "
                          "classifier trained on the real images, within-class diversity, Frechet/kernel distances "
                          "against a real-vs-real yardstick, near copies (--record: into the model folder too)")
    generator.add_argument("--model-dir", type=Path, required=True, help="a stylegan or fastgan model folder")
    add_real_options(generator, "real images (the model's classes)")
    generator.add_argument("--samples-per-class", type=whole_number(2, MAX_ITEMS), default=100, help="images sampled per class")
    generator.add_argument("--truncation", type=fraction, default=1.0, help="1 = full variety; lower = more typical")
    generator.add_argument("--seed", type=seed_number, default=0, help="seed of the samples and of the judge's training")
    add_classifier_options(generator)
    generator.add_argument("--record", action="store_true",
                           help="also write the figures into MODEL_DIR/quality.json (beside the card, which stays as it "
                                "is), where the Slicer Sample panel shows them; without it the model folder is not touched")
    _out_option(generator)
    generator.set_defaults(protocol_run=_cmd_generator, title="Generator quality", trains=True)

    robust = commands.add_parser("robustness", help="segmenter detection and Dice by lesion size and contrast")
    robust.add_argument("--cases", type=Path, required=True, help="CSV of healthy cases (as for build-db)")
    robust.add_argument("--segmenter", help="package.module:function(image, geometry) -> mask")
    robust.add_argument("--train-unet", type=whole_number(1, MAX_STEPS), default=500,
                        help="without --segmenter: train the UNet recipe this many iterations on SynthLesion cases")
    robust.add_argument("--train-cases", type=whole_number(1, MAX_ITEMS), default=8, help="synthetic cases the UNet is trained on")
    robust.add_argument("--sizes", nargs="+", default=["tiny", "small", "medium"], help="lesion size classes (strata)")
    robust.add_argument("--contrasts", type=finite_number, nargs="+", default=[-60.0, -30.0, -15.0],
                        help="lesion contrasts (strata), in the preset's units")
    robust.add_argument("--per-stratum", type=whole_number(1, 10_000), default=5, help="lesions per size x contrast x location stratum")
    robust.add_argument("--preset", default="ct-liver", help="SynthLesion preset of the inserted lesions")
    robust.add_argument("--seed", type=seed_number, default=0, help="random seed")
    add_executor_options(robust, "for the cases (with --segmenter; a UNet trained here scores here)")
    _out_option(robust)
    robust.set_defaults(protocol_run=_cmd_robustness, title="Robustness benchmark", trains=True)

    reader = commands.add_parser(
        "reader-study", help="blinded real-vs-synthetic reader study: create it, read its results",
        description="A blinded reader study. Readers answer in Slicer (SynthEvaluate > Reader study); there is no "
                    "command-line answering. 'create' makes the study folder, 'results' reports the answers.")
    actions = cli.add_actions(reader, "action")
    create = actions.add_parser("create", help="make a blinded study folder from real and synthetic images")
    create.add_argument("--study", type=Path, required=True, help="study folder to create")
    create.add_argument("--real", nargs="+", required=True, help="real images")
    create.add_argument("--synthetic", nargs="+", required=True, help="synthetic images")
    create.add_argument("--seed", type=seed_number, default=0, help="seed of the blinded order")
    create.set_defaults(protocol_run=_cmd_reader_study, title="Reader study", out=None)
    results = actions.add_parser("results", help="accuracy, sensitivity and specificity per reader, with CIs")
    results.add_argument("--study", type=Path, required=True, help="study folder")
    _out_option(results)
    results.set_defaults(protocol_run=_cmd_reader_study, title="Reader study")

    for parser in (images, segmentation, study, privacy, gtt, augment, generator, robust, create, results):
        parser.set_defaults(run=run)

    from .ct_findings_commands import register as register_ct_findings

    register_ct_findings(commands, _out_option, run)

    bench = cli.add_benchmark("evaluate", "NSD/HD95 and bootstrap against plain SciPy baselines")
    bench.set_defaults(run=_cmd_bench)
    segment_bench = cli.add_benchmark("segment-study", "the segmenter recipe's iterations/s against a plain MONAI "
                                                       "loop over the same cached cases (512x512x100 CT phantoms)")
    segment_bench.add_argument("--iterations", type=whole_number(20, MAX_STEPS), default=60, help="timed iterations")
    segment_bench.add_argument("--study", action="store_true",
                               help="also time a 3-arm x 2-seed study at the default iterations on 5 such CTs")
    segment_bench.set_defaults(run=_cmd_bench_segment_study)


register.order = 30


def run(args) -> int:
    """Run a protocol and write its report.  Under torchrun every rank runs the protocol (its
    classifiers and segmenters train with DistributedDataParallel); rank 0 alone writes and prints."""
    from MedSynthCommonLib.distributed import Ranks, finish

    from MedSynthCommonLib.finished_work import FinishedWork
    from MedSynthCommonLib.storage import claim_folder

    from ..report import RUNS_FOLDER, is_report_folder, write_report

    device = getattr(args, "device", "cpu") or "cpu"
    ranks = Ranks.from_environment("cuda" if device.startswith("cuda") or (device == "auto" and _has_cuda()) else "cpu")
    if ranks.is_main and getattr(args, "out", None) is not None:  # refused before any work, not after it
        claim_folder(args.out, "report folder", is_report_folder, create=False)
    args.runs_dir = Path(args.out) / RUNS_FOLDER if getattr(args, "out", None) else None  # finished runs, kept
    try:
        # protocols that train run on every rank (DistributedDataParallel); the others on rank 0 alone
        result = args.protocol_run(args) if ranks.is_main or getattr(args, "trains", False) else None
    finally:
        finish(ranks)
    if result is not None and ranks.is_main:
        paths = write_report(result, args.out, args.title)
        FinishedWork.forget(Path(args.out) / RUNS_FOLDER)  # the report holds them now
        print(json.dumps(paths, indent=2))
    return 0


def _has_cuda() -> bool:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()
