"""SynthLesion's subcommands of ``medsynth``: ``lesion``, ``build-db``, ``demo``, ``bench lesion``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from MedSynthCommonLib.cli import MAX_ITEMS, finite_number, seed_number, whole_number
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.executors import add_executor_options

from .config import LesionConfig
from .presets import PRESETS

PHASES = sorted({phase for preset in PRESETS.values() for phase in preset.phases})
from .sizes import MIX, SIZE_CLASSES



def _add_lesion_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("lesions")
    group.add_argument("--size", default="small", choices=[*SIZE_CLASSES, MIX],
                       help="size class by equivalent diameter: tiny 5-10 mm, small 10-20, medium 20-40, large 40-80, "
                            "or mix (one class drawn per lesion)")
    group.add_argument("--count", type=whole_number(1, 1000), help="lesions per output (default 1; with --centre: one per point)")
    group.add_argument("--preset", default="ct-liver", type=_preset_name, metavar="{" + ",".join(PRESETS) + "} or FILE.json",
                       help="organ and modality: decides intensities (HU for CT, organ SD for MR), texture, vessels; "
                            "or a preset file written by 'medsynth lesion-fit'")
    group.add_argument("--lesion-type", choices=["hypo", "iso", "hyper", "mixed"],
                       help="darker, like, or brighter than the organ (mixed: drawn per lesion); default: the preset's")
    group.add_argument("--contrast", type=finite_number,
                       help="fixed lesion contrast to the organ (HU for CT, organ SD for MR); default: drawn from the preset")
    group.add_argument("--mass-effect", type=finite_number,
                       help="push on the surrounding tissue, 0 (none) to 100; default: the preset's")
    group.add_argument("--phase", choices=PHASES,
                       help="contrast phase for presets that have phases (ct-liver: hypodense in portal-venous and "
                            "delayed, hyperdense in arterial); default: the preset's (ct-liver: portal-venous)")
    group.add_argument("--capsule", choices=["auto", "yes", "no"], default="auto",
                       help="a thin brighter rim inside the lesion boundary (auto: with the preset's probability; "
                            "never on lesions below 15 mm, never cancelling the lesion's contrast)")
    for component, text in (("necrosis", "a darker (necrotic) core in lesions of 25 mm or more"),
                            ("calcification", "1-3 bright calcified foci"),
                            ("rim", "rim enhancement: a brighter peripheral band")):
        group.add_argument(f"--{component}", choices=["auto", "yes", "no"], default="auto",
                           help=f"{text} (auto: with the preset's probability)")
    group.add_argument("--allow-fewer", action=argparse.BooleanOptionalAction, default=True,
                       help="when a lesion fits nowhere (small or truncated organ), place the others and say so "
                            "(--no-allow-fewer: refuse the case)")
    group.add_argument("--no-vessel-avoidance", action="store_true", help="allow vessels inside lesions")
    group.add_argument("--vessel-threshold-sd", type=finite_number,
                       help="vessels are voxels whose smoothed intensity is above the organ median + K organ SD; "
                            "default: the preset's K")


def _config_from(args) -> LesionConfig:
    centres = getattr(args, "centre", None)
    if centres and args.count is not None and args.count != len(centres):
        raise MedSynthInputError(f"--count {args.count} with {len(centres)} --centre point(s): each point makes one "
                                 "lesion; leave --count out, or give one --centre per lesion.")
    return LesionConfig(
        preset=args.preset, size_class=args.size, count=args.count or 1, lesion_type=args.lesion_type,
        contrast=args.contrast, mass_effect=args.mass_effect,
        capsule=_TRISTATE[args.capsule], necrosis=_TRISTATE[args.necrosis],
        calcification=_TRISTATE[args.calcification], rim=_TRISTATE[args.rim], phase=args.phase,
        allow_fewer=args.allow_fewer,
        avoid_vessels=not args.no_vessel_avoidance, vessel_threshold_sd=args.vessel_threshold_sd,
        centres_ras=centres,
    ).validate()


_TRISTATE = {"auto": None, "yes": True, "no": False}


def _preset_name(text: str) -> str:
    if text in PRESETS or text.lower().endswith(".json"):
        return text
    raise argparse.ArgumentTypeError(f"unknown preset {text!r}: choose one of {', '.join(PRESETS)} or a .json preset file")


#: ``lesion`` shows a progress bar from this many lesions on
LESIONS_SHOWN = 10


def _cmd_lesion(args) -> int:
    from .files import read_record, synthesize_files

    record = None
    if args.from_record is not None:
        record = read_record(args.from_record)
        config, seed, organ_label = LesionConfig.from_dict(record["config"]).validate(), record["seed"], record.get("organ_label")
    else:
        config, seed, organ_label = _config_from(args), args.seed, args.organ_label
    from MedSynthCommonLib.progress import progress_bar

    # many lesions take minutes: a bar with an ETA (a few lesions take seconds: none)
    with progress_bar(config.lesion_count, "lesions", "lesion", enabled=config.lesion_count >= LESIONS_SHOWN) as bar:
        result, outputs = synthesize_files(args.image, args.organ_mask, args.out_image, args.out_label, config,
                                           seed, organ_label, args.record, args.preview, args.shape_mask,
                                           record_full_paths=args.record_full_paths, from_record=record,
                                           progress=lambda done, asked: bar.update(done - bar.n))
    for warning in result.case_record.get("warnings", []):
        print(f"medsynth: warning: {warning}", file=sys.stderr)
    print(result.finding)
    print(json.dumps({k: str(v) for k, v in vars(outputs).items() if v is not None}, indent=2))
    return 0


def _cmd_fit(args) -> int:
    from MedSynthCommonLib.storage import write_json_atomic

    from .fit import fit_preset, read_fit_cases

    if args.out.suffix.lower() != ".json":
        raise MedSynthInputError(f"--out {args.out} must be a .json file (the preset).")
    cases = read_fit_cases(args.image, args.label, args.organ_label, args.lesion_label)
    result = fit_preset(cases, args.base, args.name or args.out.stem, args.seed,
                        progress=lambda line: print(line, file=sys.stderr, flush=True))
    write_json_atomic(args.out, result)
    fit = result["fit"]
    if "warning" in fit:
        print(f"medsynth: warning: {fit['warning']}", file=sys.stderr)
    print(json.dumps({"preset": str(args.out), "lesions": fit["measured_lesions"], "real": fit["real"]["contrast"],
                      "simulated": fit["simulated_with_fit"]["contrast"]}, indent=2))
    return 0


def _cmd_build_db(args) -> int:
    from .database import build_database, read_cases

    summary = build_database(read_cases(args.cases), args.out, args.variants, _config_from(args), args.seed,
                             args.workers, progress=not args.quiet, force=args.force, cluster=args.cluster)
    print(json.dumps(summary, indent=2))
    return 1 if summary["failed"] else 0


def _cmd_bench(args) -> int:
    from .benchmark import bench_files, bench_phantom

    load = not args.no_load
    if args.image is None:
        result = {grid: bench_phantom(args.repeats, grid, load) for grid in args.grids}
    else:
        if args.organ_mask is None:
            raise MedSynthInputError("bench lesion --image needs --organ-mask as well.")
        result = {grid: bench_phantom(args.repeats, grid, load) for grid in args.grids} if args.with_phantom else {}
        result["file"] = bench_files(args.image, args.organ_mask, args.organ_label, args.preset, args.repeats, load)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_bench_transform(args) -> int:
    from .benchmark_transform import bench_transform

    print(json.dumps(bench_transform(args.repeats, args.steps), indent=2))
    return 0


def _cmd_bench_build(args) -> int:
    from .benchmark_build import bench_build

    print(json.dumps(bench_build(args.cases, args.variants), indent=2))
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out))
    return 0


def register(cli) -> None:
    """Add ``lesion``, ``build-db``, ``demo`` and ``bench lesion`` to the ``medsynth`` command."""
    lesion = cli.add_command("lesion", "insert lesions into one CT or MR volume and write it with its exact label map")
    inputs = lesion.add_argument_group("inputs")
    inputs.add_argument("--image", required=True, type=Path, help="the volume (NIfTI, NRRD, or a DICOM series folder)")
    inputs.add_argument("--organ-mask", required=True, type=Path, help="organ mask or multi-organ label map on the image's grid")
    inputs.add_argument("--organ-label", type=whole_number(0, 2**31 - 1),
                        help="the organ's value in a multi-label map (e.g. 5 = liver in TotalSegmentator maps); "
                             "default: any non-zero voxel")
    inputs.add_argument("--seed", type=seed_number, default=0, help="random seed: the same inputs and seed give the same files")
    inputs.add_argument("--centre", type=finite_number, nargs=3, action="append", metavar=("R", "A", "S"),
                        help="place a lesion here (RAS, mm) instead of at random; repeat for several")
    inputs.add_argument("--shape-mask", type=Path, action="append",
                        help="take the lesion shape from this 3-D mask (e.g. a real lesion); repeat for a bank")
    inputs.add_argument("--from-record", type=Path,
                        help="regenerate a case from its JSON record (its options and seed; the inputs must be the "
                             "files it was made from)")
    _add_lesion_options(lesion)
    outputs = lesion.add_argument_group("outputs")
    outputs.add_argument("--out-image", required=True, type=Path, help="image with lesions (.nii.gz, .nii, .nrrd, .mha)")
    outputs.add_argument("--out-label", required=True, type=Path,
                         help="label map on the same grid: 0 background, 1 organ, 2 lesion")
    outputs.add_argument("--record", type=Path, help="JSON record of everything drawn; regenerates the case")
    outputs.add_argument("--record-full-paths", action="store_true",
                         help="store the inputs' full paths in the record (default: file names and SHA-256 only, "
                              "since hospital paths often carry patient names)")
    outputs.add_argument("--preview", type=Path, help="PNG of axial slices through the lesions")
    lesion.set_defaults(run=_cmd_lesion)

    fit = cli.add_command("lesion fit", "learn a preset from your own annotated tumours (writes a preset .json "
                                        "usable wherever a preset name is)")
    fit.add_argument("--image", type=Path, action="append", required=True, help="a CT/MR volume; repeat for more cases")
    fit.add_argument("--label", type=Path, action="append", required=True,
                     help="its label map (organ and tumour labels), one per --image, in the same order")
    fit.add_argument("--organ-label", type=whole_number(0, 2**31 - 1), required=True, help="the organ's value in the label maps (e.g. 1 in LiTS)")
    fit.add_argument("--lesion-label", type=whole_number(0, 2**31 - 1), required=True, help="the tumours' value in the label maps (e.g. 2 in LiTS)")
    fit.add_argument("--base", default="ct-generic", type=_preset_name,
                     help="preset whose other settings (vessels, capsule, components) the fitted one keeps")
    fit.add_argument("--name", help="name of the fitted preset (default: the output file's name)")
    fit.add_argument("--seed", type=seed_number, default=0, help="seed of the simulations used to fit")
    fit.add_argument("--out", type=Path, required=True, help="the preset file to write (.json)")
    fit.set_defaults(run=_cmd_fit)

    db = cli.add_command("build-db", "many variants of many cases, in parallel, resumable after any interruption")
    db.add_argument("--cases", required=True, type=Path,
                    help="CSV with columns image, organ_mask and optionally case_id, organ_label, preset "
                         "(paths relative to the CSV)")
    db.add_argument("--variants", type=whole_number(1, MAX_ITEMS), default=10, help="outputs per case")
    db.add_argument("--out", required=True, type=Path,
                    help="database folder: images/, labels/, records/ and manifest.jsonl (one line per finished output)")
    add_executor_options(db, "(one output at a time each)")
    db.add_argument("--seed", type=seed_number, default=0, help="base seed; each output's seed comes from it, the case id and the variant")
    db.add_argument("--force", action="store_true",
                    help="discard outputs that an earlier run made in --out with other settings (default: refuse)")
    db.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_lesion_options(db)
    db.set_defaults(run=_cmd_build_db)

    demo = cli.add_command("demo", "the lesion pipeline on a built-in CT phantom (no data needed)")
    demo.add_argument("--out", default="demo_output", help="folder for the demo's inputs, lesions, previews and database")
    demo.set_defaults(run=_cmd_demo)

    bench = cli.add_benchmark("lesion", "time and memory of one insertion per size class (cold, repeated, warm, in "
                                        "place, several a call; other cores idle and busy), as a ratio to a volume copy")
    bench.add_argument("--image", type=Path, help="bench on this volume instead of the 512x512x150 CT phantom")
    bench.add_argument("--organ-mask", type=Path, help="with --image: its organ mask")
    bench.add_argument("--organ-label", type=whole_number(0, 2**31 - 1), help="with --image: the organ's value in the mask (default: non-zero)")
    bench.add_argument("--preset", default="ct-liver", choices=list(PRESETS), help="with --image: the preset")
    bench.add_argument("--with-phantom", action="store_true", help="with --image: run the phantom benchmark too")
    bench.add_argument("--repeats", type=whole_number(1, MAX_ITEMS), default=15, help="insertions timed per size class")
    bench.add_argument("--grids", nargs="+", default=["clinical", "isotropic_1mm"], choices=["clinical", "isotropic_1mm"],
                       help="phantom grids: 512x512x150 at 0.8x0.8x2.5 mm, and 400x400x300 at 1 mm")
    bench.add_argument("--no-load", action="store_true",
                       help="time with the other cores idle only (default: idle, then busy with busy-loop processes)")
    bench.set_defaults(run=_cmd_bench)

    transform = cli.add_benchmark("lesion-transform", "RandSynthLesiond in a MONAI pipeline against RandCropByPosNegLabeld, "
                                                      "and UNet training throughput with 2 DataLoader workers")
    transform.add_argument("--repeats", type=whole_number(1, MAX_ITEMS), default=10, help="timed calls per transform")
    transform.add_argument("--steps", type=whole_number(1, MAX_ITEMS), default=12, help="training samples timed per setting")
    transform.set_defaults(run=_cmd_bench_transform)

    build = cli.add_benchmark("build-db", "build-db outputs/s serially, with 2 worker processes and on a 2-worker Dask "
                                          "LocalCluster, and Dask's overhead per task")
    build.add_argument("--cases", type=whole_number(1, MAX_ITEMS), default=4, help="phantom cases")
    build.add_argument("--variants", type=whole_number(1, MAX_ITEMS), default=8, help="outputs per case")
    build.set_defaults(run=_cmd_bench_build)


register.order = 10
