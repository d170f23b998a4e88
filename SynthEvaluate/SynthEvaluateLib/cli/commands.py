"""``medsynth evaluate ...``: the evaluation protocols from the command line.

Each command writes a self-contained ``report.html``, ``results.json`` (every figure),
``summary.csv`` and PNG plots into ``--out``.
"""

from __future__ import annotations

import argparse

import importlib
import json
import os
from pathlib import Path

from MedSynthCommonLib.cli import MAX_IMAGE_SIZE, MAX_ITEMS, MAX_STEPS, finite_number, fraction, positive_number, seed_number, whole_number
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.executors import add_executor_options

from .image_set_cli import (add_classifier_options, add_image_set_options, add_real_options, classifier_recipe, image_sets,
                            progress_line, real_set)
from .image_findings_cli import add_image_findings_options, image_findings_command
from .segment_study_cli import add_segment_study_options, segment_study_command
from ..studies.margins import AUGMENTATION_MARGIN, DICE_MARGIN


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
                               args.test_fraction, args.split_seed, args.truncation, progress_line)
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
                          progress_line, runs_dir=args.runs_dir)


def _cmd_augment(args) -> dict:
    from ..studies.protocols import augmentation_study

    real_train, real_test, synthetic, _ = image_sets(args)
    counts = tuple(None if c == 0 else c for c in args.real_counts)
    return augmentation_study(real_train, synthetic, real_test, classifier_recipe(args), tuple(args.seeds), tuple(args.ratios),
                              counts, progress=progress_line, margin=args.margin, runs_dir=args.runs_dir)


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
                                args.preset, args.seed, progress_line, args.workers, args.cluster)


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
    progress_line(f"training the UNet recipe on {len(volumes)} synthetic cases for {args.train_unet} iterations")
    model = train_segmenter(volumes, labels, SegmenterRecipe(iterations=args.train_unet), seed=args.seed,
                            progress=lambda e: progress_line(f"iteration {e['iteration']}/{e['iterations']} loss {e['loss']:.3f}"))
    return lambda image, geometry: model.predict(image)


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
    progress_line(f"auditing {len(synthetic)} synthetic images against {len(train)} training images")
    return privacy_audit(train, synthetic, train_ids, synthetic_ids, holdout, features, args.quantile,
                         args.copy_fraction, radiomics=not args.no_radiomics)


def _cmd_segmentation(args) -> dict:
    from ..studies.segmentation_files import evaluate_segmentations

    return evaluate_segmentations(args.reference, args.prediction, args.labels, args.tolerance_mm, args.seed, progress_line)


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
    add_segment_study_options(study)
    _study_outputs(study, DICE_MARGIN, "Dice", segment_study_command, "Segmentation study: real vs synthetic training")

    image_findings = commands.add_parser(
        "image-findings", help="multi-label findings on 2-D images: the findings model trained on images with one 0/1 "
                               "column per finding, judged per finding on held-out images, each call located")
    add_image_findings_options(image_findings)
    _out_option(image_findings)
    image_findings.set_defaults(protocol_run=image_findings_command, title="Findings on 2-D images", trains=True)

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

    for parser in (images, segmentation, study, image_findings, privacy, gtt, augment, generator, robust, create, results):
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
        inputs = {f"--{name.replace('_', '-')}": value for name, value in vars(args).items()
                  if isinstance(value, Path) and name not in ("out", "model_out")}  # never among the inputs
        claim_folder(args.out, "report folder", is_report_folder, inputs, create=False)
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
