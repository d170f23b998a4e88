"""``medsynth translate train|apply``: translators from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from SynthLesionLib.errors import MedSynthInputError

from .config import MODELS, TranslatorConfig


def _progress(entry: dict) -> None:
    losses = " ".join(f"{k} {v:.3f}" for k, v in entry["losses"].items())
    print(f"\rstep {entry['step']}/{entry['iterations']}  {losses}  ETA {entry['eta_s']:.0f} s   ",
          end="", file=sys.stderr, flush=True)


def _training_set(args, config: TranslatorConfig):
    """(sampler kind, arrays in image units, data summary) for the chosen model."""
    from SynthLesionLib.imageio import read_volume

    from .datasets import domain_folder, mask_patches, mask_slices, slices

    if config.model in ("stargan", "migan", "cyclegan"):
        images, domains, names, summary = domain_folder(args.data, config.image_size, args.labels_csv, args.file_column,
                                                        args.label_column, args.domains, config.slice_axis,
                                                        args.slices_per_volume)
        config.domains = names
        if config.model == "cyclegan":
            if len(names) != 2:
                raise MedSynthInputError(f"CycleGAN needs exactly two domains; {args.data} has {names} (use --domains A B).")
            return "unpaired", {"a": images[domains == 0], "b": images[domains == 1]}, summary
        return "domains", {"image": images, "domain": domains}, summary
    if config.model == "maskgan":
        masks = [read_volume(p)[0] for p in sorted(Path(args.data).glob("*.nii*"))[: args.max_cases]]
        if not masks:
            raise MedSynthInputError(f"No NIfTI masks in {args.data}.")
        stack = mask_slices(masks, config.image_size) if config.spatial_dims == 2 else mask_patches(masks, config.image_size)
        return "masks", {"mask": stack}, {"folder": str(args.data), "masks": len(masks), "lesions": len(stack)}
    # pix2pix / spade: a volume and its label map (condition) or target image
    image, _ = read_volume(args.image)
    condition, _ = read_volume(args.condition)
    images, labels = slices(image, config.image_size, condition, axis=config.slice_axis, only_labelled=args.only_labelled)
    summary = {"image": str(args.image), "condition": str(args.condition), "slices": len(images)}
    config.labels = sorted(int(v) for v in np.unique(labels))
    return "paired", {"source": labels, "target": images}, summary


def _accelerator(args):
    from .accelerator import resolve_accelerator

    return resolve_accelerator(args.device, args.precision, args.channels_last)


def _add_device_options(parser) -> None:
    parser.add_argument("--device", default="auto", help="auto (a CUDA GPU if torch sees one, else cpu), cpu, cuda, cuda:N, mps")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="mixed precision (auto: bf16, or fp16 with loss scaling, on a GPU; fp32 on CPU)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="NHWC memory format (default: on for CUDA)")


def _cmd_train(args) -> int:
    from .data import BatchSampler, Normalizer, encode_label_map, one_hot_labels
    from .training import train_translator

    accelerator = _accelerator(args)  # refuse a missing GPU before reading any data

    config = TranslatorConfig(model=args.model, image_size=args.size, features=args.features, batch_size=args.batch_size,
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
        if config.model == "spade":
            arrays["source"] = one_hot_labels(arrays["source"], config.labels)
        elif config.model == "pix2pix":
            arrays["source"] = encode_label_map(arrays["source"], config.labels)
    sampler = BatchSampler(kind, config.batch_size, args.seed, **arrays)
    result = train_translator(config, sampler, normalizer, args.iterations, args.out, args.seed, summary,
                              args.sample_every, args.checkpoint_every, progress=_progress, accelerator=accelerator)
    print(file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_apply(args) -> int:
    from SynthLesionLib.imageio import read_volume, write_volume

    from .apply import sample_masks, translate_volume
    from .model_dir import load_model

    model = load_model(args.model_dir, _accelerator(args))
    if model.config.model == "maskgan":
        from SynthLesionLib import Geometry

        masks = sample_masks(model, args.count, args.seed)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for n, mask in enumerate(masks):
            write_volume(out / f"mask_{n:04d}.nii.gz", mask if mask.ndim == 3 else mask[None], Geometry())
        print(json.dumps({"masks": len(masks), "folder": str(out)}))
        return 0
    if not args.image and not args.condition:
        raise MedSynthInputError("Give --image (or --condition for label-map models).")
    image, geometry = read_volume(args.image if args.image else args.condition)
    condition = read_volume(args.condition)[0] if args.condition else None
    result = translate_volume(model, image if args.image else None, args.target_domain, condition)
    write_volume(args.out, result, geometry)
    print(json.dumps({"out": str(args.out), "shape": list(result.shape)}))
    return 0


def add_parser(subparsers) -> None:
    translate = subparsers.add_parser("translate", help="train and apply GAN translators")
    commands = translate.add_subparsers(dest="action", required=True)
    train = commands.add_parser("train", help="train a translator into a model folder (resumable)")
    train.add_argument("--model", required=True, choices=MODELS)
    train.add_argument("--data", type=Path, help="stargan/migan/cyclegan: image folder with a label CSV; maskgan: folder of NIfTI masks")
    train.add_argument("--labels-csv", type=Path)
    train.add_argument("--file-column", default="path")
    train.add_argument("--label-column", default="label")
    train.add_argument("--domains", nargs="+", help="domain names (and order) to use")
    train.add_argument("--axis", type=int, default=0, choices=[0, 1, 2],
                       help="volumes (--data, or --image/--condition): slice along this array axis (0 = k, the slice axis); "
                            "kept in the model card, so apply slices the same way")
    train.add_argument("--slices-per-volume", type=int, help="volumes in --data: this many evenly spaced slices each")
    train.add_argument("--key-domain", help="migan: the under-represented domain")
    train.add_argument("--image", type=Path, help="pix2pix/spade: the target volume")
    train.add_argument("--condition", type=Path, help="pix2pix/spade: its label map")
    train.add_argument("--only-labelled", action="store_true", help="pix2pix/spade: only slices with a label")
    train.add_argument("--size", type=int, default=64)
    train.add_argument("--window", type=float, nargs=2, metavar=("LOW", "HIGH"))
    train.add_argument("--features", type=int, default=32)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--spectral-norm", action="store_true")
    train.add_argument("--spatial-dims", type=int, default=2, choices=[2, 3], help="maskgan: 2-D slices or 3-D patches")
    train.add_argument("--max-cases", type=int, default=1000)
    train.add_argument("--iterations", type=int, default=2000)
    train.add_argument("--sample-every", type=int, default=200)
    train.add_argument("--checkpoint-every", type=int, default=200)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="model folder (a run there is resumed)")
    _add_device_options(train)
    train.set_defaults(run=_cmd_train)
    apply = commands.add_parser("apply", help="apply a trained model to a volume or image")
    apply.add_argument("--model-dir", type=Path, required=True)
    apply.add_argument("--image", type=Path)
    apply.add_argument("--target-domain")
    apply.add_argument("--condition", type=Path, help="label map (spade, pix2pix)")
    apply.add_argument("--count", type=int, default=16, help="maskgan: masks to sample")
    apply.add_argument("--seed", type=int, default=0)
    apply.add_argument("--out", type=Path, required=True)
    _add_device_options(apply)
    apply.set_defaults(run=_cmd_apply)
