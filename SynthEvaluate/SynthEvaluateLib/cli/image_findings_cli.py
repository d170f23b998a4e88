"""``medsynth evaluate image-findings``: multi-label findings on 2-D images from the command line.
The findings model (the one that reads CT volumes, here on [y, x] images) trains on a folder of
images listed in a CSV with one 0/1 column per finding, is judged per finding on a held-out
share of them, locates each call in the image, and is kept in ``OUT/model``."""

from __future__ import annotations

import time
from pathlib import Path

from MedSynthCommonLib.cli import MAX_IMAGE_SIZE, MAX_STEPS, finite_number, fraction, seed_number, whole_number
from MedSynthCommonLib.tables import FILE_COLUMN

from .image_set_cli import progress_line


def add_image_findings_options(parser) -> None:
    data = parser.add_argument_group("images")
    data.add_argument("--real", type=Path, required=True, help="folder of images with a findings CSV")
    data.add_argument("--real-labels", type=Path, help="the findings CSV (default REAL/labels.csv)")
    data.add_argument("--findings", nargs="+", required=True, metavar="COLUMN",
                      help="the CSV's finding columns, each 1 (present) or 0 (absent) per image")
    data.add_argument("--file-column", default=FILE_COLUMN, help="CSV column with the image paths")
    data.add_argument("--image-size", type=whole_number(8, MAX_IMAGE_SIZE), default=64,
                      help="images are resized to IMAGE_SIZE x IMAGE_SIZE pixels")
    data.add_argument("--window", type=finite_number, nargs=2, metavar=("LOW", "HIGH"),
                      help="intensity window (default: each image's 1st-99th percentile)")
    data.add_argument("--test-fraction", type=fraction, default=0.3, help="share of the images held out for testing")
    data.add_argument("--split-seed", type=seed_number, default=0, help="seed of the train/test split")
    training = parser.add_argument_group("findings model")
    training.add_argument("--network", default="small", choices=["small", "densenet121", "resnet18"],
                          help="small: a residual network with one score map per finding (trains on a CPU); "
                               "densenet121 / resnet18: MONAI's, for a GPU")
    training.add_argument("--epochs", type=whole_number(1, MAX_STEPS), default=30, help="training epochs")
    training.add_argument("--batch-size", type=whole_number(1, 65536), default=16, help="images per training step")
    training.add_argument("--seed", type=seed_number, default=0, help="seed of the validation split and training")
    training.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")


def image_findings_command(args) -> dict:
    """The images read, the findings model trained (its thresholds chosen on a quarter of the
    training images), judged on the held-out images, and saved in ``OUT/model``."""
    from MedSynthCommonLib.devices import resolve_accelerator

    from ..findings.multilabel_2d import evaluate_multilabel, image_findings_recipe, train_image_findings
    from ..recipes.data import Preprocessing, load_findings_folder, split
    from ..recipes.findings_model import check_new_model_folder, save_findings_model

    model_out = check_new_model_folder(Path(args.out) / "model", "--out")
    preprocessing = Preprocessing(size=args.image_size, window=tuple(args.window) if args.window else None)
    images = load_findings_folder(args.real, args.findings, args.real_labels, args.file_column, preprocessing,
                                  progress=True)
    train, test = split(images, args.test_fraction, args.split_seed)
    device = resolve_accelerator(args.device, precision="fp32").device
    recipe = image_findings_recipe(train, network=args.network, epochs=args.epochs, batch_size=args.batch_size,
                                   device=device)
    started = time.perf_counter()

    def say(entry: dict) -> None:
        if "epoch" in entry:
            left = (time.perf_counter() - started) / entry["epoch"] * (entry["epochs"] - entry["epoch"])
            progress_line(f"epoch {entry['epoch']}/{entry['epochs']} loss {entry['loss']:.3f}, ETA {left:.0f} s")

    model = train_image_findings(train, recipe, args.seed, progress=say)
    save_findings_model(model_out, model)
    result = evaluate_multilabel(model, test)
    result.update(recipe=recipe.to_dict(), seed=args.seed, model=str(model_out),
                  sets={"train": train.summary(), "test": test.summary()}, training=model.training)
    return result
