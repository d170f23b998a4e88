"""``medsynth``: the command-line program (lesion, build-db, bench, demo)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import LesionConfig
from .errors import MedSynthInputError
from .presets import PRESETS
from .sizes import MIX, SIZE_CLASSES


def _add_lesion_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="small", choices=[*SIZE_CLASSES, MIX], help="size class (default small)")
    parser.add_argument("--count", type=int, default=1, help="lesions per output (default 1)")
    parser.add_argument("--preset", default="ct-liver", choices=list(PRESETS), help="organ/modality preset")
    parser.add_argument("--lesion-type", choices=["hypo", "iso", "hyper", "mixed"], help="default: the preset's")
    parser.add_argument("--contrast", type=float, help="fixed contrast (HU for CT, organ sd for MR)")
    parser.add_argument("--mass-effect", type=float, help="0-100 (default: the preset's)")
    parser.add_argument("--capsule", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--no-vessel-avoidance", action="store_true", help="allow vessels inside lesions")
    parser.add_argument("--vessel-threshold-sd", type=float, help="vessels: smoothed image above median + K organ sd")


def _config_from(args) -> LesionConfig:
    return LesionConfig(
        preset=args.preset, size_class=args.size, count=args.count, lesion_type=args.lesion_type,
        contrast=args.contrast, mass_effect=args.mass_effect,
        capsule={"auto": None, "yes": True, "no": False}[args.capsule],
        avoid_vessels=not args.no_vessel_avoidance, vessel_threshold_sd=args.vessel_threshold_sd,
        centres_ras=getattr(args, "centre", None),
    ).validate()


def _cmd_lesion(args) -> int:
    from .files import synthesize_files

    result, outputs = synthesize_files(args.image, args.organ_mask, args.out_image, args.out_label, _config_from(args),
                                       args.seed, args.organ_label, args.record, args.preview, args.shape_mask)
    print(result.finding)
    print(json.dumps({k: str(v) for k, v in vars(outputs).items() if v is not None}, indent=2))
    return 0


def _cmd_build_db(args) -> int:
    from .database import build_database, read_cases

    summary = build_database(read_cases(args.cases), args.out, args.variants, _config_from(args), args.seed,
                             args.workers, progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 1 if summary["failed"] else 0


def _cmd_bench(args) -> int:
    from .benchmark import bench_files, bench_phantom

    if args.what == "translate":
        from SynthTranslateLib.benchmark import bench_translate

        print(json.dumps(bench_translate(device=args.device, precision=args.precision), indent=2))
        return 0
    if args.what == "evaluate":
        from SynthEvaluateLib.benchmark import bench_evaluate

        print(json.dumps(bench_evaluate(), indent=2))
        return 0
    if args.data is None:
        result = bench_phantom(args.repeats)
    else:
        data = Path(args.data)
        result = {"phantom": bench_phantom(args.repeats)} if args.with_phantom else {}
        result["real_ct"] = bench_files(data / "case01_ct3mm_image.nii.gz", data / "case01_ct3mm_liver.nii.gz",
                                        None, "ct-liver", args.repeats)
        if args.preview_dir is not None:
            from .benchmark import real_data_previews

            from .benchmark import brain_shape_bank_preview

            result["previews"] = {"folder": str(args.preview_dir), "lesions": real_data_previews(data, args.preview_dir),
                                  "brain_shape_bank": brain_shape_bank_preview(data.parent, args.preview_dir)}
    print(json.dumps(result, indent=2))
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsynth", description="MedSynth: exactly labelled synthetic lesions.")
    sub = parser.add_subparsers(dest="command", required=True)

    lesion = sub.add_parser("lesion", help="insert lesions into one image (NIfTI/NRRD)")
    lesion.add_argument("--image", required=True, type=Path)
    lesion.add_argument("--organ-mask", required=True, type=Path)
    lesion.add_argument("--organ-label", type=int, help="organ's value in a multi-label mask (default: any non-zero)")
    lesion.add_argument("--seed", type=int, default=0)
    lesion.add_argument("--centre", type=float, nargs=3, action="append", metavar=("R", "A", "S"),
                        help="place a lesion here (RAS mm); repeat for several")
    lesion.add_argument("--shape-mask", type=Path, action="append", help="lesion shape from this mask; repeatable")
    _add_lesion_options(lesion)
    lesion.add_argument("--out-image", required=True, type=Path)
    lesion.add_argument("--out-label", required=True, type=Path, help="0 background, 1 organ, 2 lesion")
    lesion.add_argument("--record", type=Path, help="JSON record that regenerates the case")
    lesion.add_argument("--preview", type=Path, help="PNG of axial slices through the lesions")
    lesion.set_defaults(run=_cmd_lesion)

    db = sub.add_parser("build-db", help="many variants of many cases, in parallel, resumable")
    db.add_argument("--cases", required=True, type=Path, help="CSV: image, organ_mask[, case_id, organ_label, preset]")
    db.add_argument("--variants", type=int, default=10, help="outputs per case")
    db.add_argument("--out", required=True, type=Path)
    db.add_argument("--workers", type=int, default=1)
    db.add_argument("--seed", type=int, default=0)
    db.add_argument("--quiet", action="store_true")
    _add_lesion_options(db)
    db.set_defaults(run=_cmd_build_db)

    bench = sub.add_parser("bench", help="benchmarks (prints JSON)")
    bench.add_argument("what", choices=["lesion", "evaluate", "translate"])
    bench.add_argument("--data", type=Path, help="folder like ../shared/data/abdomen_ct to bench on real CT")
    bench.add_argument("--with-phantom", action="store_true", help="with --data: also run the phantom benchmark")
    bench.add_argument("--repeats", type=int, default=15)
    bench.add_argument("--preview-dir", type=Path, help="with --data: write PNGs of lesions on the real CT and MR here")
    bench.add_argument("--device", default="auto", help="translate: auto, cpu, cuda, cuda:N or mps")
    bench.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                       help="translate: mixed precision (auto: bf16/fp16 on a GPU, fp32 on CPU)")
    bench.set_defaults(run=_cmd_bench)

    from SynthEvaluateLib.cli import add_parser as add_evaluate_parser
    from SynthTranslateLib.cli import add_parser as add_translate_parser

    add_evaluate_parser(sub)
    add_translate_parser(sub)

    demo = sub.add_parser("demo", help="run on a built-in CT phantom (no data needed)")
    demo.add_argument("--out", default="demo_output")
    demo.set_defaults(run=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except MedSynthInputError as error:
        print(f"medsynth: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medsynth: interrupted; finished outputs are kept, run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
