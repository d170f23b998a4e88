"""The 2-D image sets of the classifier protocols (gan-train-test, augment, generator) from
the command line: their options, and the real and synthetic sets read (or sampled) from them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from MedSynthCommonLib.cli import MAX_IMAGE_SIZE, MAX_ITEMS, MAX_STEPS, finite_number, fraction, seed_number, whole_number
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.tables import FILE_COLUMN, LABEL_COLUMN


def progress_line(message: str) -> None:
    """A progress line on stderr (under torchrun, rank 0 alone reports)."""
    if os.environ.get("RANK", "0") == "0":
        print(message, file=sys.stderr, flush=True)


def real_set(args):
    from ..recipes.data import Preprocessing, load_folder

    preprocessing = Preprocessing(size=args.image_size, window=tuple(args.window) if args.window else None)
    return load_folder(args.real, args.real_labels, args.file_column, args.label_column, preprocessing, "real",
                       progress=True)


def image_sets(args):
    """(real train, real test, synthetic, split): the synthetic set read from a folder, or
    sampled from a generator's model folder (seeded)."""
    import numpy as np

    from ..recipes.data import load_folder, split
    from ..studies.synthetic_sets import is_generator_folder, sampled

    real = real_set(args)
    if is_generator_folder(args.synthetic):
        if args.synthetic_labels is not None:
            raise MedSynthInputError(f"{args.synthetic} is a model folder: its samples need no --synthetic-labels.")
        per_class = np.bincount(real.labels, minlength=len(real.class_names))
        times = max([1.0, *getattr(args, "ratios", [])])
        counts = [args.samples_per_class or int(np.ceil(times * n)) for n in per_class]
        progress_line(f"sampling {sum(counts)} images from the generator in {args.synthetic}")
        synthetic = sampled(args.synthetic, real.class_names, counts, args.sample_seed, real.preprocessing,
                            args.truncation)
    else:
        synthetic = load_folder(args.synthetic, args.synthetic_labels, args.file_column, args.label_column,
                                real.preprocessing, "synthetic", class_names=real.class_names, progress=True)
    real_train, real_test = split(real, args.test_fraction, args.split_seed)
    return real_train, real_test, synthetic, split


def classifier_recipe(args):
    from ..recipes.training import ClassifierRecipe

    from MedSynthCommonLib.devices import resolve_accelerator

    device = resolve_accelerator(args.device, precision="fp32").device  # one device check for the whole extension
    return ClassifierRecipe(network=args.network, epochs=args.epochs, batch_size=args.batch_size,
                            pretrained_weights=args.pretrained_weights, device=device, workers=args.loader_workers)


def add_image_set_options(parser) -> None:
    data = add_real_options(parser, "image sets")
    data.add_argument("--synthetic", type=Path, required=True,
                      help="folder of synthetic images with a label CSV, or a stylegan/fastgan model folder (its "
                           "images are then sampled here, seeded by --sample-seed)")
    data.add_argument("--synthetic-labels", type=Path, help="CSV of the synthetic images (default SYNTHETIC/labels.csv)")
    data.add_argument("--samples-per-class", type=whole_number(1, MAX_ITEMS),
                      help="with a model folder: images sampled per class (default: as many as the real images of "
                           "that class, times the largest --ratios of augment)")
    data.add_argument("--sample-seed", type=seed_number, default=0, help="with a model folder: seed of its samples")
    data.add_argument("--truncation", type=fraction, default=1.0,
                      help="with a model folder: 1 = full variety; lower (e.g. 0.7) = more typical images")
    training = add_classifier_options(parser)
    training.add_argument("--seeds", type=seed_number, nargs="+", default=[0, 1, 2], help="one training run per seed")


def add_real_options(parser, title: str, classes: bool = True):
    """The real images' options; ``classes``: one class per image (a label column, a split
    stratified by class), else one 0/1 column per finding (``--findings``, a random split)."""
    data = parser.add_argument_group(title)
    table = "a label CSV" if classes else "a findings CSV"
    data.add_argument("--real", type=Path, required=True, help=f"folder of real images with {table}")
    data.add_argument("--real-labels", type=Path, help="CSV of the real images (default REAL/labels.csv)")
    data.add_argument("--file-column", default=FILE_COLUMN, help="CSV column with the image paths")
    if classes:
        data.add_argument("--label-column", default=LABEL_COLUMN, help="CSV column with the class of each image")
    else:
        data.add_argument("--findings", nargs="+", required=True, metavar="COLUMN",
                          help="the CSV's finding columns, each 1 (present) or 0 (absent) per image")
    data.add_argument("--image-size", type=whole_number(8, MAX_IMAGE_SIZE), default=64, help="images are resized to IMAGE_SIZE x IMAGE_SIZE pixels")
    data.add_argument("--window", type=finite_number, nargs=2, metavar=("LOW", "HIGH"),
                      help="intensity window (default: each image's 1st-99th percentile)")
    data.add_argument("--test-fraction", type=fraction, default=0.3, help="share of the real images held out for testing")
    data.add_argument("--split-seed", type=seed_number, default=0,
                      help=f"seed of the {'stratified ' if classes else ''}train/test split")
    return data


def add_loader_workers_option(group, items: str) -> None:
    """``--loader-workers``: the DataLoader worker processes of an epoch-trained recipe."""
    from MedSynthCommonLib.threads import usable_cores

    cores = usable_cores()
    group.add_argument("--loader-workers", type=whole_number(0, cores), default=0,
                       help=f"DataLoader worker processes that augment and batch the training {items} (default 0: in "
                            "the training process, the fastest for small inputs on a few cores); at most the CPU "
                            f"cores this process may use ({cores} here), since each holds a copy of the {items}")


def add_classifier_options(parser):
    training = parser.add_argument_group("classifier")
    training.add_argument("--network", default="small", choices=["small", "densenet121", "resnet18"],
                          help="MONAI classifier network")
    training.add_argument("--pretrained-weights", help="state dict for transfer learning (loaded as weights only)")
    training.add_argument("--epochs", type=whole_number(1, MAX_STEPS), default=20, help="training epochs per run")
    training.add_argument("--batch-size", type=whole_number(1, 65536), default=16, help="images per training step")
    add_loader_workers_option(training, "images")
    training.add_argument("--device", default="auto", help="auto (a CUDA GPU if torch sees one, else cpu), cpu, cuda, cuda:N, mps")
    return training
