"""``medsynth translate train|apply``: translators from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from MedSynthCommonLib.devices import PRECISIONS
from MedSynthCommonLib.cli import MAX_IMAGE_SIZE, MAX_ITEMS, MAX_STEPS, finite_number, positive_number, seed_number, whole_number
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.tables import FILE_COLUMN, LABEL_COLUMN

from .config import MODEL_KINDS, MODELS, TranslatorConfig


def _progress(entry: dict) -> None:
    if "message" in entry:
        print(entry["message"], file=sys.stderr, flush=True)
        return
    losses = " ".join(f"{k} {v:.3f}" for k, v in entry["losses"].items())
    print(f"\rstep {entry['step']}/{entry['iterations']}  {losses}  ETA {entry['eta_s']:.0f} s   ",
          end="", file=sys.stderr, flush=True)


def _training_set(args, config: TranslatorConfig):
    """(sampler kind, arrays in image units, data summary) for the chosen model."""
    from MedSynthCommonLib.imageio import read_volume

    from .datasets import domain_folder, mask_patches, mask_slices, read_masks, slices

    kind = config.kind
    if kind.trains_from == "folder" and args.data is None:
        raise MedSynthInputError(f"--model {config.model} trains from a folder: give --data (and --labels-csv unless "
                                 "DATA/labels.csv exists).")
    if kind.trains_from == "volume" and (args.image is None or args.condition is None):
        raise MedSynthInputError(f"--model {config.model} trains from a volume and its label map: give --image and --condition.")
    if args.condition_column and not kind.new_images:
        raise MedSynthInputError("--condition-column conditions stylegan and fastgan models only.")
    if kind.min_domains:
        images, domains, names, summary, attributes = domain_folder(
            args.data, config.image_size, args.labels_csv, args.file_column, args.label_column, args.domains,
            config.slice_axis, args.slices_per_volume, tuple(args.condition_column or ()))
        config.domains = names
        if attributes.shape[1]:  # standardised; the card keeps mean and sd to condition samples in CSV units
            mean, std = attributes.mean(axis=0), attributes.std(axis=0)
            std = np.where(std > 0, std, 1.0)
            config.attributes = list(args.condition_column)
            config.attribute_stats = [[float(m), float(s)] for m, s in zip(mean, std)]
            summary["attributes"] = {name: {"mean": float(m), "sd": float(s), "min": float(lo), "max": float(hi)}
                                     for name, m, s, lo, hi in zip(config.attributes, mean, std, attributes.min(0),
                                                                   attributes.max(0))}
            return "domains", {"image": images, "domain": domains,
                               "attributes": ((attributes - mean) / std).astype(np.float32)}, summary
        if kind.exact_domains:  # CycleGAN: two unpaired sets
            if len(names) != 2:
                raise MedSynthInputError(f"CycleGAN needs exactly two domains; {args.data} has {names} (use --domains A B).")
            return "unpaired", {"a": images[domains == 0], "b": images[domains == 1]}, summary
        return "domains", {"image": images, "domain": domains}, summary
    if kind.input == "latent":
        counted = []

        def masks():
            for mask in read_masks(args.data, args.max_cases):
                counted.append(1)
                yield mask

        crop = mask_slices if config.spatial_dims == 2 else mask_patches
        stack = crop(masks(), config.image_size)
        return "masks", {"mask": stack}, {"folder": str(args.data), "masks": len(counted), "lesions": len(stack)}
    # pix2pix / spade: a volume and its label map (condition) or target image
    image, _ = read_volume(args.image)
    condition, _ = read_volume(args.condition)
    images, labels = slices(image, config.image_size, condition, axis=config.slice_axis, only_labelled=args.only_labelled)
    summary = {"image": str(args.image), "condition": str(args.condition), "slices": len(images)}
    config.labels = sorted(int(v) for v in np.unique(labels))
    if args.label_names is not None:
        config.label_names = _read_label_names(args.label_names, config.labels)
    return "paired", {"source": labels, "target": images}, summary


def _read_label_names(path: Path, values: list[int]) -> dict[str, int]:
    """{name: value} from a JSON object (written by the Slicer module beside the label map)."""
    from MedSynthCommonLib.options import read_json

    names = read_json(path, "--label-names file")
    if not isinstance(names, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in names.values()):
        raise MedSynthInputError(f"--label-names {path} must map segment names to integer label values.")
    unknown = sorted(set(names.values()) - set(values))
    if unknown:
        raise MedSynthInputError(f"--label-names {path} names value(s) {unknown} that the label map does not hold.")
    return {str(k): int(v) for k, v in names.items()}


def _accelerator(args):
    from MedSynthCommonLib.devices import resolve_accelerator

    return resolve_accelerator(args.device, args.precision, args.channels_last)


def _add_device_options(parser, channels_last: bool = True) -> None:
    group = parser.add_argument_group("device")
    group.add_argument("--device", default="auto", help="auto (a CUDA GPU if torch sees one, else cpu), cpu, cuda, cuda:N, mps")
    group.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                       help="mixed precision (auto: bf16, or fp16 with loss scaling, on a GPU; fp32 on CPU)")
    if channels_last:
        group.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                           help="NHWC memory format (default: on for CUDA)")


def _cmd_train(args) -> int:
    from MedSynthCommonLib.distributed import LAUNCH_HINT, finish, join

    from .data import BatchSampler, Normalizer, encode_condition
    from .training import train_translator

    if int(os.environ.get("RANK", "0") or 0) == 0:  # rank 0 alone writes the model folder
        from MedSynthCommonLib.storage import claim_folder

        from .model_dir import is_translator_folder

        claim_folder(args.out, "model folder", is_translator_folder, {
            "--data": args.data, "--image": args.image, "--condition": args.condition,
            "--labels-csv": args.labels_csv, "--label-names": args.label_names})
    accelerator, ranks = join(_accelerator(args))  # refuse a missing GPU before reading any data
    if not ranks.active and accelerator.device_type == "cuda":
        import torch

        if torch.cuda.device_count() > 1:
            print(f"This machine has {torch.cuda.device_count()} GPUs; this run uses one. For {LAUNCH_HINT}",
                  file=sys.stderr, flush=True)

    kind = MODEL_KINDS[args.model]
    config = TranslatorConfig(model=args.model, image_size=args.image_size, features=args.features or kind.features,
                              batch_size=args.batch_size or kind.batch_size,
                              key_domain=args.key_domain, spectral_norm=args.spectral_norm,
                              spatial_dims=args.spatial_dims, window=tuple(args.window) if args.window else None,
                              slice_axis=args.axis)
    kind, arrays, summary = _training_set(args, config)
    config.validate()
    if kind == "masks":
        normalizer = Normalizer((0.0, 1.0))
    else:
        images = arrays.get("image", arrays.get("target", arrays.get("a")))
        normalizer = Normalizer(config.window) if config.window else Normalizer.fit(images)
        config.window = (normalizer.low, normalizer.high)
        for key in ("image", "target", "a", "b"):
            if key in arrays:
                arrays[key] = normalizer.forward(arrays[key])
        if config.conditioned:
            arrays["source"] = encode_condition(config, arrays["source"])
    sampler = BatchSampler(kind, config.batch_size, args.seed, **arrays)
    try:
        result = train_translator(config, sampler, normalizer, args.iterations, args.out, args.seed, summary,
                                  args.sample_every, args.checkpoint_every, progress=_progress, accelerator=accelerator,
                                  ranks=ranks, budget_s=args.budget_minutes * 60 if args.budget_minutes else None)
    finally:
        finish(ranks)
    if ranks.is_main:
        print(file=sys.stderr)
        print(json.dumps(result, indent=2))
    return 0


def _samples_folder(folder: Path) -> bool:
    """An earlier ``translate sample`` folder: its record, or sampled masks only."""
    import re

    names = [entry.name for entry in folder.iterdir() if entry.name != ".medsynth.lock"]
    return (folder / "sampling.json").is_file() or all(re.fullmatch(r"mask_\d{4}\.nii\.gz", n) for n in names)


def _cmd_apply(args) -> int:
    from MedSynthCommonLib.geometry import Geometry
    from MedSynthCommonLib.imageio import write_volume
    from MedSynthCommonLib.storage import claim_folder
    from MedSynthCommonLib.paths import check_distinct_paths

    from .apply import sample_masks, translate_volume
    from .image_files import output_pixel_type, read_translatable, write_translated
    from .model_dir import load_model

    accelerator = _accelerator(args)
    inputs = {"--image": args.image, "--condition": args.condition, "--model-dir card": args.model_dir / "card.json"}
    model = load_model(args.model_dir, accelerator)
    if model.config.kind.new_images:
        raise MedSynthInputError(f"A {model.config.model} model makes new images: use medsynth translate sample.")
    if model.config.kind.input == "latent":
        out = claim_folder(Path(args.out), "samples folder", _samples_folder, {"--model-dir": args.model_dir})
        masks = sample_masks(model, args.count, args.seed)
        for n, mask in enumerate(masks):
            write_volume(out / f"mask_{n:04d}.nii.gz", mask if mask.ndim == 3 else mask[None], Geometry())
        print(json.dumps({"masks": len(masks), "folder": str(out)}))
        return 0
    if not args.image and not args.condition:
        raise MedSynthInputError("Give --image (or --condition for label-map models).")
    check_distinct_paths({"--out": args.out}, inputs)
    source = read_translatable(args.image if args.image else args.condition)
    condition = None
    if args.condition:
        condition = read_translatable(args.condition).grey.round().astype(np.int64)
        if condition.shape != source.grey.shape:
            raise MedSynthInputError(f"--condition {args.condition} has shape {condition.shape} but the image has "
                                     f"{source.grey.shape}; give the label map on the image's grid.")
    result = translate_volume(model, source.grey if args.image else None, args.target_domain, condition)
    # an image made from a label map takes the model's intensities, not the label map's pixel type
    pixel_type = output_pixel_type(args.out, (model.normalizer.low, model.normalizer.high)) \
        if model.config.conditioned else None
    write_translated(args.out, result, source, pixel_type)
    print(json.dumps({"out": str(args.out), "shape": list(result.shape)}))
    return 0


def _attribute_values(pairs: list[str]) -> dict[str, float]:
    """``["age=5", ...]`` -> ``{"age": 5.0}``; malformed pairs are refused."""
    values = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not name or not np.isfinite(value):
            raise MedSynthInputError(f"--attribute {pair!r}: expected NAME=NUMBER, e.g. age=5.")
        values[name] = value
    return values


def _cmd_sample(args) -> int:
    from MedSynthCommonLib.geometry import Geometry
    from MedSynthCommonLib.imageio import write_volume
    from MedSynthCommonLib.storage import FolderLock, claim_folder

    from .apply import sample_masks
    from .model_dir import load_model
    from .sampling import write_samples

    model = load_model(args.model_dir, _accelerator(args))
    out = claim_folder(Path(args.out), "samples folder", _samples_folder, {"--model-dir": args.model_dir})
    if model.config.model == "maskgan":
        masks = sample_masks(model, args.count, args.seed)
        for n, mask in enumerate(masks):
            write_volume(out / f"mask_{n:04d}.nii.gz", mask if mask.ndim == 3 else mask[None], Geometry())
        print(json.dumps({"masks": len(masks), "folder": str(out)}))
        return 0
    with FolderLock(out):
        summary = write_samples(model, args.model_dir, out, args.count, args.classes, args.truncation, args.seed,
                                args.format, _attribute_values(args.attribute))
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_bench(args) -> int:
    if args.distributed:
        from .benchmark_distributed import bench_distributed

        print(json.dumps(bench_distributed(args.model, args.iterations, args.batch_size, args.device), indent=2))
        return 0
    from .benchmark import bench_translate

    print(json.dumps(bench_translate(iterations=args.iterations, device=args.device, precision=args.precision), indent=2))
    return 0


def register(cli) -> None:
    """Add ``translate train|apply`` and ``bench translate`` to the ``medsynth`` command."""
    translate = cli.add_command("translate", "train and apply GAN translators (pix2pix, SPADE, CycleGAN, StarGAN, "
                                             "MI-GAN, mask GAN)")
    commands = cli.add_actions(translate, "action")
    from MedSynthCommonLib.distributed import LAUNCH_HINT

    train = commands.add_parser("train", help="train a translator into a model folder (run again to resume)",
                                description="Train a translator into a model folder (run again to resume). "
                                            f"On {LAUNCH_HINT}; --batch-size is then the global batch.")
    train.add_argument("--model", required=True, choices=MODELS,
                       help="; ".join(kind.label for kind in MODEL_KINDS.values()))
    data = train.add_argument_group("data")
    data.add_argument("--data", type=Path,
                      help="stargan/migan/cyclegan: folder of images or volumes with a label CSV; maskgan: folder of NIfTI masks")
    data.add_argument("--labels-csv", type=Path, help="the label CSV (default DATA/labels.csv)")
    data.add_argument("--file-column", default=FILE_COLUMN, help="CSV column with the image paths (relative to DATA)")
    data.add_argument("--label-column", default=LABEL_COLUMN, help="CSV column with the domain of each image")
    data.add_argument("--domains", nargs="+",
                      help="the domains to train on, by name (a subset of the CSV's labels; other rows are left out); "
                           "default: every label, sorted")
    data.add_argument("--axis", type=int, default=0, choices=[0, 1, 2],
                      help="volumes (--data, or --image/--condition): slice along this array axis (0 = k, the slice "
                           "axis); kept in the model card, so apply slices the same way")
    data.add_argument("--slices-per-volume", type=whole_number(1, MAX_ITEMS), help="volumes in --data: this many evenly spaced slices each (default: all)")
    data.add_argument("--key-domain", help="migan: the under-represented domain that gets the key-migration branch")
    data.add_argument("--condition-column", nargs="+", metavar="COLUMN",
                      help="stylegan, fastgan: numeric columns of the label CSV (e.g. age) that condition the images too")
    data.add_argument("--image", type=Path, help="pix2pix/spade: the target volume")
    data.add_argument("--condition", type=Path, help="pix2pix/spade: its label map")
    data.add_argument("--only-labelled", action="store_true", help="pix2pix/spade: train only on slices with a label")
    data.add_argument("--label-names", type=Path,
                      help="pix2pix/spade: JSON {segment name: label value}; stored in the model card so that Slicer "
                           "maps segments to the same values when the model is applied")
    data.add_argument("--max-cases", type=whole_number(1, MAX_ITEMS), default=1000, help="maskgan: read at most this many masks")
    net = train.add_argument_group("network and training")
    net.add_argument("--image-size", type=whole_number(8, MAX_IMAGE_SIZE), default=64, help="slices are resized to IMAGE_SIZE x IMAGE_SIZE pixels")
    net.add_argument("--window", type=finite_number, nargs=2, metavar=("LOW", "HIGH"),
                     help="intensity window mapped to [-1, 1] (default: the data's 0.5-99.5 percentiles)")
    net.add_argument("--features", type=whole_number(1, 4096),
                     help="width of the first network layer (default: the model's; 32, fastgan 16)")
    net.add_argument("--batch-size", type=whole_number(1, 65536),
                     help="images per training step (default: the model's; 16, fastgan 32)")
    net.add_argument("--spectral-norm", action="store_true", help="spectral normalisation in the discriminators")
    net.add_argument("--spatial-dims", type=int, default=2, choices=[2, 3], help="maskgan: 2-D slices or 3-D patches")
    net.add_argument("--iterations", type=whole_number(1, MAX_STEPS), default=2000, help="training steps in all (a resumed run continues to this)")
    net.add_argument("--sample-every", type=whole_number(1, MAX_STEPS), default=200, help="write a sample grid every N steps")
    net.add_argument("--checkpoint-every", type=whole_number(1, MAX_STEPS), default=200, help="save a resumable checkpoint and the model every N steps")
    net.add_argument("--budget-minutes", type=positive_number,
                     help="stop after this much training time with the model, a checkpoint and a sample grid written "
                          "(the same command later goes on)")
    net.add_argument("--seed", type=seed_number, default=0, help="random seed (a resumed run keeps the seed it started with)")
    train.add_argument("--out", type=Path, required=True, help="model folder (a run there is resumed)")
    _add_device_options(train)
    train.set_defaults(run=_cmd_train)

    apply = commands.add_parser("apply", help="apply a trained model to a volume or a 2-D image, or sample masks")
    apply.add_argument("--model-dir", type=Path, required=True, help="a model folder written by translate train")
    apply.add_argument("--image", type=Path, help="the volume or 2-D image (PNG, JPEG, NIfTI, DICOM) to translate")
    apply.add_argument("--target-domain", help="stargan/migan/cyclegan: the domain to translate into")
    apply.add_argument("--condition", type=Path, help="spade/pix2pix trained on label maps: the label map")
    apply.add_argument("--count", type=whole_number(1, MAX_ITEMS), default=16, help="maskgan: masks to sample")
    apply.add_argument("--seed", type=seed_number, default=0, help="maskgan: random seed of the sampled masks")
    apply.add_argument("--out", type=Path, required=True,
                       help="output file (same format and size as the input), or for maskgan a folder of masks")
    _add_device_options(apply)
    apply.set_defaults(run=_cmd_apply)

    sample = commands.add_parser("sample", help="new images from a stylegan or fastgan model (with a labels CSV ready for "
                                                "evaluate gan-train-test / augment), or masks from a maskgan")
    sample.add_argument("--model-dir", type=Path, required=True, help="a stylegan, fastgan or maskgan model folder")
    sample.add_argument("--count", type=whole_number(1, MAX_ITEMS), default=16, help="images per class (maskgan: masks)")
    sample.add_argument("--class", dest="classes", nargs="+", metavar="CLASS",
                        help="stylegan, fastgan: the classes to sample (default: every class of the model)")
    sample.add_argument("--attribute", nargs="+", metavar="NAME=VALUE", default=[],
                        help="stylegan or fastgan trained with --condition-column: attribute values of the samples, in the "
                             "CSV's units (default: the training mean)")
    sample.add_argument("--truncation", type=finite_number, default=1.0,
                        help="stylegan, fastgan: 1 = full variety; lower (e.g. 0.7) = more typical images")
    sample.add_argument("--format", choices=["png", "nii.gz"],
                        help="stylegan, fastgan: image files (default: PNG when the intensity window fits 8/16-bit, else NIfTI)")
    sample.add_argument("--seed", type=seed_number, default=0, help="random seed (each class its own stream)")
    sample.add_argument("--out", type=Path, required=True, help="output folder (images, labels.csv, sampling.json)")
    _add_device_options(sample)
    sample.set_defaults(run=_cmd_sample)

    bench = cli.add_benchmark("translate", "training-loop overhead against a plain PyTorch loop, and inference speed")
    bench.add_argument("--iterations", type=whole_number(11, MAX_STEPS), default=30, help="training steps per model (the first 10 are not timed)")
    bench.add_argument("--distributed", action="store_true",
                       help="instead: samples/s of one model on 1 and 2 torchrun processes (same global batch) and "
                            "on one plain process")
    bench.add_argument("--model", default="pix2pix", choices=MODELS, help="--distributed: the model")
    bench.add_argument("--batch-size", type=whole_number(2, 65536), default=16, help="--distributed: the global batch (even)")
    _add_device_options(bench, channels_last=False)
    bench.set_defaults(run=_cmd_bench)


register.order = 20
