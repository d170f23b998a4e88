"""``medsynth evaluate image-findings``: multi-label findings on 2-D images from the command line.
The findings model (the one that reads CT volumes, here on [y, x] images) trains on a folder of
images listed in a CSV with one 0/1 column per finding, is judged per finding on a held-out
share of them, locates each call in the image, and is kept in ``OUT/model``."""

from __future__ import annotations

from pathlib import Path

from MedSynthCommonLib.cli import MAX_STEPS, seed_number, whole_number

from .image_set_cli import add_loader_workers_option, add_real_options, progress_line


def add_image_findings_options(parser) -> None:
    add_real_options(parser, "images", classes=False)
    training = parser.add_argument_group("findings model")
    training.add_argument("--network", default="small", choices=["small", "densenet121", "resnet18"],
                          help="small: a residual network with one score map per finding (trains on a CPU); "
                               "densenet121 / resnet18: MONAI's, for a GPU")
    training.add_argument("--epochs", type=whole_number(1, MAX_STEPS), default=30, help="training epochs")
    training.add_argument("--batch-size", type=whole_number(1, 65536), default=16, help="images per training step")
    add_loader_workers_option(training, "images")
    training.add_argument("--seed", type=seed_number, default=0, help="seed of the validation split and training")
    training.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")


def image_findings_command(args) -> dict:
    """The images read, the findings model trained (its thresholds chosen on a quarter of the
    training images), judged on the held-out images, and saved in ``OUT/model``."""
    from MedSynthCommonLib.devices import resolve_accelerator

    from ..findings.multilabel_2d import evaluate_multilabel, image_findings_recipe, train_image_findings
    from ..recipes.data import Preprocessing, load_findings_folder, split
    from ..recipes.loop import epoch_line
    from ..recipes.findings_model import check_new_model_folder, save_findings_model

    model_out = check_new_model_folder(Path(args.out) / "model", "--out")
    preprocessing = Preprocessing(size=args.image_size, window=tuple(args.window) if args.window else None)
    images = load_findings_folder(args.real, args.findings, args.real_labels, args.file_column, preprocessing,
                                  progress=True)
    train, test = split(images, args.test_fraction, args.split_seed)
    device = resolve_accelerator(args.device, precision="fp32").device
    recipe = image_findings_recipe(train, network=args.network, epochs=args.epochs, batch_size=args.batch_size,
                                   device=device, workers=args.loader_workers)
    model = train_image_findings(train, recipe, args.seed, progress=lambda entry: progress_line(epoch_line(entry)))
    save_findings_model(model_out, model)
    result = evaluate_multilabel(model, test)
    result.update(recipe=recipe.to_dict(), seed=args.seed, model=str(model_out),
                  sets={"train": train.summary(), "test": test.summary()}, training=model.training)
    return result
